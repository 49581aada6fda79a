// The host card's switch router: the fabric half of the PCIe switch the server sees. The
// firmware serves the virtual ports' configuration space and mirrors what routing needs into
// this block's registers (SwitchReg, board/map/registers.ts); the router moves every TLP at
// line rate by those registers alone:
//
//   from the server   Type 0 configuration, and Type 1 on the internal bus -> firmware (TLP_RX Config)
//                     Type 1 below a forwarding downstream port -> its tunnel (Type 0 on its secondary bus)
//                     memory requests inside a forwarding downstream port's window -> its tunnel
//                     completions -> the downstream port whose bus range holds the requester
//                     any other request -> firmware (TLP_RX Unrouted), which answers Unsupported Request
//   from a tunnel     TLPs of a (tunnel, chassis slot) bound to a forwarding port -> the server
//   from firmware     completions and one-DW memory writes (MSI) -> the server (TLP_TX)
//
// Until the firmware sets ConfigReady on the upstream port (it is clear at every reset) the
// switch is not ready: the router completes every configuration request from the server itself
// with Configuration Request Retry Status (CRS), and the firmware sees none of them. CRS is the
// one completion a not-yet-ready function may give, to configuration requests only (PCIe Base,
// 2.3.1 and 6.6.1); ConfigReady stays set until the next reset, so no CRS follows a completion.
//
// Each downstream port also keeps the time a TLP last crossed it, either way (SwitchReg.IdleUs):
// the firmware reads it to tell whether a device is in use before it hands a chassis slot over.
//
// The router remembers each non-posted request it tunnels until its last completion comes
// back. When the firmware stops a port forwarding (its link went down), the router completes
// each of those requests itself with Unsupported Request, as that downstream port, at once and
// at line rate however many there are, and drops any completion that still arrives for them.
// docs/pcie.md has the rules.

import { SwitchReg, SwitchControl, SWITCH_BASE, SWITCH_STRIDE } from "../map/registers.ts";
import { TlpRxReason, NO_PORT } from "../map/mailbox.ts";
import { SWITCH_PORTS, SWITCH_DOWNSTREAM_PORTS, TlpHeader } from "../map/pcie.ts";
import { decodeTlp, encodeTlp, isMalformed, isConfigRequest, hasData, headerBytes, routingId, tlpClass, CplStatus, TlpClass, TlpType, type ConfigRequest, type Tlp } from "./tlp.ts";
import { errorCompletion, isNonPosted } from "./completer.ts";

export interface SwitchRouterHost {
  /** A TLP for the firmware (TLP_RX): its header and at most the first data DW. */
  toFirmware(reason: TlpRxReason, port: number, tlp: Uint8Array): void;
  /** A TLP into tunnel `tunnel` for chassis slot `slot`; false when the tunnel refuses it. */
  submit(tunnel: number, slot: number, tlp: Uint8Array): boolean;
  /** Flow control: whether tunnel `tunnel`'s send queue takes more TLPs of class `cls` now (TunnelEngine.hasRoom); without it, always. */
  hasRoom?(tunnel: number, cls: TlpClass): boolean;
  /** The number of tunnels a Binding register may name. */
  tunnels: number;
  /** The current time, ns (SwitchReg.IdleUs); without it the router counts no idle time. */
  now?: () => number;
}

/** SwitchReg.IdleUs saturates here. */
export const IDLE_US_MAX = 0xffff_ffff;

export interface SwitchRouterCounters {
  fromServer: number;
  toServer: number;
  /** TLPs from the server that fail the receiver checks (section 2.3), dropped. */
  malformed: number;
  /** Configuration requests completed with Configuration Request Retry Status before ConfigReady. */
  crsCompletions: number;
  configToFirmware: number;
  unroutedToFirmware: number;
  /** Requests outstanding on a port when it stopped forwarding, completed with Unsupported Request by the router. */
  orphaned: number;
  tunnelled: number;
  /** TLPs a tunnel refused (beyond its MaxPayload, or queue full), dropped. */
  tunnelRefused: number;
  /** Completions from the server no port's bus range holds, or for a port that does not forward, dropped. */
  unclaimedCompletions: number;
  /** Completions from a tunnel for no outstanding request (late ones for orphaned requests among them), dropped. */
  staleCompletions: number;
  /** TLPs from a tunnel for a (tunnel, slot) no forwarding port is bound to, dropped. */
  unboundUpstream: number;
  /** Requests from below a port without Bus Master Enable: posted dropped, non-posted answered with Unsupported Request. */
  blockedUpstream: number;
  /** Messages from the server (nothing below the switch takes them), dropped. */
  messages: number;
  firmwareTlps: number;
  /** TLP_TX refused: malformed, or not a completion or one-DW memory write. */
  firmwareRejected: number;
}

