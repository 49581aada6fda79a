// The host card's switch router (board/pcie/switch-router.ts) on its own: its registers, how it
// routes each kind of TLP by them, what it hands to the firmware, the orphan rule, and the
// Configuration Request Retry Status it answers with until the firmware is ready.

import { test } from "node:test";
import assert from "node:assert/strict";
import { SwitchRouter } from "../../board/pcie/switch-router.ts";
import { SwitchReg, SwitchControl, SWITCH_BASE, SWITCH_STRIDE, BOARD_ID, CardReg, FabricEventKind } from "../../board/map/registers.ts";
import { Fabric } from "../../board/fabric.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { TlpRxReason, NO_PORT } from "../../board/map/mailbox.ts";
import {
  encodeTlp, decodeTlp, isMalformed, memoryRead, memoryWrite, completionWithData, DEFAULT_COMMON, CplStatus, type Tlp,
} from "../../board/pcie/tlp.ts";

const ROOT = 0x0008; // requester 00:01.0
const reg = (port: number, r: SwitchReg) => SWITCH_BASE + port * SWITCH_STRIDE + r;

class Bench {
  readonly toServer: Tlp[] = [];
  readonly firmware: { reason: TlpRxReason; port: number; tlp: Uint8Array }[] = [];
  readonly tunnelled: { tunnel: number; slot: number; tlp: Tlp }[] = [];
  refuse = false;
  /** The router's clock, ns. */
  time = 0;
  readonly router = new SwitchRouter({
    toFirmware: (reason, port, tlp) => this.firmware.push({ reason, port, tlp }),
    submit: (tunnel, slot, tlp) => {
      if (this.refuse) return false;
      const decoded = decodeTlp(tlp);
      assert.ok(!isMalformed(decoded));
      this.tunnelled.push({ tunnel, slot, tlp: decoded });
      return true;
    },
    tunnels: 2,
    now: () => this.time,
  });

  constructor() {
    this.router.connect((bytes) => {
      const tlp = decodeTlp(bytes);
      assert.ok(!isMalformed(tlp));
      this.toServer.push(tlp);
    });
  }

  write(port: number, r: SwitchReg, value: number): void {
    assert.ok(this.router.writeRegister(reg(port, r), value), `write ${SwitchReg[r]} of port ${port}`);
  }

  /**
   * The firmware ready (ConfigReady) and the routing an OS gives a switch below bus 1: internal bus 2, port 1 owns bus 3 and memory
   * 0xe0000000-0xe00fffff, port 2 owns bus 4 and 0xe0100000-0xe01fffff; port 1 bound to tunnel 0
   * slot 1, port 2 to tunnel 1 slot 0; both forwarding.
   */
  programmed(): this {
    const all = SwitchControl.MemoryEnable | SwitchControl.BusMaster;
    this.write(0, SwitchReg.Buses, 0x04_02_01);
    this.write(0, SwitchReg.MemoryWindow, 0xe010_e000);
    this.write(0, SwitchReg.Control, all | SwitchControl.ConfigReady);
    this.write(1, SwitchReg.Buses, 0x03_03_02);
    this.write(1, SwitchReg.MemoryWindow, 0xe000_e000);
    this.write(1, SwitchReg.Binding, 0x0100);
    this.write(1, SwitchReg.Control, all | SwitchControl.Forward);
    this.write(2, SwitchReg.Buses, 0x04_04_02);
    this.write(2, SwitchReg.MemoryWindow, 0xe010_e010);
    this.write(2, SwitchReg.Binding, 0x0001);
    this.write(2, SwitchReg.Control, all | SwitchControl.Forward);
    return this;
  }
}

function config(kind: "CfgRd0" | "CfgRd1" | "CfgWr1", bus: number, device: number, tag = 1): Uint8Array {
  const data = kind === "CfgWr1" ? new Uint8Array(4) : undefined;
  return encodeTlp({ kind, ...DEFAULT_COMMON, requester: ROOT, tag, firstBe: 0xf, bus, device, fn: 0, register: 0, ...(data ? { data } : {}) } as Tlp);
}

