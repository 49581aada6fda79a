// What every simulated PCIe endpoint function shares: a configuration space with a Type 0
// header, MSI and a PCI Express capability; the completer side (configuration and memory
// requests answered per the specification, with Unsupported Request or Completer Abort where
// it says so); and the requester side (DMA reads and writes split at the payload and
// 4 KiB limits, completion timeout, MSI). A device model extends it with its BAR registers.

import { ConfigSpace, Command, defineType0Header, type Type0Header, type Type0Options } from "./config-space.ts";
import { addExpress, addMsi, PortType, type ExpressCapability, type MsiCapability, type LinkSpeed } from "./capabilities.ts";
import {
  encodeTlp, decodeTlp, isMalformed, CplStatus, DEFAULT_COMMON,
  type Tlp, type MemoryRequest, type ConfigRequest, type Completion,
} from "./tlp.ts";
import type { Scheduler } from "../scheduler.ts";
import { configCompletion, errorCompletion, isNonPosted, readCompletions } from "./completer.ts";

/** Completion timeout: the Device Control 2 default range, 50 µs to 50 ms; the model waits the upper end. */
export const COMPLETION_TIMEOUT_NS = 50_000_000;
/** The largest read request the requester side issues. */
export const MAX_READ_REQUEST_BYTES = 512;

export interface EndpointOptions extends Type0Options {
  msiVectors?: number;
  /** Largest payload supported, bytes (Device Capabilities); the programmed value is what counts. */
  maxPayloadSupported?: 128 | 256 | 512 | 1024 | 2048 | 4096;
  /** Link Capabilities: Max Link Speed (1 = 2.5 GT/s ... 5 = 32 GT/s) and width. Default Gen3 x4. */
  linkSpeed?: LinkSpeed;
  linkWidth?: 1 | 2 | 4 | 8 | 16;
}

export interface EndpointCounters {
  /** TLPs that break the format rules, dropped (Malformed TLP errors). */
  malformed: number;
  /** Requests answered, or for posted ones dropped, as Unsupported Request. */
  unsupportedRequests: number;
  /** Requests answered with Completer Abort. */
  completerAborts: number;
  /** Completions that match no outstanding read. */
  unexpectedCompletions: number;
  /** DMA reads abandoned after COMPLETION_TIMEOUT_NS. */
  completionTimeouts: number;
  /** DMA or MSI the function could not send: Bus Master Enable clear, MSI disabled or masked. */
  blockedRequests: number;
}

/**
 * The longest wait of a non-posted request for its completion: `ns` from its issue at
 * `sinceNs` until it completed, timed out or was dropped (or until now, if it still waits), and
 * what it was and how it ended. The fault matrix holds it against a budget inside the
 * completion timeout (tools/sim/faults.ts).
 */
export interface RequestHold {
  ns: number;
  sinceNs: number;
  what: string;
}

/** `hold` if it is longer than `worst` (or there is none yet), else `worst`. */
export function longerHold(worst: RequestHold | null, hold: RequestHold): RequestHold {
  return worst === null || hold.ns > worst.ns ? hold : worst;
}

/** Called when a DMA read finishes: with the data, or with the reason it failed. */
export type ReadDone = (result: Uint8Array | DmaError) => void;

interface PendingRead {
  address: number;
  issuedNs: number;
  data: Uint8Array;
  received: number;
  done: (result: Uint8Array | DmaError) => void;
  timer: number;
}

export class DmaError extends Error {}

export abstract class Endpoint {
  readonly config = new ConfigSpace(4096);
  readonly header: Type0Header;
  readonly msi: MsiCapability;
  readonly express: ExpressCapability;
  readonly counters: EndpointCounters = {
    malformed: 0, unsupportedRequests: 0, completerAborts: 0, unexpectedCompletions: 0, completionTimeouts: 0, blockedRequests: 0,
  };
  /** Bus, device and function number, captured from the Type 0 configuration requests it receives. */
  routingId = 0;
  /** Fundamental resets (PERST#) the function went through: how a scenario tells it was reset between two owners. */
  resets = 0;
  private send: ((tlp: Uint8Array) => void) | null = null;
  private readonly reads = new Map<number, PendingRead>();
  /** Read requests waiting for a free tag, issued in order as completions free them. */
  private readonly waitingForTag: (() => void)[] = [];
  private nextTag = 0;
  /** The longest wait of a DMA read that has ended (completed, timed out or dropped at a reset). */
  private worstEnded: RequestHold | null = null;

  constructor(protected readonly scheduler: Scheduler, options: EndpointOptions) {
    this.header = defineType0Header(this.config, options);
    this.msi = addMsi(this.config, { vectors: options.msiVectors ?? 1 });
    this.express = addExpress(this.config, {
      portType: PortType.Endpoint,
      maxPayloadSupported: options.maxPayloadSupported ?? 256,
      link: { maxSpeed: options.linkSpeed ?? 3, maxWidth: options.linkWidth ?? 4 },
    });
  }

