// The rooms a client joined and the users it watches. The server forgets
// both with the connection; the client remembers them and asks again on
// every new connection, so that the application sets them up once.

import { CourierError } from "./errors.js";
import type { Requests } from "./requests.js";

/**
 * The rooms joined and the users watched, restored after each reconnect.
 * @internal
 */
export class Subscriptions {
  #rooms = new Set<string>();
  #watched = new Set<string>();

  /** The rooms joined, sorted. */
  get rooms(): string[] {
    return [...this.#rooms].sort();
  }

  /** Notes that `room` was joined. */
  joined(room: string): void {
    this.#rooms.add(room);
  }

  /** Notes that `room` was left. */
  left(room: string): void {
    this.#rooms.delete(room);
  }

  /** Notes that `users` are watched. */
  watching(users: string[]): void {
    for (const u of users) this.#watched.add(u);
  }

  /** Notes that `users` are no longer watched. */
  unwatched(users: string[]): void {
    for (const u of users) this.#watched.delete(u);
  }

  /**
   * Joins the rooms and watches the users again on a new connection; a
   * refusal goes to `report` (and a refused room is forgotten).
   */
  restore(requests: Requests, report: (e: CourierError) => void): void {
    for (const room of [...this.#rooms].sort()) {
      requests.internal({ type: "join", room }, undefined, (e) => {
        this.#rooms.delete(room);
        report(new CourierError(e.code, `courier: join ${room} again after reconnecting: ${e.message}`));
      });
    }
    if (this.#watched.size > 0) {
      const users = [...this.#watched].sort();
      requests.internal({ type: "watch", users }, undefined, (e) => {
        report(new CourierError(e.code, `courier: watch again after reconnecting: ${e.message}`));
      });
    }
  }
}
