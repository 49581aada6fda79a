// bench/report.md: the figures a buyer and an engineer ask for, from one full run of every
// benchmark: headline figures, the model's assumptions and where each reference value comes
// from, then one part per benchmark with its table, its plots (bench/figures/*.svg), its notes
// and the command that reproduces it.

import { cpus } from "node:os";
import { groupDigits } from "./svg.ts";
import type { Metric, Row, Section } from "./metrics.ts";

export interface ReportPart {
  /** For `iov bench --only NAME`. */
  name: string;
  title: string;
  /** What the part measures, one paragraph. */
  about: string;
  section: Section;
}

/** A table value: four significant digits, whole numbers of five digits and more grouped by thousands ("45 290", but "5167"). */
export function formatValue(value: number): string {
  if (Number.isInteger(value)) return groupDigits(String(value), 5);
  if (Math.abs(value) >= 1000) return groupDigits(value.toFixed(0), 5);
  return value.toPrecision(4).replace(/\.?0+$/, (m) => (m.startsWith(".") ? "" : m));
}

function table(rows: Row[], results: Record<string, Metric>): string {
  const lines = ["| metric | value | unit | vs baseline (same run) |", "|---|---:|---|---|"];
  for (const row of rows) {
    const base = row.baseline ? results[row.baseline] : undefined;
    const ratio = base && base.value !== 0 ? `${(row.metric.value / base.value).toFixed(3)} × \`${row.baseline}\`` : "";
    lines.push(`| \`${row.id}\` | ${formatValue(row.metric.value)} | ${row.metric.unit} | ${ratio} |`);
  }
  return lines.join("\n");
}

/** One headline: a label and a text made from the results, or null when a metric it needs is missing. */
type Headline = [string, (r: (id: string) => number) => string];

