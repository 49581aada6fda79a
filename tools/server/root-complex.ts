// The server's root complex: system memory, one root port (00:01.0) whose link goes to the
// host card, and the requester side the OS uses (configuration and memory requests with the
// completion timeout). Inbound, it serves the devices' DMA reads from memory (completions of
// at most its Max_Payload_Size), takes their writes, and turns writes to the MSI address
// range into interrupts.
//
// A configuration request completed with Configuration Request Retry Status (a function not
// ready yet after reset) is handled as PCIe Base 2.3.2 says for a root port with CRS Software
// Visibility: while Root Control enables it, a read that includes both bytes of the Vendor ID
// completes to software with Vendor ID 0001h and all ones in the other bytes; any other
// configuration request is re-issued after CRS_RETRY_NS, until it completes or the completion
// timeout, counted from its first issue, runs out.
//
// The root port can be a hot-plug slot (surprise, with Data Link Layer Link Active reporting), as
// a server's slot for a card that can lose power is (`hotPlugSlot`; the world's servers have one:
// a bench test of the OS can do without): when the host card loses power its link
// goes down (setLink), Data Link Layer State Changed is raised with its MSI, and the OS's
// pciehp removes everything below; when the card comes back the link comes up and pciehp finds
// the switch again. While the link is down the root port completes every request for below it
// with Unsupported Request (PCIe Base 2.9.1), those outstanding when it went down included.

import { ConfigSpace, defineType1Header, type Register, type Type1Header } from "../../board/pcie/config-space.ts";
import { addExpress, addMsi, PortType, LinkSpeed, RootCtl, type ExpressCapability, type MsiCapability } from "../../board/pcie/capabilities.ts";
import { Command, MsiCtrl } from "../../board/map/pcie.ts";
import { configCompletion, readCompletions } from "../../board/pcie/completer.ts";
import type { PcieLinkConfig } from "../../board/pcie/link.ts";
import { encodeTlp, decodeTlp, isMalformed, isConfigRequest, CplStatus, DEFAULT_COMMON, type Tlp, type Completion, type ConfigRequest } from "../../board/pcie/tlp.ts";
import { COMPLETION_TIMEOUT_NS, longerHold, type RequestHold } from "../../board/pcie/endpoint.ts";
import type { Scheduler } from "../../board/scheduler.ts";
import { SparseMemory } from "../../board/memory.ts";
import { sleep, type Op } from "./task.ts";

export const ROOT_PORT_DEVICE = 1;
/** The server's slot the host card sits in (the root port's Physical Slot Number): apart from the host card's own slots 1..8. */
export const ROOT_PORT_SLOT = 16;
export const MSI_BASE = 0xfee0_0000;
export const MSI_LIMIT = 0xfeef_ffff;
/** The root port's link to the host card. */
export const ROOT_PORT_LINK: PcieLinkConfig = { generation: 3, lanes: 8, latencyNs: 150 };
/** The root complex completes reads in pieces of at most this many bytes. */
export const ROOT_MAX_PAYLOAD = 256;
/**
 * The Vendor ID a read returns to software for a function that answered with Configuration
 * Request Retry Status, with CRS Software Visibility on: reserved by the PCI-SIG for this use
 * alone (Linux: PCI_VENDOR_ID_PCI_SIG). The rest of the DW reads all ones.
 */
export const CRS_VENDOR_ID = 0x0001;
/**
 * How long the root complex waits before it re-issues a configuration request completed with
 * Configuration Request Retry Status (the specification leaves it to the implementation): 10 µs,
 * tens of round trips on the link, so a function that takes the whole 50 ms completion timeout
 * to get ready sees 5 000 retries rather than a flood.
 */
export const CRS_RETRY_NS = 10_000;

/** A request the root complex could not complete: the status it got, or a completion timeout. */
export class RequestFailed extends Error {
  constructor(message: string, readonly status: CplStatus | "timeout") {
    super(message);
  }
}

