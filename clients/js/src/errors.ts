// The one error type of the client. Requests reject with it and the
// `error` and `connect_error` events carry it, so that an application tells
// the server's refusals from the client's own conditions by `code` alone.

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
