// Child-process engines: any WASI command runner over pipes. fd 0/1/2 of the firmware
// are the child's stdin/stdout/stderr. Lockstep: after writing a batch ending in SYNC,
// wait for the matching SYNC_ACK on stdout; the firmware blocks in fd_read meanwhile.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setImmediate as nextTurn } from "node:timers/promises";
import { MessageReader, decodeCommand } from "../../board/mailbox-codec.ts";
import { Command, HEADER_SIZE } from "../../board/map/mailbox.ts";
import { concat } from "../../board/bytes.ts";
import { FirmwareFault, type EngineKind, type EngineOptions, type FirmwareSession, type ReplayResult } from "./engine.ts";

export const WASI_RUNNER = fileURLToPath(new URL("./wasi-runner.mjs", import.meta.url));

/** How long a child may take to answer one batch before it is declared hung. */
const BATCH_TIMEOUT_MS = 20_000;
const REPLAY_TIMEOUT_MS = 300_000;

export function childCommand(kind: Exclude<EngineKind, "node">, options: EngineOptions): [string, string[]] {
  if (kind === "node-wasi") return [process.execPath, ["--no-warnings", WASI_RUNNER, options.firmware]];
  if (!options.wasm3) throw new FirmwareFault("engine wasm3 needs a wasm3 binary: pass --wasm3 PATH or set IOV_WASM3");
  if (!existsSync(options.wasm3)) throw new FirmwareFault(`wasm3 binary not found: ${options.wasm3}`);
  return [options.wasm3, [options.firmware]];
}

function spawnRunner(kind: Exclude<EngineKind, "node">, options: EngineOptions): ChildProcess {
  const [command, args] = childCommand(kind, options);
  return spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
}

export class ChildSession implements FirmwareSession {
  private readonly child: ChildProcess;
  private readonly reader = new MessageReader("commands");
  private stdout: Uint8Array[] = [];
  private delivered = 0; // stream offset of the first byte not yet handed to a caller
  private received = 0;
  private stderrTail = "";
  private exited: string | null = null;
  private waiter: { seq: number; resolve: (b: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private closed: Promise<void>;

  constructor(readonly engine: Exclude<EngineKind, "node">, options: EngineOptions) {
    this.child = spawnRunner(engine, options);
    this.child.stdin!.on("error", () => {}); // a dead child is reported through 'exit'
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-2000);
      options.onLog?.(text);
    });
    this.child.stdout!.on("data", (chunk: Buffer) => this.onStdout(new Uint8Array(chunk)));
    this.closed = new Promise((resolve) => {
      this.child.on("error", (error) => {
        this.exited = `${this.engine} runner failed to start: ${error.message}`;
        this.failWaiter();
        resolve();
      });
      this.child.on("close", (code, signal) => {
        this.exited = `${this.engine} runner exited with ${signal ?? `code ${code}`}${this.stderrTail ? `: ${this.stderrTail.trim().split("\n").pop()}` : ""}`;
        this.failWaiter();
        resolve();
      });
    });
  }

  private failWaiter(): void {
    if (!this.waiter) return;
    clearTimeout(this.waiter.timer);
    this.waiter.reject(new FirmwareFault(this.exited!));
    this.waiter = null;
  }

  private onStdout(chunk: Uint8Array): void {
    this.stdout.push(chunk);
    this.received += chunk.length;
    this.reader.push(chunk);
    for (const raw of this.reader.all()) {
      if (!this.waiter || raw.type !== Command.SyncAck || raw.framing) continue;
      const command = decodeCommand(raw);
      if (command.kind === "syncAck" && command.seq === this.waiter.seq) {
        const end = raw.offset + HEADER_SIZE + raw.length;
        const waiter = this.waiter;
        this.waiter = null;
        clearTimeout(waiter.timer);
        waiter.resolve(this.take(end));
      }
    }
  }

  /** Hands out stdout bytes from `delivered` up to stream offset `end`. */
  private take(end: number): Uint8Array {
    const all = concat(this.stdout);
    const start = this.received - all.length;
    const out = all.slice(this.delivered - start, end - start);
    this.stdout = [all.subarray(end - start)];
    this.delivered = end;
    return out;
  }

  exchange(events: Uint8Array, seq: number): Promise<Uint8Array> {
    if (this.exited) return Promise.reject(new FirmwareFault(this.exited));
    const answered = new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.child.kill("SIGKILL");
        reject(new FirmwareFault(`${this.engine}: no SYNC_ACK for seq ${seq} within ${BATCH_TIMEOUT_MS} ms`));
      }, BATCH_TIMEOUT_MS);
      this.waiter = { seq, resolve, reject, timer };
    });
    this.child.stdin!.write(events);
    // The firmware writes its log before its commands; give stderr one turn to arrive
    // so log lines keep their place in a timeline.
    return answered.then(async (bytes) => {
      await nextTurn();
      return bytes;
    });
  }

  async close(): Promise<Uint8Array> {
    this.child.stdin!.end();
    await this.closed;
    return this.take(this.received);
  }
}

export function replayChild(kind: Exclude<EngineKind, "node">, options: EngineOptions, events: Uint8Array): Promise<ReplayResult> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawnRunner(kind, options);
    } catch (error) {
      reject(error);
      return;
    }
    const out: Buffer[] = [];
    let log = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), REPLAY_TIMEOUT_MS);
    child.stdout!.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (text: string) => (log += text));
    child.stdin!.on("error", () => {});
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new FirmwareFault(`${kind} runner failed to start: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ commands: new Uint8Array(Buffer.concat(out)), log, exitCode: code ?? (signal ? 128 : 1) });
    });
    child.stdin!.end(events);
  });
}