const HEADLINES: Headline[] = [
  ["Goodput, MTU 9000, no loss (selective repeat)", (r) => `${formatValue(r("goodput_gbps.mtu9000.mps256.loss0.selective"))} Gb/s of 256-byte writes: ${((100 * r("goodput_gbps.mtu9000.mps256.loss0.selective")) / r("limit_gbps.mtu9000.mps256")).toFixed(1)} % of the analytic limit, ${(r("goodput_gbps.mtu9000.mps256.loss0.selective") / r("native_gbps.gen1x4.mps256")).toFixed(2)} × native PCIe Gen1 x4`],
  ["Goodput at 1 % / 5 % loss, MTU 1500: selective repeat vs go-back-N", (r) => `${formatValue(r("goodput_gbps.mtu1500.mps256.loss1.selective"))} vs ${formatValue(r("goodput_gbps.mtu1500.mps256.loss1.gobackn"))} Gb/s; ${formatValue(r("goodput_gbps.mtu1500.mps256.loss5.selective"))} vs ${formatValue(r("goodput_gbps.mtu1500.mps256.loss5.gobackn"))} Gb/s`],
  ["MACsec on every frame (GCM-AES-XPN-128)", (r) => `${formatValue(r("goodput_gbps.mtu9000.mps256.loss0.macsec"))} Gb/s at MTU 9000 (${((100 * r("goodput_gbps.mtu9000.mps256.loss0.macsec")) / r("goodput_gbps.mtu9000.mps256.loss0.clear")).toFixed(1)} % of clear), ${formatValue(r("goodput_gbps.mtu1500.mps256.loss0.macsec"))} Gb/s at 1500 (${((100 * r("goodput_gbps.mtu1500.mps256.loss0.macsec")) / r("goodput_gbps.mtu1500.mps256.loss0.clear")).toFixed(1)} %); ${formatValue(r("rekey_lost_frames"))} frames lost over ${formatValue(r("rekey_switches"))} key switches; ${formatValue(r("attack_accepted_frames"))} of ${formatValue(r("attack_sent_frames"))} attack frames accepted`],
  ["Two ports per card, both paths in one tunnel", (r) => `${formatValue(r("goodput_gbps.dual.mtu9000.mps256.loss0"))} Gb/s over two 10GbE paths (${((100 * r("goodput_gbps.dual.mtu9000.mps256.loss0")) / r("limit_gbps.dual.mtu9000.mps256")).toFixed(1)} % of their limit); one cut under full load: first frame resent after ${formatValue(r("failover_us"))} µs, one path's goodput back after ${formatValue(r("failover_recovery_us"))} µs, ${formatValue(r("failover_lost_tlps"))} TLPs lost, ${formatValue(r("failover_hotplug_events"))} hot-plug events`],
  ["4-byte memory read, server to chassis device and back", (r) => `${formatValue(r("mrd_rtt_ns.idle.p50") / 1000)} µs median idle; ${formatValue(r("mrd_rtt_ns.loaded.p99") / 1000)} µs p99 beside bulk NVMe both ways (${formatValue(r("mrd_rtt_ns.loaded.p99.uncontrolled") / 1000)} µs without the short queues and congestion control); a key press ${formatValue(r("input_latency_us.loaded.p99"))} µs p99 beside it`],
  ["64 tunnels on a 4:1 oversubscribed leaf-spine, congestion control on (off)", (r) => `least busy uplink ${formatValue(r("fabric_util.oversub"))} % (${formatValue(r("fabric_util.oversub.nocc"))} %), Jain's index ${formatValue(r("fabric_jain.oversub"))}, ${formatValue(r("fabric_drops.oversub.cc"))} (${formatValue(r("fabric_drops.oversub.nocc"))}) frames dropped, uplink queue p99 ${formatValue(r("fabric_queue_p99_kib.oversub.cc"))} (${formatValue(r("fabric_queue_p99_kib.oversub.nocc"))}) KiB; incast into one server ${formatValue(r("incast_goodput_gbps.cc"))} (${formatValue(r("incast_goodput_gbps.nocc"))}) Gb/s`],
  ["NVMe through the tunnel (queue depth 32, 128 KiB)", (r) => `${formatValue(r("nvme_write_gbps"))} Gb/s write, ${formatValue(r("nvme_read_gbps"))} Gb/s read`],
  ["Cable pulled: surprise removal in the server", (r) => `${formatValue(r("hotplug_remove_us"))} µs after the pull (the 20 ms grace window, then pciehp), ${formatValue(r("cto_count.pull"))} completion timeouts`],
  ["Cable back: verified NVMe I/O again", (r) => `${r("reconnect_usable_ms").toFixed(1)} ms after the plug-back (pciehp's own waits are 120 ms of it)`],
  ["Chassis handed to another server", (r) => `${formatValue(r("reassign_ms.busy"))} ms under load (surprise removal); ${formatValue(r("reassign_ms") / 1000)} s when idle (orderly removal: pciehp's 5 s attention-button wait)`],
  ["Firmware on the 100 MHz soft-core", (r) => `${formatValue(r("softcore_util.idle.mhz100"))} % busy paired and idle, ${formatValue(r("softcore_util.default.mhz100"))} % in the default scenario's steady second; longest batch ${formatValue(r("softcore_batch_us.max.mhz100"))} µs; first SYNC_ACK ${formatValue(r("softcore_boot_ms.mhz100"))} ms after power-on`],
  ["Firmware", (r) => `${formatValue(r("fw_wasm_bytes"))} bytes, ${formatValue(r("fw_memory_pages"))} page of memory; ${formatValue(r("fw_events_per_s.inproc"))} events/s in-process` + (Number.isNaN(r("fw_events_per_s.wasm3")) ? "" : `, ${formatValue(r("fw_events_per_s.wasm3"))} on wasm3`)],
  ["Simulator", (r) => `${formatValue(r("sim_tlps_per_s"))} TLPs/s through a tunnel pair; the 256-server fleet runs ${formatValue(r("fleet_sim_wall_s_per_sim_s"))} × slower than real time`],
];

