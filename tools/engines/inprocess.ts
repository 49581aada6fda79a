// In-process engine: firmware.wasm instantiated in this V8 with a WASI layer over
// in-memory queues. fd_read hands out queued event bytes and returns 0 when none are
// left, which `_start` takes as end of input, so replay runs exactly as under wasm3.

import { readFileSync } from "node:fs";
import { concat } from "../../board/bytes.ts";
import { FirmwareFault, type EngineOptions, type FirmwareSession, type ReplayResult } from "./engine.ts";

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;

interface FirmwareExports {
  memory: WebAssembly.Memory;
  step(): number;
  _start(): void;
  /** A metered module's instruction count and limit (tools/engines/meter.ts). */
  iov_meter?: WebAssembly.Global;
  iov_meter_limit?: WebAssembly.Global;
  iov_meter_compiled?: WebAssembly.Global;
}

const modules = new Map<string, WebAssembly.Module>();

function compile(path: string): WebAssembly.Module {
  let module = modules.get(path);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(path));
    modules.set(path, module);
  }
  return module;
}

class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`firmware called proc_exit(${code})`);
  }
}

/** One instance of the firmware with its three mailbox queues. */
export class InProcessFirmware {
  private readonly exports: FirmwareExports;
  private readonly input: Uint8Array[] = [];
  private inputOffset = 0;
  private output: Uint8Array[] = [];
  private readonly decoder = new TextDecoder();
  private memory!: Uint8Array;
  private view!: DataView;
  private faulted: string | null = null;

  constructor(private readonly options: EngineOptions) {
    const wasi = {
      fd_read: (fd: number, iovs: number, count: number, nread: number) => this.fdRead(fd, iovs, count, nread),
      fd_write: (fd: number, iovs: number, count: number, nwritten: number) => this.fdWrite(fd, iovs, count, nwritten),
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
    };
    const instance = new WebAssembly.Instance(compile(options.firmware), { wasi_snapshot_preview1: wasi });
    this.exports = instance.exports as unknown as FirmwareExports;
    this.memory = new Uint8Array(this.exports.memory.buffer);
    this.view = new DataView(this.exports.memory.buffer);
  }

  private fdRead(fd: number, iovs: number, count: number, nread: number): number {
    if (fd !== 0) return ERRNO_BADF;
    let total = 0;
    for (let i = 0; i < count && this.input.length > 0; i++) {
      let ptr = this.view.getUint32(iovs + 8 * i, true);
      let room = this.view.getUint32(iovs + 8 * i + 4, true);
      while (room > 0 && this.input.length > 0) {
        const chunk = this.input[0];
        const n = Math.min(room, chunk.length - this.inputOffset);
        this.memory.set(chunk.subarray(this.inputOffset, this.inputOffset + n), ptr);
        ptr += n;
        room -= n;
        total += n;
        this.inputOffset += n;
        if (this.inputOffset === chunk.length) {
          this.input.shift();
          this.inputOffset = 0;
        }
      }
    }
    this.view.setUint32(nread, total, true);
    return ERRNO_SUCCESS;
  }

  private fdWrite(fd: number, iovs: number, count: number, nwritten: number): number {
    if (fd !== 1 && fd !== 2) return ERRNO_BADF; // a metered module's report on fd 3 is read from its global instead
    let total = 0;
    for (let i = 0; i < count; i++) {
      const ptr = this.view.getUint32(iovs + 8 * i, true);
      const len = this.view.getUint32(iovs + 8 * i + 4, true);
      const bytes = this.memory.slice(ptr, ptr + len);
      if (fd === 1) this.output.push(bytes);
      else this.options.onLog?.(this.decoder.decode(bytes));
      total += len;
    }
    this.view.setUint32(nwritten, total, true);
    return ERRNO_SUCCESS;
  }

