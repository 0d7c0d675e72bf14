// The client's events: its own (connect, message, receipt...) and, under
// any other name, the messages whose event is that name. Handlers run
// synchronously, in the order they were added; an exception of one is
// rethrown apart, so it disturbs neither the client nor the other handlers.

import type { CourierError } from "./errors.js";
import type { DisconnectInfo, ExpiredNotice, Message, PresenceChange, Receipt, Welcome } from "./messages.js";

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

/** Any event handler, as stored. */
type Listener = (...args: any[]) => void;

/**
 * The handlers of a client's events, by name.
 * @internal
 */
export class Emitter {
  #handlers = new Map<string, Set<Listener>>();

  /** Adds `handler` to the handlers of `name`. */
  add(name: string, handler: Listener): void {
    let s = this.#handlers.get(name);
    if (!s) this.#handlers.set(name, (s = new Set()));
    s.add(handler);
  }

  /**
   * Removes `handler` (or the `once` wrapper whose `inner` it is) from the
   * handlers of `name`; without a handler, every handler of the name.
   */
  remove(name: string, handler?: Listener): void {
    const s = this.#handlers.get(name);
    if (!s) return;
    if (!handler) {
      this.#handlers.delete(name);
      return;
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
  }

  /** Calls the handlers of `name` with `args`. */
  emit(name: string, ...args: any[]): void {
    const s = this.#handlers.get(name);
    if (!s) return;
    // A copy: a handler may add or remove handlers (once does).
    for (const h of [...s]) {
      try {
        h(...args);
      } catch (e) {
        rethrow(e);
      }
    }
  }
}

// rethrow reports an exception of an event handler without letting it
// disturb the client (as an EventTarget does).
function rethrow(e: unknown): void {
  queueMicrotask(() => {
    throw e;
  });
}
