// The card's soft-core: a CPU of a given clock running wasm3, which runs firmware.wasm behind
// the mailbox FIFOs. tools/engines/ provides the firmware in-process (V8) or in a child process
// (Node's WASI, wasm3) and counts what each batch executes; this file turns that count into the
// time the soft-core is busy (docs/softcore.md has the model and its calibration).

import { WATCHDOG_TIMEOUT_NS } from "./map/registers.ts";

/**
 * The host cannot run the engine that stands in for the soft-core: its interpreter binary is
 * missing, cannot be started, or crashed. Nothing the firmware did, and nothing a card could
 * meet, so the board does not turn it into a firmware fault: the simulation stops with it.
 */
export class EngineFailure extends Error {}

/** A batch ran past the instructions the soft-core can execute before its watchdog expires. */
export class BatchOverrun extends Error {
  constructor(readonly seq: number, readonly limit: number) {
    super(`batch ${seq} did not finish within ${limit} instructions`);
  }
}

/** What one batch made the soft-core do. */
export interface BatchCost {
  /** WebAssembly instructions executed (tools/engines/meter.ts says which count). */
  instructions: number;
  /** Bytes of function bodies run for the first time: wasm3 compiles them then. */
  compiledBytes: number;
}

export interface FirmwareSession {
  /** Which engine runs it ("node", "node-wasi", "wasm3"). */
  readonly engine: string;
  /**
   * Writes one batch of events, which must end with SYNC `seq`, and resolves with every
   * command byte the firmware wrote up to and including its SYNC_ACK for `seq`.
   */
  exchange(events: Uint8Array, seq: number): Promise<Uint8Array>;
  /** What the last batch cost, when the session counts it. */
  readonly lastBatch?: BatchCost;
  /** Ends the session (closes fd 0); resolves with whatever the firmware wrote after the last batch. */
  close(): Promise<Uint8Array>;
  /**
   * The interpreter compiles, between batches, the next function of the firmware no batch has
   * run yet, so that its first call compiles nothing; returns the bytes of its body, 0 once every
   * function is compiled. Sessions that count no cost have none.
   */
  compileAhead?(): number;
}

/**
 * wasm3's work on the host, measured with callgrind (`npx iov bench --only softcore` measures it
 * again): x86-64 instructions per unit of work, interpreter work only (host memory allocation,
 * which a card build of wasm3 does not repeat, is left out).
 */
export const Wasm3Native = {
  /** Per counted WebAssembly instruction executed. */
  perInstruction: 9.8,
  /** Per byte of function body compiled (at the function's first call or ahead). */
  perCompiledByte: 264,
  /** Per byte of module loaded (parsed and set up before the first call). */
  perModuleByte: 19.5,
} as const;

/**
 * The soft-core class: a single-issue, in-order 32-bit RISC core of 5 or 6 stages with caches
 * (Nios II/f, VexRiscv in its full configuration). `riscPerNative`: its instructions per x86-64
 * instruction of the same interpreter (loads and stores are separate instructions, 64-bit values
 * take two registers). `ipc`: its instructions per cycle on an interpreter's dispatch-heavy code.
 * docs/softcore.md gives the sources.
 */
export const SoftcoreClass = {
  riscPerNative: 1.3,
  ipc: 0.7,
} as const;

/** Soft-core cycles per x86-64 instruction of wasm3's work. */
export const CYCLES_PER_NATIVE = SoftcoreClass.riscPerNative / SoftcoreClass.ipc;

export const SOFTCORE_DEFAULT_MHZ = 100;
/** The clocks `--softcore-mhz` accepts: 0 (zero-time model) or this range. */
export const SOFTCORE_MHZ_MIN = 1;
export const SOFTCORE_MHZ_MAX = 1000;
/** A batch that keeps the soft-core busy longer than this is logged and counted. */
export const BATCH_LIMIT_NS_DEFAULT = 1_000_000;
/**
 * Most events the mailbox hands the firmware in one batch (besides its TIME and SYNC); the rest
 * wait in the FIFO for the next. A batch costs about 1 300 WebAssembly instructions besides its
 * event, and an event up to about 4 000 (a handshake message: docs/softcore.md), against about
 * 5 500 in the batch limit at 100 MHz. One event a batch keeps every batch of the default,
 * handover and flash runs within it (two made 1.02 ms in the handover run, four 1.15 ms when a
 * cable came back: a DISCOVER, the beacon and an OFFER at once), at no cost in utilisation that
 * the benchmarks can see. A TLP_RX goes ahead of the others waiting (board/card.ts, nextEvents).
 */
export const BATCH_EVENTS_MAX = 1;

export class SoftcoreTiming {
  /**
   * `mhz`: the soft-core's clock; 0 is the zero-time model, where a batch's commands take effect
   * at the instant of its events (what the simulation did before the soft-core was modelled).
   */
  constructor(readonly mhz: number, readonly batchLimitNs = BATCH_LIMIT_NS_DEFAULT) {
    if (mhz !== 0 && !(mhz >= SOFTCORE_MHZ_MIN && mhz <= SOFTCORE_MHZ_MAX)) throw new RangeError(`soft-core clock ${mhz} MHz is outside 0 or ${SOFTCORE_MHZ_MIN}..${SOFTCORE_MHZ_MAX}`);
  }

  private ns(native: number): number {
    return this.mhz === 0 ? 0 : Math.ceil((native * CYCLES_PER_NATIVE * 1000) / this.mhz);
  }

  /** How long the soft-core is busy with a batch. */
  batchNs(cost: BatchCost): number {
    return this.ns(cost.instructions * Wasm3Native.perInstruction + cost.compiledBytes * Wasm3Native.perCompiledByte);
  }

  /** From reset to the firmware's first instruction: wasm3 loading a module of `moduleBytes`. */
  loadNs(moduleBytes: number): number {
    return this.ns(moduleBytes * Wasm3Native.perModuleByte);
  }

  /**
   * The most instructions one batch may execute: what the soft-core runs in a watchdog period
   * (at the default clock in the zero-time model). A batch past it can only end in a watchdog
   * reset, so it is stopped there.
   */
  get instructionLimit(): number {
    const mhz = this.mhz || SOFTCORE_DEFAULT_MHZ;
    return Math.floor((WATCHDOG_TIMEOUT_NS / 1000) * mhz / (Wasm3Native.perInstruction * CYCLES_PER_NATIVE));
  }
}
