import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURES, FIRMWARE, ROOT, iov, assertOneLineError, wasm3Skip } from "./helpers.ts";
import type { RunSummary } from "../../tools/sim/summary.ts";
import { readPcap } from "../../tools/sim/pcap.ts";
import { PNG } from "pngjs";
import { fcsValid, etherTypeOf, ETHERTYPE_IOV } from "../../board/ethernet/frame.ts";
import { ETHERTYPE_MACSEC } from "../../board/macsec/frame.ts";
import { FrameKind } from "../../board/tunnel/wire.ts";
import { ControlType, LinkTiming, RejectReason } from "../../board/map/link.ts";
import { decodeControl } from "../../board/link-codec.ts";
import { SoftcoreTiming, SOFTCORE_DEFAULT_MHZ } from "../../board/softcore.ts";
import { SCENARIOS, type Scenario } from "../../tools/sim/scenarios.ts";
import { failures } from "../../tools/cli/sim.ts";

const temp = () => mkdtempSync(join(tmpdir(), "iov-cli-"));

test("every command has --help", () => {
  for (const args of [[], ["build"], ["sim"], ["faults"], ["trace"], ["trace", "replay"], ["trace", "decode"], ["bench"],
    ["keygen"], ["image"], ["image", "build"], ["image", "inspect"], ["image", "verify"],
    ["console"], ["flash"]]) {
    const result = iov([...args, "--help"]);
    assert.equal(result.status, 0, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stdout, /^Usage: iov/);
  }
});

test("bad arguments get a one-line error and exit status 2", () => {
  assertOneLineError(iov(["frobnicate"]), 2, /unknown command 'frobnicate'/);
  assertOneLineError(iov(["sim", "--seed", "abc"]), 2, /option '--seed <n>' argument 'abc' is invalid. expected a whole number/);
  assertOneLineError(iov(["sim", "--seed", "-1"]), 2, /expected 0\.\.4294967295/);
  assertOneLineError(iov(["sim", "--engine", "qemu"]), 2, /expected one of node, node-wasi, wasm3, got 'qemu'/);
  assertOneLineError(iov(["sim", "--duration", "5parsecs"]), 2, /expected a duration such as 3s/);
  assertOneLineError(iov(["sim", "--duration", "1.5ns"]), 2, /expected a whole number of nanoseconds, got '1\.5ns' \(1\.5 ns\)/);
  assertOneLineError(iov(["sim", "--bogus"]), 2, /unknown option '--bogus'/);
  assertOneLineError(iov(["sim", "--softcore-mhz", "fast"]), 2, /expected a clock in MHz, 0 \(zero-time model\) or 1\.\.1000, got 'fast'/);
  assertOneLineError(iov(["sim", "--softcore-mhz", "0.5"]), 2, /expected 0 \(zero-time model\) or 1\.\.1000, got 0\.5/);
  assertOneLineError(iov(["sim", "--softcore-mhz", "100000"]), 2, /expected 0 \(zero-time model\) or 1\.\.1000, got 100000/);
  assertOneLineError(iov(["trace", "decode", "x.in", "--as", "sideways"]), 2, /Allowed choices are events, commands/);
  assertOneLineError(iov(["trace", "replay"]), 2, /missing required argument 'input'/);
});

test("things that cannot be done get a one-line reason and exit status 1", () => {
  assertOneLineError(iov(["sim", "--scenario", "moon"]), 1, /unknown scenario 'moon'; built-in: default/);
  assertOneLineError(iov(["sim", "--firmware", "/nonexistent/fw.wasm"]), 1, /firmware not found: \/nonexistent\/fw.wasm/);
  assertOneLineError(iov(["trace", "replay", "/nonexistent/a.in"]), 1, /cannot read trace '\/nonexistent\/a.in': no such file/);
  assertOneLineError(iov(["trace", "decode", "/nonexistent/a.bin"]), 1, /cannot tell whether/);
  const dir = temp();
  writeFileSync(join(dir, "lonely.in"), new Uint8Array(4));
  assertOneLineError(iov(["trace", "replay", join(dir, "lonely.in")]), 1, /no expected output for .*: pass --expect FILE/);
});

