// One conversation, with a person or in a room: its messages and history
// pages, sending, typing, read receipts, and the chat pane that shows it.

import { S, PAGE, TYPING_SEND_EVERY, TYPING_SHOW_FOR, conv, userConv, noteSeq, furthest } from "./state.js";
import { app, byTestId, h, toast, render, avatar, textOf, clock, dayLabel } from "./view.js";
import { learn, lastSeenText } from "./people.js";

// ---------- messages into conversations ----------

export const isVisible = (c) => S.open === c.key && document.visibilityState === "visible";

/**
 * add puts a stored message into its conversation; false if already there
 * (a newer receipt status from history or the list still moves its ticks on).
 */
export function add(c, m, { live = false } = {}) {
  const had = c.messages.get(m.msg);
  if (had && !had.local) {
    if (m.status && furthest(had.status, m.status) !== had.status) had.status = m.status;
    return false;
  }
  c.messages.set(m.msg, m);
  if (!c.last || (m.seq ?? 0) >= (c.last.seq ?? 0)) c.last = m;
  if (live && m.from !== S.me && (m.seq ?? 0) > c.knownSeq) {
    if (!isVisible(c)) c.unread++;
  }
  if (m.seq > c.knownSeq) c.knownSeq = m.seq;
  if (m.from !== S.me && !c.room) c.typingUntil = 0;
  return true;
}

function sortedMessages(c) {
  const list = [...c.messages.values()].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity));
  return list.concat([...c.pending.values()]);
}

/** merge adds a history page (newest first). first: it is the newest page. */
export function merge(c, page, first) {
  if (!page.length) return;
  const oldest = page[page.length - 1].seq;
  if (first && c.loaded && page.length === PAGE) {
    // A full newest page that does not reach what we hold leaves a hole
    // (more than a page came in while away): start over from it. (A
    // conversation's seqs are the user's inbox seqs, so they are not
    // contiguous; only overlap tells.)
    let max = 0;
    for (const m of c.messages.values()) if (!m.local && m.seq > max) max = m.seq;
    if (oldest > max) { c.messages.clear(); c.hasMore = true; }
  }
  if (first && !c.loaded) {
    // Messages replayed before the conversation was opened may be older
    // than this page; keep the view contiguous, "load older" brings them back.
    for (const [id, m] of c.messages) if (m.seq < oldest) c.messages.delete(id);
  }
  for (const m of page) add(c, m);
}

export async function loadNewest(c) {
  if (!S.connected) return;
  const page = await (c.room ? S.client.history({ room: c.name, limit: PAGE }) : S.client.history({ with: c.name, limit: PAGE }));
  if (!c.loaded) c.hasMore = page.length === PAGE;
  merge(c, page, true);
  c.loaded = true;
  for (const m of page) learn(m.from);
  render();
}

export async function loadOlder(c) {
  if (!S.connected || c.loading) return c.loading;
  let before = Infinity;
  for (const m of c.messages.values()) if (m.seq != null && m.seq < before) before = m.seq;
  if (before === Infinity) return;
  c.loading = (async () => {
    try {
      const page = await (c.room
        ? S.client.history({ room: c.name, limit: PAGE, before })
        : S.client.history({ with: c.name, limit: PAGE, before }));
      c.hasMore = page.length === PAGE;
      c.prepend = true;
      merge(c, page, false);
      render();
    } finally { c.loading = null; }
  })();
  return c.loading;
}

/** markRead tells the server the open, visible conversation is read. */
export function markRead(c) {
  if (!c || c.room || !isVisible(c) || !S.connected) return;
  let max = c.knownSeq;
  for (const m of c.messages.values()) if (m.seq > max) max = m.seq;
  if (c.unread > 0 || max > c.readSent) {
    const had = c.unread;
    c.unread = 0;
    if (max > c.readSent) {
      c.readSent = max;
      S.client.read(c.name, max).catch(() => { c.readSent = 0; c.unread = had; render(); });
    }
    render();
  }
}