export interface RootCounters {
  /** Requests the root complex issued that got no completion within the completion timeout. */
  completionTimeouts: number;
  /** Requests completed with Unsupported Request or Completer Abort. */
  errorCompletions: number;
  /** Completions with Configuration Request Retry Status: each one a retry, or a Vendor ID read completed to software as 0001h. */
  crsCompletions: number;
  malformed: number;
  unexpectedCompletions: number;
  dmaReads: number;
  dmaWrites: number;
  interrupts: number;
}

interface Outstanding {
  /** The request as issued: a configuration request is issued again after Configuration Request Retry Status. */
  tlp: Tlp;
  data: Uint8Array;
  received: number;
  resume: (result: Uint8Array | Error) => void;
  timer: number;
  /** The re-issue waiting after a Configuration Request Retry Status, if any. */
  retry: number | null;
  what: string;
  /** When it was first issued: the completion timeout, and its hold, count from then. */
  issuedNs: number;
}

export class RootComplex {
  readonly memory = new SparseMemory();
  /** How long each configuration read below the root port took to complete, in order. */
  readonly configReadNs: number[] = [];
  readonly counters: RootCounters = { completionTimeouts: 0, errorCompletions: 0, crsCompletions: 0, malformed: 0, unexpectedCompletions: 0, dmaReads: 0, dmaWrites: 0, interrupts: 0 };
  readonly rootPort: { config: ConfigSpace; header: Type1Header };
  /** Called with the message data of every MSI write. */
  onInterrupt: ((data: number, requester: number) => void) | null = null;
  private readonly rootControl: Register;
  private readonly express: ExpressCapability;
  /** The root port's MSI, for its slot's hot-plug interrupt; none without a slot. */
  private readonly msi: MsiCapability | null;
  /** The link to the host card is up (DL Link Active). */
  private linkUp = true;
  /** The slot's hot-plug interrupt condition at its last evaluation: an MSI goes on its rising edge. */
  private interruptPending = false;
  private send: ((tlp: Uint8Array) => void) | null = null;
  private readonly outstanding = new Map<number, Outstanding>();
  private nextTag = 0;
  /** The longest wait of a request that has ended (completed or timed out). */
  private worstEnded: RequestHold | null = null;

  constructor(private readonly scheduler: Scheduler, options: { hotPlugSlot?: boolean } = {}) {
    const config = new ConfigSpace(4096);
    const header = defineType1Header(config, { vendorId: 0x8086, deviceId: 0x1d10, io: false, prefetchable: 64 });
    const express = addExpress(config, {
      portType: PortType.RootPort, link: { maxSpeed: LinkSpeed.Gen3, maxWidth: 16 }, crsVisibility: true,
      ...(options.hotPlugSlot ? { slot: { physicalSlot: ROOT_PORT_SLOT, hotPlugCapable: true, hotPlugSurprise: true, noCommandCompleted: true } } : {}),
    });
    this.msi = options.hotPlugSlot ? addMsi(config) : null;
    // The host card is in the slot, and its link trains with the server: present, DL Link Active.
    express.slot?.presenceDetectState.set(1);
    express.link.dlLinkActive.set(1);
    this.express = express;
    this.rootPort = { config, header };
    this.rootControl = express.registers.rootControl;
  }

