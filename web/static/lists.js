// The lists beside the chat: the lobby room, then the people, the most
// recent conversation first, with previews and unread counts.

import { S, userConv, lobby } from "./state.js";
import { byTestId, h, render, avatar, textOf, shortTime } from "./view.js";
import { learn, lastSeenText } from "./people.js";
import { add, isVisible, openConv } from "./conversation.js";

/** refreshConversations takes the list and unread counts from the server. */
export async function refreshConversations() {
  const list = await S.client.conversations({ limit: 200 });
  for (const item of list) {
    if (item.with === S.me) continue;
    learn(item.with);
    const c = userConv(item.with);
    const last = item.last;
    // unread as the server counted it, plus what arrived after its `last`.
    let extra = 0;
    for (const m of c.messages.values()) if (m.from !== S.me && m.seq > (last?.seq ?? 0) && m.seq > c.readSent) extra++;
    c.unread = isVisible(c) ? 0 : (item.unread || 0) + extra;
    if (last) add(c, last);
  }
  render();
}

function convItem(c, online) {
  const p = S.people.get(c.name);
  const preview = (() => {
    if (!c.room && c.typingUntil > Date.now()) return "typing…";
    if (c.last) return (c.last.from === S.me ? "You: " : c.room ? c.last.from + ": " : "") + textOf(c.last);
    return c.room ? "everyone who is here" : lastSeenText(p) || " ";
  })();
  return h("li", {}, h("button", {
    type: "button", class: "item" + (S.open === c.key ? " active" : "") + (c.unread ? " has-unread" : ""),
    testid: c.room ? "room-" + c.name : "contact", data: { user: c.room ? "" : c.name },
    "aria-current": S.open === c.key ? "true" : null,
    onclick: () => openConv(c.key),
  },
  avatar(c.name, c.room ? undefined : online, c.room),
  h("span", { class: "item-main" },
    h("span", { class: "item-top" },
      h("span", { class: "item-name", testid: "contact-name" }, c.room ? "#" + c.name : c.name),
      h("span", { class: "item-time" }, c.last ? shortTime(c.last.ts) : "")),
    h("span", { class: "item-bottom" },
      h("span", { class: "item-preview", testid: "contact-preview" }, preview),
      c.unread ? h("span", { class: "unread", testid: "unread", "aria-label": `${c.unread} unread` }, String(c.unread)) : null))));
}

export function renderLists() {
  if (!S.me) return;
  byTestId("rooms").replaceChildren(convItem(lobby()));
  const people = [...S.people.keys()].map((name) => {
    const c = userConv(name);
    const p = S.people.get(name);
    return { name, c, online: p.online, lastTs: c.last ? c.last.ts : "" };
  });
  people.sort((a, b) =>
    (b.lastTs > a.lastTs) - (b.lastTs < a.lastTs) || ((b.online === true) - (a.online === true)) || a.name.localeCompare(b.name));
  byTestId("contacts").replaceChildren(...people.map((x) => convItem(x.c, x.online)));
  const online = people.filter((x) => x.online === true).length;
  byTestId("online-count").textContent = people.length ? `· ${online} online` : "";
  byTestId("contacts-empty").hidden = people.length > 0;
  const total = [...S.convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = (total ? `(${total}) ` : "") + `${S.me} · courier demo chat`;
}
