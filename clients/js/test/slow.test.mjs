// A slow consumer: the server closes a connection whose queue overflows
// (1008); the client reconnects and resumes, losing nothing.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { connect } from "../dist/index.js";
import { startServer, token, next, until, api } from "./helpers.mjs";

test("slow consumer (1008): reconnect and resume with no loss and no duplicate", async () => {
  const srv = await startServer({ args: ["--max-queue", "131072"] });
  // The `ws` class, keeping its instances, so the test can stop reading one.
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  const a = connect(srv.url, { token: token("alice"), WebSocket: Tracked, minBackoff: 50, maxBackoff: 200 });
  try {
    await next(a, "connect");
    await until(() => a.lastSeq === 0 && sockets.length === 1);
    const got = [];
    a.on("message", (m) => got.push(m));
    const disc = [];
    a.on("disconnect", (d) => disc.push(d));

    // Stop reading, and send more than the queue and the socket buffers hold.
    sockets[0]._socket.pause();
    const blob = "x".repeat(8000);
    const n = 400;
    for (let i = 0; i < n; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => api(srv, "POST", "/api/send", { to: "alice", event: "bulk", data: { i: i + j, blob } })),
      );
    }
    sockets[0]._socket.resume();

    await until(() => got.length >= n, 15000, `all ${n} messages (got ${got.length})`);
    assert.ok(disc.length >= 1, "the connection was closed");
    assert.ok([1008, 1006].includes(disc[0].code), `closed with ${disc[0].code}`);
    assert.ok(sockets.length >= 2, "the client reconnected");
    const seqs = got.map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i + 1), "every message once, in order");
    assert.equal(a.lastSeq, n);
  } finally {
    a.close();
    await srv.cleanup();
  }
});
