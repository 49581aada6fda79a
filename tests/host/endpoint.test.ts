// The endpoint framework through the DMA test device: configuration and memory requests
// answered per the specification, DMA and MSI as a root port sees them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { SparseMemory } from "../../board/memory.ts";
import { PcieLink } from "../../board/pcie/link.ts";
import { encodeTlp, decodeTlp, isMalformed, CplStatus, DEFAULT_COMMON, type Tlp, type Completion } from "../../board/pcie/tlp.ts";
import { DmaTestDevice, DmaReg, DmaCommand, DmaStatus, DMA_TEST_ID, DMA_TEST_VENDOR, DMA_TEST_DEVICE, pattern } from "../../board/devices/dma-test.ts";
import { COMPLETION_TIMEOUT_NS } from "../../board/pcie/endpoint.ts";

const ROOT_ID = 0x0000;
const BAR0 = 0xfe00_0000;
const MSI_ADDRESS = 0xfee0_0000;

/** A root port that issues requests, serves DMA from its memory and records MSI. */
class Root {
  readonly scheduler = new EventScheduler();
  readonly memory = new SparseMemory();
  readonly link = new PcieLink(this.scheduler, { generation: 3, lanes: 4, latencyNs: 150 });
  readonly device = new DmaTestDevice(this.scheduler);
  readonly completions: Completion[] = [];
  readonly msi: { timeNs: number; data: number }[] = [];
  readonly writes: { address: number; length: number }[] = [];
  answerReads: "memory" | "ur" | "never" = "memory";
  private tag = 0;

  constructor() {
    this.device.connect((tlp) => this.link.down.send(tlp));
    this.link.down.onTlp = (tlp) => this.device.receive(tlp);
    this.link.up.onTlp = (bytes) => this.fromDevice(bytes);
  }

  private fromDevice(bytes: Uint8Array): void {
    const tlp = decodeTlp(bytes);
    assert.ok(!isMalformed(tlp), isMalformed(tlp) ? tlp.malformed : "");
    if (tlp.kind === "Cpl" || tlp.kind === "CplD" || tlp.kind === "CplLk" || tlp.kind === "CplDLk") this.completions.push(tlp);
    else if (tlp.kind === "MWr" && tlp.address === MSI_ADDRESS) this.msi.push({ timeNs: this.scheduler.now, data: tlp.data![0] | (tlp.data![1] << 8) });
    else if (tlp.kind === "MWr") {
      this.memory.write(tlp.address, tlp.data!);
      this.writes.push({ address: tlp.address, length: tlp.data!.length });
    } else if (tlp.kind === "MRd") {
      if (this.answerReads === "never") return;
      const base = { ...DEFAULT_COMMON, completer: ROOT_ID, bcm: false, requester: tlp.requester, tag: tlp.tag, lowerAddress: tlp.address & 0x7f };
      if (this.answerReads === "ur") this.send({ kind: "Cpl", ...base, status: CplStatus.UnsupportedRequest, byteCount: 4 });
      else this.send({ kind: "CplD", ...base, status: CplStatus.SuccessfulCompletion, byteCount: 4 * tlp.readDw! & 0xfff, data: this.memory.read(tlp.address, 4 * tlp.readDw!) });
    }
  }

  send(tlp: Tlp): void {
    this.link.up.send(encodeTlp(tlp));
  }

  async configRead(register: number, kind: "CfgRd0" | "CfgRd1" = "CfgRd0"): Promise<Completion> {
    const tag = this.tag++ & 0xff;
    this.send({ kind, ...DEFAULT_COMMON, requester: ROOT_ID, tag, firstBe: 0xf, bus: 2, device: 0, fn: 0, register });
    return this.await(tag);
  }

  async configWrite(register: number, value: number, firstBe = 0xf): Promise<Completion> {
    const tag = this.tag++ & 0xff;
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.send({ kind: "CfgWr0", ...DEFAULT_COMMON, requester: ROOT_ID, tag, firstBe, bus: 2, device: 0, fn: 0, register, data });
    return this.await(tag);
  }