  /** Plugs the function into a link: `send` carries its TLPs upstream. */
  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  /**
   * A fundamental reset (PERST#, CardReg.SlotReset): the configuration space returns to its
   * reset values (BARs unassigned, Memory, Bus Master and MSI off, error status clear, no MSI
   * pending), the routing ID is forgotten, and DMA reads in flight are dropped: their callbacks
   * never run and late completions count as unexpected. A device model extends it with its
   * own registers and work, calling this first.
   */
  reset(): void {
    this.resets++;
    this.config.reset();
    this.msi.pending?.set(0);
    this.routingId = 0;
    for (const read of this.reads.values()) {
      this.scheduler.cancel(read.timer);
      this.held(read, "dropped at a reset");
    }
    this.reads.clear();
    this.waitingForTag.length = 0;
    this.nextTag = 0;
  }

  /** A BAR read of `length` bytes at `offset` (DW aligned); null answers with Completer Abort. */
  protected abstract mmioRead(bar: number, offset: number, length: number): Uint8Array | null;
  /** A BAR write; `firstBe`/`lastBe` say which bytes of the first and last DW are written. */
  protected abstract mmioWrite(bar: number, offset: number, data: Uint8Array, firstBe: number, lastBe: number): void;

  /** Max_Payload_Size programmed in Device Control, in bytes. */
  maxPayload(): number {
    return 128 << this.express.device.maxPayloadSize.get();
  }

  busMaster(): boolean {
    return this.header.command.test(Command.BusMaster);
  }

