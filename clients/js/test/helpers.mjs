// Test fixtures: a real courier server process, HS256 tokens, waiting.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SECRET = "test-secret";
export const API_KEY = "test-api-key";

/** An HS256 JWT for user, expiring in ttl seconds. */
export function token(user, ttl = 3600, extra = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: user, exp: Math.floor(Date.now() / 1000) + ttl, ...extra });
  return body + "." + createHmac("sha256", SECRET).update(body).digest("base64url");
}

/**
 * Starts `courier serve` (COURIER_BIN) on a free loopback port, or on addr,
 * with its own data directory (or dataDir). Returns {url, addr, dataDir,
 * stop(), kill(), log()}; stop sends SIGTERM and waits for the exit.
 */
export async function startServer({ addr = "127.0.0.1:0", dataDir, args = [] } = {}) {
  const bin = process.env.COURIER_BIN;
  if (!bin) throw new Error("COURIER_BIN is not set: run the tests through `go test ./clients/js/`");
  const ownDir = !dataDir;
  dataDir ??= mkdtempSync(join(tmpdir(), "courier-js-"));
  const p = spawn(bin, ["serve", "--addr", addr, "--data", dataDir, "--jwt-secret", SECRET, "--api-key", API_KEY, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const exited = new Promise((resolve) => p.on("exit", (code, sig) => resolve({ code, sig })));
  const listening = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("courier serve did not listen within 15 s:\n" + log)), 15000);
    p.stderr.setEncoding("utf8");
    p.stderr.on("data", (s) => {
      log += s;
      const m = /listening on ([^\s"]+)/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    exited.then(({ code, sig }) => {
      clearTimeout(t);
      reject(new Error(`courier serve exited (${code ?? sig}):\n${log}`));
    });
  });
  const srv = {
    addr: listening,
    url: "ws://" + listening,
    http: "http://" + listening,
    dataDir,
    log: () => log,
    /** SIGTERM, then the exit; a server still running 10 s later is killed and the call throws. */
    async stop() {
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
      let timer;
      const late = new Promise((r) => (timer = setTimeout(() => r("late"), 10000)));
      const res = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (res === "late") {
        p.kill("SIGKILL");
        await exited;
        throw new Error("courier serve did not exit within 10 s of SIGTERM:\n" + log);
      }
      return res;
    },
    async cleanup() {
      await srv.stop();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return srv;
}

/** Calls the server API. */
export async function api(srv, method, path, body) {
  const r = await fetch(srv.http + path, {
    method,
    headers: { Authorization: "Bearer " + API_KEY, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Resolves with the arguments of the next event `name` of client c, or rejects after ms. */
export function next(c, name, ms = 5000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const h = (...args) => {
      if (!pred(...args)) return;
      clearTimeout(t);
      c.off(name, h);
      resolve(args.length > 1 ? args : args[0]);
    };
    const t = setTimeout(() => {
      c.off(name, h);
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    c.on(name, h);
  });
}

/** Polls f until it returns a truthy value, or throws after ms. */
export async function until(f, ms = 5000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Collects the messages a client receives. */
export function collect(c) {
  const got = [];
  c.on("message", (m) => got.push(m));
  return got;
}