test("every register resets to 0, keeps what is written, and refuses undefined Control bits, Binding to no tunnel and unknown offsets", () => {
  const { router } = new Bench();
  for (let port = 0; port < 9; port++) for (const r of [0, 4, 8, 12, 16, 20, 24]) assert.equal(router.readRegister(reg(port, r)), 0);
  assert.ok(router.writeRegister(reg(3, SwitchReg.PrefetchBaseUpper), 0xdead_beef));
  assert.equal(router.readRegister(reg(3, SwitchReg.PrefetchBaseUpper)), 0xdead_beef);
  assert.equal(router.writeRegister(reg(1, SwitchReg.Control), SwitchControl.ConfigReady), false, "ConfigReady is the upstream port's");
  assert.equal(router.writeRegister(reg(0, SwitchReg.Control), 1 << 4), false);
  assert.equal(router.writeRegister(reg(1, SwitchReg.Binding), 0x0002), false, "tunnel 2 of 2");
  assert.equal(router.writeRegister(reg(1, SwitchReg.Binding), 0x1_0000), false, "bits 31:16");
  assert.equal(router.writeRegister(reg(1, 0x1c as SwitchReg), 1), false);
  assert.ok(SwitchRouter.holds(SWITCH_BASE) && SwitchRouter.holds(SWITCH_BASE + 9 * SWITCH_STRIDE - 4) && !SwitchRouter.holds(SWITCH_BASE + 9 * SWITCH_STRIDE));
});

test("until the firmware sets ConfigReady the router completes every configuration request with CRS itself; then they go to the firmware", () => {
  const b = new Bench();
  b.router.receive(config("CfgRd0", 1, 0, 1));
  b.router.receive(config("CfgRd1", 2, 0, 2));
  b.router.receive(config("CfgWr1", 3, 0, 3));
  b.router.receive(memoryRead(ROOT, 4, 0xe000_0000, 4));
  assert.deepEqual(b.toServer.map((t) => t.kind === "Cpl" && [t.status, t.tag, t.completer]), [
    [CplStatus.ConfigRequestRetry, 1, 0x0100], [CplStatus.ConfigRequestRetry, 2, 0x0200], [CplStatus.ConfigRequestRetry, 3, 0x0300],
  ], "as the function each addresses; not the memory read");
  assert.equal(b.router.counters.crsCompletions, 3);
  assert.deepEqual(b.firmware.map((f) => f.reason), [TlpRxReason.Unrouted], "the firmware got only the memory read");
  b.write(0, SwitchReg.Control, SwitchControl.ConfigReady);
  b.router.receive(config("CfgRd0", 1, 0, 5));
  assert.deepEqual(b.firmware.map((f) => [f.reason, f.port]), [[TlpRxReason.Unrouted, NO_PORT], [TlpRxReason.Config, 0]]);
  assert.equal(b.router.counters.crsCompletions, 3);
  b.write(0, SwitchReg.Control, 0);
  assert.equal(b.router.readRegister(reg(0, SwitchReg.Control)), SwitchControl.ConfigReady, "stays set until reset");
  b.router.reset();
  b.router.receive(config("CfgRd0", 1, 0, 6));
  assert.equal(b.router.counters.crsCompletions, 4, "a reset makes the switch not ready again");
  assert.equal(b.firmware.length, 2);
});

test("the router's CRS completion is a Cpl with Completion Status 010b, byte for byte", () => {
  const b = new Bench();
  const sent: Uint8Array[] = [];
  b.router.connect((bytes) => sent.push(bytes));
  b.router.receive(config("CfgRd1", 0x12, 0x03, 0x5a)); // 12:03.0 from 00:01.0
  assert.deepEqual([...sent[0]], [
    0x0a, 0x00, 0x00, 0x00, //   Fmt 000 (3 DW, no data), Type 01010 (Cpl), TC 0, no attributes, Length 0
    0x12, 0x18, //               Completer ID 12:03.0
    0x40, 0x04, //               Completion Status 010b (CRS), BCM 0, Byte Count 4
    0x00, 0x08, 0x5a, //         Requester ID 00:01.0, Tag
    0x00, //                     Lower Address 0
  ]);
});

