// The courier client: one WebSocket connection to a courier server that
// reconnects by itself and resumes where it left off. The protocol is
// docs/protocol.md; the semantics follow the Go client (client/client.go).

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
}

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
  /** The newest message either way, with this user's seq. */
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

/** Options of {@link connect}. Give `token` or `tokenFn`. */
export interface ConnectOptions {
  /** The JWT to authenticate with. */
  token?: string;
  /**
   * Called for a token before the first connection when `token` is absent,
   * and again whenever the token may be stale: the server refused a
   * connection before its welcome, or closed one with 4003 (token expired).
   */
  tokenFn?: () => string | Promise<string>;
  /**
   * The inbox seq already seen: the first connection replays every stored
   * message with a greater seq (0 replays the whole inbox). Default: no
   * replay of older messages; the client starts at the inbox head.
   */
  since?: number;
  /** Smallest wait before a reconnection attempt, in ms (default 200). */
  minBackoff?: number;
  /** Largest wait between reconnection attempts, in ms (default 10000). */
  maxBackoff?: number;
  /**
   * A WebSocket constructor (the browser's API: `new WebSocket(url)`,
   * `onopen`/`onmessage`/`onclose`/`onerror`, `send`, `close`). Default:
   * `globalThis.WebSocket`, or on Node without one, the `ws` package.
   */
  WebSocket?: any;
  /** How long to wait for the server's welcome before giving up on an attempt, in ms (default 10000). */
  connectTimeout?: number;
}

/** Options of {@link Client.send}. */
export interface SendOptions {
  /** Live only: not stored, not replayed, no sender sync, not sent again after a reconnect. */
  volatile?: boolean;
  /** The idempotency key of a durable send (default: a random one, so that a resend is stored once). */
  key?: string;
}

/** Options of {@link Client.publish}. */
export interface PublishOptions {
  /** Live only: not stored in the room's history, not sent again after a reconnect. */
  volatile?: boolean;
  /** The idempotency key of a durable publish (default: a random one, so that a resend is stored once). */
  key?: string;
}

/** Options of {@link Client.history}: give `with` (a user) or `room`. */
export interface HistoryOptions {
  /** The other user of a conversation. */
  with?: string;
  /** A room. */
  room?: string;
  /** At most this many messages (default 50, capped at 500). */
  limit?: number;
  /** Only messages with a seq below this one (exclusive); the next page is the smallest seq received. */
  before?: number;
}

/** Options of {@link Client.search}. */
export interface SearchOptions {
  /** At most this many messages (default 20, capped at 100). */
  limit?: number;
}

/** Options of {@link Client.conversations}. */
export interface ConversationsOptions {
  /** At most this many conversations (default 50, capped at 500). */
  limit?: number;
}

/**
 * The error of a rejected request or of the `error` event. `code` is the
 * server's error code (`bad_request`, `forbidden`, `not_found`, `too_large`,
 * `rate_limited`, `internal`) or one of the client's own:
 *
 * - `disconnected`: the connection was lost before the reply (volatile
 *   sends and publishes), or a volatile message was sent while disconnected;
 * - `closed`: {@link Client.close} was called, or the client stopped for good;
 * - `disconnected_by_server`: the server's API disconnected this user (close
 *   code 4001); the client stops;
 * - `unauthorized`: the server refused the token (HTTP 401) and there is no
 *   `tokenFn`; the client stops;
 * - `connect_failed`: one connection attempt failed (the `connect_error` event);
 * - `token`: `tokenFn` threw.
 */
export class CourierError extends Error {
  /** The error code. */
  code: string;
  /** The WebSocket close code, for errors caused by a close. */
  closeCode?: number;
  /** Makes an error with the given code, message and, when a close caused it, close code. */
  constructor(code: string, message: string, closeCode?: number) {
    super(message);
    this.name = "CourierError";
    this.code = code;
    if (closeCode !== undefined) this.closeCode = closeCode;
  }
}

