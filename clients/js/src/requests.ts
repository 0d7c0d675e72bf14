// Requests and their replies. Every frame the client writes carries an id
// and waits here until the reply with that id: an ack, an error, or the
// answer of a query. What becomes of a request when its connection is lost
// depends on its kind: durable and idempotent ones are written again on the
// next connection (a durable send keeps its idempotency key, so the server
// stores it once), volatile ones reject.

import { CourierError } from "./errors.js";

/**
 * What happens to a pending request when the connection is lost.
 * @internal
 */
export type Kind =
  | "durable" // durable send or publish: written again after a reconnect, same key
  | "retry" // idempotent request (join, query, ...): written again after a reconnect
  | "volatile" // rejected when the connection is lost
  | "internal"; // the client's own frames of one connection: forgotten when it is lost

/**
 * A request waiting for its reply.
 * @internal
 */
export interface Pending {
  id: string;
  frame: Record<string, unknown>;
  kind: Kind;
  written: number; // times written
  onReply: (f: any) => unknown;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

/**
 * Returns a random idempotency key for a durable send or publish.
 * @internal
 */
export function newKey(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  let s = "js-";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * The pending requests of a client, by id.
 * @internal
 */
export class Requests {
  #pending = new Map<string, Pending>();
  #nextId = 0;
  #send: (text: string) => void;

  /** `send` writes a frame on the current connection, if any. */
  constructor(send: (text: string) => void) {
    this.#send = send;
  }

  /**
   * Adds request frame `f` with a fresh id, writes it at once when
   * `connected` (otherwise the next welcome does), and settles with
   * onReply(reply frame).
   */
  add<T>(f: Record<string, unknown>, kind: Kind, onReply: (r: any) => T, connected: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = String(++this.#nextId);
      const p: Pending = { id, frame: f, kind, written: 0, onReply, resolve, reject };
      this.#pending.set(id, p);
      if (connected) this.write(p);
    });
  }

  /**
   * Writes one of the client's own frames on the current connection; `ok`
   * gets the reply, `fail` the error.
   */
  internal(f: Record<string, unknown>, ok?: (r: any) => void, fail?: (e: CourierError) => void): void {
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
    this.write(p);
  }

  /** Writes pending request `p` (again) with its id. */
  write(p: Pending): void {
    p.written++;
    this.#send(JSON.stringify({ ...p.frame, id: p.id }));
  }

  /** Tells whether request `id` is pending. */
  has(id: string): boolean {
    return this.#pending.has(id);
  }

  /** Removes and returns pending request `id`, which a reply answers. */
  take(id: string): Pending | undefined {
    const p = this.#pending.get(id);
    if (p) this.#pending.delete(id);
    return p;
  }

  /** The requests to write again on a new connection (durable and retry), oldest first. */
  resendable(): Pending[] {
    return [...this.#pending.values()].filter((p) => p.kind === "durable" || p.kind === "retry");
  }

  /**
   * Forgets the internal requests of the connection that ended with close
   * `code`, and rejects the volatile ones: their reply can no longer come.
   */
  disconnected(code: number): void {
    for (const p of [...this.#pending.values()]) {
      if (p.kind === "internal") this.#pending.delete(p.id);
      if (p.kind === "volatile") {
        this.#pending.delete(p.id);
        p.reject(new CourierError("disconnected", "courier: connection lost before the reply", code));
      }
    }
  }

  /** Rejects every request with `err` (the client stopped); internal ones are dropped silently. */
  stop(err: CourierError): void {
    const ps = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of ps) if (p.kind !== "internal") p.reject(err);
  }
}

/**
 * Settles request `p` with reply frame `f`. An error reply to a request
 * written more than once (a resent frame) also goes to `report`, for the
 * `error` event.
 * @internal
 */
export function settle(p: Pending, f: any, report: (e: CourierError) => void): void {
  if (f.type === "error") {
    const err = new CourierError(f.code ?? "internal", f.message ?? "courier: error");
    if (p.written > 1) report(err);
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
