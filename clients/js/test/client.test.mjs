// The client against a real courier server: every request and event.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, CourierError } from "../dist/index.js";
import { startServer, token, next, until, sleep, collect, api } from "./helpers.mjs";

let srv;
const clients = [];

before(async () => {
  srv = await startServer();
});

after(async () => {
  for (const c of clients) c.close();
  await srv?.cleanup();
});

// open connects user (a fresh name per test keeps inboxes apart) and waits for the welcome.
async function open(user, opts = {}) {
  const c = connect(srv.url, { token: token(user), minBackoff: 50, maxBackoff: 200, ...opts });
  clients.push(c);
  await next(c, "connect");
  return c;
}

let n = 0;
const uniq = (name) => `${name}${++n}`;

test("send, ack, receive between two users, and the delivered receipt", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  assert.equal(a.user, alice);
  assert.equal(a.connected, true);
  assert.ok(a.connId.length > 0);

  const chat = next(b, "chat");
  const all = next(b, "message");
  const receipt = next(a, "receipt");
  const ack = await a.send(bob, "chat", { text: "hi" });
  assert.match(ack.msg, /^[0-9a-z]{26}$/);
  assert.equal(ack.seq, 1);
  assert.equal(a.lastSeq, 1);

  const [data, m] = await chat;
  assert.deepEqual(data, { text: "hi" });
  assert.equal(m.msg, ack.msg);
  assert.equal(m.from, alice);
  assert.equal(m.to, bob);
  assert.equal(m.event, "chat");
  assert.equal(m.seq, 1);
  assert.match(m.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal((await all).msg, ack.msg);
  assert.equal(b.lastSeq, 1);
  assert.deepEqual(await receipt, { status: "delivered", by: bob, msg: ack.msg });

  // The default event is "message": only the message handlers get it.
  const named = [];
  b.on("message", (m) => named.push(["message", m.event]));
  const plain = next(b, "message");
  await a.send(bob, undefined, 42);
  assert.equal((await plain).event, "message");
  assert.equal((await plain).data, 42);
  await sleep(50);
  assert.deepEqual(named, [["message", "message"]]);
});

test("multi-device sync: the sender's other connections get the message, the sending one the ack", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a1 = await open(alice);
  const a2 = await open(alice);
  const b = await open(bob);
  const got1 = collect(a1);
  const sync = next(a2, "message");
  const recv = next(b, "message");
  const ack = await a1.send(bob, "chat", "from device 1");
  const m2 = await sync;
  assert.equal(m2.msg, ack.msg);
  assert.equal(m2.from, alice);
  assert.equal(m2.to, bob);
  assert.equal(m2.seq, ack.seq);
  assert.equal((await recv).msg, ack.msg);
  assert.equal(a2.lastSeq, ack.seq);
  await sleep(100);
  assert.deepEqual(got1, [], "the sending connection gets no copy");
});

test("volatile: live only, no seq, not stored; rejects while disconnected", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  const typing = next(b, "typing");
  const ack = await a.send(bob, "typing", { on: true }, { volatile: true });
  assert.equal(ack.seq, undefined);
  const [data, m] = await typing;
  assert.deepEqual(data, { on: true });
  assert.equal(m.seq, undefined);
  assert.equal(m.msg, ack.msg);
  assert.deepEqual(await b.history({ with: alice }), []);

  // To one connection.
  const direct = next(b, "signal");
  const ack2 = await a.send("conn:" + b.connId, "signal", "sdp");
  assert.equal(ack2.seq, undefined);
  assert.equal((await direct)[1].to, "conn:" + b.connId);

  // Not connected yet: a volatile send rejects at once.
  const c = connect(srv.url, { token: token(alice) });
  clients.push(c);
  await assert.rejects(c.send(bob, "typing", null, { volatile: true }), (e) => e instanceof CourierError && e.code === "disconnected");
  await assert.rejects(c.ping(), { code: "disconnected" });
  // A durable one waits for the connection.
  const ack3 = await c.send(bob, "chat", "queued");
  assert.equal(typeof ack3.seq, "number");
  assert.ok((await c.ping()) >= 0);
  c.close();
});