  async mmioRead(address: number, dw = 1): Promise<Completion[]> {
    const tag = this.tag++ & 0xff;
    this.send({ kind: "MRd", ...DEFAULT_COMMON, requester: ROOT_ID, tag, firstBe: 0xf, lastBe: dw > 1 ? 0xf : 0, address, readDw: dw });
    await this.scheduler.run(this.scheduler.now + 20_000);
    return this.completions.filter((c) => c.tag === tag);
  }

  mmioWrite32(address: number, value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.send({ kind: "MWr", ...DEFAULT_COMMON, requester: ROOT_ID, tag: 0, firstBe: 0xf, lastBe: 0, address, data });
  }

  private async await(tag: number): Promise<Completion> {
    await this.scheduler.run(this.scheduler.now + 10_000);
    const found = this.completions.find((c) => c.tag === tag);
    assert.ok(found, `completion for tag ${tag}`);
    return found;
  }

  /** Sizes and programs BAR 0, enables memory space and bus mastering, points MSI at MSI_ADDRESS. */
  async enumerate(): Promise<void> {
    await this.configWrite(4, 0xffffffff);
    await this.configWrite(4, BAR0);
    await this.configWrite(1, 0x0006); // Memory Space + Bus Master
    const msi = this.device.msi.offset;
    await this.configWrite((msi + 4) / 4, MSI_ADDRESS);
    await this.configWrite((msi + 8) / 4, 0);
    await this.configWrite((msi + 12) / 4, 0x0041); // message data
    await this.configWrite(msi / 4, 0x0001 << 16, 0b1100); // Message Control: MSI Enable
  }
}

const u32 = (c: Completion) => new DataView(c.data!.buffer, c.data!.byteOffset, 4).getUint32(0, true);

test("configuration reads return the header and the function takes its bus and device number from them", async () => {
  const root = new Root();
  const id = await root.configRead(0);
  assert.equal(id.status, CplStatus.SuccessfulCompletion);
  assert.equal(u32(id), (DMA_TEST_DEVICE << 16) | DMA_TEST_VENDOR);
  assert.equal(id.completer, 0x0200);
  assert.equal(root.device.routingId, 0x0200);
});

test("BAR sizing, then memory reads and writes of the device registers", async () => {
  const root = new Root();
  await root.configWrite(4, 0xffffffff);
  assert.equal(u32(await root.configRead(4)), 0xfffff000, "4 KiB, 32-bit, non-prefetchable");
  await root.enumerate();
  const [id] = await root.mmioRead(BAR0 + DmaReg.Id);
  assert.equal(u32(id), DMA_TEST_ID);
  root.mmioWrite32(BAR0 + DmaReg.Length, 4096);
  const [length] = await root.mmioRead(BAR0 + DmaReg.Length);
  assert.equal(u32(length), 4096);
});

test("a read that exceeds Max_Payload_Size comes back in several completions with the right byte counts", async () => {
  const root = new Root();
  await root.enumerate();
  const completions = await root.mmioRead(BAR0, 64); // 256 bytes, MPS 128
  assert.deepEqual(completions.map((c) => [c.data!.length, c.byteCount, c.lowerAddress]), [[128, 256, 0], [128, 128, 0]]);
});

test("requests the endpoint does not support get Unsupported Request; malformed TLPs are dropped and counted", async () => {
  const root = new Root();
  const type1 = await root.configRead(0, "CfgRd1");
  assert.equal(type1.status, CplStatus.UnsupportedRequest);
  await root.enumerate();
  const [outside] = await root.mmioRead(0xfd00_0000);
  assert.equal(outside.status, CplStatus.UnsupportedRequest);
  const locked = encodeTlp({ kind: "MRdLk", ...DEFAULT_COMMON, requester: ROOT_ID, tag: 200, firstBe: 0xf, lastBe: 0, address: BAR0, readDw: 1 });
  root.link.up.send(locked);
  const bad = encodeTlp({ kind: "MRd", ...DEFAULT_COMMON, requester: ROOT_ID, tag: 201, firstBe: 0xf, lastBe: 0, address: BAR0, readDw: 1 });
  bad[7] = 0xff; // Last DW BE with a 1-DW length: malformed
  root.link.up.send(bad);
  await root.scheduler.run(root.scheduler.now + 20_000);
  assert.equal(root.completions.find((c) => c.tag === 200)?.status, CplStatus.UnsupportedRequest);
  assert.equal(root.completions.find((c) => c.tag === 201), undefined, "no completion for a malformed TLP");
  assert.equal(root.device.counters.malformed, 1);
  assert.equal(root.device.counters.unsupportedRequests, 3);
});