  /** A TLP from the link. Malformed ones are counted and dropped, as a receiver must. */
  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) {
      this.counters.malformed++;
      return;
    }
    switch (tlp.kind) {
      case "CfgRd0":
      case "CfgWr0":
        this.configRequest(tlp);
        return;
      case "MRd":
      case "MWr":
        this.memoryRequest(tlp);
        return;
      case "Cpl":
      case "CplD":
        this.completion(tlp);
        return;
      case "Msg":
      case "MsgD":
        return; // no message is addressed to these endpoints; silently ignored as the spec allows
      default:
        // Type 1 configuration, I/O and locked requests are unsupported by these endpoints.
        this.reject(tlp, CplStatus.UnsupportedRequest);
    }
  }

  private transmit(tlp: Tlp): void {
    this.send?.(encodeTlp(tlp));
  }

  /** Answers a non-posted request with an error status; a posted one is only counted. */
  private reject(tlp: Tlp, status: CplStatus.UnsupportedRequest | CplStatus.CompleterAbort): void {
    if (status === CplStatus.UnsupportedRequest) this.counters.unsupportedRequests++;
    else this.counters.completerAborts++;
    if (isNonPosted(tlp)) this.transmit(errorCompletion(tlp, this.routingId, status));
  }

  private configRequest(tlp: ConfigRequest): void {
    this.routingId = ((tlp.bus & 0xff) << 8) | ((tlp.device & 0x1f) << 3) | (this.routingId & 7);
    if (tlp.fn !== (this.routingId & 7)) {
      this.reject(tlp, CplStatus.UnsupportedRequest); // no such function
      return;
    }
    const completion = configCompletion(this.config, tlp, this.routingId);
    if (completion.kind === "Cpl" && completion.status !== CplStatus.SuccessfulCompletion) {
      if (completion.status === CplStatus.UnsupportedRequest) this.counters.unsupportedRequests++;
      else this.counters.completerAborts++;
    }
    this.transmit(completion);
  }

  private barFor(address: number): [number, number] | null {
    const at = BigInt(address);
    for (const bar of this.header.bars) {
      if (bar && bar.kind !== "io" && bar.claims(at)) return [bar.index, Number(at - bar.address())];
    }
    return null;
  }

  private memoryRequest(tlp: MemoryRequest): void {
    const target = this.barFor(tlp.address);
    if (!target) {
      this.reject(tlp, CplStatus.UnsupportedRequest);
      return;
    }
    const [bar, offset] = target;
    if (tlp.kind === "MWr") {
      this.mmioWrite(bar, offset, tlp.data!, tlp.firstBe, tlp.lastBe);
      return;
    }
    const length = 4 * (tlp.readDw ?? 1);
    const data = this.mmioRead(bar, offset, length);
    if (!data) {
      this.reject(tlp, CplStatus.CompleterAbort);
      return;
    }
    for (const completion of readCompletions(tlp, data, this.routingId, this.maxPayload())) this.transmit(completion);
  }

  private completion(tlp: Completion): void {
    const read = this.reads.get(tlp.tag);
    if (!read || tlp.requester !== this.routingId) {
      this.counters.unexpectedCompletions++;
      return;
    }
    if (tlp.status !== CplStatus.SuccessfulCompletion || !tlp.data) {
      this.finishRead(tlp.tag, new DmaError(`read at 0x${read.address.toString(16)} completed with status ${CplStatus[tlp.status]}`));
      return;
    }
    const offset = read.received;
    read.data.set(tlp.data.subarray(0, Math.min(tlp.data.length, read.data.length - offset)), offset);
    read.received += tlp.data.length;
    if (read.received >= read.data.length) this.finishRead(tlp.tag, null);
  }

  private finishRead(tag: number, error: DmaError | null): void {
    const read = this.reads.get(tag)!;
    this.held(read, error ? "completed with an error" : "completed");
    this.releaseTag(tag);
    this.scheduler.cancel(read.timer);
    read.done(error ?? read.data);
  }

  private releaseTag(tag: number): void {
    this.reads.delete(tag);
    this.waitingForTag.shift()?.();
  }

  private allocateTag(): number {
    for (let i = 0; i < 256; i++) {
      const tag = (this.nextTag + i) & 0xff;
      if (!this.reads.has(tag)) {
        this.nextTag = (tag + 1) & 0xff;
        return tag;
      }
    }
    return -1;
  }

  /**
   * Writes `data` to host memory at `address` (DW aligned, whole DWs), split at Max_Payload_Size
   * and 4 KiB boundaries. False, and nothing sent, when Bus Master Enable is clear.
   */
  protected dmaWrite(address: number, data: Uint8Array): boolean {
    if (!this.busMaster()) {
      this.counters.blockedRequests++;
      return false;
    }
    const mps = this.maxPayload();
    for (let done = 0; done < data.length; ) {
      const at = address + done;
      const chunk = Math.min(data.length - done, mps, 4096 - (at % 4096));
      this.transmit({
        kind: "MWr", ...DEFAULT_COMMON, requester: this.routingId, tag: 0, firstBe: 0xf, lastBe: chunk > 4 ? 0xf : 0, address: at,
        data: data.subarray(done, done + chunk),
      });
      done += chunk;
    }
    return true;
  }

  /**
   * Reads `length` bytes (whole DWs) of host memory, split at MAX_READ_REQUEST_BYTES and
   * 4 KiB boundaries. `done` runs once, inside the simulation at the moment the last
   * completion arrives, with the data or a DmaError (error status, completion timeout, no
   * free tag, Bus Master Enable clear). Callbacks, not promises: a promise would settle
   * outside virtual time.
   */
  protected dmaRead(address: number, length: number, done: ReadDone): void {
    if (!this.busMaster()) {
      this.counters.blockedRequests++;
      done(new DmaError("Bus Master Enable is clear"));
      return;
    }
    const out = new Uint8Array(length);
    let left = 0;
    let failed = false;
    const requests: [number, number][] = [];
    for (let at = 0; at < length; ) {
      const chunk = Math.min(length - at, MAX_READ_REQUEST_BYTES, 4096 - ((address + at) % 4096));
      requests.push([at, chunk]);
      at += chunk;
    }
    left = requests.length;
    for (const [offset, chunk] of requests) {
      this.readOnce(address + offset, chunk, (result) => {
        if (failed) return;
        if (result instanceof DmaError) {
          failed = true;
          done(result);
          return;
        }
        out.set(result, offset);
        if (--left === 0) done(out);
      });
    }
  }

  /** Issues one read request, or queues it until a tag is free (256 may be outstanding). */
  private readOnce(address: number, length: number, done: ReadDone): void {
    const tag = this.allocateTag();
    if (tag < 0) {
      this.waitingForTag.push(() => this.readOnce(address, length, done));
      return;
    }
    const timer = this.scheduler.at(this.scheduler.now + COMPLETION_TIMEOUT_NS, () => {
      this.counters.completionTimeouts++;
      this.held(this.reads.get(tag)!, "timed out");
      this.releaseTag(tag);
      done(new DmaError(`read at 0x${address.toString(16)} timed out`));
    });
    this.reads.set(tag, { address, issuedNs: this.scheduler.now, data: new Uint8Array(length), received: 0, done, timer });
    this.transmit({
      kind: "MRd", ...DEFAULT_COMMON, requester: this.routingId, tag, firstBe: 0xf, lastBe: length > 4 ? 0xf : 0, address, readDw: length / 4,
    });
  }

  /** The longest any DMA read of this function has waited for its completion so far, those still waiting included; null before the first. */
  worstHold(): RequestHold | null {
    let worst = this.worstEnded;
    for (const read of this.reads.values()) worst = longerHold(worst, this.hold(read, "still waiting"));
    return worst;
  }

  private hold(read: PendingRead, outcome: string): RequestHold {
    return { ns: this.scheduler.now - read.issuedNs, sinceNs: read.issuedNs, what: `DMA read at 0x${read.address.toString(16)} (${outcome})` };
  }

  private held(read: PendingRead, outcome: string): void {
    // Only a new longest wait is described: this runs for every read that ends.
    if (this.worstEnded === null || this.scheduler.now - read.issuedNs > this.worstEnded.ns) this.worstEnded = this.hold(read, outcome);
  }

  /** Signals MSI `vector`; false when MSI is disabled, the vector not allocated or masked, or Bus Master is off. */
  protected signalMsi(vector: number): boolean {
    if (!this.busMaster()) {
      this.counters.blockedRequests++;
      return false;
    }
    const message = this.msi.signal(vector);
    if (!message) {
      this.counters.blockedRequests++;
      return false;
    }
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint16(0, message.data, true);
    this.transmit({ kind: "MWr", ...DEFAULT_COMMON, requester: this.routingId, tag: 0, firstBe: 0xf, lastBe: 0, address: Number(message.address), data });
    return true;
  }
}