  /**
   * The link to the host card goes down (the card lost power) or comes up again: DL Link Active
   * follows and Data Link Layer State Changed is raised (the slot's hot-plug interrupt when
   * enabled). Going down, every request outstanding below is completed with Unsupported Request.
   */
  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.express.link.dlLinkActive.set(up ? 1 : 0);
    this.express.slot?.dlStateChanged.set(1);
    if (!up) for (const tag of [...this.outstanding.keys()]) this.unsupported(tag);
    this.evaluateInterrupt();
  }

  /** Completes request `tag` with Unsupported Request, as the root port whose link is down. */
  private unsupported(tag: number): void {
    const request = this.outstanding.get(tag)!;
    if (request.retry !== null) this.scheduler.cancel(request.retry);
    this.counters.errorCompletions++;
    this.finish(tag, new RequestFailed(`${request.what}: Unsupported Request (the root port's link is down)`, CplStatus.UnsupportedRequest));
  }

  /**
   * The slot's hot-plug interrupt (PCIe Base 6.7.3.4): an MSI each time an enabled event becomes
   * pending, with hot-plug interrupts, MSI and bus mastering enabled; none while one stays pending.
   */
  private evaluateInterrupt(): void {
    const slot = this.express.slot;
    if (!slot || !this.msi) return;
    const pending = slot.hotPlugInterruptEnable.get() === 1 && (this.msi.control.get() & MsiCtrl.Enable) !== 0 &&
      (this.rootPort.header.command.get() & Command.BusMaster) !== 0 &&
      ((slot.dlStateChanged.get() & slot.dlStateChangedEnable.get()) === 1 ||
        (slot.presenceDetectChanged.get() & slot.presenceDetectChangedEnable.get()) === 1);
    if (pending && !this.interruptPending) this.onInterrupt?.(this.msi.data.get(), ROOT_PORT_DEVICE << 3);
    this.interruptPending = pending;
  }

  /** Non-posted requests issued and not yet completed (nor timed out). */
  get outstandingRequests(): number {
    return this.outstanding.size;
  }

  /** Virtual time, for software that measures how long things take. */
  get now(): number {
    return this.scheduler.now;
  }

  /** An operation that completes after `ns` of virtual time (a driver polling a register). */
  delay(ns: number): Op<void> {
    return sleep(this.scheduler, ns);
  }

  /** Runs `action` after `ns` of virtual time unless the returned function cancels it first (a kernel timer). */
  timer(ns: number, action: () => void): () => void {
    const handle = this.scheduler.at(this.scheduler.now + ns, action);
    return () => this.scheduler.cancel(handle);
  }

  /** Connects the root port's link: `send` carries TLPs down to the host card. */
  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  private transmit(tlp: Tlp): void {
    this.send?.(encodeTlp(tlp));
  }

  /** A TLP arriving at the root port from below. */
  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) {
      this.counters.malformed++;
      return;
    }
    if (tlp.kind === "Cpl" || tlp.kind === "CplD") this.completion(tlp);
    else if (tlp.kind === "MWr") {
      if (tlp.address >= MSI_BASE && tlp.address <= MSI_LIMIT) {
        this.counters.interrupts++;
        this.onInterrupt?.(tlp.data![0] | (tlp.data![1] << 8), tlp.requester);
      } else {
        this.counters.dmaWrites++;
        this.memory.write(tlp.address, tlp.data!);
      }
    } else if (tlp.kind === "MRd") {
      this.counters.dmaReads++;
      const data = this.memory.read(tlp.address, 4 * tlp.readDw!);
      for (const completion of readCompletions(tlp, data, ROOT_PORT_DEVICE << 3, ROOT_MAX_PAYLOAD)) this.transmit(completion);
    }
  }

  private completion(tlp: Completion): void {
    const request = this.outstanding.get(tlp.tag);
    if (!request) {
      this.counters.unexpectedCompletions++;
      return;
    }
    if (tlp.status === CplStatus.ConfigRequestRetry && isConfigRequest(request.tlp)) {
      this.notReady(tlp.tag, request, request.tlp);
      return;
    }
    if (tlp.status !== CplStatus.SuccessfulCompletion) {
      this.counters.errorCompletions++;
      this.finish(tlp.tag, new RequestFailed(`${request.what}: ${CplStatus[tlp.status]}`, tlp.status));
      return;
    }
    if (tlp.data) {
      request.data.set(tlp.data.subarray(0, Math.min(tlp.data.length, request.data.length - request.received)), request.received);
      request.received += tlp.data.length;
    }
    if (request.received >= request.data.length) this.finish(tlp.tag, request.data);
  }

  /** Configuration Request Retry Status for `config`: the Vendor ID answer with CRS Software Visibility, else a re-issue. */
  private notReady(tag: number, request: Outstanding, config: ConfigRequest): void {
    this.counters.crsCompletions++;
    const vendorIdRead = (config.kind === "CfgRd0" || config.kind === "CfgRd1") && config.register === 0 && (config.firstBe & 0b0011) === 0b0011;
    if (vendorIdRead && this.rootControl.test(RootCtl.CrsVisibility)) {
      new DataView(request.data.buffer).setUint32(0, (0xffff_0000 | CRS_VENDOR_ID) >>> 0, true);
      this.finish(tag, request.data);
      return;
    }
    request.retry = this.scheduler.at(this.scheduler.now + CRS_RETRY_NS, () => {
      request.retry = null;
      this.transmit(config);
    });
  }

  private finish(tag: number, result: Uint8Array | Error): void {
    const request = this.outstanding.get(tag)!;
    this.held(request, result instanceof Error ? "completed with an error" : "completed");
    this.outstanding.delete(tag);
    this.scheduler.cancel(request.timer);
    request.resume(result);
  }

  /** Issues a non-posted request and completes with its data (empty for a write). */
  private request(what: string, build: (tag: number) => Tlp, expect: number): Op<Uint8Array> {
    return {
      start: (resume) => {
        let tag = -1;
        for (let i = 0; i < 256 && tag < 0; i++) if (!this.outstanding.has((this.nextTag + i) & 0xff)) tag = (this.nextTag + i) & 0xff;
        if (tag < 0) {
          resume(new Error("256 requests outstanding"));
          return;
        }
        this.nextTag = (tag + 1) & 0xff;
        const tlp = build(tag);
        const timer = this.scheduler.at(this.scheduler.now + COMPLETION_TIMEOUT_NS, () => {
          this.counters.completionTimeouts++;
          const request = this.outstanding.get(tag)!;
          this.held(request, "timed out");
          if (request.retry !== null) this.scheduler.cancel(request.retry);
          this.outstanding.delete(tag);
          resume(new RequestFailed(`${what}: completion timeout`, "timeout"));
        });
        this.outstanding.set(tag, { tlp, data: new Uint8Array(expect), received: 0, resume, timer, retry: null, what, issuedNs: this.scheduler.now });
        if (this.linkUp) this.transmit(tlp);
        else {
          this.scheduler.at(this.scheduler.now, () => {
            if (this.outstanding.has(tag)) this.unsupported(tag);
          });
        }
      },
    };
  }

  /**
   * The longest any request this root complex issued below the root port has waited for its
   * completion so far (until it completed or timed out), those still waiting included; null
   * before the first.
   */
  worstHold(): RequestHold | null {
    let worst = this.worstEnded;
    for (const request of this.outstanding.values()) worst = longerHold(worst, this.hold(request, "still waiting"));
    return worst;
  }

  private hold(request: Outstanding, outcome: string): RequestHold {
    return { ns: this.scheduler.now - request.issuedNs, sinceNs: request.issuedNs, what: `${request.what} (${outcome})` };
  }

  private held(request: Outstanding, outcome: string): void {
    // Only a new longest wait is described: this runs for every request that ends.
    if (this.worstEnded === null || this.scheduler.now - request.issuedNs > this.worstEnded.ns) this.worstEnded = this.hold(request, outcome);
  }

  /**
   * A configuration read of one DW; the root port itself answers for its own function. The
   * time each one below the root port took, to its successful completion (retries included;
   * not a Vendor ID answered as CRS_VENDOR_ID), is kept in configReadNs.
   */
  configRead(bus: number, device: number, fn: number, register: number): Op<number> {
    if (bus === 0) return this.localConfig(device, fn, register, null);
    const kind = bus === this.rootPort.header.secondaryBus.get() ? "CfgRd0" : "CfgRd1";
    const op = this.request(`config read ${bus}:${device}.${fn} register ${register}`,
      (tag) => ({ kind, ...DEFAULT_COMMON, requester: ROOT_PORT_DEVICE << 3, tag, firstBe: 0xf, bus, device, fn, register }), 4);
    const read = mapOp(op, (data) => new DataView(data.buffer).getUint32(0, true));
    return {
      start: (resume) => {
        const issued = this.scheduler.now;
        read.start((result) => {
          if (!(result instanceof Error) && !(register === 0 && (result & 0xffff) === CRS_VENDOR_ID)) this.configReadNs.push(this.scheduler.now - issued);
          resume(result);
        });
      },
    };
  }

  configWrite(bus: number, device: number, fn: number, register: number, value: number, firstBe = 0xf): Op<number> {
    if (bus === 0) return this.localConfig(device, fn, register, { value, firstBe });
    const kind = bus === this.rootPort.header.secondaryBus.get() ? "CfgWr0" : "CfgWr1";
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    const op = this.request(`config write ${bus}:${device}.${fn} register ${register}`,
      (tag) => ({ kind, ...DEFAULT_COMMON, requester: ROOT_PORT_DEVICE << 3, tag, firstBe, bus, device, fn, register, data }), 0);
    return mapOp(op, () => 0);
  }

  private localConfig(device: number, fn: number, register: number, write: { value: number; firstBe: number } | null): Op<number> {
    return {
      start: (resume) => {
        if (device !== ROOT_PORT_DEVICE || fn !== 0) {
          resume(new RequestFailed(`config 0:${device}.${fn}: no such function`, CplStatus.UnsupportedRequest));
          return;
        }
        const data = new Uint8Array(4);
        new DataView(data.buffer).setUint32(0, (write?.value ?? 0) >>> 0, true);
        const tlp = write
          ? { kind: "CfgWr0" as const, ...DEFAULT_COMMON, requester: 0, tag: 0, firstBe: write.firstBe, bus: 0, device, fn, register, data }
          : { kind: "CfgRd0" as const, ...DEFAULT_COMMON, requester: 0, tag: 0, firstBe: 0xf, bus: 0, device, fn, register };
        const completion = configCompletion(this.rootPort.config, tlp, ROOT_PORT_DEVICE << 3) as Completion;
        // A write may clear the slot's events or enable its interrupt: the MSI edge rule looks again.
        if (write) this.evaluateInterrupt();
        if (completion.status !== CplStatus.SuccessfulCompletion) resume(new RequestFailed("root port config", completion.status));
        else resume(completion.data ? new DataView(completion.data.buffer).getUint32(0, true) : 0);
      },
    };
  }

  /** A memory read of `bytes` (whole DWs, at most 4 KiB, not crossing a 4 KiB boundary). */
  memoryRead(address: number, bytes: number): Op<Uint8Array> {
    return this.request(`memory read 0x${address.toString(16)}`,
      (tag) => ({ kind: "MRd", ...DEFAULT_COMMON, requester: ROOT_PORT_DEVICE << 3, tag, firstBe: 0xf, lastBe: bytes > 4 ? 0xf : 0, address, readDw: bytes / 4 }), bytes);
  }

  /** A posted memory write; it completes at once. */
  memoryWrite(address: number, data: Uint8Array): Op<void> {
    return {
      start: (resume) => {
        // Posted: with the link down it is dropped, as PCIe drops it.
        if (this.linkUp) this.transmit({ kind: "MWr", ...DEFAULT_COMMON, requester: ROOT_PORT_DEVICE << 3, tag: 0, firstBe: 0xf, lastBe: data.length > 4 ? 0xf : 0, address, data });
        resume(undefined);
      },
    };
  }
}

function mapOp<A, B>(op: Op<A>, f: (a: A) => B): Op<B> {
  return { start: (resume) => op.start((result) => resume(result instanceof Error ? result : f(result))) };
}