interface PortRegisters {
  control: number;
  buses: number;
  memoryWindow: number;
  prefetchWindow: number;
  prefetchBaseUpper: number;
  prefetchLimitUpper: number;
  binding: number;
}

interface Outstanding {
  port: number;
  request: Tlp;
}

const blank = (): PortRegisters => ({ control: 0, buses: 0, memoryWindow: 0, prefetchWindow: 0, prefetchBaseUpper: 0, prefetchLimitUpper: 0, binding: 0 });

const secondaryBus = (r: PortRegisters) => (r.buses >>> 8) & 0xff;
const subordinateBus = (r: PortRegisters) => (r.buses >>> 16) & 0xff;
const forwardsBus = (r: PortRegisters, bus: number) => secondaryBus(r) !== 0 && bus >= secondaryBus(r) && bus <= subordinateBus(r);

/** Memory window [base, limit] per the Type 1 header encoding (1 MiB granularity); empty when base > limit. */
function inMemoryWindow(r: PortRegisters, address: number): boolean {
  const base = (r.memoryWindow & 0xfff0) * 0x10000;
  const limit = ((r.memoryWindow >>> 16) & 0xfff0) * 0x10000 + 0xfffff;
  return base <= limit && address >= base && address <= limit;
}

function inPrefetchWindow(r: PortRegisters, address: number): boolean {
  const base = r.prefetchBaseUpper * 2 ** 32 + (r.prefetchWindow & 0xfff0) * 0x10000;
  const limit = r.prefetchLimitUpper * 2 ** 32 + ((r.prefetchWindow >>> 16) & 0xfff0) * 0x10000 + 0xfffff;
  return base <= limit && address >= base && address <= limit;
}

function claimsMemory(r: PortRegisters, address: number): boolean {
  return (r.control & SwitchControl.MemoryEnable) !== 0 && (inMemoryWindow(r, address) || inPrefetchWindow(r, address));
}

/** The slow path's view of a TLP: the header and at most the first data DW. */
function headerAndFirstDw(bytes: Uint8Array): Uint8Array {
  return bytes.slice(0, headerBytes(bytes) + (hasData(bytes) ? 4 : 0));
}

export class SwitchRouter {
  readonly counters: SwitchRouterCounters = {
    fromServer: 0, toServer: 0, malformed: 0, crsCompletions: 0, configToFirmware: 0, unroutedToFirmware: 0, orphaned: 0, tunnelled: 0, tunnelRefused: 0,
    unclaimedCompletions: 0, staleCompletions: 0, unboundUpstream: 0, blockedUpstream: 0, messages: 0, firmwareTlps: 0, firmwareRejected: 0,
  };
  private readonly ports: PortRegisters[] = Array.from({ length: SWITCH_PORTS }, blank);
  /** Non-posted requests tunnelled and not yet completed, by requester ID << 10 | tag. */
  private readonly outstanding = new Map<number, Outstanding>();
  /** Per port: when a TLP last crossed it (ns), or when the router was reset. */
  private readonly lastCrossed: number[];
  private send: ((tlp: Uint8Array) => void) | null = null;

  constructor(private readonly host: SwitchRouterHost) {
    this.lastCrossed = new Array(SWITCH_PORTS).fill(this.now());
  }

  private now(): number {
    return this.host.now?.() ?? 0;
  }

  /** A TLP crossed downstream port `port`, to its tunnel or up from it. */
  private crossed(port: number): void {
    this.lastCrossed[port] = this.now();
  }

