import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { ROOT } from "./helpers.ts";

test("the firmware version in assembly/version.ts is the package version", () => {
  const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8"));
  const source = readFileSync(`${ROOT}assembly/version.ts`, "utf8");
  const part = (name: string) => /(\d+);/.exec(source.split(`FIRMWARE_${name} = `)[1])![1];
  assert.equal(`${part("MAJOR")}.${part("MINOR")}.${part("PATCH")}`, version);
});

test("the host code type-checks (tsc --noEmit)", () => {
  const result = spawnSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, "-p", ROOT], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});
