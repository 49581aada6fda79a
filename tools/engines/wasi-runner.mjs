#!/usr/bin/env node
// A WASI command runner on Node's own WASI: `node wasi-runner.mjs firmware.wasm`.
// fd 0, 1 and 2 are this process's stdin, stdout and stderr, as under `wasm3 firmware.wasm`.
import { readFileSync } from "node:fs";
import { WASI } from "node:wasi";

const [path] = process.argv.slice(2);
if (!path) {
  process.stderr.write("usage: wasi-runner.mjs FIRMWARE.wasm\n");
  process.exit(2);
}
const wasi = new WASI({ version: "preview1", args: [path], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