test("idempotency key: a repeated key is stored and delivered once", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  const got = collect(b);
  const k = "key-" + alice;
  const ack1 = await a.send(bob, "chat", "once", { key: k });
  const ack2 = await a.send(bob, "chat", "once", { key: k });
  assert.deepEqual(ack2, ack1);
  await until(() => got.length >= 1);
  await sleep(150);
  assert.equal(got.length, 1);
  assert.equal((await b.history({ with: alice })).length, 1);
});

test("rooms: join, publish, room history, leave", async () => {
  const [alice, bob, room] = [uniq("alice"), uniq("bob"), uniq("room")];
  const a = await open(alice);
  const b = await open(bob);
  await assert.rejects(a.publish(room, "chat", "not joined"), { name: "CourierError", code: "forbidden" });
  await a.join(room);
  await b.join(room);
  assert.deepEqual(a.rooms, [room]);
  const aGot = collect(a);
  const recv = next(b, "chat");
  const ack = await a.publish(room, "chat", { t: "hello room" });
  assert.equal(ack.seq, 1, "the room seq");
  const [data, m] = await recv;
  assert.deepEqual(data, { t: "hello room" });
  assert.equal(m.room, room);
  assert.equal(m.to, undefined);
  assert.equal(m.seq, 1);
  assert.equal(a.lastSeq, 0, "a room ack is no inbox seq");
  assert.equal(b.lastSeq, 0, "a room message is no inbox seq");

  const v = next(b, "typing");
  const vack = await a.publish(room, "typing", null, { volatile: true });
  assert.equal(vack.seq, undefined);
  assert.equal((await v)[1].seq, undefined);

  await b.publish(room, "chat", "two");
  const h = await a.history({ room });
  assert.deepEqual(h.map((m) => m.data), ["two", { t: "hello room" }]);
  assert.deepEqual(h.map((m) => m.seq), [2, 1]);
  await until(() => aGot.length === 1, 2000, "a gets b's publish");

  await b.leave(room);
  assert.deepEqual(b.rooms, []);
  const bGot = collect(b);
  await a.publish(room, "chat", "after leave");
  await sleep(150);
  assert.deepEqual(bGot, []);
});

test("history: a conversation, newest first, paged with before", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  for (let i = 1; i <= 5; i++) {
    await a.send(bob, "chat", i);
    await b.send(alice, "chat", -i);
  }
  const page1 = await a.history({ with: bob, limit: 4 });
  assert.deepEqual(page1.map((m) => m.data), [-5, 5, -4, 4]);
  assert.deepEqual(page1.map((m) => m.seq), [10, 9, 8, 7]);
  const page2 = await a.history({ with: bob, limit: 4, before: page1.at(-1).seq });
  assert.deepEqual(page2.map((m) => m.data), [-3, 3, -2, 2]);
  for (const m of page2) assert.equal(typeof m.ts, "string");
  await assert.rejects(a.history({}), { code: "bad_request" });
});

test("search: words in data, results may lag up to a second", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  await a.send(bob, "chat", { text: "pizza on friday?" });
  await a.send(bob, "chat", { text: "salad on monday" });
  const res = await until(async () => {
    const r = await a.search("pizza");
    return r.length > 0 && r;
  }, 3000, "search results");
  assert.equal(res.length, 1);
  assert.deepEqual(res[0].data, { text: "pizza on friday?" });
  assert.equal((await a.search("on", { limit: 1 })).length, 1);
  await assert.rejects(a.search(""), { code: "bad_request" });
});

test("presence, and watch pushes", async () => {
  const [alice, bob, carol] = [uniq("alice"), uniq("bob"), uniq("carol")];
  const a = await open(alice);
  const b = await open(bob);
  const p = await a.presence([bob, carol]);
  assert.deepEqual(p[bob], { online: true, lastSeen: null });
  assert.deepEqual(p[carol], { online: false, lastSeen: null });

  const pushes = [];
  a.on("presence", (x) => pushes.push(x));
  await a.watch([carol]);
  await until(() => pushes.length === 1, 2000, "the current state after watch");
  assert.deepEqual(pushes[0], { user: carol, online: false, lastSeen: null });

  const c = await open(carol);
  await until(() => pushes.length === 2, 3000, "online push");
  assert.equal(pushes[1].user, carol);
  assert.equal(pushes[1].online, true);
  c.close();
  await until(() => pushes.length === 3, 3000, "offline push");
  assert.equal(pushes[2].online, false);
  assert.match(pushes[2].lastSeen, /^\d{4}-/);

  await a.unwatch([carol]);
  const c2 = await open(carol);
  await sleep(200);
  assert.equal(pushes.length, 3, "no push after unwatch");
  c2.close();
  void b;
});

