// A firmware-free model of the host card's switch for fabric-level paths (remote-pcie.ts:
// PCIe benchmarks and server tests that program tunnels through registers, without link
// training). On the card the firmware serves the virtual ports (assembly/pcie/) and the
// fabric's router moves the TLPs (board/pcie/switch-router.ts); this model does both at once,
// without hot-plug: it answers configuration requests for its own ports, converts Type 1
// requests for the bus right below a downstream port into Type 0 ones and tunnels them, and
// routes memory requests by the downstream ports' windows and completions by their bus ranges.

import { ConfigSpace, Command, defineType1Header, type Type1Header } from "../../board/pcie/config-space.ts";
import { addExpress, addMsi, PortType, LinkSpeed } from "../../board/pcie/capabilities.ts";
import { decodeTlp, isMalformed, tlpClass, CplStatus, TlpClass, TlpType, type Tlp } from "../../board/pcie/tlp.ts";
import { configCompletion, errorCompletion, isNonPosted } from "../../board/pcie/completer.ts";
import { encodeTlp } from "../../board/pcie/tlp.ts";
import type { Uplink } from "../../board/pcie/chassis-root.ts";
import { SWITCH_VENDOR_ID, SWITCH_UPSTREAM_DEVICE_ID, SWITCH_DOWNSTREAM_DEVICE_ID } from "../../board/map/pcie.ts";


interface Port {
  config: ConfigSpace;
  header: Type1Header;
}

interface DownstreamPort extends Port {
  tunnel: Uplink;
  slot: number;
}

export interface SwitchModelCounters {
  malformed: number;
  unsupportedRequests: number;
  tunnelledDown: number;
  /** TLPs the tunnel refused (beyond its MaxPayload, or a slot it cannot carry), dropped. */
  tunnelRefused: number;
  toServer: number;
  /** Completions or posted requests that no port claims, dropped. */
  unclaimed: number;
}

function bridge(deviceId: number, portType: PortType, physicalSlot?: number): Port {
  const config = new ConfigSpace(4096);
  const header = defineType1Header(config, { vendorId: SWITCH_VENDOR_ID, deviceId, io: false, prefetchable: 64 });
  addMsi(config, { vectors: 1 });
  addExpress(config, {
    portType,
    link: { maxSpeed: LinkSpeed.Gen3, maxWidth: 4 },
    ...(physicalSlot !== undefined ? { slot: { physicalSlot, hotPlugCapable: false, hotPlugSurprise: false, attentionButton: false, powerController: false } } : {}),
  });
  return { config, header };
}

export class SwitchModel {
  readonly counters: SwitchModelCounters = { malformed: 0, unsupportedRequests: 0, tunnelledDown: 0, tunnelRefused: 0, toServer: 0, unclaimed: 0 };
  readonly upstream: Port;
  readonly downstream: DownstreamPort[];
  /** Bus and device number of the upstream port, captured from Type 0 requests. */
  private upstreamId = 0;
  private send: ((tlp: Uint8Array) => void) | null = null;

  constructor(ports: { tunnel: Uplink; slot: number }[]) {
    this.upstream = bridge(SWITCH_UPSTREAM_DEVICE_ID, PortType.UpstreamPort);
    this.downstream = [];
    ports.forEach(({ tunnel, slot }, i) => this.downstream.push({ ...bridge(SWITCH_DOWNSTREAM_DEVICE_ID, PortType.DownstreamPort, i + 1), tunnel, slot }));
    for (const tunnel of new Set(ports.map((p) => p.tunnel))) tunnel.onRoom?.(() => this.onRoom?.());
  }

  /** Plugs the switch into the server's root port link. */
  connect(send: (tlp: Uint8Array) => void): void {
    this.send = send;
  }

  private toServer(tlp: Tlp | Uint8Array): void {
    this.counters.toServer++;
    this.send?.(tlp instanceof Uint8Array ? tlp : encodeTlp(tlp));
  }

  private unsupported(tlp: Tlp, completer: number): void {
    this.counters.unsupportedRequests++;
    if (isNonPosted(tlp)) this.toServer(errorCompletion(tlp, completer, CplStatus.UnsupportedRequest));
  }