/** The events of a {@link Client} and the arguments of their handlers. */
export interface ClientEvents {
  /** After each welcome: the first connection and every reconnection. */
  connect: (w: Welcome) => void;
  /** A connection that had been welcomed ended. */
  disconnect: (info: DisconnectInfo) => void;
  /** A connection attempt failed before the welcome; the client tries again (addition to the Socket.IO-like set). */
  connect_error: (e: CourierError) => void;
  /** Every message frame, whatever its event. */
  message: (m: Message) => void;
  /** A delivery or read receipt of a message this user sent. */
  receipt: (r: Receipt) => void;
  /** A presence change of a watched user (and the current state right after a watch). */
  presence: (p: PresenceChange) => void;
  /** The server's `expired` notice (messages deleted by retention). */
  expired: (n: ExpiredNotice) => void;
  /** Asynchronous errors: a resent frame rejected, an error frame with no request, the client stopping for good. */
  error: (e: Error) => void;
}

/** A handler of messages with a given event name: the message's data and the message. */
export type EventHandler = (data: any, m: Message) => void;

/**
 * Names that are the client's own events: messages whose event has one of
 * these names reach only the `message` handlers.
 */
export const reservedEvents: readonly string[] = Object.freeze([
  "connect", "disconnect", "connect_error", "message", "receipt", "presence", "expired", "error",
]);

/** What a {@link Client} needs from its environment (set by the Node and browser entry points). */
export interface Environment {
  /** Returns the WebSocket constructor to use when the options name none. */
  resolveWebSocket?: () => any | Promise<any>;
  /** The base against which a relative URL is resolved (the page's location in a browser). */
  base?: string;
}

