// PCIe across the tunnel: round-trip time of a 4-byte memory read from the server to a
// remote device and key-press latency, idle and beside bulk NVMe both ways (the mixed study,
// tools/sim/mixed-study.ts), with the card's short queues and congestion control and without.
// 10 m of cable, 10GbE, MTU 9000, fixed seeds.

import { EventScheduler } from "../tools/sim/scheduler.ts";
import { remotePcie, type RemoteOptions } from "../tools/sim/remote-pcie.ts";
import { spawn, wait, type Task } from "../tools/server/task.ts";
import { percentile } from "../tools/sim/summary.ts";
import { DmaTestDevice, DmaReg } from "../board/devices/dma-test.ts";
import { InputDevice } from "../board/devices/input.ts";
import { NvmeController } from "../board/devices/nvme/controller.ts";
import { nvmeInit, isNvme } from "../tools/server/drivers/nvme.ts";
import { inputDriver, isInput } from "../tools/server/drivers/input.ts";
import { lineChart, cdf } from "./svg.ts";
import { runMixed, MIXED_LOAD, type MixedResult } from "../tools/sim/mixed-study.ts";
import type { Section } from "./metrics.ts";


/** Round-trip times of `count` back-to-back 4-byte reads of a device register over 10 m (and a `second` path), idle, in ns. */
export async function readRoundTrips(count: number, macsec = false, second?: RemoteOptions["second"]): Promise<number[]> {
  const scheduler = new EventScheduler();
  const remote = remotePcie(scheduler, {
    slots: [new DmaTestDevice(scheduler)], lengthM: 10, ...(macsec ? { macsec: {} } : {}), ...(second ? { second } : {}),
  });
  await scheduler.run(50_000);
  const samples: number[] = [];
  let finished = false;
  const { os, rc } = remote;
  function* measure(): Task<void> {
    const found = yield* os.enumerate();
    const bar = found.find((f) => f.bars.length > 0)!.bars[0].address;
    for (let i = 0; i < count; i++) {
      const start = rc.now;
      yield* wait(rc.memoryRead(bar + DmaReg.Id, 4));
      samples.push(rc.now - start);
    }
  }
  spawn(measure(), () => (finished = true));
  while (!finished) await scheduler.run(scheduler.now + 1_000_000);
  return samples;
}

/** Latencies, in ns, from a key press at the chassis to the server's driver taking its report. */
export async function inputLatencies(keys: number): Promise<number[]> {
  const scheduler = new EventScheduler();
  const input = new InputDevice(scheduler);
  const remote = remotePcie(scheduler, { slots: [input], lengthM: 10 });
  await scheduler.run(50_000);
  const latencies: number[] = [];
  spawn((function* (): Task<void> {
    const found = yield* remote.os.enumerate();
    yield* inputDriver(remote.os, found.find(isInput)!, 0x2_0000_0000, 64, (_, latency) => latencies.push(latency));
  })());
  await scheduler.run(scheduler.now + 1_000_000);
  for (let i = 0; i < keys; i++) scheduler.at(scheduler.now + (i + 1) * 100_000, () => input.key(0x61 + (i % 26), true));
  await scheduler.run(scheduler.now + (keys + 2) * 100_000);
  return latencies;
}

/**
 * NVMe throughput at queue depth 32 with 128 KiB commands: 32 tasks each issue `perTask`
 * commands back to back; Gb/s of data from the first submission to the last completion.
 */
export async function nvmeThroughput(write: boolean, perTask: number): Promise<number> {
  const scheduler = new EventScheduler();
  const remote = remotePcie(scheduler, { slots: [new NvmeController(scheduler)], lengthM: 10 });
  await scheduler.run(50_000);
  const chunk = 128 * 1024;
  let started = 0;
  let finished = 0;
  let last = 0;
  spawn((function* (): Task<void> {
    const found = yield* remote.os.enumerate();
    const disk = yield* nvmeInit(remote.os, found.find(isNvme)!, 0x3_0000_0000);
    const data = new Uint8Array(chunk).fill(0x5a);
    started = remote.rc.now;
    for (let q = 0; q < 32; q++) {
      const buffer = 0x10_0000_0000 + q * 0x100_0000;
      spawn((function* (): Task<void> {
        for (let i = 0; i < perTask; i++) {
          const lba = ((q * perTask + i) * chunk) / 512;
          if (write) yield* disk.write(lba, data, buffer, buffer + 0x80_0000);
          else yield* disk.read(lba, chunk / 512, buffer, buffer + 0x80_0000);
        }
        finished++;
        last = remote.rc.now;
      })());
    }
  })());
  while (finished < 32) await scheduler.run(scheduler.now + 1_000_000);
  return (32 * perTask * chunk * 8) / (last - started);
}