test("configuration requests for the switch's own ports go to the firmware with the port they address", () => {
  const b = new Bench().programmed();
  b.router.receive(config("CfgRd0", 1, 0));
  b.router.receive(config("CfgRd1", 2, 0));
  b.router.receive(config("CfgRd1", 2, 7));
  b.router.receive(config("CfgRd1", 2, 8));
  assert.deepEqual(b.firmware.map((f) => [f.reason, f.port]), [[TlpRxReason.Config, 0], [TlpRxReason.Config, 1], [TlpRxReason.Config, 8], [TlpRxReason.Config, NO_PORT]]);
  assert.equal(b.tunnelled.length, 0);
});

test("Type 1 requests for the bus below a forwarding port become Type 0 in its tunnel; device 1 there and unowned buses go to the firmware", () => {
  const b = new Bench().programmed();
  b.router.receive(config("CfgWr1", 3, 0));
  assert.equal(b.tunnelled.length, 1);
  assert.equal(b.tunnelled[0].tlp.kind, "CfgWr0");
  assert.deepEqual([b.tunnelled[0].tunnel, b.tunnelled[0].slot], [0, 1]);
  b.router.receive(config("CfgRd1", 3, 1));
  b.router.receive(config("CfgRd1", 9, 0));
  assert.deepEqual(b.firmware.map((f) => [f.reason, f.port]), [[TlpRxReason.Unrouted, 1], [TlpRxReason.Unrouted, NO_PORT]]);
});

test("memory requests follow the windows and Memory Space Enable of the upstream and downstream ports", () => {
  const b = new Bench().programmed();
  b.router.receive(memoryRead(ROOT, 5, 0xe010_0040, 4));
  assert.deepEqual([b.tunnelled[0].tunnel, b.tunnelled[0].slot], [1, 0]);
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0000, new Uint8Array(64)));
  assert.equal(b.tunnelled.length, 2);
  b.router.receive(memoryRead(ROOT, 6, 0xd000_0000, 4));
  assert.deepEqual(b.firmware.at(-1)!.port, NO_PORT);
  b.write(0, SwitchReg.Control, SwitchControl.BusMaster);
  b.router.receive(memoryRead(ROOT, 7, 0xe000_0000, 4));
  assert.equal(b.tunnelled.length, 2, "the upstream port's Memory Space Enable is off");
  assert.deepEqual([b.firmware.at(-1)!.reason, b.firmware.at(-1)!.port], [TlpRxReason.Unrouted, NO_PORT]);
});

test("the firmware gets a long write's header and first data DW only", () => {
  const b = new Bench().programmed();
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.BusMaster);
  const data = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0100, data));
  const handed = b.firmware.at(-1)!;
  assert.deepEqual([handed.reason, handed.port, handed.tlp.length], [TlpRxReason.Unrouted, 1, 16]);
  assert.deepEqual([...handed.tlp.subarray(12)], [1, 2, 3, 4]);
});

test("stopping a port completes each of its outstanding non-posted requests with Unsupported Request, once, as that port; later completions for them are dropped", () => {
  const b = new Bench().programmed();
  b.router.receive(memoryRead(ROOT, 10, 0xe000_0000, 256));
  b.router.receive(config("CfgRd1", 3, 0, 11));
  b.router.receive(memoryRead(ROOT, 12, 0xe010_0000, 4));
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0000, new Uint8Array(4)));
  assert.equal(b.router.outstandingOn(1), 2);
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.BusMaster);
  // Port 1 is device 0 on internal bus 2.
  assert.deepEqual(b.toServer.map((t) => [t.kind, "status" in t && t.status, "completer" in t && t.completer, "tag" in t && t.tag, "requester" in t && t.requester]),
    [["Cpl", CplStatus.UnsupportedRequest, 0x0200, 10, ROOT], ["Cpl", CplStatus.UnsupportedRequest, 0x0200, 11, ROOT]]);
  assert.equal(b.firmware.length, 0, "nothing for the firmware to do");
  assert.equal(b.router.counters.orphaned, 2);
  assert.equal(b.router.outstandingOn(1), 0);
  assert.equal(b.router.outstandingOn(2), 1, "the other port's request stays");
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.BusMaster);
  assert.equal(b.toServer.length, 2, "no second completion");
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.BusMaster | SwitchControl.Forward);
  b.router.fromTunnel(0, 1, completionWithData(0x0300, ROOT, 10, new Uint8Array(256)));
  assert.equal(b.toServer.length, 2);
  assert.equal(b.router.counters.staleCompletions, 1);
});

