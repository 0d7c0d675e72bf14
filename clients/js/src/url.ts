// The server's address as the application writes it (ws:, wss:, http:,
// https:, or relative to the page) and the WebSocket URL dialled for it.

import { CourierError } from "./errors.js";

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
