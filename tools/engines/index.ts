// Engine selection: `node` (in-process V8, default), `node-wasi` (Node's WASI in a child
// process), `wasm3` (a wasm3 binary given by --wasm3 or IOV_WASM3).

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChildSession, replayChild } from "./child.ts";
import { InProcessSession, replayInProcess } from "./inprocess.ts";
import type { EngineKind, EngineOptions, FirmwareSession, ReplayResult } from "./engine.ts";

export { checkWasm3 } from "./child.ts";
export { MeteredSession } from "./metered.ts";
export { ENGINE_KINDS, BatchOverrun, EngineFailure, FirmwareFault, type EngineKind, type EngineOptions, type FirmwareSession, type ReplayResult } from "./engine.ts";

export const WASM3_ENV = "IOV_WASM3";

/** The wasm3 binary named by a flag, else by the IOV_WASM3 environment variable. */
export function wasm3Path(flag?: string): string | undefined {
  return flag || process.env[WASM3_ENV] || undefined;
}

export function openSession(kind: EngineKind, options: EngineOptions): FirmwareSession {
  return kind === "node" ? new InProcessSession(options) : new ChildSession(kind, options);
}

export async function replay(kind: EngineKind, options: EngineOptions, events: Uint8Array): Promise<ReplayResult> {
  return kind === "node" ? replayInProcess(options, events) : replayChild(kind, options, events);
}

/**
 * A file holding the firmware `payload` (engines run files): one per content, under the
 * system's temporary directory, written once.
 */
export function firmwareFile(payload: Uint8Array): string {
  const dir = join(tmpdir(), "iov-firmware");
  const file = join(dir, `${createHash("sha256").update(payload).digest("hex")}.wasm`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, payload);
  }
  return file;
}