export async function pcieBenchmarks(options: { quick: boolean }, progress: (text: string) => void): Promise<Section> {
  const count = options.quick ? 300 : 2000;
  progress(`4-byte memory read round trips, idle (${count})`);
  const idle = (await readRoundTrips(count)).sort((x, y) => x - y);
  const mixed = { ...MIXED_LOAD, reads: count };
  progress(`4-byte reads and key presses beside NVMe at queue depth 32 both ways, short queues and congestion control (${count} reads)`);
  const loaded = await runMixed({ ...mixed, controlled: true });
  progress(`4-byte reads and key presses beside NVMe at queue depth 32 both ways, uncontrolled (${count} reads)`);
  const uncontrolled = await runMixed({ ...mixed, controlled: false });
  const perTask = options.quick ? 2 : 8;
  progress(`NVMe writes, queue depth 32, 128 KiB (${32 * perTask} commands)`);
  const nvmeWrite = await nvmeThroughput(true, perTask);
  progress(`NVMe reads, queue depth 32, 128 KiB (${32 * perTask} commands)`);
  const nvmeRead = await nvmeThroughput(false, perTask);
  progress("key press to driver latency (200 keys)");
  const input = (await inputLatencies(200)).sort((x, y) => x - y);
  const us = (ns: number[]) => cdf(ns.map((v) => v / 1000));
  const p = (ns: number[], q: number) => (percentile(ns, q) / 1000).toFixed(1);
  const bulk = (r: MixedResult) => r.nvmeWriteGbps + r.nvmeReadGbps;
  const latency = {
    file: "mrd-latency.svg",
    title: "Latency of a 4-byte memory read, idle and under load",
    svg: lineChart({
      title: "4-byte memory read, server to a chassis device and back (CDF)",
      x: { label: "round trip (µs, log scale)", log: true },
      y: { label: "fraction of reads at or below", min: 0, max: 1 },
      series: [
        { label: `idle (p50 ${(percentile(idle, 50) / 1000).toFixed(3)} µs)`, style: "step" as const, points: us(idle) },
        { label: `beside bulk NVMe, short queues and congestion control (p50 ${p(loaded.readNs, 50)} µs, p99 ${p(loaded.readNs, 99)} µs)`, style: "step" as const, points: us(loaded.readNs) },
        { label: `beside bulk NVMe, uncontrolled (p50 ${p(uncontrolled.readNs, 50)} µs, p99 ${p(uncontrolled.readNs, 99)} µs)`, style: "step" as const, points: us(uncontrolled.readNs) },
      ],
    }),
    caption: `${count} reads of a DMA test device's ID register by the server's root complex, 10 µs apart: root port link (Gen3 x8, 150 ns each way), the host card's switch, the tunnel over 10 m of cable at MTU 9000, the chassis slot link (Gen3 x4, 150 ns each way). ` +
      "Under load, an NVMe drive in the same chassis runs 16 writers and 16 readers of 128 KiB commands at once. Uncontrolled: no send queue limit (the TLPs the card's PCIe side offers queue in the tunnel without bound) and no congestion control. Simulated time, fixed seeds.",
  };
  return {
    figures: [latency],
    rows: [
      { id: "mrd_rtt_ns.idle.p50", metric: { value: percentile(idle, 50), unit: "ns" } },
      { id: "mrd_rtt_ns.idle.p99", metric: { value: percentile(idle, 99), unit: "ns" }, baseline: "mrd_rtt_ns.idle.p50" },
      { id: "mrd_rtt_ns.loaded.p50", metric: { value: percentile(loaded.readNs, 50), unit: "ns" }, baseline: "mrd_rtt_ns.idle.p50" },
      { id: "mrd_rtt_ns.loaded.p99", metric: { value: percentile(loaded.readNs, 99), unit: "ns" }, baseline: "mrd_rtt_ns.loaded.p99.uncontrolled" },
      { id: "mrd_rtt_ns.loaded.p99.uncontrolled", metric: { value: percentile(uncontrolled.readNs, 99), unit: "ns" } },
      { id: "input_latency_us.p50", metric: { value: percentile(input, 50) / 1000, unit: "µs" } },
      { id: "input_latency_us.loaded.p99", metric: { value: percentile(loaded.keyNs, 99) / 1000, unit: "µs" }, baseline: "input_latency_us.loaded.p99.uncontrolled" },
      { id: "input_latency_us.loaded.p99.uncontrolled", metric: { value: percentile(uncontrolled.keyNs, 99) / 1000, unit: "µs" } },
      { id: "mixed_nvme_gbps", metric: { value: bulk(loaded), unit: "Gb/s" }, baseline: "mixed_nvme_gbps.uncontrolled" },
      { id: "mixed_nvme_gbps.uncontrolled", metric: { value: bulk(uncontrolled), unit: "Gb/s" } },
      { id: "nvme_write_gbps", metric: { value: nvmeWrite, unit: "Gb/s" } },
      { id: "nvme_read_gbps", metric: { value: nvmeRead, unit: "Gb/s" }, baseline: "nvme_write_gbps" },
    ],
    notes: [
      "nvme_*_gbps: queue depth 32, 128 KiB commands, 10 m of cable at MTU 9000; the media answers at once, so the figures are the path's",
      "mrd_rtt_ns: server to a device register in a chassis slot and back: root port link (Gen3 x8, 150 ns), host switch, tunnel over 10 m (MTU 9000), chassis slot link (Gen3 x4, 150 ns)",
      "*.loaded.*: beside 16 NVMe writers and 16 readers of 128 KiB (mixed_nvme_gbps: their data both ways), with the card's send queue limit and congestion control; *.uncontrolled: the same without either (tools/sim/mixed-study.ts)",
    ],
  };
}