test("read receipts, conversations and unread counts", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  const receipts = [];
  a.on("receipt", (r) => receipts.push(r));
  const acks = [];
  for (let i = 0; i < 3; i++) acks.push(await a.send(bob, "chat", "m" + i));
  await until(() => receipts.filter((r) => r.status === "delivered").length === 3, 3000, "delivered receipts");

  let conv = await b.conversations();
  assert.equal(conv.length, 1);
  assert.equal(conv[0].with, alice);
  assert.equal(conv[0].unread, 3);
  assert.equal(conv[0].last.msg, acks[2].msg);
  assert.equal(conv[0].last.from, alice);

  // bob's seqs are 1..3; reading up to 2 names the second message.
  const read = next(a, "receipt", 3000, (r) => r.status === "read");
  await b.read(alice, 2);
  assert.deepEqual(await read, { status: "read", by: bob, msg: acks[1].msg });
  conv = await b.conversations({ limit: 10 });
  assert.equal(conv[0].unread, 1);
  assert.equal((await a.conversations())[0].with, bob);
});

test("status in history and conversations: sent, then delivered, then read, as a new device sees it", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const ack = await a.send(bob, "chat", "are you there?");

  // bob has never connected: stored, delivered nowhere.
  let [m] = await a.history({ with: bob });
  assert.equal(m.msg, ack.msg);
  assert.equal(m.status, "sent");
  let [conv] = await a.conversations();
  assert.equal(conv.last.msg, ack.msg);
  assert.equal(conv.last.status, "sent");

  // bob connects and gets it (a replay from 0): delivered. The mark is
  // written asynchronously, so poll.
  const delivered = next(a, "receipt", 5000, (r) => r.status === "delivered");
  const b = connect(srv.url, { token: token(bob), since: 0, minBackoff: 50, maxBackoff: 200 });
  clients.push(b);
  const got = collect(b);
  await next(b, "connect");
  await until(() => got.some((x) => x.msg === ack.msg), 5000, "bob's replay");
  assert.equal(got.find((x) => x.msg === ack.msg).status, undefined, "a replayed message has no status");
  await delivered;
  await until(async () => (await a.history({ with: bob }))[0].status === "delivered", 3000, "status delivered");

  // bob reads it: read, for alice's client and for a new device of hers
  // that never saw a receipt.
  const read = next(a, "receipt", 5000, (r) => r.status === "read");
  await b.read(alice, got.find((x) => x.msg === ack.msg).seq);
  assert.deepEqual(await read, { status: "read", by: bob, msg: ack.msg });
  await until(async () => (await a.history({ with: bob }))[0].status === "read", 3000, "status read");
  [conv] = await a.conversations();
  assert.equal(conv.last.msg, ack.msg);
  assert.equal(conv.last.status, "read");
  const a2 = await open(alice);
  [m] = await a2.history({ with: bob });
  assert.equal(m.status, "read");
  assert.equal((await a2.conversations())[0].last.status, "read");

  // Received messages carry none; the sender's history has one.
  const reply = await b.send(alice, "chat", "yes");
  const hist = await a.history({ with: bob });
  assert.deepEqual(hist.map((x) => [x.msg, x.status]), [[reply.msg, undefined], [ack.msg, "read"]]);
  assert.equal((await a.conversations())[0].last.status, undefined);
  assert.ok(["sent", "delivered"].includes((await b.history({ with: alice }))[0].status));
});

test("error frames reject with CourierError and the server's code", async () => {
  const a = await open(uniq("alice"));
  await assert.rejects(a.send("conn:06h0hdp190fjmr7b207m0nenkw", "x", null), (e) => {
    assert.ok(e instanceof CourierError);
    assert.ok(e instanceof Error);
    assert.equal(e.code, "not_found");
    return true;
  });
  await assert.rejects(a.send("bad\u0001user", "x", null), { code: "bad_request" });
  await assert.rejects(a.join("bad\u0001room"), { code: "bad_request" });
  await assert.rejects(a.send("bob", "x", null, { key: "k".repeat(300) }), { code: "bad_request" });
  // The connection stays open.
  assert.equal(a.connected, true);
  assert.ok((await a.ping()) >= 0);
});

