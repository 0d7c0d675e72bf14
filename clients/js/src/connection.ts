// The connection: one WebSocket at a time to the server's /ws endpoint. It
// gets a token (again, when the last one may be stale), dials, gives up on
// an attempt that gets no welcome in time, takes a welcomed connection that
// stays silent through a heartbeat ping for dead, and after a close decides
// whether to reconnect, with jittered exponential backoff, or to stop. What
// the frames mean is the client's business (client.ts).

import { CourierError } from "./errors.js";
import type { ConnectOptions, Environment } from "./options.js";
import { wsURL } from "./url.js";

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

const OPEN = 1;
const CONNECTING = 0;

// The close code and reason of a connection the heartbeat took for dead
// (what `disconnect` reports; the socket is closed with them too).
const heartbeatClose = { code: 4000, reason: "heartbeat timeout" } as const;

// The heartbeat's ping: no id, so its pong answers no request.
const pingFrame = '{"type":"ping"}';

// now is a monotonic clock in ms where there is one.
const now: () => number =
  typeof performance !== "undefined" && typeof performance.now === "function" ? () => performance.now() : () => Date.now();

/**
 * What a {@link Connection} tells its client.
 * @internal
 */
export interface ConnectionHost {
  /** A frame arrived on the current socket. */
  frame(text: any): void;
  /**
   * The current socket ended: close `code` and `reason`, the HTTP `status`
   * of a refused handshake when known, and whether it failed below HTTP.
   */
  closed(code: number, reason: string, status: number | undefined, netErr: boolean): void;
  /** An attempt failed before it had a socket (tokenFn threw); the connection retries. */
  connectError(err: CourierError): void;
  /** The client cannot go on: it must stop for good and report `err`. */
  fail(err: CourierError): void;
  /** The inbox seq to resume after (`since=`), or undefined for none. */
  since(): number | undefined;
}

/**
 * The socket of a client, its reconnections and its token.
 * @internal
 */
export class Connection {
  #url: string;
  #opts: ConnectOptions;
  #env: Environment;
  #host: ConnectionHost;
  #minBackoff: number;
  #maxBackoff: number;
  #connectTimeout: number;
  #WS: any = null;

  #token: string | undefined;
  #stale: boolean; // ask tokenFn before the next attempt
  #ws: Socket | null = null;
  #gen = 0; // generation of #ws; events of older sockets are ignored
  #open = false; // #ws is welcomed
  #stopped = false;
  #backoff: number;
  #timer: ReturnType<typeof setTimeout> | null = null; // reconnect or welcome timeout

  // The heartbeat of a welcomed socket: after #heartbeat ms with nothing
  // received, a ping; #heartbeatTimeout ms after it with still nothing, the
  // socket is taken for dead.
  #heartbeat: number; // 0: off
  #heartbeatTimeout: number;
  #hbTimer: ReturnType<typeof setTimeout> | null = null;
  #lastRx = 0; // now() when the last frame arrived
  #pingAt = -1; // now() when the ping of the current silence was written; -1: none
  #grace = false; // the ping's deadline passed once: see #beat

