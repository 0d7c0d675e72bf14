// Token expiry while connected: the server closes with 4003 and the client
// reconnects with a fresh token from tokenFn.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../dist/index.js";
import { startServer, token, next, until } from "./helpers.mjs";

test("tokenFn refreshes the token after close 4003 (token expired)", async () => {
  // exp is checked at each ping tick (docs/protocol.md, Keepalive).
  const srv = await startServer({ args: ["--ping-interval", "300ms"] });
  const issued = [];
  const a = connect(srv.url, {
    tokenFn: async () => {
      issued.push(Date.now());
      // The first token expires within 1-2 s; the next ones last.
      return token("alice", issued.length === 1 ? 2 : 3600);
    },
    minBackoff: 50,
  });
  const b = connect(srv.url, { token: token("bob") });
  try {
    await Promise.all([next(a, "connect"), next(b, "connect")]);
    assert.equal(issued.length, 1, "tokenFn is called before the first connection");
    const disc = await next(a, "disconnect", 6000);
    assert.equal(disc.code, 4003);
    await next(a, "connect", 5000);
    assert.equal(issued.length, 2, "tokenFn is called again after 4003");

    // And it works: a message to alice arrives.
    const got = next(a, "chat");
    await b.send("alice", "chat", "after refresh");
    assert.equal((await got)[0], "after refresh");
    await until(() => a.connected, 1000);
  } finally {
    a.close();
    b.close();
    await srv.cleanup();
  }
});
