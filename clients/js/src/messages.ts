// What the server sends and the client hands to the application: messages,
// acks, receipts, presence, conversations. The field names and their order
// are the protocol's (docs/protocol.md), so that a message looks the same
// whether it came live, from a replay or from history.

/** A message frame received from the server (a `message` frame without its `type`). */
export interface Message {
  /** The message id (26 characters, opaque). */
  msg: string;
  /** The authenticated sender, or the label the server API gave (default `"system"`). */
  from: string;
  /** The recipient user, or `"conn:<id>"`. Absent on room messages. */
  to?: string;
  /** The room of a room message. */
  room?: string;
  /** The event name (`"message"` when the sender gave none). */
  event: string;
  /** The payload as the sender wrote it (`null` when none). */
  data: any;
  /** When the server accepted the message: RFC 3339, UTC, 3 fractional digits. */
  ts: string;
  /**
   * The receiving user's inbox seq for a direct message, the room seq for a
   * room message; absent on volatile and `conn:` messages.
   */
  seq?: number;
  /**
   * How far a direct message this user sent has got, as the receipts stood
   * when the server answered: `sent` (stored, not yet at any connection of
   * the recipient), `delivered` (it reached one) or `read` (the recipient's
   * read mark passed it). Only in `history({with})` replies and on the `last`
   * message of `conversations()`, and only on this user's own direct messages
   * (not on received ones, notes to self or room messages). Live and replayed
   * messages never have it: later changes come as `receipt` events.
   */
  status?: MessageStatus;
}

/** A message's receipt state in history and conversations (see {@link Message.status}). */
export type MessageStatus = "sent" | "delivered" | "read";

/** The server's acknowledgement of a send or publish. */
export interface Ack {
  /** The message id (for a repeated idempotency key: the first message's id). */
  msg: string;
  /**
   * The message's place in the sender's inbox (durable send) or in the room
   * (durable publish); absent for volatile messages.
   */
  seq?: number;
}

/** What the `connect` event carries: the server's welcome. */
export interface Welcome {
  /** The user the token authenticated. */
  user: string;
  /** The id of this connection (others may send to `"conn:<id>"`). */
  conn: string;
}

/** What the `disconnect` event carries: the WebSocket close code and reason. */
export interface DisconnectInfo {
  /** The close code: 1012 server restart, 1008 slow consumer, 4001 disconnected by the server API, 4003 token expired, 1006 connection cut... */
  code: number;
  /** The close reason text ("" when none). */
  reason: string;
}

/** A delivery or read receipt for a message this user sent. */
export interface Receipt {
  /** `delivered`: the message first reached one of the recipient's connections; `read`: the recipient read up to it. */
  status: "delivered" | "read";
  /** The recipient. */
  by: string;
  /** The message id (for `read`, the newest message read). */
  msg: string;
}

/** A presence change of a watched user (the `presence` event). */
export interface PresenceChange {
  /** The watched user. */
  user: string;
  /** True while the user has a connection anywhere. */
  online: boolean;
  /** When the user's last connection closed (RFC 3339), null if never. */
  lastSeen: string | null;
}

/** One user's presence, as `presence()` answers. */
export interface PresenceState {
  /** True while the user has a connection anywhere. */
  online: boolean;
  /** When the user's last connection closed (RFC 3339), null if never. */
  lastSeen: string | null;
}

/** One conversation, as `conversations()` answers. */
export interface Conversation {
  /** The other user (or a server API label). */
  with: string;
  /** The newest message either way, with this user's seq (and its `status` when this user sent it). */
  last: Message;
  /** Messages from the peer after this user's read mark. */
  unread: number;
}

/** The server's `expired` notice: inbox seqs `from`..`to` were deleted by retention and cannot be replayed. */
export interface ExpiredNotice {
  /** The first deleted seq. */
  from: number;
  /** The last deleted seq. */
  to: number;
  [key: string]: any;
}

/**
 * Turns a `message` frame (or a message of a history, search or
 * conversations reply) into a {@link Message}.
 * @internal
 */
export function toMessage(f: any): Message {
  // In the order the server writes the fields.
  const m: any = { msg: f.msg, from: f.from };
  if (f.to !== undefined) m.to = f.to;
  if (f.room !== undefined) m.room = f.room;
  m.event = f.event ?? "message";
  m.data = f.data ?? null;
  m.ts = f.ts;
  if (typeof f.seq === "number") m.seq = f.seq;
  if (f.status === "sent" || f.status === "delivered" || f.status === "read") m.status = f.status;
  return m as Message;
}

/**
 * Turns an `ack` frame into an {@link Ack}; a seq of 0 (volatile) is left out.
 * @internal
 */
export function toAck(f: any): Ack {
  const a: Ack = { msg: f.msg };
  if (typeof f.seq === "number" && f.seq > 0) a.seq = f.seq;
  return a;
}
