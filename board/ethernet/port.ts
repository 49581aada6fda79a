// The boundary between a device with an Ethernet interface (a card's MAC, a switch) and
// the cable it is plugged into. The network model (tools/sim/net/) provides EthernetPort;
// the device implements PortDevice.

export type LinkSpeed = 1e9 | 10e9 | 25e9 | 40e9;

export interface EthernetPort {
  readonly name: string;
  /** Line rate in bits per second. */
  readonly rateBps: number;
  /** Carrier: false while the link is down (cable pulled, port failed). */
  readonly up: boolean;
  /** True while a frame is being serialised or waits in the egress queue. */
  readonly busy: boolean;
  /** Bytes waiting in the egress queue, not counting the frame being serialised. */
  readonly queuedBytes: number;
  /**
   * Queues a whole frame (FCS included) for transmission. Returns false when the frame
   * is dropped: egress buffer full (tail drop) or link down. Counted by the port.
   * The port keeps a reference to the bytes: the sender must not change them afterwards.
   */
  send(frame: Uint8Array): boolean;
  /** Attaches the device that receives this port's frames and notifications. */
  attach(device: PortDevice): void;
}

export interface PortDevice {
  /**
   * A frame has been received in full. Its FCS is not checked yet: that is the receiver's
   * job. The bytes may be shared (duplicates, flooded copies): treat them as read-only.
   */
  receive(frame: Uint8Array, port: EthernetPort): void;
  /** The egress queue has just drained: a device that paces itself may send again. */
  transmitIdle?(port: EthernetPort): void;
  /** Carrier came up or went down. */
  carrier?(up: boolean, port: EthernetPort): void;
}
