// The heartbeat: a connection that goes silent (the network drops without
// closing anything) is noticed through a ping that gets no answer; the
// client reconnects and resumes with no loss and no duplicate. With the
// connection alive, the heartbeat never reconnects.

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import WebSocket from "ws";
import { connect } from "../dist/index.js";
import { startServer, token, next, until, sleep, collect, api } from "./helpers.mjs";

/**
 * A TCP proxy on a free loopback port to `target` ("host:port"). freeze()
 * makes every connection open at that moment a black hole: nothing is
 * forwarded either way any more, and nothing is closed (as when a NAT forgets
 * a flow or a laptop sleeps). Connections made later are forwarded normally.
 */
async function startProxy(target) {
  const i = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  const pairs = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(port, host);
    const pair = { down, up, frozen: false };
    pairs.add(pair);
    const link = (from, to) => {
      from.on("data", (b) => {
        if (!pair.frozen) to.write(b);
      });
      from.on("end", () => {
        if (!pair.frozen) to.end();
      });
      from.on("close", () => {
        if (!pair.frozen) to.destroy();
        pairs.delete(pair);
      });
      from.on("error", () => {});
    };
    link(down, up);
    link(up, down);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    addr: `127.0.0.1:${server.address().port}`,
    /** Freezes the connections open now; returns how many. */
    freeze() {
      for (const p of pairs) p.frozen = true;
      return pairs.size;
    },
    close() {
      for (const p of pairs) {
        p.down.destroy();
        p.up.destroy();
      }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// The `ws` class, counting the heartbeat pings its instances write.
function pingCounter() {
  const counter = { pings: 0, sockets: 0 };
  counter.WebSocket = class extends WebSocket {
    constructor(...args) {
      super(...args);
      counter.sockets++;
    }
    send(data, ...rest) {
      if (data === '{"type":"ping"}') counter.pings++;
      return super.send(data, ...rest);
    }
  };
  return counter;
}

test("heartbeat: a frozen connection is noticed, the client reconnects and resumes exactly once", async (t) => {
  const srv = await startServer();
  const proxy = await startProxy(srv.addr);
  const b = connect(srv.url, { token: token("bob") });
  const a = connect("ws://" + proxy.addr, {
    token: token("alice"),
    heartbeat: 300,
    heartbeatTimeout: 300,
    minBackoff: 50,
    maxBackoff: 200,
  });
  try {
    await Promise.all([next(a, "connect"), next(b, "connect")]);
    const aGot = collect(a);
    const bGot = collect(b);
    const disc = [];
    a.on("disconnect", (d) => disc.push(d));
    const conns = [];
    a.on("connect", (w) => conns.push(w));
    const firstConn = a.connId;

    await api(srv, "POST", "/api/send", { to: "alice", event: "chat", data: "before" });
    await until(() => aGot.length === 1, 3000, "alice gets the first message");

    assert.equal(proxy.freeze(), 1, "alice's connection is frozen");
    const t0 = Date.now();
    const discP = next(a, "disconnect", 5000);
    // While frozen: a message to alice (stored, its live delivery lost in
    // the proxy), and a durable send of hers (written into the void).
    await api(srv, "POST", "/api/send", { to: "alice", event: "chat", data: "while frozen" });
    const sent = a.send("bob", "chat", "sent while frozen");

    const d = await discP;
    const noticed = Date.now() - t0;
    assert.deepEqual(d, { code: 4000, reason: "heartbeat timeout" });
    assert.ok(noticed < 1200, `noticed after ${noticed} ms`);
    t.diagnostic(`noticed after ${noticed} ms`);

    await until(() => conns.length === 1, 3000, "alice reconnects");
    assert.notEqual(a.connId, firstConn, "a new connection");
    const ack = await sent;
    await until(() => aGot.some((m) => m.data === "while frozen"), 3000, "alice gets the message sent while frozen");
    await until(() => bGot.some((m) => m.data === "sent while frozen"), 3000, "bob gets alice's send");
    await sleep(500); // room for a duplicate to show up

    assert.deepEqual(aGot.map((m) => [m.seq, m.data]), [[1, "before"], [2, "while frozen"]], "each message once, in order");
    assert.equal(bGot.filter((m) => m.data === "sent while frozen").length, 1, "bob got it once");
    assert.equal(ack.seq, 3);
    assert.equal(a.lastSeq, 3);
    const hist = await b.history({ with: "alice", limit: 50 });
    assert.equal(hist.filter((m) => m.data === "sent while frozen").length, 1, "stored once");
    assert.equal(disc.length, 1, "one disconnect");
    assert.equal(conns.length, 1, "one reconnect");
    assert.ok(a.connected);
  } finally {
    a.close();
    b.close();
    await proxy.close();
    await srv.cleanup();
  }
});

test("heartbeat: no spurious reconnect while the connection lives, busy or idle", async () => {
  const srv = await startServer();
  const proxy = await startProxy(srv.addr);
  const counter = pingCounter();
  const a = connect("ws://" + proxy.addr, {
    token: token("alice"),
    heartbeat: 300,
    heartbeatTimeout: 300,
    WebSocket: counter.WebSocket,
  });
  try {
    await next(a, "connect");
    const got = collect(a);
    const disc = [];
    a.on("disconnect", (d) => disc.push(d));
    a.on("connect_error", (e) => disc.push(e));
    const conn = a.connId;

    // Busy: a message every 100 ms for 1.5 s; no ping is needed.
    let n = 0;
    for (const end = Date.now() + 1500; Date.now() < end; n++) {
      await api(srv, "POST", "/api/send", { to: "alice", event: "tick", data: n });
      await sleep(100);
    }
    await until(() => got.length === n, 3000, `alice gets all ${n} messages`);
    const busyPings = counter.pings;
    assert.ok(busyPings <= 1, `${busyPings} pings while messages flowed`);

    // Idle for 2 s: pings every ~300 ms, each answered.
    await sleep(2000);
    assert.ok(counter.pings - busyPings >= 3, `${counter.pings - busyPings} pings while idle`);

    // Then busy again, mixed with own requests.
    for (let i = 0; i < 5; i++) {
      await a.send("bob", "chat", "hi" + i);
      await sleep(150);
    }
    assert.deepEqual(disc, [], "no disconnect");
    assert.equal(counter.sockets, 1, "one socket");
    assert.equal(a.connId, conn);
    assert.deepEqual(got.map((m) => m.data), [...Array(n).keys()]);
  } finally {
    a.close();
    await proxy.close();
    await srv.cleanup();
  }
});

test("heartbeat: 0 turns it off", async () => {
  const srv = await startServer();
  const off = pingCounter();
  const on = pingCounter();
  const a = connect(srv.url, { token: token("alice"), heartbeat: 0, WebSocket: off.WebSocket });
  const b = connect(srv.url, { token: token("bob"), heartbeat: 100, WebSocket: on.WebSocket });
  try {
    await Promise.all([next(a, "connect"), next(b, "connect")]);
    await sleep(700);
    assert.equal(off.pings, 0, "heartbeat 0: no ping");
    assert.ok(on.pings >= 3, `heartbeat 100: ${on.pings} pings`);
    assert.ok(a.connected && b.connected);
  } finally {
    a.close();
    b.close();
    await srv.cleanup();
  }
});