test("engine wasm3 with no binary anywhere names both ways to give one", () => {
  const { IOV_WASM3: _, ...env } = process.env;
  assertOneLineError(iov(["sim", "--engine", "wasm3"], undefined, env), 1, /needs a wasm3 binary: pass --wasm3 PATH or set IOV_WASM3/);
});

test("a wasm3 binary that is missing, not executable or crashes stops the run with one line naming it and why", () => {
  const dir = temp();
  const script = (name: string, body: string, mode = 0o755) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode });
    return join(dir, name);
  };
  const sim = (wasm3: string) => iov(["sim", "--engine", "wasm3", "--wasm3", wasm3, "--quiet"]);
  assertOneLineError(sim("/nonexistent/wasm3"), 1, /^iov: wasm3 binary \/nonexistent\/wasm3: not found$/);
  assertOneLineError(sim(dir), 1, new RegExp(`^iov: wasm3 binary ${dir}: is a directory$`));
  const plain = script("plain", "exit 0", 0o644);
  assertOneLineError(sim(plain), 1, new RegExp(`^iov: wasm3 binary ${plain}: not executable \\(mode 644\\)$`));
  const crash = script("crash", "kill -SEGV $$");
  assertOneLineError(sim(crash), 1, new RegExp(`^iov: wasm3 binary ${crash}: crashed \\(SIGSEGV\\) when asked for its version$`));
  assertOneLineError(iov(["trace", "replay", `${FIXTURES}default-host.in`, "--engine", "wasm3", "--wasm3", crash]), 1, /crashed \(SIGSEGV\)/);
  assertOneLineError(iov(["bench", "--only", "firmware", "--quick", "--wasm3", plain]), 1, /not executable/);
  // A stand-in that answers --version, runs the firmware under Node's WASI and crashes a second
  // into the run: the simulation stops there, not at the watchdog.
  const midway = script("midway", `[ "$1" = "--version" ] && exit 0\n(sleep 1; kill -SEGV $$) &\nexec "${process.execPath}" "${ROOT}tools/engines/wasi-runner.mjs" "$@"`);
  assertOneLineError(sim(midway), 1, new RegExp(`^iov: wasm3 binary ${midway} crashed \\(SIGSEGV\\)$`));
});

test("the default scenario under real wasm3 gives the same summary, timeline and capture as in-process", { skip: wasm3Skip }, () => {
  const dir = temp();
  const runs = ["node", "wasm3"].map((engine) => {
    const result = iov(["sim", "--engine", engine, "--summary", join(dir, `${engine}.json`), "--pcap", join(dir, `${engine}.pcap`)]);
    assert.equal(result.status, 0, result.stderr);
    const { engine: _, ...summary } = JSON.parse(readFileSync(join(dir, `${engine}.json`), "utf8")) as RunSummary;
    return { summary, pcap: readFileSync(join(dir, `${engine}.pcap`)), timeline: result.stdout.replaceAll(engine, "ENGINE") };
  });
  assert.equal(runs[0].summary.firmwareTraps, 0);
  assert.deepEqual(runs[1].summary, runs[0].summary);
  assert.ok(runs[0].pcap.length > 100_000, `${runs[0].pcap.length} bytes of capture`);
  assert.ok(runs[1].pcap.equals(runs[0].pcap), "the captures differ");
  assert.equal(runs[1].timeline, runs[0].timeline);
});

test("iov sim --softcore-mhz prints each card's soft-core utilisation and worst batch, and the summary has them", () => {
  const file = join(temp(), "summary.json");
  const run = iov(["sim", "--softcore-mhz", "200", "--duration", "50ms", "--quiet", "--summary", file]);
  assert.match(run.stdout, /^summary: default, seed 1, 0\.05 s simulated on node, soft-cores at 200 MHz$/m);
  assert.equal(run.stdout.match(/soft-core \d+\.\d % busy, worst batch \d+\.\d µs( \(\d+\.\d µs with first calls\))?(, \d+ over the limit \(\d+ compiling nothing\))?/g)?.length, 2, run.stdout);
  const summary = JSON.parse(readFileSync(file, "utf8")) as RunSummary;
  assert.equal(summary.softcoreMhz, 200);
  for (const card of summary.cards) {
    assert.ok(card.stats.busyNs > 0 && card.stats.busyNs <= summary.simulatedNs, card.name);
    assert.ok(card.stats.maxBatchNs > 0 && card.stats.instructions > 0 && card.stats.compiledBytes > 0, card.name);
    assert.ok(card.stats.maxWarmBatchNs <= card.stats.maxBatchNs && card.stats.longWarmBatches <= card.stats.longBatches, card.name);
    assert.ok(run.stdout.includes(`worst batch ${(card.stats.maxWarmBatchNs / 1000).toFixed(1)} µs`), `${card.name}: the printed worst batch is the one that compiled nothing`);
  }
});

