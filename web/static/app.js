// courier demo chat: the page `courier serve --dev` serves at /.
//
// Built on the JS client (./courier.js, from clients/js). Everything the
// user or another user typed reaches the DOM as text (textContent, text
// nodes), never parsed as HTML.
//
// State lives in memory and is rebuilt on each visit from the server:
// conversations() for the list and unread counts, history() for a
// conversation, the lobby room's history. What the server cannot tell again
// is kept in localStorage per user: the highest inbox seq seen (passed as
// `since`, so messages that arrived while away are replayed), the people
// known, and the delivered/read receipts already received. The name is kept
// in sessionStorage, so two tabs can be two users and a reload keeps the user.

const LOBBY = "lobby";
const PAGE = 50; // history page size
const TYPING_SEND_EVERY = 2000; // ms between two volatile "typing" sends
const TYPING_SHOW_FOR = 3000; // ms a typing indicator stays up
const MAX_RECEIPTS = 2000; // receipts remembered in localStorage

// ---------- DOM helpers ----------

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const app = document.getElementById("app");

/** h builds an element; string children become text nodes (never HTML). */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "data") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

let toastTimer = 0;
function toast(text) {
  const el = byTestId("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// ---------- formatting ----------

function textOf(m) {
  const d = m.data;
  if (d && typeof d === "object" && typeof d.text === "string") return d.text;
  if (typeof d === "string") return d;
  if (d == null) return m.event;
  return JSON.stringify(d);
}

const two = (n) => String(n).padStart(2, "0");
function clock(ts) {
  const d = new Date(ts);
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}
function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}
function dayLabel(ts) {
  const d = new Date(ts), now = new Date();
  if (sameDay(d, now)) return "Today";
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return "Yesterday";
  return d.toLocaleDateString(undefined, { day: "numeric", month: "short", year: d.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}
function shortTime(ts) {
  const d = new Date(ts);
  return sameDay(d, new Date()) ? clock(ts) : d.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}
function lastSeenText(p) {
  if (!p || p.online == null) return "";
  if (p.online) return "online";
  if (!p.lastSeen) return "offline";
  const ago = (Date.now() - new Date(p.lastSeen).getTime()) / 1000;
  if (ago < 60) return "last seen just now";
  if (ago < 3600) return `last seen ${Math.floor(ago / 60)} min ago`;
  const d = new Date(p.lastSeen);
  return sameDay(d, new Date()) ? `last seen at ${clock(p.lastSeen)}` : `last seen ${d.toLocaleDateString(undefined, { day: "numeric", month: "short" })}`;
}
function initial(name) {
  return [...name][0] || "?";
}
// A stable colour per name, so avatars are told apart at a glance.
function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}
function avatar(name, online, room) {
  const el = h("span", { class: room ? "avatar room" : "avatar", "aria-hidden": "true" }, room ? "#" : initial(name));
  if (!room) el.style.background = `hsl(${hue(name)} 55% 48%)`;
  if (online !== undefined) {
    el.append(h("span", { class: "dot", testid: "presence-dot", data: { online: online == null ? "unknown" : String(online) } }));
  }
  return el;
}

// ---------- state ----------

const S = {
  me: null,
  client: null,
  connected: false,
  connects: 0,
  lastSeq: 0, // highest inbox seq seen, persisted, passed as `since`
  people: new Map(), // user -> {online, lastSeen} (online null while unknown)
  watched: new Set(),
  convs: new Map(), // "u:name" | "r:lobby" -> conversation
  open: null, // key of the open conversation
  receipts: new Map(), // msg id -> "delivered" | "read" (insertion-ordered)
  lastTypingSent: 0,
  firstToken: null, // the token fetched at login, used for the first connection
  typingTimers: new Map(),
};

const store = {
  key: (what) => `courier.${S.me}.${what}`,
  get(what, dflt) {
    try { const v = localStorage.getItem(store.key(what)); return v == null ? dflt : JSON.parse(v); } catch { return dflt; }
  },
  set(what, v) {
    try { localStorage.setItem(store.key(what), JSON.stringify(v)); } catch { /* full or disabled */ }
  },
};

function conv(key) {
  let c = S.convs.get(key);
  if (!c) {
    const room = key.startsWith("r:");
    c = {
      key, room, name: key.slice(2),
      messages: new Map(), // msg id -> message (stored ones, deduped by id)
      pending: new Map(), // local id -> message being sent
      loaded: false, loading: null, hasMore: false,
      unread: 0, knownSeq: 0, // highest seq accounted for in `unread`
      readSent: 0, // highest seq we sent `read` for
      last: null, // newest message, for the list
      typingUntil: 0,
      prepend: false,
    };
    S.convs.set(key, c);
  }
  return c;
}
const userConv = (name) => conv("u:" + name);
const lobby = () => conv("r:" + LOBBY);

function noteSeq(seq) {
  if (typeof seq === "number" && seq > S.lastSeq) {
    S.lastSeq = seq;
    store.set("seq", seq);
  }
}

function setReceipt(id, status) {
  const cur = S.receipts.get(id);
  if (cur === "read" || cur === status) return;
  S.receipts.delete(id);
  S.receipts.set(id, status);
  while (S.receipts.size > MAX_RECEIPTS) S.receipts.delete(S.receipts.keys().next().value);
  store.set("receipts", [...S.receipts]);
}

/** learn records a user the page has heard of, and watches their presence. */
function learn(user) {
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

// ---------- messages into conversations ----------

const isVisible = (c) => S.open === c.key && document.visibilityState === "visible";

/** add puts a stored message into its conversation; false if already there. */
function add(c, m, { live = false } = {}) {
  const had = c.messages.get(m.msg);
  if (had && !had.local) return false;
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
function merge(c, page, first) {
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

async function loadNewest(c) {
  if (!S.connected) return;
  const page = await (c.room ? S.client.history({ room: c.name, limit: PAGE }) : S.client.history({ with: c.name, limit: PAGE }));
  if (!c.loaded) c.hasMore = page.length === PAGE;
  merge(c, page, true);
  c.loaded = true;
  for (const m of page) learn(m.from);
  render();
}

async function loadOlder(c) {
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
function markRead(c) {
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

// ---------- client events ----------

function onMessage(m) {
  if (m.room) {
    if (m.room !== LOBBY) return;
    learn(m.from);
    if (m.event === "here") {
      // Someone arrived: tell them we are here too (volatile, direct).
      if (m.from !== S.me && S.connected) S.client.send(m.from, "here", {}, { volatile: true }).catch(() => {});
      return;
    }
    if (m.seq == null) return; // other volatile room traffic
    const c = lobby();
    if (add(c, m, { live: true })) render();
    return;
  }
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

function onReceipt(r) {
  setReceipt(r.msg, r.status);
  render();
}

function onPresence(p) {
  learn(p.user);
  S.people.set(p.user, { online: !!p.online, lastSeen: p.lastSeen ?? null });
  render();
}

async function refreshConversations() {
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

async function refreshLobby() {
  const c = lobby();
  await S.client.join(LOBBY);
  const page = await S.client.history({ room: LOBBY, limit: PAGE });
  if (!c.loaded) c.hasMore = page.length === PAGE;
  merge(c, page, true);
  c.loaded = true;
  for (const m of page) learn(m.from);
  render();
  // Say hello; every page that sees it answers with a direct volatile "here".
  await S.client.publish(LOBBY, "here", {}, { volatile: true });
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

function setStatus(state, detail) {
  const el = byTestId("status");
  el.dataset.state = state;
  el.querySelector(".status-text").textContent = {
    connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…", offline: "offline",
  }[state];
  el.title = detail || "";
}

// ---------- actions ----------

let localSeq = 0;
function randomKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}

async function sendText(c, text) {
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

function sendTyping(c) {
  if (!c || c.room || !S.connected) return;
  const now = Date.now();
  if (now - S.lastTypingSent < TYPING_SEND_EVERY) return;
  S.lastTypingSent = now;
  S.client.send(c.name, "typing", {}, { volatile: true }).catch(() => {});
}

async function openConv(key, focus) {
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

async function runSearch(q) {
  const box = byTestId("search-results");
  const list = byTestId("search-list");
  const summary = byTestId("search-summary");
  if (!q) { box.hidden = true; byTestId("lists").hidden = false; return; }
  box.hidden = false;
  byTestId("lists").hidden = true;
  summary.textContent = "Searching…";
  list.replaceChildren();
  try {
    const results = await S.client.search(q, { limit: 50 });
    summary.textContent = `${results.length} result${results.length === 1 ? "" : "s"} for “${q}”`;
    list.replaceChildren(...results.map((m) => {
      const peer = m.room ? null : (m.from === S.me ? m.to : m.from);
      const key = m.room ? "r:" + m.room : "u:" + peer;
      return h("li", {}, h("button", {
        type: "button", class: "item", testid: "search-result", data: { msg: m.msg, with: peer || "" },
        onclick: () => { closeSearch(); openConv(key, m.msg); },
      },
      avatar(m.room ? m.room : peer, undefined, !!m.room),
      h("span", { class: "item-main" },
        h("span", { class: "item-top" },
          h("span", { class: "item-name" }, m.room ? "#" + m.room : (m.from === S.me ? `you → ${m.to}` : m.from)),
          h("span", { class: "item-time" }, shortTime(m.ts))),
        h("span", { class: "item-bottom" }, h("span", { class: "item-preview", testid: "search-result-text" }, textOf(m))))));
    }));
  } catch (err) {
    summary.textContent = `Search failed: ${err.message || err}`;
  }
}
function closeSearch() {
  byTestId("search-results").hidden = true;
  byTestId("lists").hidden = false;
  byTestId("search-input").value = "";
}

// ---------- rendering ----------

let renderQueued = false;
let renderBottom = false;
function render(opts) {
  if (opts && opts.bottom) renderBottom = true;
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const bottom = renderBottom;
    renderBottom = false;
    renderLists();
    renderChat(bottom);
  });
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

function renderLists() {
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

function tickMark(status) {
  return { sending: "◷", sent: "✓", delivered: "✓", read: "✓✓", failed: "!" }[status];
}
const tickTitle = { sending: "sending", sent: "sent", delivered: "delivered", read: "read", failed: "not sent" };

function renderChat(bottom) {
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
  // Ticks only move forward: a later message delivered or read means the earlier ones were too.
  const status = new Map();
  let carry = "sent";
  const rank = { sent: 0, delivered: 1, read: 2 };
  for (let i = list.length - 1; i >= 0; i--) {
    const m = list[i];
    if (m.from !== S.me || c.room) continue;
    if (m.pending || m.failed) { status.set(m.msg, m.failed ? "failed" : "sending"); continue; }
    const own = S.receipts.get(m.msg) || "sent";
    if (rank[own] > rank[carry]) carry = own;
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

// ---------- start ----------

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

async function start(name) {
  let connect;
  try {
    ({ connect } = await import("./courier.js"));
  } catch (err) {
    const e = byTestId("login-error");
    e.textContent = "The JS client (courier.js) could not be loaded: build clients/js into web/static/courier.js.";
    e.hidden = false;
    console.error(err);
    return;
  }
  // Ask for a first token now: a name the server refuses stays on the form.
  let first = null;
  try {
    const res = await fetch("/dev/token?user=" + encodeURIComponent(name), { cache: "no-store" });
    if (res.ok) first = (await res.json()).token;
    else if (res.status === 400 || res.status === 404) {
      const e = byTestId("login-error");
      e.textContent = res.status === 400
        ? "That name cannot be used: 1 to 128 bytes, no control characters."
        : "This server does not hand out demo tokens: start it with courier serve --dev.";
      e.hidden = false;
      sessionStorage.removeItem("courier.user");
      return;
    }
  } catch { /* the server is unreachable: the client keeps trying */ }
  byTestId("login-error").hidden = true;
  S.me = name;
  S.firstToken = first;
  sessionStorage.setItem("courier.user", name);
  try { localStorage.setItem("courier.name", name); } catch { /* ignore */ }
  S.lastSeq = Number(store.get("seq", 0)) || 0;
  for (const u of store.get("people", [])) if (typeof u === "string" && u !== name) S.people.set(u, { online: null, lastSeen: null });
  for (const [id, st] of store.get("receipts", [])) S.receipts.set(id, st);

  app.dataset.view = "chat";
  byTestId("login").hidden = true;
  byTestId("main").hidden = false;
  byTestId("whoami").hidden = false;
  byTestId("me").textContent = name;
  setStatus("connecting");

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

  const open = sessionStorage.getItem("courier.open");
  if (open && /^[ur]:./.test(open)) openConv(open);
  else render();
}

function wire() {
  byTestId("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = byTestId("login-name").value.trim();
    if (name) start(name);
  });
  byTestId("logout").addEventListener("click", () => {
    if (S.client) S.client.close();
    sessionStorage.removeItem("courier.user");
    sessionStorage.removeItem("courier.open");
    location.reload();
  });
  byTestId("new-chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = byTestId("new-chat-input");
    const name = input.value.trim();
    if (!name || name === S.me) return;
    input.value = "";
    learn(name);
    openConv("u:" + name);
  });
  byTestId("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runSearch(byTestId("search-input").value.trim());
  });
  byTestId("search-input").addEventListener("input", (e) => { if (!e.target.value) closeSearch(); });
  byTestId("search-close").addEventListener("click", closeSearch);
  byTestId("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = byTestId("composer-input");
    const text = input.value.trim();
    const c = S.open && S.convs.get(S.open);
    if (!text || !c) return;
    input.value = "";
    S.lastTypingSent = 0;
    sendText(c, text);
  });
  byTestId("composer-input").addEventListener("input", (e) => {
    if (e.target.value) sendTyping(S.open && S.convs.get(S.open));
  });
  byTestId("load-older").addEventListener("click", () => {
    const c = S.open && S.convs.get(S.open);
    if (c) loadOlder(c).catch((err) => toast(`Could not load: ${err.message || err}`));
  });
  byTestId("back").addEventListener("click", () => {
    app.dataset.pane = "list";
    S.open = null;
    sessionStorage.removeItem("courier.open");
    render();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    markRead(S.open && S.convs.get(S.open));
    // Another tab may have read or received meanwhile: count again.
    if (S.connected) refreshConversations().catch(() => {});
  });
  // Relative times ("last seen 3 min ago") age.
  setInterval(() => { if (S.me) render(); }, 30000);

  const name = sessionStorage.getItem("courier.user");
  if (name) start(name);
  else {
    try { byTestId("login-name").value = localStorage.getItem("courier.name") || ""; } catch { /* ignore */ }
  }
}

wire();
