// A firmware engine runs firmware.wasm and moves mailbox bytes in and out of it.
// Two uses: lockstep co-simulation (exchange a batch, get its commands) and whole-trace
// replay (feed a recorded fd 0 stream, collect fd 1 and fd 2 until the firmware exits).

export { BatchOverrun, EngineFailure, type FirmwareSession } from "../../board/softcore.ts";

export type EngineKind = "node" | "node-wasi" | "wasm3";
export const ENGINE_KINDS: EngineKind[] = ["node", "node-wasi", "wasm3"];

export interface EngineOptions {
  /** Path of firmware.wasm. */
  firmware: string;
  /** Path of a wasm3 binary (engine "wasm3" only). */
  wasm3?: string;
  /** Receives the firmware's fd 2 log output as it is written. */
  onLog?: (text: string) => void;
}


export interface ReplayResult {
  commands: Uint8Array;
  log: string;
  exitCode: number;
  /** A metered module's final instruction count (its global in-process, its report on fd 3 from a child). */
  instructions?: bigint;
}

/** The firmware stopped: it trapped, exited, or its runner died. */
export class FirmwareFault extends Error {}