test("trace replay fails with the first differing command when the output does not match", () => {
  const dir = temp();
  const wrong = new Uint8Array(readFileSync(`${FIXTURES}default-host.out`));
  wrong[12 + 4 + 4] ^= 0xff; // the value of the first REG_WRITE (the switch router's ConfigReady)
  writeFileSync(join(dir, "wrong.out"), wrong);
  const result = iov(["trace", "replay", `${FIXTURES}default-host.in`, "--expect", join(dir, "wrong.out")]);
  assertOneLineError(result, 1, /output differs under node: command #1 at byte 12: expected REG_WRITE 0x0a00 = 0x000000f7, got REG_WRITE 0x0a00 = 0x00000008/);
});

test("trace decode reads garbage without failing and says what it found", () => {
  const dir = temp();
  writeFileSync(join(dir, "noise.out"), Uint8Array.of(1, 0, 0x99, 0, 7, 2, 0));
  const result = iov(["trace", "decode", join(dir, "noise.out")]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, "#0      @0        0x99 (type 0x99, flags 0x0, 1-byte body): malformed, UnknownType\n(2 trailing byte(s) do not form a whole message: truncated)\n");
});

test("iov sim prints a timeline and writes a summary that is the same for the same seed on every engine", () => {
  const dir = temp();
  // The default scenario and 50 ms more, for the first heartbeat: 1 s after the boot batch.
  const runs = ["node", "node-wasi", "node"].map((engine, i) => {
    const file = join(dir, `summary-${i}.json`);
    const result = iov(["sim", "--seed", "77", "--engine", engine, "--duration", "1050ms", "--summary", file]);
    assert.equal(result.status, 0, result.stderr);
    return { stdout: result.stdout, summary: JSON.parse(readFileSync(file, "utf8")) as RunSummary };
  });
  // The host card powers on at 0; its soft-core loads the module first, and the boot batch (whose
  // log lines carry its TIME) starts when that is done.
  const bootNs = new SoftcoreTiming(SOFTCORE_DEFAULT_MHZ).loadNs(readFileSync(FIRMWARE).length);
  const at = (ns: number) => (ns / 1e9).toFixed(9).padStart(14);
  assert.ok(runs[0].stdout.includes(`${at(bootNs)}  host     fw      I boot: firmware 0.1.0`), `boot at ${at(bootNs)}:\n${runs[0].stdout.slice(0, 2000)}`);
  // The heartbeat's timer fires 1 s after the boot batch; its batch runs then, or when the
  // soft-core is done with the one it is in (at most the 1 ms batch limit later).
  const heartbeat = /^\s+(\d+\.\d{9})  host     fw      I heartbeat:/m.exec(runs[0].stdout);
  assert.ok(heartbeat, "a heartbeat");
  const heartbeatNs = Math.round(Number(heartbeat[1]) * 1e9);
  assert.ok(heartbeatNs >= bootNs + 1e9 && heartbeatNs < bootNs + 1e9 + 1e6, `heartbeat at ${heartbeat[1]}`);
  const { summary } = runs[0];
  assert.equal(summary.scenario, "default");
  assert.equal(summary.seed, 77);
  assert.equal(summary.simulatedNs, 1.05e9);
  assert.deepEqual(summary.cards.map((c) => [c.name, c.role, c.state, c.firmware]), [["host", "host", "running", "0.1.0"], ["chassis", "chassis", "running", "0.1.0"]]);
  assert.deepEqual(summary.tlps, { sent: 120_000, delivered: 120_000, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 });
  // The firmware trains the link by itself, while the server enumerates (from 2 ms, through
  // Configuration Request Retry Status until the host card is ready), and again when the cable
  // pulled at 300 ms comes back at 500 ms. At the soft-cores' 100 MHz the first handshake after
  // power-on may time out once, when a card's first batches of it (wasm3 compiling what they run)
  // keep it from answering in time: it starts over from discover, and HandshakeTimeouts counts it.
  const states = (card: number, tunnel: number) => summary.cards[card].linkStates.filter((s) => s.state.startsWith(`tunnel${tunnel}:`)).map((s) => s.state.split(":")[1]);
  const trained = ["discover", "negotiate", "authenticate", "configure", "active"];
  const pulled = [...trained, "recovery", "down", ...trained];
  for (const [card, name] of [[0, "host port 0 pairs with the chassis card, loses it, pairs again"], [1, "the chassis card pairs, loses the host card, pairs again"]] as const) {
    const all = states(card, 0);
    const timedOut = all.slice(0, all.length - pulled.length);
    assert.deepEqual(all.slice(timedOut.length), pulled, name);
    const attempts = timedOut.join(" ").split(/ ?(?=discover)/).filter(Boolean).map((a) => a.split(" "));
    assert.ok(attempts.length <= 1, `${name}: at most one attempt timed out, not ${attempts.length}`);
    for (const attempt of attempts) assert.deepEqual(attempt, trained.slice(0, attempt.length), `${name}: an attempt that timed out`);
    assert.equal(summary.cards[card].firmwareCounters!.HandshakeTimeouts, attempts.length, `${name}: each attempt that timed out is counted`);
  }
  assert.deepEqual(states(0, 1), ["discover"], "host port 1 has no chassis card to pair with");
  // In time for the scenario's traffic, which needs the tunnel.
  const trafficNs = Math.min(...SCENARIOS.default.traffic.map((t) => t.startNs));
  assert.ok(summary.cards.every((c) => c.linkStates.find((s) => s.state === "tunnel0:active")!.timeNs < trafficNs));
  for (const card of summary.cards) {
    const c = card.firmwareCounters!;
    assert.deepEqual([c.LinkUps, c.Recoveries, c.LinkDowns, c.AuthFailures, c.NegotiationFailures], [2, 1, 1, 0, 0], card.name);
  }
  // The 4 slots are removed at the pull and inserted after it. At the first connection the host
  // card reports its slots one per batch while the server enumerates: a device whose slot comes up
  // after the server scanned its bus is hot-added by pciehp, one more insertion.
  const enumeration = runs[0].stdout.slice(0, runs[0].stdout.indexOf("enumeration done"));
  const enumerated = enumeration.match(/server   os      device \d+:0\.0 /g)?.length ?? 0;
  assert.deepEqual(summary.hotplugEvents, { host: { removals: 4, insertions: 4 + (4 - enumerated) } });
  assert.equal(summary.hostCompletionTimeouts, 0);
  assert.equal(summary.dataVerificationErrors, 0);
  const reads = summary.servers[0].configReads;
  assert.ok(reads.count > 100, `${reads.count} configuration reads completed`);
  assert.ok(reads.p50Ns > 0 && reads.p50Ns <= reads.p99Ns && reads.p99Ns <= reads.maxNs && reads.maxNs < 50e6, JSON.stringify(reads));
  assert.match(runs[0].stdout, /server   os      graphics 3:0.0: test picture drawn, 640x480, remote framebuffer matches/);
  assert.match(runs[0].stdout, /server   os      dma-test 4:0.0: 1 MiB written to server memory .* 0 word errors/);
  assert.match(runs[0].stdout, /server   os      nvme 6:0.0: first read verified/);
  // The pull at 300 ms is declared Down at the grace window's end; pciehp handles the four slots one by one after it.
  assert.match(runs[0].stdout, /0\.3[23]\d+  server   os      pcieport 0000:02:03.0: pciehp: Slot\(4\): Link Down/);
  assert.match(runs[0].stdout, /server   os      ! nvme 6:0.0: load stopped cleanly, device removed: .*, 0 error\(s\), 0 mismatch\(es\)/);
  assert.match(runs[0].stdout, /0\.5\d+  server   os      pcieport 0000:02:03.0: pciehp: Slot\(4\): Link Up/);
  assert.equal(runs[0].stdout.match(/nvme 6:0.0: first read verified/g)?.length, 2, "the load resumes after the reconnect");
  assert.match(runs[0].stdout, /server   os      keyboard\/mouse 5:0.0: received "hello from the chassis" \(44 reports\); latency p50 \d+\.\d+ µs/);
  assert.equal(summary.firmwareTraps, 0);
  assert.equal(summary.mailboxErrors, 0);
  const { engine: _a, ...first } = runs[0].summary;
  for (const run of runs.slice(1)) {
    const { engine: _b, ...other } = run.summary;
    assert.deepEqual(other, first);
  }
  assert.equal(runs[2].stdout, runs[0].stdout);
});

test("iov sim --pcap captures the cable's frames, time-stamped, with their FCS; --keylog and iov pcap decrypt give the frames in clear", () => {
  const dir = temp();
  const file = join(dir, "run.pcap");
  // 160 ms: the cards pair ~110 ms after power-on at the soft-cores' 100 MHz; data follows.
  const result = iov(["sim", "--quiet", "--duration", "160ms", "--pcap", file, "--keylog", join(dir, "keys.log")]);
  assert.equal(result.status, 0, result.stderr);
  const capture = readPcap(new Uint8Array(readFileSync(file)));
  assert.equal(capture.linkType & 0xffff, 1, "LINKTYPE_ETHERNET");
  assert.equal(capture.fcsLength, 4);
  assert.ok(capture.records.length > 1000, `${capture.records.length} frames`);
  // CONTROL frames go in clear, every frame of the session as MACsec.
  const types = capture.records.map((r) => etherTypeOf(r.frame));
  assert.ok(types.every((t) => t === ETHERTYPE_IOV || t === ETHERTYPE_MACSEC));
  assert.ok(capture.records.every((r) => etherTypeOf(r.frame) === ETHERTYPE_MACSEC || r.frame[18 + 1] === FrameKind.Control), "no DATA, ACK or KEEPALIVE in clear");
  assert.ok(capture.records.every((r, i) => i === 0 || r.timeNs >= capture.records[i - 1].timeNs), "in time order");
  const bad = capture.records.filter((r) => !fcsValid(r.frame)).length;
  assert.equal(bad, 0, "the default cable loses frames but corrupts none");
  const clearFile = join(dir, "clear.pcap");
  const decrypt = iov(["pcap", "decrypt", file, clearFile, "--keylog", join(dir, "keys.log")]);
  assert.equal(decrypt.status, 0, decrypt.stderr);
  const protectedFrames = types.filter((t) => t === ETHERTYPE_MACSEC).length;
  assert.match(decrypt.stdout, new RegExp(`${capture.records.length} frames, ${protectedFrames} decrypted with 4 key\\(s\\)`));
  const clear = readPcap(new Uint8Array(readFileSync(clearFile)));
  assert.equal(clear.records.length, capture.records.length);
  assert.ok(clear.records.every((r, i) => r.timeNs === capture.records[i].timeNs && etherTypeOf(r.frame) === ETHERTYPE_IOV && fcsValid(r.frame)));
  // Link training comes first: DISCOVER, the handshake, READY both ways, then data.
  const firstData = clear.records.findIndex((r) => r.frame[18 + 1] === FrameKind.Data);
  assert.ok(firstData > 0, "data after the training");
  const controls = clear.records.slice(0, firstData).filter((r) => r.frame[18 + 1] === FrameKind.Control).map((r) => decodeControl(r.frame));
  const training = controls.map((c) => c?.type);
  assert.equal(training[0], ControlType.Discover);
  // At the soft-cores' 100 MHz a card can be slow to answer a handshake message: its first
  // batches of the handshake (wasm3 compiling what they run), or the host card serving the
  // server's enumeration meanwhile. The other side then sends again after the 10 ms handshake
  // timeout (and the first handshake after power-on may time out once: each side sends REJECT
  // with reason Timeout and starts over). The handshake that succeeds comes after the last REJECT.
  const rejects = controls.filter((c) => c?.type === ControlType.Reject);
  assert.ok(rejects.length <= 2, `${rejects.length} REJECTs: at most one handshake timed out, one REJECT each way`);
  for (const reject of rejects) assert.equal(reject!.body[0], RejectReason.Timeout, "a handshake that timed out");
  const final = controls.slice(training.lastIndexOf(ControlType.Reject) + 1);
  for (const type of [ControlType.Offer, ControlType.Accept, ControlType.Auth, ControlType.Ready]) assert.ok(final.some((c) => c?.type === type), ControlType[type]);
  // Each side authenticates: one AUTH, or a few when the peer was slow, never more than the
  // handshake's sends (LinkTiming.HandshakeAttempts).
  for (const card of ["2:16:16:0:0:1", "2:16:32:0:0:1"]) {
    const auths = final.filter((c) => c?.type === ControlType.Auth && c.source.join(":") === card).length;
    assert.ok(auths >= 1 && auths <= LinkTiming.HandshakeAttempts, `${card}: ${auths} AUTH`);
  }
});

test("iov sim --screenshot saves the remote screen as a PNG", () => {
  const file = join(temp(), "screen.png");
  // The whole default scenario: at the soft-cores' 100 MHz the graphics driver draws its test
  // picture only once the server has enumerated the chassis (~200 ms), the pull at 300 ms resets
  // the adapter, and after the reconnect (500 ms) the driver draws it again (~640 ms).
  const result = iov(["sim", "--quiet", "--screenshot", file]);
  assert.equal(result.status, 0, result.stderr);
  const png = PNG.sync.read(readFileSync(file));
  assert.deepEqual([png.width, png.height], [640, 480]);
  assert.deepEqual([...png.data.subarray(0, 4)], [255, 255, 255, 255], "the white border");
});

test("iov sim says why it exits 1: each failure on a line, a card the scenario cut the power of is not one", () => {
  const clean = { tlps: { sent: 10, delivered: 10, lost: 0, duplicated: 0, reordered: 0, abortedByRemoval: 0 }, hostCompletionTimeouts: 0, dataVerificationErrors: 0, firmwareTraps: 0, invariants: [], simulatedNs: 1e9 };
  const card = (name: string, state: string) => ({ name, state });
  const scenario = (actions: Scenario["actions"]) => ({ ...SCENARIOS.default, actions });
  const cut = { kind: "power-cut" as const, card: "chassis", atNs: 300e6 };
  const on = { kind: "power-on" as const, card: "chassis", atNs: 400e6 };
  const summary = (o: object) => ({ ...clean, cards: [card("host", "running"), card("chassis", "running")], ...o }) as unknown as RunSummary;
  assert.deepEqual(failures(summary({}), scenario([])), []);
  const lateCut = { ...cut, atNs: 500e6 };
  assert.deepEqual(failures(summary({ cards: [card("host", "running"), card("chassis", "off")] }), scenario([lateCut, on])), [], "cut last in time (not in the list): off on purpose");
  assert.deepEqual(failures(summary({ cards: [card("host", "running"), card("chassis", "off")] }), scenario([cut, on])), ["card chassis is off at the end, and the scenario did not cut its power"]);
  assert.deepEqual(failures(summary({ cards: [card("host", "running"), card("chassis", "off")] }), scenario([{ ...cut, atNs: 2e9 }])), ["card chassis is off at the end, and the scenario did not cut its power"], "a cut after the end does not count");
  assert.deepEqual(failures(summary({ cards: [card("host", "faulted"), card("chassis", "running")] }), scenario([])), ["card host is faulted at the end"]);
  assert.deepEqual(
    failures(summary({ tlps: { ...clean.tlps, lost: 2, reordered: 1 }, hostCompletionTimeouts: 3, dataVerificationErrors: 1, firmwareTraps: 1, invariants: ["server1 has 3:0.0 ..."] }), scenario([])),
    ["2 test TLP(s) lost", "1 test TLP(s) out of order", "3 completion timeout(s) in the servers", "1 data verification error(s) (the timeline's error lines say where)", "1 firmware trap(s)", "invariant: server1 has 3:0.0 ..."],
  );
});