test("a DMA write lands in host memory before its MSI, split at Max_Payload_Size and 4 KiB", async () => {
  const root = new Root();
  await root.enumerate();
  const address = 0x1_0000_0f80;
  root.mmioWrite32(BAR0 + DmaReg.Address, address % 2 ** 32);
  root.mmioWrite32(BAR0 + DmaReg.Address + 4, 1);
  root.mmioWrite32(BAR0 + DmaReg.Length, 1024);
  root.mmioWrite32(BAR0 + DmaReg.Seed, 42);
  root.mmioWrite32(BAR0 + DmaReg.Control, DmaCommand.Write);
  await root.scheduler.run(root.scheduler.now + 50_000);
  assert.deepEqual(root.memory.read(address, 1024), pattern(42, 1024));
  assert.ok(root.writes.every((w) => w.length <= 128 && (w.address % 4096) + w.length <= 4096));
  assert.equal(root.msi.length, 1);
  assert.equal(root.msi[0].data, 0x0041);
  const [status] = await root.mmioRead(BAR0 + DmaReg.Status);
  assert.equal(u32(status), DmaStatus.Done);
});

test("a DMA verify reads host memory back and counts the words that differ", async () => {
  const root = new Root();
  await root.enumerate();
  root.memory.write(0x2000_0000, pattern(7, 8192));
  root.memory.writeU32(0x2000_0000 + 4000, 0xbad);
  root.mmioWrite32(BAR0 + DmaReg.Address, 0x2000_0000);
  root.mmioWrite32(BAR0 + DmaReg.Length, 8192);
  root.mmioWrite32(BAR0 + DmaReg.Seed, 7);
  root.mmioWrite32(BAR0 + DmaReg.Control, DmaCommand.Verify);
  await root.scheduler.run(root.scheduler.now + 100_000);
  const [status] = await root.mmioRead(BAR0 + DmaReg.Status);
  const [errors] = await root.mmioRead(BAR0 + DmaReg.Errors);
  assert.equal(u32(status), DmaStatus.Done | DmaStatus.Error);
  assert.equal(u32(errors), 1);
  assert.equal(root.msi.length, 1);
});

test("an Unsupported Request completion or a completion timeout fails the DMA, never hangs it", async () => {
  for (const answer of ["ur", "never"] as const) {
    const root = new Root();
    await root.enumerate();
    root.answerReads = answer;
    root.mmioWrite32(BAR0 + DmaReg.Address, 0x3000_0000);
    root.mmioWrite32(BAR0 + DmaReg.Length, 64);
    root.mmioWrite32(BAR0 + DmaReg.Control, DmaCommand.Verify);
    await root.scheduler.run(root.scheduler.now + COMPLETION_TIMEOUT_NS + 100_000);
    const [status] = await root.mmioRead(BAR0 + DmaReg.Status);
    assert.equal(u32(status), DmaStatus.Done | DmaStatus.Error, answer);
    assert.equal(root.device.counters.completionTimeouts, answer === "never" ? 1 : 0);
  }
});

test("without Bus Master Enable the device sends no DMA and no MSI", async () => {
  const root = new Root();
  await root.enumerate();
  await root.configWrite(1, 0x0002); // Memory Space only
  root.mmioWrite32(BAR0 + DmaReg.Address, 0x4000_0000);
  root.mmioWrite32(BAR0 + DmaReg.Length, 64);
  root.mmioWrite32(BAR0 + DmaReg.Control, DmaCommand.Write);
  await root.scheduler.run(root.scheduler.now + 50_000);
  assert.equal(root.writes.length, 0);
  assert.equal(root.msi.length, 0);
  assert.equal(root.device.counters.blockedRequests, 2);
});
