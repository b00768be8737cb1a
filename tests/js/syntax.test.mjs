// Every module of the queue page parses (the DOM and canvas ones cannot run here: the browser tests
// in tests/web/test_e2e_queue.py drive them).
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {readdirSync} from "node:fs";
import {join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";

const ROOT = fileURLToPath(new URL("../../web/static/queue/", import.meta.url));

function modules(dir) {
  return readdirSync(dir, {withFileTypes: true}).flatMap((d) =>
    d.isDirectory() ? modules(join(dir, d.name)) : d.name.endsWith(".js") ? [join(dir, d.name)] : []);
}

test("every module of the page parses as an ES module", () => {
  const files = modules(ROOT);
  assert.ok(files.length >= 10, files.join(", "));
  for (const file of files) execFileSync(process.execPath, ["--check", file], {stdio: "pipe"});
});
