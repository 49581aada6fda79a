// The management station's network interface in a simulated world (docs/management.md):
// a PortDevice on the end of a cable to a switch port (the scenario's `management`), the
// way a card's MAC is on the end of its cable.
//
// Inside the simulation, client() gives a ManageClient on virtual time: its requests enter
// the network at the current virtual time and its timers are scheduler actions. Start its
// requests from a scheduled action or a hook and do not await them there (the scheduler
// would wait for the answer it has to deliver itself): `scheduler.at(t, () => {
// client.discover(50).then(...) })`. Timer expiries and received frames run as actions that
// let pending promise continuations settle before time moves on, so an exchange happens at
// the same virtual times on every run.
//
// serve() bridges the port to TCP for `iov sim --manage`: every connected client (each an
// `iov manage` process, or anything that speaks QEMU's stream framing) sends frames into
// the port and receives every frame that comes out of it. Frames on the stream have no FCS;
// the bridge pads and adds it towards the switch, and checks and strips it towards the
// clients.

import { createServer, type Server, type Socket } from "node:net";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { EthernetPort, PortDevice } from "../../board/ethernet/port.ts";
import { FCS_SIZE, fcsValid, HEADER_SIZE } from "../../board/ethernet/frame.ts";
import { wireFrame } from "../../board/link-codec.ts";
import { formatSerial } from "../../board/manage-codec.ts";
import { ManageClient, RequestCounter, stationIdentity, type Clock, type ManageClientOptions, type StationIdentity } from "../manage/client.ts";
import { StreamDecoder, streamFrame, type FrameTransport } from "../manage/transport.ts";
import type { Network } from "./net/network.ts";
import type { EventScheduler } from "./scheduler.ts";

/** Where the station is plugged in: a switch port. */
export interface ManagementSpec {
  switch: string;
  port: number;
}

/** The name of the station's cable in the network. */
export const MANAGEMENT_CABLE = "management";

/** The largest frame the bridge takes from a client: a tagged jumbo frame (no FCS). */
const MAX_CLIENT_FRAME = HEADER_SIZE + 4 + 9216;

export interface ManagementCounters {
  /** Frames the station's port received with a good FCS, and with a bad one (dropped). */
  rxFrames: number;
  rxBadFcs: number;
  /** Frames sent into the network, and those the port refused (link down, queue full). */
  txFrames: number;
  txDropped: number;
}

export interface ManagementEndpoint {
  host: string;
  port: number;
}

/** Lets the microtasks a callback queued run to the end (setImmediate comes after them all). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A Clock on the scheduler's virtual time: milliseconds, and timers as actions after which
 * the promise continuations they set off have run (so they act at the timer's virtual time).
 */
export function schedulerClock(scheduler: EventScheduler): Clock {
  return {
    now: () => scheduler.now / 1e6,
    after: (ms, cb) => {
      const handle = scheduler.at(scheduler.now + Math.max(0, Math.round(ms * 1e6)), async () => {
        cb();
        await settle();
      });
      return () => scheduler.cancel(handle);
    },
  };
}

export class ManagementPort implements PortDevice {
  readonly station: StationIdentity;
  /** Shared by every client() of this station, so that their counters never repeat. */
  readonly counter: RequestCounter;
  readonly counters: ManagementCounters = { rxFrames: 0, rxBadFcs: 0, txFrames: 0, txDropped: 0 };
  /** Virtual time in milliseconds, timers as scheduler actions. */
  readonly clock: Clock;
  private readonly ethernet: EthernetPort;
  private readonly listeners = new Set<(frame: Uint8Array) => void>();

  /**
   * Lays the station's cable to `spec`'s switch port. The station's identity and first
   * counter come from `seed`; `vlan` and `key` are the defaults of client().
   */
  constructor(private readonly scheduler: EventScheduler, network: Network, spec: ManagementSpec,
    private readonly defaults: { seed: number; vlan: number; key: Uint8Array }) {
    const rng = xoroshiro128plus((defaults.seed ^ 0x4d47_0000) >>> 0);
    const random = (n: number) => Uint8Array.from({ length: n }, () => uniformInt(rng, 0, 255));
    this.station = stationIdentity(random);
    this.counter = new RequestCounter(BigInt(uniformInt(rng, 1, 0x7fff_ffff)));
    this.clock = schedulerClock(scheduler);
    this.ethernet = network.connect(MANAGEMENT_CABLE, this, { switch: spec.switch, port: spec.port }).a;
  }

