// A PCIe link between two ports, as the transaction layer sees it: TLPs leave in order at the
// link's data rate, each paying its physical and data link layer framing, and arrive after a
// fixed latency. Used for the server's root port to the host card, and for each chassis slot.
// Flow control on these short links is not modelled: they are never the bottleneck next to
// the tunnel, whose credits are (board/tunnel/credits.ts).

import type { Scheduler } from "../scheduler.ts";

export interface PcieLinkConfig {
  /** Generation: 1 (2.5 GT/s, 8b/10b), 2 (5 GT/s, 8b/10b), 3 (8 GT/s, 128b/130b), 4 (16 GT/s), 5 (32 GT/s). */
  generation: 1 | 2 | 3 | 4 | 5;
  lanes: 1 | 2 | 4 | 8 | 16;
  /** One-way latency of PHY, data link layer and flight: from the last byte sent to the last byte received. */
  latencyNs: number;
}

const TRANSFER_RATE_GT = { 1: 2.5, 2: 5, 3: 8, 4: 16, 5: 32 } as const;

/**
 * Framing a TLP pays on the link, in bytes. Gen1/2: STP and END symbols (2), sequence number
 * (2), LCRC (4). Gen3 and later: a 4-byte STP token that holds the sequence number, LCRC (4).
 * Eight bytes either way.
 */
export const TLP_FRAMING_BYTES = 8;

/** Payload bytes per ns of the link after line encoding. */
export function linkBytesPerNs(config: Pick<PcieLinkConfig, "generation" | "lanes">): number {
  const efficiency = config.generation <= 2 ? 8 / 10 : 128 / 130;
  return (TRANSFER_RATE_GT[config.generation] * config.lanes * efficiency) / 8;
}

/**
 * Sustained payload rate of a stream of writes of `payload` bytes with a `header`-byte
 * header, allowing `dllpShare` of the link for acknowledgement and flow-control DLLPs.
 */
export function writeStreamBytesPerNs(config: Pick<PcieLinkConfig, "generation" | "lanes">, payload: number, header: number, dllpShare = 0.03): number {
  const perTlp = payload + header + TLP_FRAMING_BYTES;
  return linkBytesPerNs(config) * (1 - dllpShare) * (payload / perTlp);
}

/** Anything at one end of a link: it is given a way to send, and receives what arrives. */
export interface PcieDevice {
  connect(send: (tlp: Uint8Array) => void): void;
  receive(tlp: Uint8Array): void;
}

export interface PcieEnd {
  /** Called with each TLP arriving at this end. */
  onTlp: ((tlp: Uint8Array) => void) | null;
  send(tlp: Uint8Array): void;
}

class Direction implements PcieEnd {
  onTlp: ((tlp: Uint8Array) => void) | null = null;
  peer!: Direction;
  private freeAt = 0;
  /** Bumped when the link goes down: TLPs sent before it are lost. */
  private epoch = 0;

  constructor(private readonly scheduler: Scheduler, private readonly config: PcieLinkConfig, private readonly bytesPerNs: number) {}

  send(tlp: Uint8Array): void {
    const start = Math.max(this.scheduler.now, this.freeAt);
    this.freeAt = start + (tlp.length + TLP_FRAMING_BYTES) / this.bytesPerNs;
    const arrival = Math.ceil(this.freeAt + this.config.latencyNs);
    const epoch = this.epoch;
    this.scheduler.at(arrival, () => {
      if (epoch === this.epoch) this.peer.onTlp?.(tlp);
    });
  }

  /** The link went down: what is in flight is lost. */
  drop(): void {
    this.epoch++;
    this.freeAt = 0;
  }
}

export class PcieLink {
  /** The upstream end (root port, or the chassis card's slot port). */
  readonly up: PcieEnd;
  /** The downstream end (the card or device plugged in). */
  readonly down: PcieEnd;
  private readonly directions: Direction[];

  constructor(scheduler: Scheduler, readonly config: PcieLinkConfig) {
    const rate = linkBytesPerNs(config);
    const up = new Direction(scheduler, config, rate);
    const down = new Direction(scheduler, config, rate);
    up.peer = down;
    down.peer = up;
    this.up = up;
    this.down = down;
    this.directions = [up, down];
  }

  /** A fundamental reset retrains the link: TLPs in flight either way are lost. */
  reset(): void {
    for (const d of this.directions) d.drop();
  }

  /** Plugs `device` into the downstream end of the link. */
  plugDown(device: PcieDevice): void {
    device.connect((tlp) => this.down.send(tlp));
    this.down.onTlp = (tlp) => device.receive(tlp);
  }

  /** Plugs `device` (a root port, a slot's port) into the upstream end of the link. */
  plugUp(device: PcieDevice): void {
    device.connect((tlp) => this.up.send(tlp));
    this.up.onTlp = (tlp) => device.receive(tlp);
  }
}