test("since: 0 replays the inbox; lastSeq resumes a later client", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const b = await open(bob);
  for (let i = 1; i <= 3; i++) await b.send(alice, "chat", i);
  b.close();

  const a = connect(srv.url, { token: token(alice), since: 0 });
  clients.push(a);
  const got = collect(a);
  await until(() => got.length === 3, 3000, "the replay");
  assert.deepEqual(got.map((m) => m.seq), [1, 2, 3]);
  assert.equal(a.lastSeq, 3);
  a.close();
  assert.equal(a.closed, true);
  await assert.rejects(a.send(bob, "chat", 1), { code: "closed" });

  // Without since: no replay; lastSeq is learned from the server.
  const a2 = await open(alice);
  const got2 = collect(a2);
  await until(() => a2.lastSeq === 3, 2000, "the inbox head");
  await sleep(100);
  assert.deepEqual(got2, []);
  a2.close();

  const a3 = connect(srv.url, { token: token(alice), since: 2 });
  clients.push(a3);
  const got3 = collect(a3);
  await until(() => got3.length === 1, 3000, "the replay from 2");
  assert.equal(got3[0].data, 3);
});

test("a since beyond the inbox head (a reset store) does not swallow new messages", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = connect(srv.url, { token: token(alice), since: 1000 });
  clients.push(a);
  await next(a, "connect");
  await until(() => a.lastSeq === 0, 2000, "lastSeq back at the real head");
  const b = await open(bob);
  const got = next(a, "chat");
  await b.send(alice, "chat", "after the reset");
  const [data, m] = await got;
  assert.equal(data, "after the reset");
  assert.equal(m.seq, 1);
  assert.equal(a.lastSeq, 1);
});

test("server API disconnect (4001) stops the client, as the Go client does", async () => {
  const alice = uniq("alice");
  const a = await open(alice);
  const pending = a.history({ with: "nobody" }); // settles before the disconnect
  await pending;
  const disc = next(a, "disconnect");
  const err = next(a, "error");
  await api(srv, "POST", "/api/disconnect", { user: alice });
  assert.equal((await disc).code, 4001);
  const e = await err;
  assert.equal(e.code, "disconnected_by_server");
  assert.equal(a.closed, true);
  assert.equal(a.connected, false);
  await assert.rejects(a.send("bob", "x", 1), { code: "closed" });
});

test("a refused token without tokenFn stops the client with unauthorized", async () => {
  const a = connect(srv.url, { token: "not-a-token", minBackoff: 50 });
  clients.push(a);
  const connErr = next(a, "connect_error");
  const err = next(a, "error");
  const pending = a.send("bob", "x", 1);
  assert.equal((await connErr).code, "unauthorized");
  assert.equal((await err).code, "unauthorized");
  await assert.rejects(pending, { code: "unauthorized" });
  assert.equal(a.closed, true);
});

test("tokenFn is asked again when the server refuses the token before the welcome", async () => {
  const alice = uniq("alice");
  let calls = 0;
  const a = connect(srv.url, {
    tokenFn: async () => (++calls === 1 ? token(alice, -60) : token(alice)),
    minBackoff: 20,
  });
  clients.push(a);
  const e = await next(a, "connect_error");
  assert.equal(e.code, "unauthorized");
  const w = await next(a, "connect");
  assert.equal(w.user, alice);
  assert.equal(calls, 2);
});

test("off removes handlers; handlers of other events are left", async () => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const a = await open(alice);
  const b = await open(bob);
  const seen = [];
  const h = (d) => seen.push(d);
  b.on("chat", h);
  b.once("chat", (d) => seen.push("once:" + d));
  await a.send(bob, "chat", 1);
  await until(() => seen.length === 2);
  b.off("chat", h);
  const m = next(b, "message");
  await a.send(bob, "chat", 2);
  await m;
  await sleep(50);
  assert.deepEqual(seen, [1, "once:1"]);
});

test("URLs: http(s) and a missing path are accepted", async () => {
  const a = connect(srv.http, { token: token(uniq("alice")) });
  clients.push(a);
  await next(a, "connect");
  const b = connect(srv.url + "/ws", { token: token(uniq("alice")) });
  clients.push(b);
  await next(b, "connect");
  assert.throws(() => connect("ftp://x", { token: "t" }), { code: "bad_request" });
  assert.throws(() => connect(srv.url, {}), { code: "bad_request" });
});
