// The courier client: one WebSocket connection to a courier server that
// reconnects by itself and resumes where it left off. The protocol is
// docs/protocol.md; the semantics follow the Go client (client/client.go).
//
// This file is the Client the application sees and the glue between the
// parts: the connection (connection.ts), the inbox position and the replay
// (inbox.ts), the pending requests (requests.ts), the rooms and watches
// restored after a reconnect (subscriptions.ts) and the events (events.ts).

import { Connection } from "./connection.js";
import { CourierError } from "./errors.js";
import { Emitter, reservedEvents, type ClientEvents, type EventHandler } from "./events.js";
import { farSeq, Inbox } from "./inbox.js";
import { toAck, toMessage, type Ack, type Conversation, type Message, type PresenceState } from "./messages.js";
import type {
  ConnectOptions,
  ConversationsOptions,
  Environment,
  HistoryOptions,
  PublishOptions,
  SearchOptions,
  SendOptions,
} from "./options.js";
import { newKey, Requests, settle, type Kind } from "./requests.js";
import { Subscriptions } from "./subscriptions.js";

// The public names of the parts; the entry points re-export this module.
export { CourierError } from "./errors.js";
export { reservedEvents, type ClientEvents, type EventHandler } from "./events.js";
export type {
  Ack,
  Conversation,
  DisconnectInfo,
  ExpiredNotice,
  Message,
  MessageStatus,
  PresenceChange,
  PresenceState,
  Receipt,
  Welcome,
} from "./messages.js";
export type {
  ConnectOptions,
  ConversationsOptions,
  Environment,
  HistoryOptions,
  PublishOptions,
  SearchOptions,
  SendOptions,
} from "./options.js";
export { wsURL } from "./url.js";

/**
 * A connection to a courier server that reconnects by itself. Make one with
 * {@link connect}.
 *
 * - It reconnects with jittered exponential backoff and resumes with
 *   `since=` {@link Client.lastSeq}, so no stored message is lost or
 *   delivered twice across a reconnect; it joins its rooms and watches its
 *   users again, and writes again every durable send or publish that was not
 *   acknowledged, with its idempotency key.
 * - It notices a connection that died silently: after `heartbeat` ms with
 *   nothing received it writes a `ping`, and when nothing arrives within
 *   `heartbeatTimeout` ms it closes the connection (`disconnect` with code
 *   4000, `"heartbeat timeout"`) and reconnects as above.
 * - Requests made while disconnected wait for the connection, except
 *   volatile messages, which reject with code `disconnected`.
 * - Requests other than volatile messages that are pending when the
 *   connection drops are written again on the next connection (they are all
 *   idempotent); volatile ones reject with code `disconnected`.
 */
export class Client {
  #conn: Connection;
  #inbox: Inbox;
  #requests: Requests;
  #subs = new Subscriptions();
  #events = new Emitter();
  #user = "";
  #connId = "";

