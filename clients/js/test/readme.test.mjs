// The complete example of README.md runs as written against `courier serve --dev`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "./helpers.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

test("README: the complete example runs", async () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const m = /<!-- tour -->\n```js\n([\s\S]*?)\n```/.exec(readme);
  assert.ok(m, "README.md has a <!-- tour --> js block");
  const dir = mkdtempSync(join(tmpdir(), "courier-readme-"));
  const srv = await startServer({ args: ["--dev"] });
  try {
    // As if the package were installed next to the script.
    mkdirSync(join(dir, "node_modules", "@courier-im"), { recursive: true });
    symlinkSync(root, join(dir, "node_modules", "@courier-im", "client"), "dir");
    writeFileSync(join(dir, "tour.mjs"), m[1]);
    const out = await new Promise((resolve, reject) => {
      execFile(process.execPath, ["tour.mjs"], { cwd: dir, timeout: 15000, env: { ...process.env, COURIER_URL: srv.http } }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    assert.match(out, /bob got "pizza on friday\?"/);
    assert.match(out, /search found 1/);
    assert.match(out, /publish after leave: forbidden/);
    assert.match(out, /done\n$/);
  } finally {
    await srv.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
