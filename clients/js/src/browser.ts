// The browser entry point: the page's own WebSocket, never the `ws`
// package. web/static/courier.js is this file bundled.

import { Client, connectWith, type ConnectOptions } from "./client.js";

export * from "./client.js";

/**
 * Connects to the courier server at `url` (`ws://host:port`, `wss://…`,
 * `http(s)://…`, or a URL relative to the page such as `"/"`; `/ws` is
 * appended when the URL has no path) and returns the {@link Client} at once;
 * it connects in the background, and reconnects by itself until
 * {@link Client.close}. Listen for `connect` to know when it is welcomed;
 * requests made before wait for the connection (volatile messages reject).
 *
 * ```js
 * import { connect } from "/courier.js";
 * const c = connect("/", { tokenFn: async () => (await (await fetch("/dev/token?user=alice")).json()).token });
 * c.on("chat", (data, m) => console.log(m.from, data));
 * await c.send("bob", "chat", { text: "hi" });
 * ```
 */
export function connect(url: string, opts: ConnectOptions = {}): Client {
  return connectWith(url, opts, { base: (globalThis as any).location?.href });
}
