// close() leaves no handles: a Node process that closed its clients exits.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServer, token } from "./helpers.mjs";

test("a process exits by itself after close()", async () => {
  const srv = await startServer();
  try {
    const script = fileURLToPath(new URL("./fixtures/exit.mjs", import.meta.url));
    const p = spawn(process.execPath, [script], {
      env: { ...process.env, COURIER_URL: srv.url, COURIER_TOKEN: token("alice") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (s) => (out += s));
    p.stderr.on("data", (s) => (out += s));
    const t0 = Date.now();
    const res = await new Promise((resolve) => {
      const t = setTimeout(() => {
        p.kill("SIGKILL");
        resolve("timeout");
      }, 5000);
      p.on("exit", (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
    assert.equal(res, 0, `the process did not exit cleanly within 5 s (${res}):\n${out}`);
    assert.match(out, /closed/);
    assert.ok(Date.now() - t0 < 4000, `exit took ${Date.now() - t0} ms`);
  } finally {
    await srv.cleanup();
  }
});