// Minimal view of a browser-style WebSocket (also what `ws` offers).
interface Socket {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate?: () => void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

type Kind =
  | "durable" // durable send or publish: written again after a reconnect, same key
  | "retry" // idempotent request (join, query, ...): written again after a reconnect
  | "volatile" // rejected when the connection is lost
  | "internal"; // the client's own frames of one connection: forgotten when it is lost

interface Pending {
  id: string;
  frame: Record<string, unknown>;
  kind: Kind;
  written: number; // times written
  onReply: (f: any) => unknown;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

const OPEN = 1;
const CONNECTING = 0;
const farSeq = Number.MAX_SAFE_INTEGER; // a resume beyond the inbox head answers the head

/**
 * Normalizes a server address to the WebSocket URL of its `/ws` endpoint:
 * `ws:`/`wss:` stay, `http:`/`https:` become `ws:`/`wss:`, a relative URL is
 * resolved against `base`, and `/ws` is the path when there is none.
 */
export function wsURL(raw: string, base?: string): string {
  let u: URL;
  try {
    u = base ? new URL(raw, base) : new URL(raw);
  } catch {
    throw new CourierError("bad_request", `courier: bad url ${JSON.stringify(raw)}: want ws://host:port`);
  }
  switch (u.protocol) {
    case "ws:":
    case "wss:":
      break;
    case "http:":
      u.protocol = "ws:";
      break;
    case "https:":
      u.protocol = "wss:";
      break;
    default:
      throw new CourierError("bad_request", `courier: bad url ${JSON.stringify(raw)}: want ws://host:port`);
  }
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/ws";
  u.hash = "";
  return u.toString();
}

function newKey(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  let s = "js-";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

function toMessage(f: any): Message {
  // In the order the server writes the fields.
  const m: any = { msg: f.msg, from: f.from };
  if (f.to !== undefined) m.to = f.to;
  if (f.room !== undefined) m.room = f.room;
  m.event = f.event ?? "message";
  m.data = f.data ?? null;
  m.ts = f.ts;
  if (typeof f.seq === "number") m.seq = f.seq;
  return m as Message;
}

function toAck(f: any): Ack {
  const a: Ack = { msg: f.msg };
  if (typeof f.seq === "number" && f.seq > 0) a.seq = f.seq;
  return a;
}

// rethrow reports an exception of an event handler without letting it
// disturb the client (as an EventTarget does).
function rethrow(e: unknown): void {
  queueMicrotask(() => {
    throw e;
  });
}

/**
 * A connection to a courier server that reconnects by itself. Make one with
 * {@link connect}.
 *
 * - It reconnects with jittered exponential backoff and resumes with
 *   `since=` {@link Client.lastSeq}, so no stored message is lost or
 *   delivered twice across a reconnect; it joins its rooms and watches its
 *   users again, and writes again every durable send or publish that was not
 *   acknowledged, with its idempotency key.
 * - Requests made while disconnected wait for the connection, except
 *   volatile messages, which reject with code `disconnected`.
 * - Requests other than volatile messages that are pending when the
 *   connection drops are written again on the next connection (they are all
 *   idempotent); volatile ones reject with code `disconnected`.
 */
export class Client {
  #url: string;
  #opts: ConnectOptions;
  #env: Environment;
  #minBackoff: number;
  #maxBackoff: number;
  #connectTimeout: number;
  #WS: any = null;

  #user = "";
  #connId = "";
  #token: string | undefined;
  #stale: boolean; // ask tokenFn before the next attempt
  #lastSeq: number;
  #known: boolean; // #lastSeq is a real inbox position: connect with since=
  #ahead = new Set<number>(); // seqs of own durable sends acked beyond #lastSeq+1
  // While sends written again after a reconnect wait for their acks, message
  // frames are held: the replay may bring back the sender's copy of a send
  // whose first ack was lost, and the ack tells which one it is.
  #hold: Message[] | null = null;
  #holdFor = new Set<string>(); // ids of the resent sends not yet answered
  #own = new Set<string>(); // message ids their acks named
  #holdTimer: ReturnType<typeof setTimeout> | null = null; // bounds the hold

  #ws: Socket | null = null;
  #gen = 0; // generation of #ws; events of older sockets are ignored
  #open = false; // #ws is welcomed
  #stopped = false;
  #backoff: number;
  #timer: ReturnType<typeof setTimeout> | null = null; // reconnect or welcome timeout
  #nextId = 0;
  #pending = new Map<string, Pending>();
  #rooms = new Set<string>();
  #watched = new Set<string>();
  #handlers = new Map<string, Set<(...args: any[]) => void>>();

  /**
   * Use {@link connect} rather than this constructor.
   * @internal
   */
  constructor(url: string, opts: ConnectOptions = {}, env: Environment = {}) {
    this.#url = wsURL(url, env.base);
    this.#opts = { ...opts };
    this.#env = env;
    this.#minBackoff = opts.minBackoff && opts.minBackoff > 0 ? opts.minBackoff : 200;
    this.#maxBackoff = Math.max(opts.maxBackoff && opts.maxBackoff > 0 ? opts.maxBackoff : 10000, this.#minBackoff);
    this.#connectTimeout = opts.connectTimeout && opts.connectTimeout > 0 ? opts.connectTimeout : 10000;
    this.#backoff = this.#minBackoff;
    this.#token = opts.token || undefined;
    if (!this.#token && !opts.tokenFn) throw new CourierError("bad_request", "courier: no token or tokenFn");
    this.#stale = !this.#token;
    const since = opts.since;
    this.#known = typeof since === "number" && since >= 0;
    this.#lastSeq = this.#known ? Math.floor(since as number) : 0;
    void this.#dial();
  }

  /** The user the server authenticated ("" until the first welcome). */
  get user(): string {
    return this.#user;
  }

  /** The id of the current connection ("" while disconnected). */
  get connId(): string {
    return this.#connId;
  }

  /**
   * The highest inbox seq the client has delivered to `message` handlers or
   * seen acknowledged for its own sends; pass it as `since` to resume later.
   */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** True while a connection is open and welcomed. */
  get connected(): boolean {
    return this.#open;
  }

  /** True once {@link Client.close} was called or the client stopped for good. */
  get closed(): boolean {
    return this.#stopped;
  }

  /** The rooms joined (and joined again after each reconnect). */
  get rooms(): string[] {
    return [...this.#rooms].sort();
  }

  /**
   * Adds an event handler. Besides the client's own events (see
   * {@link ClientEvents}), any other name receives the messages whose event
   * is that name, as `(data, message)`.
   */
  on<K extends keyof ClientEvents>(name: K, handler: ClientEvents[K]): this;
  on(name: string, handler: EventHandler): this;
  on(name: string, handler: (...args: any[]) => void): this {
    let s = this.#handlers.get(name);
    if (!s) this.#handlers.set(name, (s = new Set()));
    s.add(handler);
    return this;
  }

  /** Adds an event handler that is removed after its first call. */
  once<K extends keyof ClientEvents>(name: K, handler: ClientEvents[K]): this;
  once(name: string, handler: EventHandler): this;
  once(name: string, handler: (...args: any[]) => void): this {
    const w = (...args: any[]) => {
      this.off(name, w);
      handler(...args);
    };
    (w as any).inner = handler;
    return this.on(name, w);
  }

  /** Removes an event handler; without a handler, every handler of the name. */
  off<K extends keyof ClientEvents>(name: K, handler?: ClientEvents[K]): this;
  off(name: string, handler?: EventHandler): this;
  off(name: string, handler?: (...args: any[]) => void): this {
    const s = this.#handlers.get(name);
    if (!s) return this;
    if (!handler) {
      this.#handlers.delete(name);
      return this;
    }
    if (!s.delete(handler)) {
      for (const h of s) {
        if ((h as any).inner === handler) {
          s.delete(h);
          break;
        }
      }
    }
    if (s.size === 0) this.#handlers.delete(name);
    return this;
  }

  #emit(name: string, ...args: any[]): void {
    const s = this.#handlers.get(name);
    if (!s) return;
    for (const h of [...s]) {
      try {
        h(...args);
      } catch (e) {
        rethrow(e);
      }
    }
  }

  /**
   * Sends a message to user `to` (or to `"conn:<id>"`, one connection, always
   * volatile). A durable send gets an idempotency key when it has none, waits
   * for the connection while disconnected, and is written again after a
   * reconnect until acknowledged: it is stored once. A volatile send rejects
   * with code `disconnected` when there is no connection.
   * @returns the ack: the message id and, when durable, its seq in the sender's inbox.
   */
  send(to: string, event: string, data?: any, opts: SendOptions = {}): Promise<Ack> {
    const volatile = !!opts.volatile || to.startsWith("conn:");
    const f: Record<string, unknown> = { type: "send", to, event, data: data ?? null };
    if (volatile) {
      f.volatile = true;
    } else {
      f.key = opts.key || newKey();
    }
    return this.#request(f, volatile ? "volatile" : "durable", (r) => {
      const a = toAck(r);
      if (!volatile && a.seq !== undefined) this.#sawOwn(a.seq);
      return a;
    });
  }

  /**
   * Publishes a message to every other connection that joined `room` (this
   * client must have joined it). Durable publishes behave as durable sends
   * (idempotency key, written again after a reconnect); volatile ones as
   * volatile sends.
   * @returns the ack: the message id and, when durable, the room seq.
   */
  publish(room: string, event: string, data?: any, opts: PublishOptions = {}): Promise<Ack> {
    const volatile = !!opts.volatile;
    const f: Record<string, unknown> = { type: "publish", room, event, data: data ?? null };
    if (volatile) {
      f.volatile = true;
    } else {
      f.key = opts.key || newKey();
    }
    return this.#request(f, volatile ? "volatile" : "durable", toAck);
  }

  /** Joins `room`; the client joins it again after every reconnect until {@link Client.leave}. */
  join(room: string): Promise<void> {
    return this.#request({ type: "join", room }, "retry", () => {
      this.#rooms.add(room);
    });
  }

