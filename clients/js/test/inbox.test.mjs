// Inbox bookkeeping that needs no server: where a client without `since`
// starts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Inbox } from "../dist/inbox.js";

test("a welcome's seq places a client that knows no seq yet, and only it", () => {
  const fresh = new Inbox(undefined, () => {});
  assert.equal(fresh.since, undefined);
  fresh.welcomed(undefined); // a server that names none
  assert.equal(fresh.since, undefined);
  fresh.welcomed(7);
  assert.equal(fresh.since, 7);
  fresh.welcomed(9); // a later welcome: the client knows its place already
  assert.equal(fresh.since, 7);
  const resumed = new Inbox(3, () => {});
  resumed.welcomed(10);
  assert.equal(resumed.since, 3);
});
