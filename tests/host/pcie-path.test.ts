// The whole PCIe path at the TLP level: a server-side requester, the host card's switch,
// the tunnel over an impaired cable, the chassis root and a device in a chassis slot.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { tunnelPair } from "../../tools/sim/tunnel-pair.ts";
import { SparseMemory } from "../../board/memory.ts";
import { PcieLink } from "../../board/pcie/link.ts";
import { SwitchModel } from "../../tools/sim/switch-model.ts";
import { SWITCH_VENDOR_ID as HOST_SWITCH_VENDOR, SWITCH_UPSTREAM_DEVICE_ID as UPSTREAM_DEVICE_ID, SWITCH_DOWNSTREAM_DEVICE_ID as DOWNSTREAM_DEVICE_ID } from "../../board/map/pcie.ts";
import { ChassisRoot } from "../../board/pcie/chassis-root.ts";
import { encodeTlp, decodeTlp, isMalformed, CplStatus, DEFAULT_COMMON, type Tlp, type Completion } from "../../board/pcie/tlp.ts";
import { readCompletions } from "../../board/pcie/completer.ts";
import { DmaTestDevice, DmaReg, DmaCommand, DmaStatus, DMA_TEST_ID, DMA_TEST_VENDOR, DMA_TEST_DEVICE, pattern } from "../../board/devices/dma-test.ts";

const MSI_ADDRESS = 0xfee0_0000;
const WINDOW = 0xfe00_0000;

class Path {
  readonly scheduler = new EventScheduler();
  readonly memory = new SparseMemory();
  readonly completions: Completion[] = [];
  readonly msi: number[] = [];
  readonly device: DmaTestDevice;
  readonly hostSwitch: SwitchModel;
  readonly chassis: ChassisRoot;
  private readonly rootLink = new PcieLink(this.scheduler, { generation: 3, lanes: 4, latencyNs: 150 });
  private tag = 0;

  constructor(loss = 0) {
    const { a, b } = tunnelPair(this.scheduler, { mtu: 1500, link: { lengthM: 10, aToB: { loss }, bToA: { loss }, seed: 5 } });
    this.hostSwitch = new SwitchModel([{ tunnel: a.tunnel, slot: 0 }, { tunnel: a.tunnel, slot: 1 }]);
    this.chassis = new ChassisRoot(this.scheduler, b.tunnel, 2);
    this.device = new DmaTestDevice(this.scheduler);
    this.chassis.plug(0, this.device);
    a.onTlp = (tlp, cls, tunnel) => {
      this.hostSwitch.fromTunnel(tlp.slice());
      tunnel.release(cls, tlp);
    };
    b.onTlp = (tlp, cls, tunnel, slot) => {
      this.chassis.fromHost(tlp.slice(), slot);
      tunnel.release(cls, tlp);
    };
    this.hostSwitch.connect((tlp) => this.rootLink.down.send(tlp));
    this.rootLink.down.onTlp = (tlp) => this.hostSwitch.receive(tlp);
    this.rootLink.up.onTlp = (tlp) => this.fromBelow(tlp);
  }

  private fromBelow(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    assert.ok(!isMalformed(tlp));
    if (tlp.kind === "Cpl" || tlp.kind === "CplD") this.completions.push(tlp);
    else if (tlp.kind === "MWr" && tlp.address === MSI_ADDRESS) this.msi.push(tlp.data![0]);
    else if (tlp.kind === "MWr") this.memory.write(tlp.address, tlp.data!);
    else if (tlp.kind === "MRd") {
      // Completed in pieces of at most 256 bytes, as a root complex's Max_Payload_Size allows.
      for (const completion of readCompletions(tlp, this.memory.read(tlp.address, 4 * tlp.readDw!), 0, 256)) this.send(completion);
    }
  }

  send(tlp: Tlp): void {
    this.rootLink.up.send(encodeTlp(tlp));
  }

  private async complete(tag: number): Promise<Completion> {
    const deadline = this.scheduler.now + 5_000_000;
    while (!this.completions.some((c) => c.tag === tag) && this.scheduler.now < deadline) await this.scheduler.run(this.scheduler.now + 10_000);
    const found = this.completions.find((c) => c.tag === tag);
    assert.ok(found, `completion for tag ${tag}`);
    return found;
  }

  async config(kind: "CfgRd0" | "CfgRd1" | "CfgWr0" | "CfgWr1", bus: number, device: number, register: number, value = 0, firstBe = 0xf): Promise<Completion> {
    const tag = this.tag++ & 0xff;
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.send({ kind, ...DEFAULT_COMMON, requester: 0, tag, firstBe, bus, device, fn: 0, register, ...(kind.startsWith("CfgWr") ? { data } : {}) } as Tlp);
    return this.complete(tag);
  }

  async read32(address: number): Promise<Completion> {
    const tag = this.tag++ & 0xff;
    this.send({ kind: "MRd", ...DEFAULT_COMMON, requester: 0, tag, firstBe: 0xf, lastBe: 0, address, readDw: 1 });
    return this.complete(tag);
  }

