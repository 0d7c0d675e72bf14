// What a client is configured with: the options of connect() and of each
// request, and the environment the entry points (Node, browser) provide.

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
  /**
   * After this many ms with nothing received on a welcomed connection, the
   * client writes a `ping` frame (default 25000; 0 turns the heartbeat off).
   * A browser cannot see the server's WebSocket pings, so this is how it
   * notices a connection that died silently (sleep, a network change).
   */
  heartbeat?: number;
  /**
   * How long after that ping, in ms, the client waits for any frame before
   * it takes the connection for dead: it closes it (`disconnect` with code
   * 4000, reason `"heartbeat timeout"`) and reconnects (default 10000).
   */
  heartbeatTimeout?: number;
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

/** What a {@link Client} needs from its environment (set by the Node and browser entry points). */
export interface Environment {
  /** Returns the WebSocket constructor to use when the options name none. */
  resolveWebSocket?: () => any | Promise<any>;
  /** The base against which a relative URL is resolved (the page's location in a browser). */
  base?: string;
}