  /** Leaves `room`. */
  leave(room: string): Promise<void> {
    this.#rooms.delete(room);
    return this.#request({ type: "leave", room }, "retry", () => undefined);
  }

  /**
   * Reads a conversation (`with`) or a room's history (`room`), newest
   * first. The next page is `before:` the smallest seq received.
   */
  history(opts: HistoryOptions): Promise<Message[]> {
    const f: Record<string, unknown> = { type: "history" };
    if (opts.with !== undefined) f.with = opts.with;
    if (opts.room !== undefined) f.room = opts.room;
    if (opts.limit !== undefined) f.limit = opts.limit;
    if (opts.before !== undefined) f.before = opts.before;
    return this.#request(f, "retry", (r) => (r.messages ?? []).map(toMessage));
  }

  /** Full-text search over the messages this user sent or received, newest first (results may lag a write by up to 1 s). */
  search(q: string, opts: SearchOptions = {}): Promise<Message[]> {
    const f: Record<string, unknown> = { type: "search", q };
    if (opts.limit !== undefined) f.limit = opts.limit;
    return this.#request(f, "retry", (r) => (r.messages ?? []).map(toMessage));
  }

  /** The online state and last-seen time of each of `users` (at most 500). */
  presence(users: string[]): Promise<Record<string, PresenceState>> {
    return this.#request({ type: "presence", users }, "retry", (r) => r.users ?? {});
  }