  /** SwitchReg.IdleUs of `port`: whole microseconds since a TLP last crossed it (or since reset), saturating; 0 for the upstream port. */
  idleUs(port: number): number {
    if (port < 1 || port > SWITCH_DOWNSTREAM_PORTS) return 0;
    return Math.min(Math.floor((this.now() - this.lastCrossed[port]) / 1000), IDLE_US_MAX);
  }

  /** Plugs the router into the server's root port link. */
  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  /** Back to reset: every register 0, nothing outstanding. */
  reset(): void {
    this.ports.forEach((_, i) => (this.ports[i] = blank()));
    this.outstanding.clear();
    this.lastCrossed.fill(this.now());
  }

  /** Non-posted requests tunnelled through `port` that await their completion. */
  outstandingOn(port: number): number {
    let n = 0;
    for (const o of this.outstanding.values()) if (o.port === port) n++;
    return n;
  }

  /** True when `address` is a register of this block. */
  static holds(address: number): boolean {
    return address >= SWITCH_BASE && address < SWITCH_BASE + SWITCH_PORTS * SWITCH_STRIDE;
  }

  private locate(address: number): [number, SwitchReg] {
    return [Math.floor((address - SWITCH_BASE) / SWITCH_STRIDE), (address - SWITCH_BASE) % SWITCH_STRIDE];
  }

  readRegister(address: number): number {
    const [port, reg] = this.locate(address);
    const r = this.ports[port];
    switch (reg) {
      case SwitchReg.Control: return r.control;
      case SwitchReg.Buses: return r.buses;
      case SwitchReg.MemoryWindow: return r.memoryWindow;
      case SwitchReg.PrefetchWindow: return r.prefetchWindow;
      case SwitchReg.PrefetchBaseUpper: return r.prefetchBaseUpper;
      case SwitchReg.PrefetchLimitUpper: return r.prefetchLimitUpper;
      case SwitchReg.Binding: return r.binding;
      case SwitchReg.IdleUs: return this.idleUs(port);
      default: return 0;
    }
  }

  /**
   * Writes a register; false (refused) for an unknown offset, undefined Control bits (ConfigReady
   * is the upstream port's alone) or a Binding to no tunnel. ConfigReady, once set, stays set
   * until reset: writing 0 there leaves it.
   */
  writeRegister(address: number, value: number): boolean {
    const [port, reg] = this.locate(address);
    const r = this.ports[port];
    value >>>= 0;
    switch (reg) {
      case SwitchReg.Control: {
        const defined = SwitchControl.Forward | SwitchControl.MemoryEnable | SwitchControl.BusMaster | (port === 0 ? SwitchControl.ConfigReady : 0);
        if (value & ~defined) return false;
        const stopped = (r.control & SwitchControl.Forward) !== 0 && (value & SwitchControl.Forward) === 0;
        r.control = value | (r.control & SwitchControl.ConfigReady);
        if (stopped) this.orphan(port);
        return true;
      }
      case SwitchReg.Buses: r.buses = value; return true;
      case SwitchReg.MemoryWindow: r.memoryWindow = value; return true;
      case SwitchReg.PrefetchWindow: r.prefetchWindow = value; return true;
      case SwitchReg.PrefetchBaseUpper: r.prefetchBaseUpper = value; return true;
      case SwitchReg.PrefetchLimitUpper: r.prefetchLimitUpper = value; return true;
      case SwitchReg.Binding:
        if (value >>> 16 !== 0 || (value & 0xff) >= this.host.tunnels) return false;
        r.binding = value;
        return true;
      case SwitchReg.IdleUs: // read-only
      default:
        return false;
    }
  }

  /**
   * Completes every request outstanding on `port` with Unsupported Request, as that port (device
   * port - 1 on the internal bus: PCIe Base 2.9.1, a Downstream Port whose link is down), and forgets it.
   */
  private orphan(port: number): void {
    const completer = routingId(secondaryBus(this.ports[0]), port - 1, 0);
    for (const [key, o] of this.outstanding) {
      if (o.port !== port) continue;
      this.outstanding.delete(key);
      this.counters.orphaned++;
      this.toServer(encodeTlp(errorCompletion(o.request, completer, CplStatus.UnsupportedRequest)));
    }
  }

  private forwarding(port: number): boolean {
    return (this.ports[port].control & SwitchControl.Forward) !== 0;
  }

