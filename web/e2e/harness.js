// Shared pieces of the browser tests: a courier server per test, Debian's
// chromium through playwright-core, users as browser contexts, screenshots.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const BIN = process.env.COURIER_BIN;
if (!BIN) throw new Error("COURIER_BIN must name a courier binary (go build -o /tmp/courier ./cmd/courier)");

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// Screenshots go to one folder per run; the path is printed so a person can look.
export const SHOTS = process.env.COURIER_E2E_SHOTS ||
  path.join(os.tmpdir(), `courier-e2e-${new Date().toISOString().replace(/[:.]/g, "-")}`);
mkdirSync(SHOTS, { recursive: true });
let announced = false;
export async function shot(page, name) {
  if (!announced) { console.log(`# screenshots: ${SHOTS}`); announced = true; }
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

export const API_KEY = "e2e-api-key";

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * startServer runs `courier serve --dev` on a free loopback port with a fresh
 * data directory, and resolves once it logs `listening on`. restart() stops
 * it with SIGTERM and starts it again on the same port and data directory.
 */
export async function startServer() {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "courier-e2e-data-"));
  const srv = {
    port, dataDir, url: `http://127.0.0.1:${port}`, proc: null, log: "",
    async start() {
      const proc = spawn(BIN, ["serve", "--dev", "--addr", `127.0.0.1:${port}`, "--data", dataDir, "--api-key", API_KEY],
        { stdio: ["ignore", "pipe", "pipe"] });
      srv.proc = proc;
      const from = srv.log.length;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`courier did not start in 15 s:\n${srv.log}`)), 15000);
        const onData = (b) => {
          srv.log += b;
          if (/listening on \S+/.test(srv.log.slice(from))) { clearTimeout(timer); resolve(); }
        };
        proc.stdout.on("data", onData);
        proc.stderr.on("data", onData);
        proc.on("exit", (code, sig) => { clearTimeout(timer); reject(new Error(`courier exited (${code ?? sig}):\n${srv.log}`)); });
      });
    },
    async stop() {
      const proc = srv.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", (code, sig) => resolve(code ?? sig)));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10000);
      const code = await exited;
      clearTimeout(timer);
      srv.proc = null;
      if (code !== 0) throw new Error(`courier exited with ${code} on SIGTERM:\n${srv.log}`);
    },
    async restart() {
      await srv.stop();
      srv.log += "\n--- restart ---\n";
      // The port was just released: retry briefly if it is not yet bindable.
      for (let i = 0; ; i++) {
        try { await srv.start(); return; } catch (e) {
          if (i >= 10 || !/address already in use/.test(String(e))) throw e;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    async close() {
      await srv.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
    /** api calls the server API (Authorization: Bearer API_KEY). */
    async api(method, p, body) {
      const res = await fetch(srv.url + p, {
        method, headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = await res.json();
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    },
  };
  await srv.start();
  return srv;
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// COURIER_JS names a file to serve in place of /courier.js (a client bundle
// under development); otherwise the one embedded in the server is used.
const override = process.env.COURIER_JS ? readFileSync(process.env.COURIER_JS) : null;

/**
 * user opens the demo page in a fresh browser context (its own storage, so
 * its own user) and logs in as name. It resolves once the page is connected.
 */
let shotLogin = true;
export async function user(browser, srv, name, { viewport = { width: 1100, height: 720 } } = {}) {
  const context = await browser.newContext({ viewport });
  const errors = [];
  if (override) {
    await context.route("**/courier.js", (route) =>
      route.fulfill({ status: 200, contentType: "text/javascript; charset=utf-8", body: override }));
  }
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
  // Console errors fail the test, except the browser's own network noise
  // (a server restart refuses connections for a moment, by design).
  const noise = /^WebSocket connection to .* failed|^Failed to load resource|net::ERR_CONNECTION_REFUSED/;
  page.on("console", (m) => { if (m.type() === "error" && !noise.test(m.text())) errors.push(`${name} console: ${m.text()}`); });
  await page.goto(srv.url + "/");
  if (shotLogin) { shotLogin = false; await shot(page, "00-login"); }
  await page.getByTestId("login-name").fill(name);
  await page.getByTestId("login-submit").click();
  await waitConnected(page);
  return { name, context, page, errors };
}

export async function waitConnected(page, timeout = 15000) {
  await page.locator('[data-testid="status"][data-state="connected"]').waitFor({ timeout });
}

/** openChat starts (or opens) the conversation with peer by typing the name. */
export async function openChat(u, peer) {
  await u.page.getByTestId("new-chat-input").fill(peer);
  await u.page.getByTestId("new-chat-submit").click();
  await u.page.getByTestId("chat-title").getByText(peer, { exact: true }).waitFor();
}

export async function say(u, text) {
  await u.page.getByTestId("composer-input").fill(text);
  await u.page.getByTestId("composer-send").click();
}

/** messageTexts lists the texts of the open conversation, oldest first. */
export async function messageTexts(page) {
  return page.getByTestId("message-text").allTextContents();
}

export function contact(page, name) {
  return page.locator(`[data-testid="contact"][data-user="${name}"]`);
}

/** bubble is the message element whose text is exactly text. */
export function bubble(page, text) {
  return page.getByTestId("message").filter({ has: page.getByTestId("message-text").getByText(text, { exact: true }) });
}

export async function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