// ---------- direct messages from the client ----------

/** onDirectMessage takes a message that is not a room's. */
export function onDirectMessage(m) {
  if (typeof m.to === "string" && m.to.startsWith("conn:")) return;
  const peer = m.from === S.me ? m.to : m.from;
  if (m.seq == null) {
    // volatile direct traffic
    learn(m.from);
    if (m.event === "typing" && m.from !== S.me) showTyping(peer);
    return;
  }
  noteSeq(m.seq);
  learn(peer);
  const c = userConv(peer);
  if (add(c, m, { live: true })) {
    render();
    markRead(c);
  }
}

function showTyping(peer) {
  const c = userConv(peer);
  c.typingUntil = Date.now() + TYPING_SHOW_FOR;
  clearTimeout(S.typingTimers.get(peer));
  S.typingTimers.set(peer, setTimeout(render, TYPING_SHOW_FOR + 50));
  render();
}

// ---------- actions ----------

let localSeq = 0;
function randomKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}

export async function sendText(c, text) {
  const id = "local-" + ++localSeq;
  const m = {
    msg: id, local: true, pending: true, from: S.me, event: "chat", data: { text }, ts: new Date().toISOString(),
    ...(c.room ? { room: c.name } : { to: c.name }),
  };
  c.pending.set(id, m);
  render({ bottom: true });
  try {
    const r = c.room
      ? await S.client.publish(c.name, "chat", { text })
      : await S.client.send(c.name, "chat", { text }, { key: S.me + ":" + randomKey() });
    c.pending.delete(id);
    if (!c.room) noteSeq(r.seq);
    if (!c.messages.has(r.msg)) add(c, { ...m, msg: r.msg, seq: r.seq, pending: false, local: true });
    c.readSent = Math.max(c.readSent, c.room ? 0 : r.seq ?? 0);
  } catch (err) {
    m.pending = false;
    m.failed = true;
    toast(`Could not send: ${err && err.message ? err.message : err}`);
  }
  render();
}

export function sendTyping(c) {
  if (!c || c.room || !S.connected) return;
  const now = Date.now();
  if (now - S.lastTypingSent < TYPING_SEND_EVERY) return;
  S.lastTypingSent = now;
  S.client.send(c.name, "typing", {}, { volatile: true }).catch(() => {});
}

/** openConv shows a conversation; focus: a message id to scroll to and flash. */
export async function openConv(key, focus) {
  const c = conv(key);
  if (S.open !== key) S.lastTypingSent = 0;
  S.open = key;
  sessionStorage.setItem("courier.open", key);
  app.dataset.pane = "chat";
  c.stick = true;
  render({ bottom: true });
  if (!c.loaded && S.connected) {
    try { await loadNewest(c); } catch (err) { toast(`Could not load history: ${err.message || err}`); }
  }
  if (focus) {
    for (let i = 0; i < 20 && !c.messages.has(focus) && c.hasMore; i++) await loadOlder(c);
    render();
    const el = document.querySelector(`[data-testid="message"][data-msg="${CSS.escape(focus)}"]`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.classList.remove("flash");
      void el.offsetWidth;
      el.classList.add("flash");
    }
  } else {
    render({ bottom: true });
  }
  markRead(c);
  if (window.matchMedia("(min-width: 721px)").matches) byTestId("composer-input").focus();
}

/** closeConv goes back to the lists (the only pane on a phone). */
export function closeConv() {
  app.dataset.pane = "list";
  S.open = null;
  sessionStorage.removeItem("courier.open");
  render();
}

// ---------- the chat pane ----------