  private call(fn: () => void): void {
    if (this.faulted) throw new FirmwareFault(this.faulted);
    try {
      fn();
    } catch (error) {
      this.faulted = error instanceof ProcExit ? error.message : `firmware trapped: ${(error as Error).message}`;
      throw new FirmwareFault(this.faulted);
    }
  }

  /** Instructions a metered module has executed so far; null for a module without a meter. */
  get instructions(): bigint | null {
    return this.exports.iov_meter ? (this.exports.iov_meter.value as bigint) : null;
  }

  /** Bytes of function bodies a metered module has entered so far: what wasm3 compiled. */
  get compiledBytes(): bigint | null {
    return this.exports.iov_meter_compiled ? (this.exports.iov_meter_compiled.value as bigint) : null;
  }

  /** The exported globals whose names start with `prefix`, with their values. */
  globals(prefix: string): [string, bigint][] {
    return Object.entries(this.exports as unknown as Record<string, unknown>)
      .filter(([name, value]) => name.startsWith(prefix) && value instanceof WebAssembly.Global)
      .map(([name, value]) => [name, BigInt((value as WebAssembly.Global).value)]);
  }

  /** The exported global `name` (a metered module's). */
  private exported(name: string): WebAssembly.Global {
    return (this.exports as unknown as Record<string, WebAssembly.Global>)[name];
  }

  getGlobal(name: string): bigint {
    return BigInt(this.exported(name).value);
  }

  setGlobal(name: string, value: bigint): void {
    this.exported(name).value = value;
  }

  /** A metered module traps once its count passes `limit`. */
  setLimit(limit: bigint): void {
    if (this.exports.iov_meter_limit) this.exports.iov_meter_limit.value = limit;
  }

  /** The module's meter has passed its limit: a trap there is a batch that would not end. */
  get overran(): boolean {
    const { iov_meter: meter, iov_meter_limit: limit } = this.exports;
    return !!meter && !!limit && (meter.value as bigint) > (limit.value as bigint);
  }

  /** Commands written since the last call, including any written before a fault. */
  takeOutput(): Uint8Array {
    const out = concat(this.output);
    this.output = [];
    return out;
  }

  /** Queues `events` and steps the firmware until it has read them all; a step that reads nothing is a fault (it would never end). */
  feed(events: Uint8Array): Uint8Array {
    this.input.push(events);
    this.call(() => {
      while (this.input.length > 0) {
        const left = this.pendingBytes();
        this.exports.step();
        if (this.pendingBytes() === left) throw new Error("step() returned without reading its mailbox");
      }
    });
    return this.takeOutput();
  }

  private pendingBytes(): number {
    return this.input.reduce((n, chunk) => n + chunk.length, 0) - this.inputOffset;
  }

  /** Runs `_start` over `events` as a WASI command runner would, to end of input. */
  runToEnd(events: Uint8Array): Uint8Array {
    if (events.length > 0) this.input.push(events);
    this.call(() => this.exports._start());
    return this.takeOutput();
  }
}

export class InProcessSession implements FirmwareSession {
  readonly engine = "node" as const;
  private readonly firmware: InProcessFirmware;

  constructor(options: EngineOptions) {
    this.firmware = new InProcessFirmware(options);
  }

  async exchange(events: Uint8Array): Promise<Uint8Array> {
    return this.firmware.feed(events);
  }

  async close(): Promise<Uint8Array> {
    return this.firmware.runToEnd(new Uint8Array(0));
  }
}

export function replayInProcess(options: EngineOptions, events: Uint8Array): ReplayResult {
  let log = "";
  const firmware = new InProcessFirmware({ ...options, onLog: (text) => (log += text) });
  try {
    const commands = firmware.runToEnd(events);
    return { commands, log, exitCode: 0, instructions: firmware.instructions ?? undefined };
  } catch (error) {
    if (error instanceof FirmwareFault) return { commands: firmware.takeOutput(), log: `${log}${error.message}\n`, exitCode: 134, instructions: firmware.instructions ?? undefined };
    throw error;
  }
}
