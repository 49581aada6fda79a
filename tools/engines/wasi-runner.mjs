#!/usr/bin/env node
// A WASI command runner on Node's own WASI: `node wasi-runner.mjs firmware.wasm`.
// fd 0, 1 and 2 are this process's stdin, stdout and stderr, as under `wasm3 firmware.wasm`;
// fd 3, when the parent opened it, takes a metered module's count (tools/engines/meter.ts), as
// wasm3 passes any descriptor through.
import { readFileSync, writeSync } from "node:fs";
import { WASI } from "node:wasi";

const [path] = process.argv.slice(2);
if (!path) {
  process.stderr.write("usage: wasi-runner.mjs FIRMWARE.wasm\n");
  process.exit(2);
}
const wasi = new WASI({ version: "preview1", args: [path], env: {}, returnOnExit: true });
const imports = wasi.getImportObject();
const wasiWrite = imports.wasi_snapshot_preview1.fd_write;
let memory;
imports.wasi_snapshot_preview1.fd_write = (fd, iovs, count, nwritten) => {
  if (fd !== 3) return wasiWrite(fd, iovs, count, nwritten);
  const view = new DataView(memory.buffer);
  let total = 0;
  try {
    for (let i = 0; i < count; i++) {
      const bytes = new Uint8Array(memory.buffer, view.getUint32(iovs + 8 * i, true), view.getUint32(iovs + 8 * i + 4, true));
      total += writeSync(3, bytes);
    }
  } catch {
    return 8; // EBADF: no fd 3 here
  }
  view.setUint32(nwritten, total, true);
  return 0;
};
const module = await WebAssembly.compile(readFileSync(path));
const instance = await WebAssembly.instantiate(module, imports);
memory = instance.exports.memory;
process.exitCode = wasi.start(instance);