  /**
   * Checks the URL and the options (throws a {@link CourierError} with code
   * `bad_request`); {@link Connection.dial} makes the first attempt.
   */
  constructor(url: string, opts: ConnectOptions, env: Environment, host: ConnectionHost) {
    this.#url = wsURL(url, env.base);
    this.#opts = { ...opts };
    this.#env = env;
    this.#host = host;
    this.#minBackoff = opts.minBackoff && opts.minBackoff > 0 ? opts.minBackoff : 200;
    this.#maxBackoff = Math.max(opts.maxBackoff && opts.maxBackoff > 0 ? opts.maxBackoff : 10000, this.#minBackoff);
    this.#connectTimeout = opts.connectTimeout && opts.connectTimeout > 0 ? opts.connectTimeout : 10000;
    const hb = opts.heartbeat;
    this.#heartbeat = typeof hb === "number" && !Number.isNaN(hb) ? Math.max(hb, 0) : 25000;
    if (this.#heartbeat === Infinity) this.#heartbeat = 0;
    this.#heartbeatTimeout = opts.heartbeatTimeout && opts.heartbeatTimeout > 0 ? opts.heartbeatTimeout : 10000;
    this.#backoff = this.#minBackoff;
    this.#token = opts.token || undefined;
    if (!this.#token && !opts.tokenFn) throw new CourierError("bad_request", "courier: no token or tokenFn");
    this.#stale = !this.#token;
  }

  /** The WebSocket URL dialled (without token and since). */
  get url(): string {
    return this.#url;
  }

  /** How long an attempt waits for the welcome, in ms. */
  get connectTimeout(): number {
    return this.#connectTimeout;
  }

  /** True while the socket is open and welcomed. */
  get open(): boolean {
    return this.#open;
  }

  /** True once stopped: no socket, no timer, no more attempts. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Makes one connection attempt. */
  async dial(): Promise<void> {
    if (this.#stopped) return;
    const gen = ++this.#gen;
    try {
      if (!this.#WS) {
        this.#WS = this.#opts.WebSocket ?? (await this.#env.resolveWebSocket?.()) ?? (globalThis as any).WebSocket;
        if (!this.#WS) {
          this.#host.fail(new CourierError("bad_request", "courier: no WebSocket implementation: pass options.WebSocket"));
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
          this.#host.connectError(err);
          this.retry();
          return;
        }
        if (this.#stopped || gen !== this.#gen) return;
        this.#token = t;
        this.#stale = false;
      }
    } catch (e) {
      this.#host.fail(new CourierError("bad_request", "courier: " + ((e as Error)?.message ?? String(e))));
      return;
    }
    if (this.#stopped || gen !== this.#gen) return;

    const u = new URL(this.#url);
    u.searchParams.set("token", this.#token ?? "");
    const since = this.#host.since();
    if (since !== undefined) u.searchParams.set("since", String(since));
    let ws: Socket;
    try {
      ws = new this.#WS(u.toString());
    } catch (e) {
      this.#host.fail(new CourierError("bad_request", "courier: " + ((e as Error)?.message ?? String(e))));
      return;
    }
    this.#ws = ws;
    let status: number | undefined; // HTTP status of a refused handshake, when the WebSocket tells it
    let netErr = false; // the attempt failed below HTTP (refused, reset...)
    ws.onmessage = (ev: any) => {
      if (gen !== this.#gen) return;
      this.#lastRx = now(); // any frame counts as life
      if (this.#pingAt >= 0) {
        // The heartbeat's ping is answered (or something else came first):
        // the next one is due after a full silence from now.
        this.#pingAt = -1;
        if (this.#open) this.#armHeartbeat(this.#heartbeat);
      }
      this.#host.frame(ev.data);
    };
    ws.onerror = (ev: any) => {
      // `ws` tells why a handshake failed; a browser does not.
      const m = /Unexpected server response: (\d+)/.exec(String(ev?.message ?? ev?.error?.message ?? ""));
      if (m) status = Number(m[1]);
      else if (ev?.error?.code && typeof ev.error.code === "string" && ev.error.code.startsWith("E")) netErr = true;
    };
    ws.onclose = (ev: any) => {
      if (gen === this.#gen) this.#host.closed(ev?.code ?? 1006, ev?.reason ?? "", status, netErr);
    };
    ws.onopen = null;
    this.#setTimer(() => {
      if (gen !== this.#gen || this.#open) return;
      this.#abandon();
      this.#host.closed(1006, "no welcome within " + this.#connectTimeout + " ms", undefined, true);
    }, this.#connectTimeout);
  }

  /** Writes `text` on the socket if it is open; a failure shows as its close. */
  write(text: string): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return;
    try {
      ws.send(text);
    } catch {
      // The close event follows.
    }
  }

  /**
   * Marks the socket welcomed (it stops the welcome timeout and resets the
   * backoff); false when it already was.
   */
  welcomed(): boolean {
    if (this.#open) return false;
    this.#open = true;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#backoff = this.#minBackoff;
    if (this.#heartbeat > 0) {
      this.#lastRx = now();
      this.#pingAt = -1;
      this.#grace = false;
      this.#armHeartbeat(this.#heartbeat);
    }
    return true;
  }

  /** Forgets the socket that ended; returns whether it had been welcomed. */
  ended(): boolean {
    const wasOpen = this.#open;
    this.#open = false;
    this.#ws = null;
    this.#gen++;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#stopHeartbeat();
    return wasOpen;
  }

  /**
   * Follows the end of a socket (see {@link ConnectionHost.closed}; `wasOpen`:
   * it had been welcomed): reconnects, after marking the token stale when it
   * may be, or stops the client through {@link ConnectionHost.fail} when a
   * reconnection cannot succeed.
   */
  reconnectAfter(code: number, wasOpen: boolean, status: number | undefined, netErr: boolean): void {
    if (code === 4001) {
      this.#host.fail(new CourierError("disconnected_by_server", "courier: disconnected by the server", code));
      return;
    }
    if (code === 4003) {
      if (!this.#opts.tokenFn) {
        // The token expired and nothing can give another: a reconnection
        // would be refused (the Go client stops with ErrUnauthorized).
        this.#host.fail(new CourierError("unauthorized", "courier: the token expired (close 4003) and there is no tokenFn", code));
        return;
      }
      this.#stale = true;
    }
    if (!wasOpen) {
      if (status === 401 && !this.#opts.tokenFn) {
        this.#host.fail(new CourierError("unauthorized", "courier: unauthorized (HTTP 401): bad or expired token", code));
        return;
      }
      // Refused before the welcome: the token may be stale, unless the
      // WebSocket told us the failure was something else.
      if (status === 401 || (status === undefined && !netErr)) this.#stale = true;
    }
    this.retry();
  }

  /** Schedules the next attempt after the backoff (which doubles, up to maxBackoff). */
  retry(): void {
    if (this.#stopped) return;
    const d = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#maxBackoff);
    const wait = d / 2 + Math.random() * (d / 2);
    this.#setTimer(() => void this.dial(), wait);
  }

  /** Stops for good: drops the socket and the timer; no attempt follows. */
  stop(): void {
    this.#stopped = true;
    this.#open = false;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#abandon();
  }

  #armHeartbeat(ms: number): void {
    if (this.#hbTimer) clearTimeout(this.#hbTimer);
    const t = setTimeout(() => {
      this.#hbTimer = null;
      this.#beat();
    }, Math.min(ms, 0x7fffffff)); // setTimeout takes at most 2^31-1 ms
    // The heartbeat alone must not keep a Node process alive (the socket does while it is open).
    (t as any).unref?.();
    this.#hbTimer = t;
  }

  #stopHeartbeat(): void {
    if (this.#hbTimer) {
      clearTimeout(this.#hbTimer);
      this.#hbTimer = null;
    }
    this.#pingAt = -1;
  }

  // #beat is the heartbeat's timer: it pings after #heartbeat ms of silence,
  // and takes the socket for dead when nothing arrived within
  // #heartbeatTimeout ms of the ping.
  #beat(): void {
    if (!this.#open || this.#stopped || this.#heartbeat <= 0) return;
    const t = now();
    if (this.#pingAt < 0) {
      // No ping out (a frame that arrives clears it: see dial).
      const idle = t - this.#lastRx;
      if (idle < this.#heartbeat) {
        this.#armHeartbeat(Math.max(this.#heartbeat - idle, 1));
        return;
      }
      this.#pingAt = t;
      this.#grace = false;
      this.write(pingFrame);
      this.#armHeartbeat(this.#heartbeatTimeout);
      return;
    }
    const left = this.#pingAt + this.#heartbeatTimeout - t;
    if (left > 0) {
      this.#armHeartbeat(Math.max(left, 1));
      return;
    }
    if (!this.#grace) {
      // One more turn of the event loop first: when this process was busy
      // (or asleep), frames that arrived meanwhile may be waiting behind this
      // timer, and one of them would prove the socket alive.
      this.#grace = true;
      this.#armHeartbeat(1);
      return;
    }
    this.#abandon(heartbeatClose.code, heartbeatClose.reason);
    this.#host.closed(heartbeatClose.code, heartbeatClose.reason, undefined, false);
  }

  #setTimer(f: () => void, ms: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      f();
    }, ms);
  }

  // #abandon drops the current socket without waiting for its close,
  // closing it with `code` (1000 or 3000-4999, which browsers allow).
  #abandon(code = 1000, reason?: string): void {
    this.#stopHeartbeat();
    const ws = this.#ws;
    this.#ws = null;
    this.#gen++;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onopen = null;
    ws.onerror = () => {};
    try {
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(code, reason);
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
}
