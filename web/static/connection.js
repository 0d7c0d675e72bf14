// The connection to the server through the JS client, and its status in the
// top bar. Each (re)connection catches up with what the server can tell
// again: the conversation list, the lobby, presence, the open conversation.

import { S, setReceipt } from "./state.js";
import { byTestId, render, toast } from "./view.js";
import { onPresence } from "./people.js";
import { onDirectMessage, loadNewest, markRead } from "./conversation.js";
import { onRoomMessage, refreshLobby } from "./lobby.js";
import { refreshConversations } from "./lists.js";

async function tokenFn() {
  if (S.firstToken) {
    const t = S.firstToken;
    S.firstToken = null;
    return t;
  }
  const res = await fetch("/dev/token?user=" + encodeURIComponent(S.me), { cache: "no-store" });
  if (!res.ok) throw new Error(`GET /dev/token: HTTP ${res.status} (is the server running with --dev?)`);
  const { token } = await res.json();
  return token;
}

/** openClient connects as S.me, with connect from courier.js. */
export function openClient(connect) {
  const opts = { tokenFn };
  if (S.lastSeq > 0) opts.since = S.lastSeq;
  const c = connect(location.origin.replace(/^http/, "ws") + "/ws", opts);
  S.client = c;
  c.on("connect", onConnect);
  c.on("disconnect", onDisconnect);
  c.on("message", onMessage);
  c.on("receipt", onReceipt);
  c.on("presence", onPresence);
  c.on("connect_error", () => { if (!S.connected && S.connects > 0) setStatus("reconnecting"); });
  c.on("error", (e) => {
    console.warn("courier:", e);
    if (c.closed) {
      // The client stopped for good (e.g. disconnected by the server's API).
      S.connected = false;
      setStatus("offline", e.message);
      toast(e.code === "disconnected_by_server"
        ? "The server disconnected you. Reload the page to connect again."
        : `Connection closed: ${e.message}`);
    }
  });
}

async function onConnect() {
  S.connected = true;
  S.connects++;
  setStatus("connected");
  const c = S.client;
  const jobs = [
    refreshConversations(),
    refreshLobby(),
  ];
  // (Re)watch everyone known; watching twice is harmless.
  const users = [...S.people.keys()];
  for (const u of users) S.watched.add(u);
  if (users.length) jobs.push(c.watch(users));
  const open = S.open && S.convs.get(S.open);
  if (open && !open.room) jobs.push(loadNewest(open).then(() => markRead(open)));
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === "rejected" && S.connected) console.warn("courier demo:", r.reason);
}

function onDisconnect(e) {
  S.connected = false;
  S.watched.clear();
  // Presence is unknown until the watches are back.
  for (const p of S.people.values()) p.online = null;
  for (const c of S.convs.values()) c.typingUntil = 0;
  render();
  setStatus("reconnecting", e && e.code ? `closed ${e.code}${e.reason ? ": " + e.reason : ""}` : "");
}

function onMessage(m) {
  if (m.room) onRoomMessage(m);
  else onDirectMessage(m);
}

function onReceipt(r) {
  setReceipt(r.msg, r.status);
  render();
}

export function setStatus(state, detail) {
  const el = byTestId("status");
  el.dataset.state = state;
  el.querySelector(".status-text").textContent = {
    connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…", offline: "offline",
  }[state];
  el.title = detail || "";
}
