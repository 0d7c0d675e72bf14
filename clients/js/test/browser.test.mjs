// The committed bundle in a real browser (headless Chromium), when one is
// installed: the page's own WebSocket, an ES module import, no `ws`.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, token } from "./helpers.mjs";

const bundle = fileURLToPath(new URL("../../../web/static/courier.js", import.meta.url));

function findBrowser() {
  for (const name of [process.env.CHROMIUM, "chromium", "chromium-browser", "google-chrome"]) {
    if (!name) continue;
    try {
      execFileSync(name, ["--version"], { stdio: "ignore", timeout: 10000 });
      return name;
    } catch {
      // not this one
    }
  }
  return null;
}

const browser = findBrowser();

test("the bundle in headless Chromium", { skip: browser ? false : "no chromium on PATH (set CHROMIUM)" }, async () => {
  const srv = await startServer();
  // The page reports what it saw with a POST to /result.
  const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { connect, CourierError } from "/courier.js";
const log = [];
try {
  const a = connect(${JSON.stringify(srv.http)}, { token: ${JSON.stringify(token("alice"))} });
  const b = connect(${JSON.stringify(srv.url)}, { tokenFn: async () => ${JSON.stringify(token("bob"))} });
  const got = new Promise((r) => b.on("chat", (d, m) => r([d, m])));
  await new Promise((r) => a.once("connect", r));
  const ack = await a.send("bob", "chat", { text: "from the browser" });
  const [d, m] = await got;
  log.push("got " + d.text + " same=" + (m.msg === ack.msg) + " seq=" + ack.seq);
  try { await a.publish("lobby", "chat", 1); } catch (e) { log.push("error " + (e instanceof CourierError) + " " + e.code); }
  const p = await b.presence(["alice"]);
  log.push("alice online=" + p.alice.online);
  a.close(); b.close();
  log.push("closed " + a.closed + " " + a.connected);
} catch (e) { log.push("FAIL " + e); }
fetch("/result", { method: "POST", body: log.join("\\n") });
</script>`;
  let onResult;
  const result = new Promise((r) => (onResult = r));
  const hs = http.createServer((req, res) => {
    if (req.url === "/result") {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        res.end();
        onResult(body);
      });
    } else if (req.url === "/courier.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(readFileSync(bundle));
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(page);
    }
  });
  await new Promise((r) => hs.listen(0, "127.0.0.1", r));
  const profile = mkdtempSync(join(tmpdir(), "courier-chromium-"));
  const ch = spawn(
    browser,
    ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", `--user-data-dir=${profile}`, `http://127.0.0.1:${hs.address().port}/`],
    { stdio: "ignore" },
  );
  let timer;
  try {
    const out = await Promise.race([result, new Promise((r) => (timer = setTimeout(() => r("TIMEOUT: no result within 20 s"), 20000)))]);
    assert.equal(out, ["got from the browser same=true seq=1", "error true forbidden", "alice online=true", "closed true false"].join("\n"));
  } finally {
    clearTimeout(timer);
    ch.kill();
    await new Promise((r) => (ch.exitCode !== null ? r() : ch.once("exit", r)));
    hs.close();
    rmSync(profile, { recursive: true, force: true });
    await srv.cleanup();
  }
});
