// Child-process engines: any WASI command runner over pipes. fd 0/1/2 of the firmware
// are the child's stdin/stdout/stderr. Lockstep: after writing a batch ending in SYNC,
// wait for the matching SYNC_ACK on stdout; the firmware blocks in fd_read meanwhile.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setImmediate as nextTurn } from "node:timers/promises";
import { MessageReader, decodeCommand } from "../../board/mailbox-codec.ts";
import { Command, HEADER_SIZE } from "../../board/map/mailbox.ts";
import { concat } from "../../board/bytes.ts";
import { EngineFailure, FirmwareFault, type EngineKind, type EngineOptions, type FirmwareSession, type ReplayResult } from "./engine.ts";

export const WASI_RUNNER = fileURLToPath(new URL("./wasi-runner.mjs", import.meta.url));

/** How long a child may take to answer one batch before it is declared hung. */
const BATCH_TIMEOUT_MS = 20_000;
const REPLAY_TIMEOUT_MS = 300_000;

const PROBE_TIMEOUT_MS = 10_000;
const usable = new Set<string>();

/**
 * Why the wasm3 binary at `path` cannot serve as an engine, or null when it can: it must be an
 * executable file that answers `--version` (a crash there is reported with its signal). A path
 * that passed is not probed again.
 */
function wasm3Problem(path: string): string | null {
  if (usable.has(path)) return null;
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return "not found";
  }
  if (!stat.isFile()) return stat.isDirectory() ? "is a directory" : "not a regular file";
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return `not executable (mode ${(stat.mode & 0o777).toString(8)})`;
  }
  const probe = spawnSync(path, ["--version"], { encoding: "utf8", timeout: PROBE_TIMEOUT_MS, stdio: ["ignore", "pipe", "pipe"] });
  const asked = "when asked for its version";
  if (probe.error && (probe.error as NodeJS.ErrnoException).code === "ETIMEDOUT") return `did not answer within ${PROBE_TIMEOUT_MS / 1000} s ${asked}`;
  if (probe.error) return `cannot be run: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}`;
  if (probe.signal) return `crashed (${probe.signal}) ${asked}`;
  if (probe.status !== 0) return `exited with status ${probe.status} ${asked}${probe.stderr.trim() ? `: ${probe.stderr.trim().split("\n")[0]}` : ""}`;
  usable.add(path);
  return null;
}

/** The wasm3 binary at `path`, or an EngineFailure naming it and what is wrong with it. */
export function checkWasm3(path: string): string {
  const problem = wasm3Problem(path);
  if (problem) throw new EngineFailure(`wasm3 binary ${path}: ${problem}`);
  return path;
}

export function childCommand(kind: Exclude<EngineKind, "node">, options: EngineOptions): [string, string[]] {
  if (kind === "node-wasi") return [process.execPath, ["--no-warnings", WASI_RUNNER, options.firmware]];
  if (!options.wasm3) throw new EngineFailure("engine wasm3 needs a wasm3 binary: pass --wasm3 PATH or set IOV_WASM3");
  return [checkWasm3(options.wasm3), [options.firmware]];
}

/** What the runner binary is called in messages: the wasm3 binary's path, or Node's WASI. */
function runnerName(kind: Exclude<EngineKind, "node">, options: EngineOptions): string {
  return kind === "wasm3" ? `wasm3 binary ${options.wasm3}` : `${kind} runner`;
}

/** fd 3 is a pipe too: a metered module reports its count there at the end of input. */
function spawnRunner(kind: Exclude<EngineKind, "node">, options: EngineOptions): ChildProcess {
  const [command, args] = childCommand(kind, options);
  return spawn(command, args, { stdio: ["pipe", "pipe", "pipe", "pipe"] });
}

export class ChildSession implements FirmwareSession {
  private readonly child: ChildProcess;
  private readonly reader = new MessageReader("commands");
  private stdout: Uint8Array[] = [];
  private delivered = 0; // stream offset of the first byte not yet handed to a caller
  private received = 0;
  private stderrTail = "";
  /** Why the session ended: the firmware stopped (FirmwareFault) or its runner could not go on (EngineFailure). */
  private exited: Error | null = null;
  private killed = false;
  private waiter: { seq: number; resolve: (b: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private closed: Promise<void>;

  constructor(readonly engine: Exclude<EngineKind, "node">, options: EngineOptions) {
    this.child = spawnRunner(engine, options);
    const runner = runnerName(engine, options);
    this.child.stdin!.on("error", () => {}); // a dead child is reported through 'exit'
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-2000);
      options.onLog?.(text);
    });
    this.child.stdout!.on("data", (chunk: Buffer) => this.onStdout(new Uint8Array(chunk)));
    this.closed = new Promise((resolve) => {
      this.child.on("error", (error) => {
        this.exited = new EngineFailure(`${runner}: cannot be started: ${error.message}`);
        this.failWaiter();
        resolve();
      });
      this.child.on("close", (code, signal) => {
        const said = this.stderrTail ? `: ${this.stderrTail.trim().split("\n").pop()}` : "";
        this.exited = signal && !this.killed
          ? new EngineFailure(`${runner} crashed (${signal})`)
          : new FirmwareFault(`${this.engine} runner exited with ${signal ?? `code ${code}`}${said}`);
        this.failWaiter();
        resolve();
      });
    });
  }

  private failWaiter(): void {
    if (!this.waiter) return;
    clearTimeout(this.waiter.timer);
    this.waiter.reject(this.exited!);
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
    if (this.exited) return Promise.reject(this.exited);
    const answered = new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.killed = true;
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
    const meter: Buffer[] = [];
    let log = "";
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, REPLAY_TIMEOUT_MS);
    child.stdout!.on("data", (chunk: Buffer) => out.push(chunk));
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (chunk: Buffer) => meter.push(chunk));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (text: string) => (log += text));
    child.stdin!.on("error", () => {});
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new EngineFailure(`${runnerName(kind, options)}: cannot be started: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (signal && !killed) {
        reject(new EngineFailure(`${runnerName(kind, options)} crashed (${signal})`));
        return;
      }
      const report = Buffer.concat(meter);
      const instructions = report.length === 8 ? report.readBigUInt64LE(0) : undefined;
      resolve({ commands: new Uint8Array(Buffer.concat(out)), log, exitCode: code ?? (signal ? 128 : 1), instructions });
    });
    child.stdin!.end(events);
  });
}