  /**
   * Watches `users`: `presence` events tell their current state, then each
   * change. The client watches them again after every reconnect (and gets
   * their state again) until {@link Client.unwatch}.
   */
  watch(users: string[]): Promise<void> {
    return this.#request({ type: "watch", users }, "retry", () => {
      for (const u of users) this.#watched.add(u);
    });
  }

  /** Stops watching `users`. */
  unwatch(users: string[]): Promise<void> {
    for (const u of users) this.#watched.delete(u);
    return this.#request({ type: "unwatch", users }, "retry", () => undefined);
  }

  /**
   * Marks the conversation with `withUser` read up to this user's inbox
   * `seq`; the other user gets a `read` receipt.
   */
  read(withUser: string, seq: number): Promise<void> {
    return this.#request({ type: "read", with: withUser, seq }, "retry", () => undefined);
  }

  /** This user's conversations, most recent first, with their unread counts. */
  conversations(opts: ConversationsOptions = {}): Promise<Conversation[]> {
    const f: Record<string, unknown> = { type: "conversations" };
    if (opts.limit !== undefined) f.limit = opts.limit;
    return this.#request(f, "retry", (r) =>
      (r.conversations ?? []).map((c: any) => ({ with: c.with, last: toMessage(c.last), unread: c.unread })),
    );
  }

  /** An application-level round trip (`ping` → `pong`); resolves with the time it took, in ms. */
  ping(): Promise<number> {
    const t0 = Date.now();
    return this.#request({ type: "ping" }, "volatile", () => Date.now() - t0);
  }

  /**
   * Closes the connection and stops reconnecting. Pending requests reject
   * with code `closed`; no timer or socket is left, so a Node process may
   * exit. Idempotent.
   */
  close(): void {
    if (this.#stopped) return;
    const wasOpen = this.#open;
    this.#stop(new CourierError("closed", "courier: client closed"));
    if (wasOpen) this.#emit("disconnect", { code: 1000, reason: "closed by the client" });
  }

  // #request writes frame f with a fresh id, or queues it until the
  // connection is welcomed, and settles with onReply(reply frame).
  #request<T>(f: Record<string, unknown>, kind: Kind, onReply: (r: any) => T): Promise<T> {
    if (this.#stopped) return Promise.reject(new CourierError("closed", "courier: client closed"));
    if (kind === "volatile" && !this.#open) {
      return Promise.reject(new CourierError("disconnected", "courier: not connected"));
    }
    return new Promise<T>((resolve, reject) => {
      const id = String(++this.#nextId);
      const p: Pending = { id, frame: f, kind, written: 0, onReply, resolve, reject };
      this.#pending.set(id, p);
      if (this.#open) this.#write(p);
    });
  }

  #write(p: Pending): void {
    p.written++;
    this.#writeRaw(JSON.stringify({ ...p.frame, id: p.id }));
  }

  #writeRaw(s: string): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return;
    try {
      ws.send(s);
    } catch {
      // The close event follows.
    }
  }

  // #sawOwn counts the ack of an own durable send with inbox seq `seq`.
  // The ack of seq N takes the message's place in the connection's stream
  // (protocol.md), so it is the next seq; only the ack of a repeated
  // idempotency key (after a reconnect) may overtake the replay, and then
  // its seq is remembered and counted when the replay reaches it.
  #sawOwn(seq: number): void {
    if (!this.#known) {
      this.#lastSeq = Math.max(this.#lastSeq, seq);
      this.#known = true;
    } else if (seq === this.#lastSeq + 1) {
      this.#lastSeq = seq;
    } else if (seq > this.#lastSeq) {
      this.#ahead.add(seq);
    }
    this.#drainAhead();
  }

  #drainAhead(): void {
    if (this.#ahead.size === 0) return;
    while (this.#ahead.delete(this.#lastSeq + 1)) this.#lastSeq++;
    for (const s of this.#ahead) if (s <= this.#lastSeq) this.#ahead.delete(s);
  }

  // #dial makes one connection attempt.
  async #dial(): Promise<void> {
    if (this.#stopped) return;
    const gen = ++this.#gen;
    try {
      if (!this.#WS) {
        this.#WS = this.#opts.WebSocket ?? (await this.#env.resolveWebSocket?.()) ?? (globalThis as any).WebSocket;
        if (!this.#WS) {
          this.#stop(new CourierError("bad_request", "courier: no WebSocket implementation: pass options.WebSocket"), true);
          return;
        }
      }
      if ((this.#stale || !this.#token) && this.#opts.tokenFn) {
        let t: string;
        try {
          t = await this.#opts.tokenFn();
        } catch (e) {
          if (this.#stopped || gen !== this.#gen) return;
          const err = new CourierError("token", "courier: tokenFn: " + ((e as Error)?.message ?? String(e)));
          this.#emit("connect_error", err);
          this.#retry();
          return;
        }
        if (this.#stopped || gen !== this.#gen) return;
        this.#token = t;
        this.#stale = false;
      }
    } catch (e) {
      this.#stop(new CourierError("bad_request", "courier: " + ((e as Error)?.message ?? String(e))), true);
      return;
    }
    if (this.#stopped || gen !== this.#gen) return;

    const u = new URL(this.#url);
    u.searchParams.set("token", this.#token ?? "");
    if (this.#known) u.searchParams.set("since", String(this.#lastSeq));
    let ws: Socket;
    try {
      ws = new this.#WS(u.toString());
    } catch (e) {
      this.#stop(new CourierError("bad_request", "courier: " + ((e as Error)?.message ?? String(e))), true);
      return;
    }
    this.#ws = ws;
    let status: number | undefined; // HTTP status of a refused handshake, when the WebSocket tells it
    let netErr = false; // the attempt failed below HTTP (refused, reset...)
    ws.onmessage = (ev: any) => {
      if (gen === this.#gen) this.#frame(ev.data);
    };
    ws.onerror = (ev: any) => {
      // `ws` tells why a handshake failed; a browser does not.
      const m = /Unexpected server response: (\d+)/.exec(String(ev?.message ?? ev?.error?.message ?? ""));
      if (m) status = Number(m[1]);
      else if (ev?.error?.code && typeof ev.error.code === "string" && ev.error.code.startsWith("E")) netErr = true;
    };
    ws.onclose = (ev: any) => {
      if (gen === this.#gen) this.#closed(ev?.code ?? 1006, ev?.reason ?? "", status, netErr);
    };
    ws.onopen = null;
    this.#setTimer(() => {
      if (gen !== this.#gen || this.#open) return;
      this.#abandon();
      this.#closed(1006, "no welcome within " + this.#connectTimeout + " ms", undefined, true);
    }, this.#connectTimeout);
  }

  #setTimer(f: () => void, ms: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      f();
    }, ms);
  }

  // #abandon drops the current socket without waiting for its close.
  #abandon(): void {
    const ws = this.#ws;
    this.#ws = null;
    this.#gen++;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onopen = null;
    ws.onerror = () => {};
    try {
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(1000);
    } catch {
      // nothing to do
    }
    if (typeof ws.terminate === "function") {
      // `ws` waits up to 30 s for the server's close frame; do not.
      const t = setTimeout(() => {
        try {
          ws.terminate!();
        } catch {
          // already gone
        }
      }, 1000);
      (t as any).unref?.();
    }
  }

  #frame(text: any): void {
    if (typeof text !== "string") return; // binary frames are not for a JSON connection
    let f: any;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (!f || typeof f !== "object") return;
    switch (f.type) {
      case "welcome":
        this.#welcome(f);
        return;
      case "message":
        this.#message(f);
        return;
      case "receipt":
        this.#emit("receipt", { status: f.status, by: f.by, msg: f.msg });
        return;
      case "presence":
        if (typeof f.id === "string" && this.#pending.has(f.id)) break;
        if (typeof f.user === "string") {
          this.#emit("presence", { user: f.user, online: !!f.online, lastSeen: f.lastSeen ?? null });
        }
        return;
      case "expired": {
        const { type: _t, ...n } = f;
        if (typeof f.to === "number" && f.to > this.#lastSeq) {
          this.#lastSeq = f.to;
          this.#drainAhead();
        }
        this.#emit("expired", n);
        return;
      }
    }
    // A reply: ack, error, history, presence, conversations, pong.
    const p = typeof f.id === "string" ? this.#pending.get(f.id) : undefined;
    if (!p) {
      if (f.type === "error") this.#emit("error", new CourierError(f.code ?? "internal", f.message ?? "courier: error"));
      return;
    }
    this.#pending.delete(p.id);
    if (this.#holdFor.delete(p.id)) {
      if (f.type === "ack" && typeof f.msg === "string") this.#own.add(f.msg);
      if (this.#holdFor.size === 0) queueMicrotask(() => this.#release());
    }
    if (f.type === "error") {
      const err = new CourierError(f.code ?? "internal", f.message ?? "courier: error");
      if (p.written > 1) this.#emit("error", err);
      p.reject(err);
      return;
    }
    let v: unknown;
    try {
      v = p.onReply(f);
    } catch (e) {
      p.reject(e as Error);
      return;
    }
    p.resolve(v);
  }

  #welcome(f: any): void {
    if (this.#open) return;
    this.#open = true;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#backoff = this.#minBackoff;
    this.#user = f.user ?? "";
    this.#connId = f.conn ?? "";
    // Ask for the inbox head (a resume beyond it answers the head and
    // changes nothing else). Without `since`, a reconnect before any message
    // then resumes from it rather than missing what came meanwhile. With
    // one, a head below lastSeq means the server's store was reset (or
    // `since` was beyond it): the server goes on from its head, and so must
    // the client, or it would drop the new messages as already seen.
    this.#internal({ type: "resume", since: farSeq }, (r) => {
      if (typeof r.seq !== "number") return;
      if (this.#known && r.seq < this.#lastSeq) {
        this.#lastSeq = r.seq;
        this.#ahead.clear();
      } else {
        this.#lastSeq = Math.max(this.#lastSeq, r.seq);
      }
      this.#known = true;
      this.#drainAhead();
    });
    // Rooms and watches first, then the requests: the server handles a
    // connection's frames in order, so a resent publish finds its room joined.
    for (const room of [...this.#rooms].sort()) {
      this.#internal({ type: "join", room }, undefined, (e) => {
        this.#rooms.delete(room);
        this.#emit("error", new CourierError(e.code, `courier: join ${room} again after reconnecting: ${e.message}`));
      });
    }
    if (this.#watched.size > 0) {
      const users = [...this.#watched].sort();
      this.#internal({ type: "watch", users }, undefined, (e) => {
        this.#emit("error", new CourierError(e.code, `courier: watch again after reconnecting: ${e.message}`));
      });
    }
    for (const p of [...this.#pending.values()]) {
      if (p.kind !== "durable" && p.kind !== "retry") continue;
      if (p.written > 0 && p.frame.type === "send") this.#holdFor.add(p.id);
      this.#write(p);
    }
    if (this.#holdFor.size > 0) {
      this.#hold = [];
      // An ack normally follows the replay within moments; never hold for long.
      this.#holdTimer = setTimeout(() => this.#release(), this.#connectTimeout);
    }
    this.#emit("connect", { user: this.#user, conn: this.#connId });
  }

  // #internal writes one of the client's own frames on the current connection.
  #internal(f: Record<string, unknown>, ok?: (r: any) => void, fail?: (e: CourierError) => void): void {
    const id = "c" + ++this.#nextId;
    const p: Pending = {
      id,
      frame: f,
      kind: "internal",
      written: 0,
      onReply: (r) => ok?.(r),
      resolve: () => {},
      reject: (e) => fail?.(e as CourierError),
    };
    this.#pending.set(id, p);
    this.#write(p);
  }

  #message(f: any): void {
    const m = toMessage(f);
    if (m.room === undefined && typeof m.seq === "number" && m.seq > 0) {
      if (this.#known && m.seq <= this.#lastSeq) return; // delivered before a reconnect
      const own = this.#ahead.has(m.seq); // an own send, acked already
      this.#lastSeq = m.seq;
      this.#known = true;
      this.#ahead.delete(m.seq);
      this.#drainAhead();
      if (own) return;
    }
    if (this.#hold) {
      this.#hold.push(m);
      return;
    }
    this.#deliver(m);
  }

  #deliver(m: Message): void {
    this.#emit("message", m);
    if (!reservedEvents.includes(m.event)) this.#emit(m.event, m.data, m);
  }

  // #release delivers the messages held while resent sends waited for their
  // acks, but not the sender's copies of those sends.
  #release(): void {
    if (this.#holdTimer) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = null;
    }
    const held = this.#hold;
    const own = this.#own;
    this.#hold = null;
    this.#holdFor = new Set();
    this.#own = new Set();
    if (!held) return;
    for (const m of held) {
      if (m.room === undefined && own.has(m.msg)) continue;
      this.#deliver(m);
    }
  }

  // #closed handles the end of the current socket.
  #closed(code: number, reason: string, status: number | undefined, netErr: boolean): void {
    const wasOpen = this.#open;
    this.#open = false;
    this.#connId = "";
    this.#ws = null;
    this.#gen++;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#stopped) return;
    this.#release();
    for (const p of [...this.#pending.values()]) {
      if (p.kind === "internal") this.#pending.delete(p.id);
      if (p.kind === "volatile") {
        this.#pending.delete(p.id);
        p.reject(new CourierError("disconnected", "courier: connection lost before the reply", code));
      }
    }
    if (wasOpen) {
      this.#emit("disconnect", { code, reason });
    } else {
      const why = status ? `HTTP ${status}` : `close ${code}${reason ? " " + reason : ""}`;
      this.#emit(
        "connect_error",
        new CourierError(status === 401 ? "unauthorized" : "connect_failed", `courier: connect ${this.#url}: ${why}`, code),
      );
    }
    if (this.#stopped) return; // a handler closed the client
    if (code === 4001) {
      this.#stop(new CourierError("disconnected_by_server", "courier: disconnected by the server", code), true);
      return;
    }
    if (code === 4003) {
      if (!this.#opts.tokenFn) {
        // The token expired and nothing can give another: a reconnection
        // would be refused (the Go client stops with ErrUnauthorized).
        this.#stop(new CourierError("unauthorized", "courier: the token expired (close 4003) and there is no tokenFn", code), true);
        return;
      }
      this.#stale = true;
    }
    if (!wasOpen) {
      if (status === 401 && !this.#opts.tokenFn) {
        this.#stop(new CourierError("unauthorized", "courier: unauthorized (HTTP 401): bad or expired token", code), true);
        return;
      }
      // Refused before the welcome: the token may be stale, unless the
      // WebSocket told us the failure was something else.
      if (status === 401 || (status === undefined && !netErr)) this.#stale = true;
    }
    this.#retry();
  }

  #retry(): void {
    if (this.#stopped) return;
    const d = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#maxBackoff);
    const wait = d / 2 + Math.random() * (d / 2);
    this.#setTimer(() => void this.#dial(), wait);
  }

  // #stop ends the client for good: pending requests reject with err.
  #stop(err: CourierError, report = false): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#open = false;
    this.#connId = "";
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#abandon();
    this.#release();
    const ps = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of ps) if (p.kind !== "internal") p.reject(err);
    if (report) this.#emit("error", err);
  }
}

/**
 * Connects to the courier server at `url` with the given `WebSocket`
 * environment; the entry points (`index`, `browser`) wrap it.
 * @internal
 */
export function connectWith(url: string, opts: ConnectOptions, env: Environment): Client {
  return new Client(url, opts, env);
}
