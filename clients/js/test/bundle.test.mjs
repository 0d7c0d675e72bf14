// The committed browser bundle, web/static/courier.js: up to date with the
// sources, free of `ws`, and working.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import WebSocket from "ws";
import { startServer, token, next } from "./helpers.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const committed = join(root, "..", "..", "web", "static", "courier.js");

test("web/static/courier.js is what npm run build makes of the sources", () => {
  const dir = mkdtempSync(join(tmpdir(), "courier-bundle-"));
  try {
    const out = join(dir, "courier.js");
    execFileSync(process.execPath, [join(root, "build.mjs"), "--out", out], { cwd: root, stdio: "pipe" });
    const fresh = readFileSync(out);
    const have = readFileSync(committed);
    assert.ok(fresh.equals(have), "web/static/courier.js is stale: run `npm run build` in clients/js");
    // Deterministic: a second build gives the same bytes.
    execFileSync(process.execPath, [join(root, "build.mjs"), "--out", out], { cwd: root, stdio: "pipe" });
    assert.ok(readFileSync(out).equals(fresh), "two builds differ");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bundle never pulls ws and has no import at all", () => {
  const text = readFileSync(committed, "utf8");
  assert.match(text.split("\n")[0], /^\/\/ courier client bundle, built from clients\/js\/src sha256:[0-9a-f]{64}$/);
  assert.doesNotMatch(text, /\bimport\s*\(|\bimport\s+[\w{*]|\brequire\s*\(/);
  assert.doesNotMatch(text, /["']ws["']/);
});

test("the bundle works (with ws passed as the WebSocket option)", async () => {
  const { connect, CourierError } = await import(pathToFileURL(committed).href);
  const srv = await startServer();
  const a = connect(srv.url, { token: token("alice"), WebSocket });
  const b = connect(srv.http, { token: token("bob"), WebSocket });
  try {
    await Promise.all([next(a, "connect"), next(b, "connect")]);
    const got = next(b, "chat");
    const ack = await a.send("bob", "chat", { text: "from the bundle" });
    const [data, m] = await got;
    assert.deepEqual(data, { text: "from the bundle" });
    assert.equal(m.msg, ack.msg);
    await assert.rejects(a.publish("lobby", "chat", 1), (e) => e instanceof CourierError && e.code === "forbidden");
  } finally {
    a.close();
    b.close();
    await srv.cleanup();
  }
});
