import { test } from "node:test";
import assert from "node:assert/strict";
import { SparseMemory } from "../../board/memory.ts";
import { PcieLink, linkBytesPerNs, writeStreamBytesPerNs, TLP_FRAMING_BYTES } from "../../board/pcie/link.ts";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { memoryWrite } from "../../board/pcie/tlp.ts";

test("sparse memory reads back what was written, across page boundaries, and zeros elsewhere", () => {
  const memory = new SparseMemory();
  const data = Uint8Array.from({ length: 10_000 }, (_, i) => i & 0xff);
  memory.write(0x1_0000_0ff0, data);
  assert.deepEqual(memory.read(0x1_0000_0ff0, data.length), data);
  assert.deepEqual(memory.read(0x1_0000_0fe0, 16), new Uint8Array(16));
  assert.equal(memory.residentBytes, 4 * 4096);
  memory.writeU64(0x2000, 2 ** 40 + 5);
  assert.equal(memory.readU64(0x2000), 2 ** 40 + 5);
  memory.writeU32(0x3000, 0xdeadbeef);
  assert.equal(memory.readU32(0x3000), 0xdeadbeef);
});

test("PCIe link rates: native Gen1 x4 carries about 7.4 Gb/s of 256-byte writes before DLLPs", () => {
  assert.equal(linkBytesPerNs({ generation: 1, lanes: 4 }), 1);
  assert.ok(Math.abs(linkBytesPerNs({ generation: 3, lanes: 4 }) - 3.938) < 0.001);
  const gbps = writeStreamBytesPerNs({ generation: 1, lanes: 4 }, 256, 12, 0) * 8;
  assert.ok(Math.abs(gbps - 7.42) < 0.01, `${gbps}`);
});

test("a PCIe link delivers TLPs in order after serialisation and its latency", async () => {
  const scheduler = new EventScheduler();
  const link = new PcieLink(scheduler, { generation: 1, lanes: 4, latencyNs: 100 });
  const arrivals: number[] = [];
  link.down.onTlp = () => arrivals.push(scheduler.now);
  const tlp = memoryWrite(1, 1, 0x1000, new Uint8Array(256)); // 268 bytes
  link.up.send(tlp);
  link.up.send(tlp);
  await scheduler.run(10_000);
  const wire = tlp.length + TLP_FRAMING_BYTES; // ns at 1 byte/ns
  assert.deepEqual(arrivals, [wire + 100, 2 * wire + 100]);
});