test("a request is remembered until its last completion: split read completions, then an error completion", () => {
  const b = new Bench().programmed();
  b.router.receive(memoryRead(ROOT, 20, 0xe000_0000, 256));
  const piece = (byteCount: number, n: number) => encodeTlp({
    kind: "CplD", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.SuccessfulCompletion, bcm: false, byteCount, requester: ROOT, tag: 20,
    lowerAddress: 0, data: new Uint8Array(n),
  });
  b.router.fromTunnel(0, 1, piece(256, 128));
  assert.equal(b.router.outstandingOn(1), 1);
  b.router.fromTunnel(0, 1, piece(128, 128));
  assert.equal(b.router.outstandingOn(1), 0);
  b.router.receive(memoryRead(ROOT, 21, 0xe000_0000, 4));
  b.router.fromTunnel(0, 1, encodeTlp({
    kind: "Cpl", ...DEFAULT_COMMON, completer: 0x0300, status: CplStatus.UnsupportedRequest, bcm: false, byteCount: 4, requester: ROOT, tag: 21, lowerAddress: 0,
  }));
  assert.equal(b.router.outstandingOn(1), 0);
  assert.equal(b.toServer.length, 3);
});

test("upstream requests need Bus Master Enable on the port and the upstream port; an unbound slot's TLPs are dropped", () => {
  const b = new Bench().programmed();
  b.router.fromTunnel(0, 1, memoryWrite(0x0300, 0, 0xfee0_0000, new Uint8Array(4)));
  assert.equal(b.toServer.length, 1);
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.Forward);
  b.router.fromTunnel(0, 1, memoryWrite(0x0300, 0, 0x1000, new Uint8Array(4)));
  b.router.fromTunnel(0, 1, memoryRead(0x0300, 3, 0x1000, 64));
  assert.equal(b.toServer.length, 1);
  assert.equal(b.router.counters.blockedUpstream, 2);
  const answer = b.tunnelled.at(-1)!;
  assert.equal(answer.tlp.kind, "Cpl");
  assert.equal((answer.tlp as { status: CplStatus }).status, CplStatus.UnsupportedRequest);
  b.router.fromTunnel(1, 5, memoryWrite(0x0300, 0, 0x1000, new Uint8Array(4)));
  assert.equal(b.router.counters.unboundUpstream, 1);
});

test("completions from the server go down by requester bus; TLP_TX takes only completions and one-DW writes", () => {
  const b = new Bench().programmed();
  b.router.receive(completionWithData(ROOT, 0x0400, 3, new Uint8Array(64)));
  assert.deepEqual([b.tunnelled[0].tunnel, b.tunnelled[0].slot], [1, 0]);
  b.router.receive(completionWithData(ROOT, 0x0900, 3, new Uint8Array(64)));
  assert.equal(b.router.counters.unclaimedCompletions, 1);
  assert.ok(b.router.fromFirmware(completionWithData(0x0100, ROOT, 1, new Uint8Array(4))));
  assert.ok(b.router.fromFirmware(memoryWrite(0x0200, 0, 0xfee0_0000, new Uint8Array(4))));
  assert.equal(b.router.fromFirmware(memoryWrite(0x0200, 0, 0xfee0_0000, new Uint8Array(8))), false);
  assert.equal(b.router.fromFirmware(memoryRead(0x0200, 0, 0xfee0_0000, 4)), false);
  assert.equal(b.router.fromFirmware(new Uint8Array(12).fill(0xff)), false);
  assert.equal(b.router.counters.firmwareRejected, 3);
  assert.equal(b.toServer.length, 2);
});