  private toServer(bytes: Uint8Array): void {
    this.counters.toServer++;
    this.send?.(bytes);
  }

  private toFirmware(reason: TlpRxReason, port: number, bytes: Uint8Array): void {
    if (reason === TlpRxReason.Config) this.counters.configToFirmware++;
    else this.counters.unroutedToFirmware++;
    this.host.toFirmware(reason, port, headerAndFirstDw(bytes));
  }

  /** Into the tunnel of downstream port `port`; a non-posted request is remembered until completed. */
  private tunnel(port: number, bytes: Uint8Array, tlp: Tlp): void {
    const binding = this.ports[port].binding;
    if (!this.host.submit(binding & 0xff, (binding >>> 8) & 0xff, bytes)) {
      this.counters.tunnelRefused++;
      return;
    }
    this.counters.tunnelled++;
    this.crossed(port);
    if (isNonPosted(tlp)) {
      const request = tlp as Extract<Tlp, { requester: number; tag: number }>;
      this.outstanding.set(request.requester * 1024 + request.tag, { port, request: tlp });
    }
  }

  /** Before ConfigReady: completes a configuration request with Configuration Request Retry Status, as the function it addresses. */
  private retryStatus(tlp: ConfigRequest): void {
    this.counters.crsCompletions++;
    this.toServer(encodeTlp(errorCompletion(tlp, routingId(tlp.bus, tlp.device, tlp.fn), CplStatus.ConfigRequestRetry)));
  }

  /** The downstream port whose memory windows hold `address`, behind an upstream port that claims it, or -1. */
  private portForAddress(address: number): number {
    if (!claimsMemory(this.ports[0], address)) return -1;
    for (let p = 1; p <= SWITCH_DOWNSTREAM_PORTS; p++) if (claimsMemory(this.ports[p], address)) return p;
    return -1;
  }

  /** The downstream port whose bus range holds `bus`, or -1. */
  private portForBus(bus: number): number {
    for (let p = 1; p <= SWITCH_DOWNSTREAM_PORTS; p++) if (forwardsBus(this.ports[p], bus)) return p;
    return -1;
  }

  /** Set by the link from the server: called when a tunnel has room again (Fabric, on its room event). */
  onRoom?: () => void;

