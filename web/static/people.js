// The people the page knows of, and their presence.
//
// People are learnt from the lobby, from messages, and from the names the
// user writes to; localStorage keeps them, so the list survives a reload.

import { S, store } from "./state.js";
import { render, clock, sameDay } from "./view.js";

/** learn records a user the page has heard of, and watches their presence. */
export function learn(user) {
  if (!user || user === S.me || user.startsWith("conn:")) return;
  if (!S.people.has(user)) {
    S.people.set(user, { online: null, lastSeen: null });
    store.set("people", [...S.people.keys()].slice(-500));
    render();
  }
  if (S.connected && !S.watched.has(user)) {
    S.watched.add(user);
    S.client.watch([user]).catch(() => S.watched.delete(user));
  }
}

export function onPresence(p) {
  learn(p.user);
  S.people.set(p.user, { online: !!p.online, lastSeen: p.lastSeen ?? null });
  render();
}

export function lastSeenText(p) {
  if (!p || p.online == null) return "";
  if (p.online) return "online";
  if (!p.lastSeen) return "offline";
  const ago = (Date.now() - new Date(p.lastSeen).getTime()) / 1000;
  if (ago < 60) return "last seen just now";
  if (ago < 3600) return `last seen ${Math.floor(ago / 60)} min ago`;
  const d = new Date(p.lastSeen);
  return sameDay(d, new Date()) ? `last seen at ${clock(p.lastSeen)}` : `last seen ${d.toLocaleDateString(undefined, { day: "numeric", month: "short" })}`;
}
