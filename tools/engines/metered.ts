// A firmware session that says what each batch cost: the metered copy of the firmware
// (meter.ts) runs in-process as the reference and counts the WebAssembly instructions of every
// batch. With engine `node` the reference is the engine. With a child engine (wasm3, Node's
// WASI) the child runs the release as well, and its answer must be the reference's byte for
// byte: the count is a property of the module and its input, and this checks that the engine
// agrees on the input's meaning.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { meterModule, bodySizes, SEEN_PREFIX } from "./meter.ts";
import { firmwareFile } from "./index.ts";
import { InProcessFirmware } from "./inprocess.ts";
import { ChildSession } from "./child.ts";
import { BatchOverrun, EngineFailure, type EngineKind, type EngineOptions, type FirmwareSession } from "./engine.ts";
import type { BatchCost } from "../../board/softcore.ts";

/** The file of the metered copy of the firmware file `path`: instrumented once per content and process. */
const metered = new Map<string, string>();
function meteredFile(path: string): string {
  const release = new Uint8Array(readFileSync(path));
  const key = createHash("sha256").update(release).digest("hex");
  let file = metered.get(key);
  if (!file) {
    file = firmwareFile(meterModule(release));
    metered.set(key, file);
  }
  return file;
}

export class MeteredSession implements FirmwareSession {
  lastBatch: BatchCost = { instructions: 0, compiledBytes: 0 };
  private readonly reference: InProcessFirmware;
  private readonly child: ChildSession | null;
  private total = 0n;
  private compiled = 0n;
  /** The firmware's function bodies in bytes, and the next one compileAhead() looks at. */
  private readonly bodies: number[];
  private nextAhead = 0;

  /** `limit`: the most instructions one batch may take before it counts as never finishing. */
  constructor(readonly engine: EngineKind, options: EngineOptions, private readonly limit: number) {
    this.child = engine === "node" ? null : new ChildSession(engine, options);
    this.reference = new InProcessFirmware({ firmware: meteredFile(options.firmware), onLog: this.child ? undefined : options.onLog });
    this.bodies = bodySizes(new Uint8Array(readFileSync(options.firmware)));
  }

  /**
   * wasm3 compiles the next function no batch has run yet, between batches: its bit is set as if
   * it had been entered, so that its first call compiles nothing. Returns its body's bytes; 0
   * once every function is compiled.
   */
  compileAhead(): number {
    for (; this.nextAhead < this.bodies.length; this.nextAhead++) {
      const index = this.nextAhead;
      const name = `${SEEN_PREFIX}${index >> 6}`;
      const seen = this.reference.getGlobal(name);
      const bit = 1n << BigInt(index & 63);
      if ((BigInt.asUintN(64, seen) & bit) !== 0n) continue;
      this.reference.setGlobal(name, BigInt.asIntN(64, seen | bit));
      this.nextAhead++;
      return this.bodies[index];
    }
    return 0;
  }

  async exchange(events: Uint8Array, seq: number): Promise<Uint8Array> {
    this.reference.setLimit(this.total + BigInt(this.limit));
    let commands: Uint8Array;
    try {
      commands = this.reference.feed(events);
    } catch (error) {
      if (this.reference.overran) throw new BatchOverrun(seq, this.limit);
      throw error;
    } finally {
      const now = this.reference.instructions!;
      const compiled = this.reference.compiledBytes!;
      this.lastBatch = { instructions: Number(now - this.total), compiledBytes: Number(compiled - this.compiled) };
      this.total = now;
      this.compiled = compiled;
    }
    if (!this.child) return commands;
    const answer = await this.child.exchange(events, seq);
    if (!Buffer.from(answer).equals(commands)) {
      throw new EngineFailure(`${this.engine} answered batch ${seq} with ${answer.length} bytes of commands that differ from the metered reference's ${commands.length}`);
    }
    return answer;
  }

  async close(): Promise<Uint8Array> {
    return this.child ? this.child.close() : this.reference.runToEnd(new Uint8Array(0));
  }
}