const ASSUMPTIONS = `- **Fixed latencies.** Every PCIe link takes 150 ns one way besides its serialisation: the
  server's root port (Gen3 x8) and each chassis slot (Gen3 x4). Every Ethernet direction
  takes 80 ns of PHY (2 × 40 ns, PCS/PMA and SerDes of 10GBASE-SR optics) plus 5 ns per metre
  of cable, besides its serialisation at the line rate (preamble, FCS and inter-frame gap
  counted).
- **The fabric takes no time of its own.** The switch router, the tunnel engines and the MAC
  work at line rate with no pipeline delay; only serialisation, queues and the links above
  cost time. Real RTL adds some hundreds of nanoseconds per hop.
- **The firmware runs on a 100 MHz soft-core.** Every batch keeps the card's CPU busy for the
  WebAssembly instructions it executes, at wasm3's calibrated cost on a RISC soft-core
  (docs/softcore.md), and its commands take effect when it ends: control-plane events (pairing,
  hot-plug signalling, configuration requests) wait for the firmware, TLPs on the fast path
  never do. The soft-core part compares with the zero-time model.
- **Devices answer at once.** The NVMe drive's media has no latency, so NVMe figures are the
  path's, not a drive's.
- **The server is a model of Linux.** pciehp's waits (20 ms before reading the link, the
  100 ms owed to a new device, the 5 s attention-button blink) and the 50 ms completion
  timeout are Linux's defaults (docs/hotplug.md).
- **Randomness is seeded.** Loss, reordering, entropy and workloads come from fixed seeds:
  simulated figures repeat exactly. Wall-clock figures (events per second, simulator speed)
  are this machine's.`;

const REFERENCES = `- **Analytic limit** (goodput plots, \`limit_gbps.*\`): what the tunnel's encapsulation leaves
  of 10 Gb/s for TLP payload at a given MTU and TLP size: Ethernet framing, 802.1Q tag, tunnel
  header, record headers (docs/wire-format.md, "Throughput limit"). With loss, the plots draw
  it times (1 − loss): each frame must cross at least 1 / (1 − loss) times.
- **Native PCIe Gen1 x4** (\`native_gbps.gen1x4.mps256\`): 4 lanes × 2.5 GT/s with 8b/10b
  coding is 8 Gb/s of bytes; each TLP adds STP and END (1 byte each), a 2-byte sequence
  number and a 4-byte LCRC to its 16-byte header (PCI Express Base Specification, Physical
  and Data Link Layers). DLLPs (Ack, UpdateFC) are not counted, so a real link carries a
  little less.
- **Server timings**: Linux drivers/pci/hotplug/pciehp_hpc.c and pciehp_ctrl.c, and
  drivers/pci/pci.c (pcie_wait_for_link), as modelled in tools/server/pciehp.ts.
- **Flash timings** (the configuration record written before a reassignment): typical
  figures of a Winbond W25Q serial NOR part (45 ms sector erase, 0.7 ms page program).`;

/** The report for one full run: `figureDir` is where the SVGs are, relative to the report. */
export function renderReport(parts: ReportPart[], results: Record<string, Metric>, o: { quick: boolean; wasm3: boolean; figureDir: string }): string {
  const r = (id: string) => results[id]?.value ?? NaN;
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const out: string[] = [];
  out.push("# IOV card: benchmark report", "");
  out.push(
    `Written by \`npm run bench${o.quick ? " -- --quick" : ""}\`: every figure here comes from that one run, ` +
      `${o.quick ? "in quick mode (fewer samples; run it without `--quick` for the published figures)" : "in full mode"}, ` +
      `with Node ${process.version} on ${cpu} (${cpus().length} cores)${o.wasm3 ? " and a wasm3 binary" : ", without a wasm3 binary"}. ` +
      "Each part names the command that reruns it alone. The run also writes its figures to `bench/results.json`, keyed by metric ID; the tables below hold every one of them.",
    "",
  );
  out.push("## Headline figures", "", "| | |", "|---|---|");
  for (const [label, text] of HEADLINES) {
    const value = text(r);
    if (!value.includes("NaN")) out.push(`| ${label} | ${value} |`);
  }
  out.push("", "## The model and its assumptions", "", ASSUMPTIONS, "", "## Where the reference values come from", "", REFERENCES, "");
  for (const part of parts) {
    out.push(`## ${part.title}`, "", part.about, "", `Rerun: \`npx iov bench --only ${part.name}${o.quick ? " --quick" : ""}\`${o.wasm3 && part.name === "firmware" ? " (with `--wasm3 PATH`)" : ""}.`, "");
    for (const figure of part.section.figures ?? []) {
      out.push(`![${figure.title}](${o.figureDir}/${figure.file})`, "", `*${figure.title}.* ${figure.caption}`, "");
    }
    for (const extra of part.section.tables ?? []) out.push(extra, "");
    out.push(table(part.section.rows, results), "");
    for (const note of part.section.notes) out.push(`- ${note}`);
    out.push("");
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}