  /**
   * Use {@link connect} rather than this constructor.
   * @internal
   */
  constructor(url: string, opts: ConnectOptions = {}, env: Environment = {}) {
    this.#conn = new Connection(url, opts, env, {
      frame: (text) => this.#frame(text),
      closed: (code, reason, status, netErr) => this.#closed(code, reason, status, netErr),
      connectError: (err) => this.#emit("connect_error", err),
      fail: (err) => this.#stop(err, true),
      since: () => this.#inbox.since,
    });
    this.#requests = new Requests((text) => this.#conn.write(text));
    this.#inbox = new Inbox(opts.since, (m) => this.#deliver(m));
    void this.#conn.dial();
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
    return this.#inbox.lastSeq;
  }

  /** True while a connection is open and welcomed. */
  get connected(): boolean {
    return this.#conn.open;
  }

  /** True once {@link Client.close} was called or the client stopped for good. */
  get closed(): boolean {
    return this.#conn.stopped;
  }

  /** The rooms joined (and joined again after each reconnect). */
  get rooms(): string[] {
    return this.#subs.rooms;
  }

  /**
   * Adds an event handler. Besides the client's own events (see
   * {@link ClientEvents}), any other name receives the messages whose event
   * is that name, as `(data, message)`.
   */
  on<K extends keyof ClientEvents>(name: K, handler: ClientEvents[K]): this;
  on(name: string, handler: EventHandler): this;
  on(name: string, handler: (...args: any[]) => void): this {
    this.#events.add(name, handler);
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
    (w as any).inner = handler; // so that off(name, handler) finds it
    return this.on(name, w);
  }

  /** Removes an event handler; without a handler, every handler of the name. */
  off<K extends keyof ClientEvents>(name: K, handler?: ClientEvents[K]): this;
  off(name: string, handler?: EventHandler): this;
  off(name: string, handler?: (...args: any[]) => void): this {
    this.#events.remove(name, handler);
    return this;
  }

  #emit(name: string, ...args: any[]): void {
    this.#events.emit(name, ...args);
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
      if (!volatile && a.seq !== undefined) this.#inbox.sawOwn(a.seq);
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
      this.#subs.joined(room);
    });
  }

  /** Leaves `room`. */
  leave(room: string): Promise<void> {
    this.#subs.left(room);
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
      this.#subs.watching(users);
    });
  }

  /** Stops watching `users`. */
  unwatch(users: string[]): Promise<void> {
    this.#subs.unwatched(users);
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
    if (this.#conn.stopped) return;
    const wasOpen = this.#conn.open;
    this.#stop(new CourierError("closed", "courier: client closed"));
    if (wasOpen) this.#emit("disconnect", { code: 1000, reason: "closed by the client" });
  }

  // #request writes frame f with a fresh id, or queues it until the
  // connection is welcomed, and settles with onReply(reply frame).
  #request<T>(f: Record<string, unknown>, kind: Kind, onReply: (r: any) => T): Promise<T> {
    if (this.#conn.stopped) return Promise.reject(new CourierError("closed", "courier: client closed"));
    if (kind === "volatile" && !this.#conn.open) {
      return Promise.reject(new CourierError("disconnected", "courier: not connected"));
    }
    return this.#requests.add(f, kind, onReply, this.#conn.open);
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
        this.#inbox.receive(toMessage(f));
        return;
      case "receipt":
        this.#emit("receipt", { status: f.status, by: f.by, msg: f.msg });
        return;
      case "presence":
        if (typeof f.id === "string" && this.#requests.has(f.id)) break;
        if (typeof f.user === "string") {
          this.#emit("presence", { user: f.user, online: !!f.online, lastSeen: f.lastSeen ?? null });
        }
        return;
      case "expired": {
        const { type: _t, ...n } = f;
        this.#inbox.expired(f.to);
        this.#emit("expired", n);
        return;
      }
    }
    // A reply: ack, error, history, presence, conversations, pong.
    const p = typeof f.id === "string" ? this.#requests.take(f.id) : undefined;
    if (!p) {
      if (f.type === "error") this.#emit("error", new CourierError(f.code ?? "internal", f.message ?? "courier: error"));
      return;
    }
    this.#inbox.answered(p.id, f);
    settle(p, f, (err) => this.#emit("error", err));
  }

  #welcome(f: any): void {
    if (!this.#conn.welcomed()) return;
    this.#user = f.user ?? "";
    this.#connId = f.conn ?? "";
    this.#inbox.welcomed(f.seq);
    // Ask for the inbox head (see Inbox.head).
    this.#requests.internal({ type: "resume", since: farSeq }, (r) => this.#inbox.head(r.seq));
    // Rooms and watches first, then the requests: the server handles a
    // connection's frames in order, so a resent publish finds its room joined.
    this.#subs.restore(this.#requests, (err) => this.#emit("error", err));
    for (const p of this.#requests.resendable()) {
      if (p.written > 0 && p.frame.type === "send") this.#inbox.awaitAck(p.id);
      this.#requests.write(p);
    }
    this.#inbox.holdReplay(this.#conn.connectTimeout);
    this.#emit("connect", { user: this.#user, conn: this.#connId });
  }

  #deliver(m: Message): void {
    this.#emit("message", m);
    if (!reservedEvents.includes(m.event)) this.#emit(m.event, m.data, m);
  }

  // #closed handles the end of the current socket.
  #closed(code: number, reason: string, status: number | undefined, netErr: boolean): void {
    const wasOpen = this.#conn.ended();
    this.#connId = "";
    if (this.#conn.stopped) return;
    this.#inbox.release();
    this.#requests.disconnected(code);
    if (wasOpen) {
      this.#emit("disconnect", { code, reason });
    } else {
      const why = status ? `HTTP ${status}` : `close ${code}${reason ? " " + reason : ""}`;
      this.#emit(
        "connect_error",
        new CourierError(status === 401 ? "unauthorized" : "connect_failed", `courier: connect ${this.#conn.url}: ${why}`, code),
      );
    }
    if (this.#conn.stopped) return; // a handler closed the client
    this.#conn.reconnectAfter(code, wasOpen, status, netErr);
  }

  // #stop ends the client for good: pending requests reject with err.
  #stop(err: CourierError, report = false): void {
    if (this.#conn.stopped) return;
    this.#conn.stop();
    this.#connId = "";
    this.#inbox.release();
    this.#requests.stop(err);
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
