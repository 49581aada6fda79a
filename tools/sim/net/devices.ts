// Simple network endpoints: a recorder that logs everything a port hands it (frames,
// carrier changes, transmit-idle notifications) with the virtual time, for tests, traces
// and scenarios that need a passive station.

import type { EthernetPort, PortDevice } from "../../../board/ethernet/port.ts";
import type { Scheduler } from "../../../board/scheduler.ts";

export interface Received {
  timeNs: number;
  port: string;
  frame: Uint8Array;
}

export class Recorder implements PortDevice {
  readonly frames: Received[] = [];
  readonly carriers: { timeNs: number; port: string; up: boolean }[] = [];
  readonly idles: { timeNs: number; port: string }[] = [];
  /** Called after each received frame is logged (e.g. to reply). */
  onReceive: ((frame: Uint8Array, port: EthernetPort) => void) | null = null;
  /** Called after each transmit-idle notification is logged (e.g. to send more). */
  onIdle: ((port: EthernetPort) => void) | null = null;

  constructor(private readonly scheduler: Pick<Scheduler, "now">, readonly keepFrames = true) {}

  receive(frame: Uint8Array, port: EthernetPort): void {
    if (this.keepFrames) this.frames.push({ timeNs: this.scheduler.now, port: port.name, frame });
    this.onReceive?.(frame, port);
  }

  transmitIdle(port: EthernetPort): void {
    this.idles.push({ timeNs: this.scheduler.now, port: port.name });
    this.onIdle?.(port);
  }

  carrier(up: boolean, port: EthernetPort): void {
    this.carriers.push({ timeNs: this.scheduler.now, port: port.name, up });
  }
}