  /**
   * Flow control toward the server's link: a memory request or completion waits there while the
   * send queue of the tunnel it would enter is full (TunnelReg.QueueBytes), as the card's credits
   * would hold it. Everything else (configuration, what goes to the firmware) always has room.
   */
  accepts(bytes: Uint8Array): boolean {
    if (!this.host.hasRoom) return true;
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) return true;
    let port = -1;
    if (tlp.kind === "MRd" || tlp.kind === "MRdLk" || tlp.kind === "MWr") port = this.portForAddress(tlp.address);
    else if (tlp.kind === "Cpl" || tlp.kind === "CplD" || tlp.kind === "CplLk" || tlp.kind === "CplDLk") port = this.portForBus(tlp.requester >> 8);
    if (port <= 0 || !this.forwarding(port)) return true;
    return this.host.hasRoom(this.ports[port].binding & 0xff, tlpClass(bytes) as TlpClass);
  }

  /** A TLP from the server. */
  receive(bytes: Uint8Array): void {
    this.counters.fromServer++;
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) {
      this.counters.malformed++;
      return;
    }
    const upstream = this.ports[0];
    if (isConfigRequest(tlp) && (upstream.control & SwitchControl.ConfigReady) === 0) {
      this.retryStatus(tlp);
      return;
    }
    switch (tlp.kind) {
      case "CfgRd0":
      case "CfgWr0":
        this.toFirmware(TlpRxReason.Config, 0, bytes);
        return;
      case "CfgRd1":
      case "CfgWr1": {
        if (secondaryBus(upstream) !== 0 && tlp.bus === secondaryBus(upstream)) {
          this.toFirmware(TlpRxReason.Config, tlp.device < SWITCH_DOWNSTREAM_PORTS ? tlp.device + 1 : NO_PORT, bytes);
          return;
        }
        const port = forwardsBus(upstream, tlp.bus) ? this.portForBus(tlp.bus) : -1;
        if (port < 0 || !this.forwarding(port)) {
          this.toFirmware(TlpRxReason.Unrouted, port < 0 ? NO_PORT : port, bytes);
          return;
        }
        if (tlp.bus !== secondaryBus(this.ports[port])) {
          this.tunnel(port, bytes, tlp);
          return;
        }
        if (tlp.device !== 0) {
          // Only device 0 sits below a downstream port (no ARI).
          this.toFirmware(TlpRxReason.Unrouted, port, bytes);
          return;
        }
        const type0 = bytes.slice();
        type0[TlpHeader.FmtType] = (type0[TlpHeader.FmtType] & 0xe0) | TlpType.Cfg0;
        this.tunnel(port, type0, tlp);
        return;
      }
      case "MRd":
      case "MRdLk":
      case "MWr": {
        const port = this.portForAddress(tlp.address);
        if (port > 0 && this.forwarding(port)) this.tunnel(port, bytes, tlp);
        else this.toFirmware(TlpRxReason.Unrouted, port > 0 ? port : NO_PORT, bytes);
        return;
      }
      case "Cpl":
      case "CplD":
      case "CplLk":
      case "CplDLk": {
        const port = this.portForBus(tlp.requester >> 8);
        if (port > 0 && this.forwarding(port)) this.tunnel(port, bytes, tlp);
        else this.counters.unclaimedCompletions++;
        return;
      }
      case "Msg":
      case "MsgD":
        this.counters.messages++;
        return;
      default:
        this.toFirmware(TlpRxReason.Unrouted, NO_PORT, bytes);
    }
  }

  /** A TLP from chassis slot `slot` behind tunnel `tunnel`, on its way to the server. */
  fromTunnel(tunnel: number, slot: number, bytes: Uint8Array): void {
    const binding = tunnel | (slot << 8);
    let port = -1;
    for (let p = 1; p <= SWITCH_DOWNSTREAM_PORTS && port < 0; p++) if (this.forwarding(p) && this.ports[p].binding === binding) port = p;
    if (port < 0) {
      this.counters.unboundUpstream++;
      return;
    }
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) {
      this.counters.malformed++;
      return;
    }
    if (tlp.kind === "Cpl" || tlp.kind === "CplD" || tlp.kind === "CplLk" || tlp.kind === "CplDLk") {
      const key = tlp.requester * 1024 + tlp.tag;
      const request = this.outstanding.get(key);
      if (!request || request.port !== port) {
        this.counters.staleCompletions++;
        return;
      }
      // The last completion of a request returns no more bytes than it carries (section 2.3.1.1).
      const byteCount = tlp.byteCount === 0 ? 4096 : tlp.byteCount;
      if (!tlp.data || byteCount <= tlp.data.length || tlp.status !== CplStatus.SuccessfulCompletion) this.outstanding.delete(key);
      this.crossed(port);
      this.toServer(bytes);
      return;
    }
    const master = SwitchControl.BusMaster;
    if ((this.ports[port].control & master) === 0 || (this.ports[0].control & master) === 0) {
      this.counters.blockedUpstream++;
      if (isNonPosted(tlp)) this.host.submit(tunnel, slot, encodeTlp(errorCompletion(tlp, this.portId(port), CplStatus.UnsupportedRequest)));
      return;
    }
    this.crossed(port);
    this.toServer(bytes);
  }

  /** Routing ID of downstream port `port`: device port - 1 on the upstream port's secondary bus. */
  private portId(port: number): number {
    return (secondaryBus(this.ports[0]) << 8) | ((port - 1) << 3);
  }

  /** TLP_TX: a completion or an MSI from the firmware, up to the server; false if refused. */
  fromFirmware(bytes: Uint8Array): boolean {
    const tlp = decodeTlp(bytes);
    const allowed = !isMalformed(tlp) && (tlp.kind === "Cpl" || tlp.kind === "CplLk" || ((tlp.kind === "CplD" || tlp.kind === "CplDLk" || tlp.kind === "MWr") && tlp.data!.length === 4));
    if (!allowed) {
      this.counters.firmwareRejected++;
      return false;
    }
    this.counters.firmwareTlps++;
    this.toServer(bytes);
    return true;
  }
}
