#!/usr/bin/env node
// `npm test`: the firmware unit tests (as-pect) and the host tests (node:test), then one
// closing line `N passed, N failed` over both. Exits non-zero if anything failed.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, "");

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", maxBuffer: 1 << 28 });
  process.stdout.write(result.stdout ?? "");
  return { status: result.status ?? 1, output: plain(result.stdout ?? "") };
}

let passed = 0;
let failed = 0;
let skipped = 0;

// Firmware unit tests.
const aspect = run(process.execPath, ["node_modules/@as-pect/cli/bin/asp.js", "--config", "as-pect.config.js", "--as-config", join(root, "as-pect.asconfig.json"), "--no-logo"]);
const tests = /\[Tests\]:\s*(\d+)\s*\/\s*(\d+)/.exec(aspect.output);
if (tests) {
  passed += Number(tests[1]);
  failed += Number(tests[2]) - Number(tests[1]);
}
if (!tests || aspect.status !== 0) {
  if (!tests || Number(tests[1]) === Number(tests[2])) failed += 1; // the runner itself failed
  process.stdout.write(`as-pect exited with status ${aspect.status}\n`);
}

// Host tests.
const dir = mkdtempSync(join(tmpdir(), "iov-test-"));
const tap = join(dir, "host.tap");
const files = readdirSync(join(root, "tests/host")).filter((f) => f.endsWith(".test.ts")).sort().map((f) => join("tests/host", f));
const host = run(process.execPath, [
  "--import", "tsx", "--test",
  "--test-reporter=spec", "--test-reporter-destination=stdout",
  "--test-reporter=tap", `--test-reporter-destination=${tap}`,
  ...files,
]);
const summary = readFileSync(tap, "utf8");
rmSync(dir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(summary)?.[1] ?? 0);
passed += count("pass");
failed += count("fail") + count("cancelled");
skipped += count("skipped");
if (host.status !== 0 && count("fail") + count("cancelled") === 0) failed += 1;

process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exitCode = failed > 0 ? 1 : 0;
