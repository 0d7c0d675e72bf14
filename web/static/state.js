// What the page knows, shared by every module; render() (view.js) shows it.
//
// State lives in memory and is rebuilt on each visit from the server:
// conversations() for the list and unread counts, history() for a
// conversation, the lobby room's history. What the server cannot tell again
// is kept in localStorage per user: the highest inbox seq seen (passed as
// `since`, so messages that arrived while away are replayed), the people
// known, and the delivered/read receipts already received (history and the
// conversation list also tell the status of the user's own messages, as the
// server knew it when it answered: a new browser starts from that). The name is kept
// in sessionStorage, so two tabs can be two users and a reload keeps the user.

export const LOBBY = "lobby";
export const PAGE = 50; // history page size
export const TYPING_SEND_EVERY = 2000; // ms between two volatile "typing" sends
export const TYPING_SHOW_FOR = 3000; // ms a typing indicator stays up
const MAX_RECEIPTS = 2000; // receipts remembered in localStorage

export const S = {
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

export const store = {
  key: (what) => `courier.${S.me}.${what}`,
  get(what, dflt) {
    try { const v = localStorage.getItem(store.key(what)); return v == null ? dflt : JSON.parse(v); } catch { return dflt; }
  },
  set(what, v) {
    try { localStorage.setItem(store.key(what), JSON.stringify(v)); } catch { /* full or disabled */ }
  },
};

export function conv(key) {
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
export const userConv = (name) => conv("u:" + name);
export const lobby = () => conv("r:" + LOBBY);

export function noteSeq(seq) {
  if (typeof seq === "number" && seq > S.lastSeq) {
    S.lastSeq = seq;
    store.set("seq", seq);
  }
}

// Receipt states in order: a message read was delivered, one delivered was sent.
const RANK = { sent: 1, delivered: 2, read: 3 };

/** furthest returns the later of two receipt states ("sent", "delivered", "read"; either may be missing). */
export function furthest(a, b) {
  return (RANK[b] || 0) > (RANK[a] || 0) ? b : RANK[a] ? a : undefined;
}

export function setReceipt(id, status) {
  const cur = S.receipts.get(id);
  if (cur === "read" || cur === status) return;
  S.receipts.delete(id);
  S.receipts.set(id, status);
  while (S.receipts.size > MAX_RECEIPTS) S.receipts.delete(S.receipts.keys().next().value);
  store.set("receipts", [...S.receipts]);
}