function tickMark(status) {
  // The convention people know: one grey tick sent, two grey delivered, two blue read.
  return { sending: "◷", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" }[status];
}
const tickTitle = { sending: "sending", sent: "sent", delivered: "delivered", read: "read", failed: "not sent" };

export function renderChat(bottom) {
  const c = S.open && S.convs.get(S.open);
  const head = document.querySelector(".chat-head");
  const scroll = byTestId("scroll");
  const composer = byTestId("composer");
  byTestId("chat-empty").hidden = !!c;
  head.hidden = scroll.hidden = composer.hidden = !c;
  if (!c) { byTestId("typing").textContent = ""; return; }

  const p = S.people.get(c.name);
  const av = avatar(c.name, c.room ? undefined : p ? p.online : null, c.room);
  av.dataset.testid = "chat-avatar";
  byTestId("chat-avatar").replaceWith(av);
  byTestId("chat-title").textContent = c.room ? "#" + c.name : c.name;
  const typing = !c.room && c.typingUntil > Date.now();
  const sub = byTestId("chat-subtitle");
  sub.textContent = c.room ? "room · everyone here sees it" : typing ? "typing…" : lastSeenText(p) || (S.connected ? " " : "presence unknown while reconnecting");
  sub.classList.toggle("typing-now", typing);
  byTestId("typing").textContent = typing ? `${c.name} is typing…` : "";
  byTestId("composer-input").placeholder = c.room ? `Message #${c.name}` : `Message ${c.name}`;

  // Scroll: stick to the bottom when there already, keep the view when older messages came in on top.
  const nearBottom = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < 60;
  const fromBottom = scroll.scrollHeight - scroll.scrollTop;
  const keepTop = scroll.scrollTop;

  const list = sortedMessages(c);
  // Ticks only move forward: a later message delivered or read means the
  // earlier ones were too. A message starts from the status history gave it
  // (what the server knew when it answered, e.g. read before this page was
  // opened); live receipts move it on, never back.
  const status = new Map();
  let carry = "sent";
  for (let i = list.length - 1; i >= 0; i--) {
    const m = list[i];
    if (m.from !== S.me || c.room) continue;
    if (m.pending || m.failed) { status.set(m.msg, m.failed ? "failed" : "sending"); continue; }
    carry = furthest(carry, furthest(m.status, S.receipts.get(m.msg)));
    status.set(m.msg, carry);
  }

  const items = [];
  let prevDay = "";
  for (const m of list) {
    const day = dayLabel(m.ts);
    if (day !== prevDay) { items.push(h("li", { class: "day", "aria-hidden": "true" }, day)); prevDay = day; }
    const mine = m.from === S.me;
    const st = status.get(m.msg);
    items.push(h("li", {
      class: "msg" + (mine ? " mine" : "") + (m.pending ? " pending" : ""), testid: "message",
      data: { msg: m.local && m.pending ? "" : m.msg, from: m.from, seq: m.seq ?? "" },
    },
    c.room && !mine ? h("div", { class: "msg-from", testid: "message-from" }, m.from) : null,
    h("div", { class: "msg-text", testid: "message-text" }, textOf(m)),
    h("div", { class: "msg-meta" },
      h("time", { datetime: m.ts, title: new Date(m.ts).toLocaleString() }, clock(m.ts)),
      st ? h("span", { class: "ticks", testid: "ticks", data: { status: st }, title: tickTitle[st], "aria-label": tickTitle[st] }, tickMark(st)) : null)));
  }
  const ol = byTestId("messages");
  const flashing = ol.querySelector(".flash");
  ol.replaceChildren(...items);
  if (flashing) {
    const again = ol.querySelector(`[data-msg="${CSS.escape(flashing.dataset.msg)}"]`);
    if (again) again.classList.add("flash");
  }
  byTestId("load-older").hidden = !(c.loaded && c.hasMore);
  byTestId("history-start").hidden = !(c.loaded && !c.hasMore && list.length > 0);
  byTestId("no-messages").hidden = !(c.loaded && list.length === 0);

  if (bottom || c.stick) { scroll.scrollTop = scroll.scrollHeight; c.stick = false; }
  else if (c.prepend) scroll.scrollTop = scroll.scrollHeight - fromBottom;
  else if (nearBottom) scroll.scrollTop = scroll.scrollHeight;
  else scroll.scrollTop = keepTop;
  c.prepend = false;
}
