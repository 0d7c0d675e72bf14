// The Node (and default) entry point: like the browser one, but falls back
// to the `ws` package when there is no global WebSocket (Node 20).

import { Client, connectWith, type ConnectOptions } from "./client.js";

export * from "./client.js";

/** Returns the global WebSocket, or the `ws` package's when there is none (Node before 22). */
async function nodeWebSocket(): Promise<any> {
  const g = (globalThis as any).WebSocket;
  if (g) return g;
  const m: any = await import("ws");
  return m.default ?? m.WebSocket;
}

/**
 * Connects to the courier server at `url` (`ws://host:port`, `wss://…`,
 * `http(s)://…`; `/ws` is appended when the URL has no path) and returns the
 * {@link Client} at once; it connects in the background, and reconnects by
 * itself until {@link Client.close}. Listen for `connect` to know when it is
 * welcomed; requests made before wait for the connection (volatile messages
 * reject).
 *
 * ```ts
 * const c = connect("ws://127.0.0.1:9000", { token });
 * c.on("chat", (data, m) => console.log(m.from, data));
 * await c.send("bob", "chat", { text: "hi" });
 * ```
 */
export function connect(url: string, opts: ConnectOptions = {}): Client {
  return connectWith(url, opts, { resolveWebSocket: nodeWebSocket, base: (globalThis as any).location?.href });
}