  write32(address: number, value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.send({ kind: "MWr", ...DEFAULT_COMMON, requester: 0, tag: 0, firstBe: 0xf, lastBe: 0, address, data });
  }

  /** What an OS does for this hierarchy: bus numbers, windows, the device's BAR, MSI. */
  async enumerate(): Promise<void> {
    await this.config("CfgWr0", 1, 0, 6, 0x00_04_02_01); // upstream port: primary 1, secondary 2, subordinate 4
    await this.config("CfgWr1", 2, 0, 6, 0x00_03_03_02); // downstream port 0: secondary 3
    await this.config("CfgWr1", 2, 1, 6, 0x00_04_04_02); // downstream port 1: bus 4, empty slot
    for (const [kind, bus, device] of [["CfgWr0", 1, 0], ["CfgWr1", 2, 0]] as const) {
      await this.config(kind, bus, device, 8, ((WINDOW >>> 16) & 0xfff0) | ((WINDOW + 0xfffff) & 0xfff00000)); // memory base/limit, 1 MiB
      await this.config(kind, bus, device, 1, 0x0006);
    }
    await this.config("CfgWr1", 3, 0, 4, WINDOW); // BAR 0
    await this.config("CfgWr1", 3, 0, 1, 0x0006);
    const msi = this.device.msi.offset / 4;
    await this.config("CfgWr1", 3, 0, msi + 1, MSI_ADDRESS);
    await this.config("CfgWr1", 3, 0, msi + 2, 0);
    await this.config("CfgWr1", 3, 0, msi + 3, 0x0022);
    await this.config("CfgWr1", 3, 0, msi, 1 << 16, 0b1100);
  }
}

const u32 = (c: Completion) => new DataView(c.data!.buffer, c.data!.byteOffset, 4).getUint32(0, true);

test("the server reads the switch ports' and the remote device's IDs through the tunnel", async () => {
  const path = new Path();
  await path.scheduler.run(20_000);
  assert.equal(u32(await path.config("CfgRd0", 1, 0, 0)), (UPSTREAM_DEVICE_ID << 16) | HOST_SWITCH_VENDOR);
  await path.config("CfgWr0", 1, 0, 6, 0x00_03_02_01);
  assert.equal(u32(await path.config("CfgRd1", 2, 0, 0)), (DOWNSTREAM_DEVICE_ID << 16) | HOST_SWITCH_VENDOR);
  await path.config("CfgWr1", 2, 0, 6, 0x00_03_03_02);
  const remote = await path.config("CfgRd1", 3, 0, 0);
  assert.equal(u32(remote), (DMA_TEST_DEVICE << 16) | DMA_TEST_VENDOR);
  assert.equal(remote.completer, 0x0300, "the device took bus 3 from the converted Type 0 request");
  assert.equal(path.device.routingId, 0x0300);
});

test("configuration requests with no device to answer them get Unsupported Request", async () => {
  const path = new Path();
  await path.scheduler.run(20_000);
  await path.enumerate();
  assert.equal((await path.config("CfgRd1", 4, 0, 0)).status, CplStatus.UnsupportedRequest, "empty chassis slot");
  assert.equal((await path.config("CfgRd1", 3, 1, 0)).status, CplStatus.UnsupportedRequest, "device 1 below a downstream port");
  assert.equal((await path.config("CfgRd1", 2, 5, 0)).status, CplStatus.UnsupportedRequest, "no sixth downstream port");
  assert.equal((await path.config("CfgRd1", 9, 0, 0)).status, CplStatus.UnsupportedRequest, "a bus no port forwards");
  assert.equal((await path.read32(0xd000_0000)).status, CplStatus.UnsupportedRequest, "memory outside every window");
  assert.equal(path.chassis.counters.emptySlot, 1);
});

for (const loss of [0, 0.02]) {
  test(`DMA through the tunnel: the device writes and verifies host memory and signals MSI (${loss * 100} % frame loss)`, async () => {
    const path = new Path(loss);
    await path.scheduler.run(20_000);
    await path.enumerate();
    assert.equal(u32(await path.read32(WINDOW + DmaReg.Id)), DMA_TEST_ID);
    path.write32(WINDOW + DmaReg.Address, 0x8000_0000);
    path.write32(WINDOW + DmaReg.Length, 64 * 1024);
    path.write32(WINDOW + DmaReg.Seed, 99);
    path.write32(WINDOW + DmaReg.Control, DmaCommand.Write);
    while (path.msi.length < 1) await path.scheduler.run(path.scheduler.now + 50_000);
    assert.deepEqual(path.memory.read(0x8000_0000, 64 * 1024), pattern(99, 64 * 1024), "memory holds the pattern when the MSI arrives");
    path.write32(WINDOW + DmaReg.Control, DmaCommand.Verify);
    while (path.msi.length < 2) await path.scheduler.run(path.scheduler.now + 50_000);
    assert.equal(u32(await path.read32(WINDOW + DmaReg.Status)), DmaStatus.Done);
    assert.equal(u32(await path.read32(WINDOW + DmaReg.Errors)), 0);
    assert.deepEqual(path.msi, [0x22, 0x22]);
  });
}
