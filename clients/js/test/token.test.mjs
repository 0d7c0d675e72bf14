// Token expiry while connected: the server closes with 4003 at its next ping
// tick (docs/protocol.md, Keepalive); the client reconnects with a fresh
// token from tokenFn, or stops when it has none.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../dist/index.js";
import { startServer, token, next, until } from "./helpers.mjs";

let srv;
before(async () => {
  srv = await startServer({ args: ["--ping-interval", "300ms"] });
});
after(async () => {
  await srv?.cleanup();
});

test("tokenFn refreshes the token after close 4003 (token expired)", async () => {
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
  }
});

test("without tokenFn, 4003 stops the client with unauthorized", async () => {
  const a = connect(srv.url, { token: token("carol", 1), minBackoff: 50 });
  try {
    await next(a, "connect");
    const disc = next(a, "disconnect", 6000);
    const err = next(a, "error", 6000);
    assert.equal((await disc).code, 4003);
    const e = await err;
    assert.equal(e.code, "unauthorized");
    assert.equal(e.closeCode, 4003);
    assert.equal(a.closed, true);
  } finally {
    a.close();
  }
});