test("malformed TLPs from the server are counted and dropped; a tunnel that refuses is counted", () => {
  const b = new Bench().programmed();
  b.router.receive(new Uint8Array(7));
  assert.equal(b.router.counters.malformed, 1);
  b.refuse = true;
  b.router.receive(memoryRead(ROOT, 1, 0xe000_0000, 4));
  assert.equal(b.router.counters.tunnelRefused, 1);
  assert.equal(b.router.outstandingOn(1), 0, "a request the tunnel refused is not outstanding");
});

test("IdleUs: microseconds since a TLP last crossed a downstream port either way, since reset when none did; read-only, saturating", () => {
  const b = new Bench();
  const idle = (port: number) => b.router.readRegister(reg(port, SwitchReg.IdleUs));
  b.time = 5_000_999;
  assert.deepEqual([1, 2, 8].map(idle), [5000, 5000, 5000], "since the router came out of reset at time 0");
  assert.equal(idle(0), 0, "the upstream port has no idle time");
  b.programmed();
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0000, new Uint8Array(4))); // down through port 1
  b.time += 1_234_567;
  assert.deepEqual([idle(1), idle(2)], [1234, 6235]);
  b.router.fromTunnel(1, 0, memoryWrite(0x0400, 0, 0xfee0_0000, new Uint8Array(4))); // up through port 2 (an MSI)
  assert.deepEqual([idle(1), idle(2)], [1234, 0]);
  b.router.receive(memoryRead(ROOT, 30, 0xe010_0000, 4)); // a read down port 2 ...
  b.time += 10_000;
  b.router.fromTunnel(1, 0, completionWithData(0x0400, ROOT, 30, new Uint8Array(4))); // ... and its completion up
  assert.deepEqual([idle(1), idle(2)], [1244, 0]);
  // What does not cross the port leaves it idle: a TLP the tunnel refuses, one blocked upstream, one handed to the firmware.
  b.time += 2_000_000;
  b.refuse = true;
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0000, new Uint8Array(4)));
  b.refuse = false;
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.Forward);
  b.router.fromTunnel(0, 1, memoryWrite(0x0300, 0, 0x1000, new Uint8Array(4)));
  b.write(1, SwitchReg.Control, SwitchControl.MemoryEnable | SwitchControl.BusMaster);
  b.router.receive(memoryWrite(ROOT, 0, 0xe000_0000, new Uint8Array(4)));
  assert.equal(b.firmware.at(-1)!.port, 1);
  assert.equal(idle(1), 3244);
  assert.equal(b.router.writeRegister(reg(1, SwitchReg.IdleUs), 0), false, "read-only");
  assert.equal(idle(1), 3244);
  b.time += 0xffff_ffff * 1000;
  assert.equal(idle(1), 0xffff_ffff, "saturates");
  b.router.reset();
  b.time += 42_000;
  assert.deepEqual([idle(1), idle(2)], [42, 42], "counted again from the reset");
});

test("IdleUs through the fabric: the card's clock, and a write is refused and counted", async () => {
  const scheduler = new EventScheduler();
  const rejected: number[] = [];
  const fabric = new Fabric({ boardId: BOARD_ID, mac: new Uint8Array(6), tunnels: 2, switchRouter: true }, scheduler, {
    event: (kind, _tunnel, arg) => kind === FabricEventKind.RegisterRejected && rejected.push(arg),
    deliver: () => {},
  });
  await scheduler.run(7_500_000);
  assert.equal(fabric.readRegister(reg(3, SwitchReg.IdleUs)), 7500);
  assert.equal(fabric.writeRegister(reg(3, SwitchReg.IdleUs), 1), false);
  assert.equal(fabric.readRegister(CardReg.RegErrors), 1);
  assert.deepEqual(rejected, [reg(3, SwitchReg.IdleUs)]);
  fabric.reset();
  await scheduler.run(7_600_000);
  assert.equal(fabric.readRegister(reg(3, SwitchReg.IdleUs)), 100, "the card's reset restarts the count");
});
