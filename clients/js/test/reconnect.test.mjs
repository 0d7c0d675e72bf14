// A server restart while clients are connected: they reconnect, resume with
// no loss and no duplicate, join their rooms again and send again what was
// not acknowledged, exactly once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../dist/index.js";
import { startServer, token, next, until, sleep, collect, api } from "./helpers.mjs";

test("server restart: reconnect, resume, re-join, resend exactly once", async () => {
  const srv = await startServer();
  let srv2;
  const [alice, bob, room] = ["alice", "bob", "lobby"];
  // alice waits 0.75-1.5 s before reconnecting, so that messages reach her inbox while she is away.
  const a = connect(srv.url, { token: token(alice), minBackoff: 1500, maxBackoff: 1500 });
  const b = connect(srv.url, { token: token(bob), minBackoff: 100, maxBackoff: 300 });
  try {
    await Promise.all([next(a, "connect"), next(b, "connect")]);
    await a.join(room);
    await b.join(room);
    const aGot = collect(a);
    const bGot = collect(b);
    const aDisc = [];
    a.on("disconnect", (d) => aDisc.push(d));
    const aConn = [];
    a.on("connect", (w) => aConn.push(w));

    for (let i = 0; i < 3; i++) await b.send(alice, "chat", "before" + i);
    await until(() => aGot.length === 3, 3000, "alice gets the first messages");
    assert.equal(a.lastSeq, 3);

    // Sends in flight when the server stops: some stored, some not, some acks lost.
    const inflight = [];
    for (let i = 0; i < 10; i++) inflight.push(a.send(bob, "chat", "inflight" + i));
    const pubs = [];
    for (let i = 0; i < 5; i++) pubs.push(a.publish(room, "chat", "pub" + i));
    const stopped = srv.stop();
    const { code } = await stopped;
    assert.equal(code, 0, "courier exits 0 on SIGTERM");
    await until(() => !a.connected && !b.connected, 3000, "both see the disconnect");
    assert.equal(aDisc[0].code, 1012);

    // Sends while the server is down wait for the connection.
    const down = [a.send(bob, "chat", "down0"), a.send(bob, "chat", "down1")];
    const query = a.conversations(); // waits, and is answered on the next connection
    await assert.rejects(a.send(bob, "typing", true, { volatile: true }), { code: "disconnected" });
    await sleep(50);

    srv2 = await startServer({ addr: srv.addr, dataDir: srv.dataDir });
    for (let i = 0; i < 5; i++) await api(srv2, "POST", "/api/send", { to: alice, event: "chat", data: "api" + i });

    const acks = await Promise.all([...inflight, ...down]);
    const pubAcks = await Promise.all(pubs);
    assert.ok((await query).some((x) => x.with === bob), "the query made while down is answered");
    assert.ok(aConn.length >= 1, "alice reconnected");
    const want = [...Array(10).keys()].map((i) => "inflight" + i).concat(["down0", "down1"]);

    // bob got each of alice's messages exactly once, and each is stored once.
    await until(() => want.every((w) => bGot.some((m) => m.data === w)), 5000, "bob gets every send");
    await until(() => aGot.filter((m) => String(m.data).startsWith("api")).length === 5, 5000, "alice gets the API sends");
    await sleep(300);
    for (const w of want) {
      assert.equal(bGot.filter((m) => m.data === w).length, 1, `bob got ${w} once`);
    }
    const hist = await b.history({ with: alice, limit: 500 });
    for (const w of want) {
      assert.equal(hist.filter((m) => m.data === w).length, 1, `${w} is stored once`);
    }
    assert.equal(new Set(acks.map((x) => x.msg)).size, acks.length);
    assert.equal(new Set(acks.map((x) => x.seq)).size, acks.length);

    // Durable publishes are resent with their key too: each in the room once.
    const roomHist = await a.history({ room, limit: 100 });
    for (let i = 0; i < 5; i++) {
      assert.equal(roomHist.filter((m) => m.data === "pub" + i).length, 1, `pub${i} is stored once`);
    }
    assert.deepEqual(pubAcks.map((x) => x.seq).sort((x, y) => x - y), [1, 2, 3, 4, 5]);

    // alice: no message twice, the API messages in order.
    // The sender's copies of resent sends (stored before the restart, ack
    // lost) come back in the replay; the client recognizes them by the ack.
    assert.deepEqual(aGot.filter((m) => m.from === alice).map((m) => m.data), [], "alice gets none of her own sends back");
    const ids = aGot.map((m) => m.msg);
    assert.equal(new Set(ids).size, ids.length, "no duplicate at alice");
    const apiMsgs = aGot.filter((m) => String(m.data).startsWith("api"));
    assert.deepEqual(apiMsgs.map((m) => m.data), ["api0", "api1", "api2", "api3", "api4"]);
    const seqs = aGot.filter((m) => !m.room).map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], "inbox seqs increase");
    // alice's inbox: 3 received, 12 sent, 5 from the API.
    assert.equal(a.lastSeq, 20);

    // Rooms joined again: bob's publish reaches alice.
    await until(() => b.connected && a.connected, 5000, "both connected");
    const recv = next(a, "chat", 3000, (d) => d === "room again");
    await b.publish(room, "chat", "room again");
    const [, m] = await recv;
    assert.equal(m.room, room);
  } finally {
    a.close();
    b.close();
    await srv2?.stop();
    await srv.cleanup();
  }
});