  private tunnel(port: DownstreamPort, bytes: Uint8Array): void {
    if (port.tunnel.submit(bytes, port.slot)) this.counters.tunnelledDown++;
    else this.counters.tunnelRefused++;
  }

  private forwards(port: Port, bus: number): boolean {
    return port.header.forwardsBus(bus);
  }

  /** Set by the link from the server: called when a tunnel this switch feeds has room again. */
  onRoom?: () => void;

  /** Flow control toward the server's link: a memory request or completion waits while the send queue of the tunnel it would enter is full. */
  accepts(bytes: Uint8Array): boolean {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) return true;
    let port: DownstreamPort | null | undefined = null;
    if (tlp.kind === "MRd" || tlp.kind === "MWr") port = this.memoryTarget(tlp.address);
    else if (tlp.kind === "Cpl" || tlp.kind === "CplD") port = this.completionTarget(tlp.requester);
    return !port || (port.tunnel.hasRoom?.(tlpClass(bytes) as TlpClass) ?? true);
  }

  /** A TLP from the server. */
  receive(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    if (isMalformed(tlp)) {
      this.counters.malformed++;
      return;
    }
    switch (tlp.kind) {
      case "CfgRd0":
      case "CfgWr0":
        this.upstreamId = (tlp.bus << 8) | (tlp.device << 3);
        if (tlp.fn !== 0) this.unsupported(tlp, this.upstreamId);
        else this.toServer(configCompletion(this.upstream.config, tlp, this.upstreamId));
        return;
      case "CfgRd1":
      case "CfgWr1": {
        const secondary = this.upstream.header.secondaryBus.get();
        if (tlp.bus === secondary) {
          const port = this.downstream[tlp.device];
          if (!port || tlp.fn !== 0) this.unsupported(tlp, this.upstreamId);
          else this.toServer(configCompletion(port.config, tlp, (secondary << 8) | (tlp.device << 3)));
          return;
        }
        const port = this.downstream.find((p) => this.forwards(p, tlp.bus));
        if (!port || !this.forwards(this.upstream, tlp.bus)) {
          this.unsupported(tlp, this.upstreamId);
          return;
        }
        if (tlp.bus === port.header.secondaryBus.get()) {
          if (tlp.device !== 0) {
            this.unsupported(tlp, this.upstreamId); // only device 0 sits below a downstream port
            return;
          }
          const type0 = bytes.slice();
          type0[0] = (type0[0] & 0xe0) | TlpType.Cfg0;
          this.tunnel(port, type0);
        } else this.tunnel(port, bytes);
        return;
      }
      case "MRd":
      case "MWr": {
        const port = this.memoryTarget(tlp.address);
        if (port) this.tunnel(port, bytes);
        else this.unsupported(tlp, this.upstreamId);
        return;
      }
      case "Cpl":
      case "CplD": {
        const port = this.completionTarget(tlp.requester);
        if (port) this.tunnel(port, bytes);
        else this.counters.unclaimed++;
        return;
      }
      case "Msg":
      case "MsgD":
        return;
      default:
        this.unsupported(tlp, this.upstreamId);
    }
  }

  /** The downstream port whose memory or prefetchable window holds `address`, behind an enabled upstream port. */
  private memoryTarget(address: number): DownstreamPort | null {
    const at = BigInt(address);
    const inside = (port: Port) => {
      if (!port.header.command.test(Command.Memory)) return false;
      return [port.header.memoryWindow(), port.header.prefetchableWindow()].some((w) => w !== null && at >= w.base && at <= w.limit);
    };
    if (!inside(this.upstream)) return null;
    return this.downstream.find(inside) ?? null;
  }

  /** The downstream port whose bus range holds the bus of `requester`, where its completion goes. */
  private completionTarget(requester: number): DownstreamPort | undefined {
    return this.downstream.find((p) => this.forwards(p, requester >> 8));
  }

  /** A TLP from a chassis slot, arriving through the tunnel: on to the server. */
  fromTunnel(tlp: Uint8Array): void {
    this.toServer(tlp);
  }
}