  /** A FrameTransport on this port in virtual time: frames out at the current time, frames in as scheduler actions. */
  transport(): FrameTransport {
    let mine: ((frame: Uint8Array) => void) | null = null;
    return {
      send: (frame) => this.transmit(frame),
      onFrame: (cb) => {
        if (mine) this.listeners.delete(mine);
        mine = (frame) => {
          this.scheduler.at(this.scheduler.now, async () => {
            cb(frame);
            await settle();
          });
        };
        this.listeners.add(mine);
      },
      close: () => {
        if (mine) this.listeners.delete(mine);
        mine = null;
      },
    };
  }

  /** A management client of this station on virtual time; by default with the scenario's admin key and management VLAN. */
  client(o: Partial<Omit<ManageClientOptions, "transport" | "clock" | "station" | "counter">> = {}): ManageClient {
    return new ManageClient({
      key: this.defaults.key, vlan: this.defaults.vlan, ...o,
      transport: this.transport(), clock: this.clock, station: this.station, counter: this.counter,
    });
  }

  /**
   * Moves card `serial` to `group` (a scenario action): SetGroup through a client of its own,
   * the outcome told to `note` and to `done` (null: the card took it).
   */
  assign(serial: number, group: number, note: (text: string, level: "info" | "error") => void, done?: (error: Error | null) => void): void {
    const client = this.client();
    client.setGroup(serial, group).then(
      (reply) => {
        note(`card ${formatSerial(serial)} moved to group ${reply.group}`, "info");
        done?.(null);
      },
      (error: Error) => {
        note(error.message, "error");
        done?.(error);
      },
    ).finally(() => client.close());
  }

  /** Sends a frame (no FCS) into the network now: padded to the minimum size, FCS added. */
  transmit(frame: Uint8Array): void {
    if (this.ethernet.send(wireFrame(frame))) this.counters.txFrames++;
    else this.counters.txDropped++;
  }

  receive(frame: Uint8Array): void {
    if (frame.length < HEADER_SIZE + FCS_SIZE || !fcsValid(frame)) {
      this.counters.rxBadFcs++;
      return;
    }
    this.counters.rxFrames++;
    const bare = frame.slice(0, frame.length - FCS_SIZE);
    for (const listener of this.listeners) listener(bare);
  }

  /**
   * Serves the port over TCP on 127.0.0.1:`port` (0: one the system picks) with QEMU's
   * stream framing. `inject` runs a client's frame at the simulation's current time.
   */
  async serve(port: number, inject: (action: () => void) => void): Promise<{ endpoint: ManagementEndpoint; close: () => void }> {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.setNoDelay(true);
      const forward = (frame: Uint8Array) => {
        if (socket.writable) socket.write(streamFrame(frame));
      };
      this.listeners.add(forward);
      const decoder = new StreamDecoder((frame) => {
        if (frame.length >= HEADER_SIZE && frame.length <= MAX_CLIENT_FRAME) inject(() => this.transmit(frame));
      });
      socket.on("data", (chunk: Buffer) => {
        try {
          decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
        } catch {
          socket.destroy();
        }
      });
      socket.on("error", () => socket.destroy());
      socket.on("close", () => {
        sockets.delete(socket);
        this.listeners.delete(forward);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    }).catch((error: NodeJS.ErrnoException) => {
      server.close();
      throw new Error(`management port: cannot listen on 127.0.0.1:${port} (${error.code ?? error.message})`);
    });
    const address = server.address();
    return {
      endpoint: { host: "127.0.0.1", port: typeof address === "object" && address ? address.port : port },
      close: () => {
        for (const socket of sockets) socket.destroy();
        server.close();
      },
    };
  }
}
