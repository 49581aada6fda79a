// MACsec in whole-system runs (docs/link.md#keys, docs/wire-format.md#macsec): two cards'
// firmware derive and install the keys, every frame of a session is protected, rekeying under
// load loses nothing, a card with another pairing key never gets a key, each session has new
// keys, the rogue station of the `attack` scenario gets nothing through, a capture decrypted
// with the key log gives the frames the engines built, and tshark reads the MACsec fields.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { World } from "../../tools/sim/world.ts";
import { SCENARIOS, pairScenario, type PairOptions, type Scenario } from "../../tools/sim/scenarios.ts";
import { failures } from "../../tools/cli/sim.ts";
import { MacsecSetting, ResetCause } from "../../board/map/mailbox.ts";
import { LinkState } from "../../board/map/link.ts";
import { SECY_BASE, SecyReg, SecyStatus, TunnelCounter, FabricEventKind, CardReg, TunnelReg, MACSEC_DROP_REASONS } from "../../board/map/registers.ts";
import type { ManageReply } from "../../board/manage-codec.ts";
import { readPcap } from "../../tools/sim/pcap.ts";
import { Decryptor, parseKeyLog } from "../../tools/sim/keylog.ts";
import { ETHERTYPE_MACSEC, formatSci, frameSci, isMacsec, parseSecTag, type SecTag } from "../../board/macsec/frame.ts";
import { etherTypeOf, ETHERTYPE_IOV, writeFcs } from "../../board/ethernet/frame.ts";
import { FIRMWARE } from "./helpers.ts";

const MS = 1_000_000;

function world(scenario: Scenario, seed: number, extra: { pcap?: string; keylog?: string; softcoreMhz?: number; print?: (line: string) => void } = {}): World {
  return new World({ scenario, seed, engine: "node", engineOptions: { firmware: FIRMWARE }, ...extra });
}

const fabric = (w: World, card: string) => w.fabrics.get(card)!;

const flood = (count: number): NonNullable<PairOptions["traffic"]> => [
  { from: "host", to: "chassis", count, startNs: 0, payload: 256, mix: { posted: 4, nonPosted: 1, completion: 1 } },
  { from: "chassis", to: "host", count: count / 4, startNs: 0, payload: 64, mix: { posted: 2, nonPosted: 1, completion: 3 } },
];

/** Test traffic both ways from the moment the host card's first session is Active. */
function floodWhenUp(w: World, count: number): void {
  let started = false;
  w.onLinkStateChange((card, _tunnel, state) => {
    if (card !== "host" || state !== LinkState.Active || started) return;
    started = true;
    flood(count).forEach((spec, i) => w.startTraffic(spec, i));
  });
}

const tunnelSum = (w: World, c: TunnelCounter) => ["host", "chassis"].reduce((n, card) => n + fabric(w, card).tunnels.reduce((m, t) => m + t.counters[c], 0), 0);

test("a pair protects its session with GCM-AES-XPN-128 by default, GCM-AES-XPN-256 when a card asks for it, and sends in clear only when both are set so", async () => {
  for (const [host, chassis, expect] of [
    [MacsecSetting.Xpn128, MacsecSetting.Xpn128, "xpn128"],
    [MacsecSetting.Xpn128, MacsecSetting.Xpn256, "xpn256"],
    [MacsecSetting.Off, MacsecSetting.Off, "clear"],
    [MacsecSetting.Off, MacsecSetting.Xpn128, "refused"],
  ] as const) {
    const lines: string[] = [];
    const w = world(pairScenario({ durationNs: 250 * MS, host: { link: { macsec: host } }, chassis: { link: { macsec: chassis } } }), 1, { print: (line) => lines.push(line) });
    floodWhenUp(w, 2000);
    const summary = await w.run();
    const control = fabric(w, "host").readRegister(SECY_BASE + SecyReg.Control);
    const what = `host ${MacsecSetting[host]}, chassis ${MacsecSetting[chassis]}`;
    if (expect === "refused") {
      assert.equal(summary.macsec.protectedFrames + summary.macsec.clearFrames, 0, `${what}: no session`);
      assert.ok(lines.some((l) => /no common data path protection/.test(l)), `${what}: the reason is logged`);
      continue;
    }
    assert.equal(summary.tlps.delivered, 2500, what);
    if (expect === "clear") {
      assert.equal(control, 0, what);
      assert.equal(summary.macsec.protectedFrames, 0, what);
      assert.ok(summary.macsec.clearFrames > 0, what);
      assert.ok(lines.some((l) => /data path in clear: MACsec is off by configuration/.test(l)), `${what}: logged as a warning`);
    } else {
      assert.equal(control, expect === "xpn256" ? 3 : 1, what);
      assert.equal(summary.macsec.clearFrames, 0, what);
      assert.ok(lines.some((l) => new RegExp(`up with .* MACsec GCM-AES-XPN-${expect === "xpn256" ? 256 : 128}`).test(l)), what);
    }
  }
});

test("rekeying under full load: dozens of switches through the firmware's key derivations, no TLP lost and no frame refused", async () => {
  const scenario = pairScenario({ durationNs: 400 * MS });
  const w = world(scenario, 3, { softcoreMhz: 0 });
  floodWhenUp(w, 40_000);
  // The lab's way to rekey often: the fabric's RekeyFrames register, written once the cards are on.
  w.scheduler.at(1 * MS, () => {
    for (const card of ["host", "chassis"]) assert.ok(fabric(w, card).writeRegister(SECY_BASE + SecyReg.RekeyFrames, 200));
  });
  const summary = await w.run();
  assert.deepEqual(failures(summary, scenario), []);
  assert.equal(summary.tlps.delivered, 50_000);
  assert.ok(summary.macsec.rekeys >= 40, `${summary.macsec.rekeys} rekeys`);
  assert.equal(summary.macsec.badIcv + summary.macsec.unknownSa + summary.macsec.late + summary.macsec.unknownSci, 0, "nothing refused across a switch");
  for (const card of ["host", "chassis"]) {
    const status = fabric(w, card).readRegister(SECY_BASE + SecyReg.Status);
    assert.ok(status & SecyStatus.TxNextReady, `${card}: the next key is always installed in time`);
  }
});

test("a card with another pairing key never gets a key: AUTH fails and neither SecY holds an SA", async () => {
  const w = world(pairScenario({ durationNs: 200 * MS, chassis: { link: { installation: "another" } } }), 2);
  const summary = await w.run();
  assert.ok(summary.cards.every((c) => (c.firmwareCounters?.AuthFailures ?? 0) + (c.firmwareCounters?.PeerRejects ?? 0) > 0));
  for (const card of ["host", "chassis"]) {
    const status = fabric(w, card).readRegister(SECY_BASE + SecyReg.Status);
    assert.equal(status & (SecyStatus.TxInUse | (0xf << 4)), 0, `${card}: no transmit or receive SA`);
  }
  assert.equal(summary.macsec.protectedFrames, 0);
});

test("each session has its own keys and SCIs: after a cable pull the cards pair again under new ones, and the key log has both", async () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-macsec-"));
  const keylog = join(dir, "keys.log");
  const scenario = pairScenario({ durationNs: 600 * MS, outages: [{ downAtNs: 200 * MS, upAtNs: 300 * MS }] });
  const w = world(scenario, 5, { keylog });
  floodWhenUp(w, 2000);
  const summary = await w.run();
  assert.deepEqual(failures(summary, scenario), []);
  const entries = parseKeyLog(readFileSync(keylog, "utf8"));
  const scis = new Set(entries.map((e) => formatSci(e.sci)));
  assert.equal(scis.size, 4, "two SCs per session, two sessions");
  const keys = new Set(entries.map((e) => Buffer.from(e.key).toString("hex")));
  assert.equal(keys.size, entries.length, "no key twice");
});

test("the attack scenario, several seeds: every forged, altered, replayed, clear and stale frame is dropped and counted; nothing reaches a server", async () => {
  for (const seed of [1, 2, 3]) {
    const scenario: Scenario = { ...SCENARIOS.attack, durationNs: 700 * MS };
    const w = world(scenario, seed, { softcoreMhz: 0 });
    const summary = await w.run();
    assert.deepEqual(failures(summary, scenario), [], `seed ${seed}`);
    const a = summary.attack!;
    assert.equal(a.accepted, 0, `seed ${seed}: accepted`);
    assert.equal(a.tlpsRecovered, 0, `seed ${seed}: TLPs read off the wire`);
    for (const [kind, n] of Object.entries(a.sent)) assert.ok(n > 100, `seed ${seed}: ${n} ${kind}`);
    const m = summary.macsec;
    const total = Object.values(a.sent).reduce((n, v) => n + v, 0);
    assert.equal(a.uncounted, 0, `seed ${seed}: every frame that reached a card was counted there`);
    assert.ok(a.reached > 0.6 * total, `seed ${seed}: ${a.reached} of ${total} reached a card (the others met the pulled cable)`);
    assert.ok(m.badIcv > 0.8 * a.sent.forge, `seed ${seed}: forgeries fail their ICV (${m.badIcv} for ${a.sent.forge})`);
    assert.ok(m.untagged > 0.6 * a.sent.clear, `seed ${seed}: DATA frames in clear refused (${m.untagged} for ${a.sent.clear})`);
    assert.ok(m.unknownSci > 0.8 * a.sent.stale, `seed ${seed}: frames of the earlier session under an SCI no longer known (${m.unknownSci} for ${a.sent.stale})`);
    assert.ok(m.late > 0, `seed ${seed}: replays below the window`);
    assert.equal(summary.tlps.delivered, 120_000);
    assert.equal(summary.hotplugEvents.host.removals, 4, "the scenario's cable pull, nothing more");
  }
});

test("a replayed KEEPALIVE does not hold up a link whose peer fell silent", async () => {
  const lines: string[] = [];
  const w = world(pairScenario({ durationNs: 300 * MS, switched: true }), 1, { softcoreMhz: 0, print: (line) => lines.push(line) });
  const chassisCable = w.network.link("cable-chassis");
  let last: Uint8Array | null = null;
  chassisCable.tap = (frame, to) => {
    if (to === chassisCable.b && isMacsec(frame) && frame.length < 100) last = frame.slice(); // a KEEPALIVE of the chassis card
  };
  // At 150 ms the chassis card's cable goes dead; its last KEEPALIVE is replayed to the host card
  // every 10 µs from the switch's side of the host card's cable.
  w.scheduler.at(150 * MS, () => {
    chassisCable.hold("test: the chassis card goes silent", true);
    const replay = () => {
      if (last) w.network.link("cable-host").b.send(last.slice());
      if (w.scheduler.now < 250 * MS) w.scheduler.at(w.scheduler.now + 10_000, replay);
    };
    replay();
  });
  await w.run();
  assert.ok(lines.some((l) => /host .*peer silent/.test(l)), "the host card noticed the silence despite the replays");
  assert.ok(tunnelSum(w, TunnelCounter.RxValidated) > 0);
  assert.ok(fabric(w, "host").tunnels[0].counters[TunnelCounter.RxValidated] > 0);
});

const tshark = spawnSync("tshark", ["-v"], { encoding: "utf8" });
const tsharkSkip = tshark.error || tshark.status !== 0 ? "tshark not on PATH: install it (apt-get install tshark) to check captures decode in Wireshark" : false;

test("tshark dissects every tunnel frame of a capture as MACsec with the TCI, AN, PN and SCI the frame carries; the decrypted capture holds the frames the engines built", { skip: tsharkSkip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-macsec-"));
  const pcap = join(dir, "run.pcap");
  const keylog = join(dir, "keys.log");
  const w = world(pairScenario({ durationNs: 150 * MS }), 1, { pcap, keylog, softcoreMhz: 0 });
  floodWhenUp(w, 400);
  const built: Uint8Array[] = [];
  for (const card of ["host", "chassis"]) {
    for (const tunnel of fabric(w, card).tunnels) {
      const protect = tunnel.secy.protect.bind(tunnel.secy);
      tunnel.secy.protect = (frame) => {
        built.push(frame.slice());
        return protect(frame);
      };
    }
  }
  await w.run();
  const capture = readPcap(new Uint8Array(readFileSync(pcap)));
  const secured = capture.records.filter((r) => isMacsec(r.frame));
  assert.ok(secured.length > 500);
  const fields = ["frame.number", "macsec.TCI", "macsec.AN", "macsec.PN", "macsec.SCI.system_identifier", "macsec.SCI.port_identifier", "_ws.malformed"];
  const result = spawnSync("tshark", ["-r", pcap, "-n", "-Y", "macsec", "-T", "fields", "-E", "separator=|", ...fields.flatMap((f) => ["-e", f])], { encoding: "utf8", timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const rows = result.stdout.trimEnd().split("\n").map((line) => line.split("|"));
  assert.equal(rows.length, secured.length, "every MACsec frame dissected as MACsec");
  for (const [number, tci, an, pn, system, port, malformed] of rows) {
    const frame = capture.records[Number(number) - 1].frame;
    const tag = parseSecTag(frame) as SecTag;
    const sci = frameSci(frame, tag)!;
    assert.equal(Number(tci) << 2, tag.tci, `frame ${number} TCI`); // tshark shows the six TCI bits without the AN
    assert.equal(Number(an), tag.an, `frame ${number} AN`);
    assert.equal(Number(pn), tag.pn, `frame ${number} PN`);
    assert.equal(system, Array.from(sci.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":"), `frame ${number} SCI system`);
    assert.equal(Number(port), (sci[6] << 8) | sci[7], `frame ${number} SCI port`);
    assert.equal(malformed, "", `frame ${number} malformed`);
  }
  // Decrypted with the key log: byte for byte the frames the tunnel engines built, in order.
  const decryptor = new Decryptor(parseKeyLog(readFileSync(keylog, "utf8")));
  const clear = secured.map((r) => decryptor.decrypt(r.frame));
  assert.ok(clear.every((c) => c.outcome === "decrypted"));
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const builtSet = new Map(built.map((b) => [hex(b), 0]));
  for (const c of clear) {
    assert.equal(etherTypeOf(c.frame), ETHERTYPE_IOV);
    assert.ok(builtSet.has(hex(c.frame)), "a frame an engine built");
  }
  assert.ok(secured.every((r) => etherTypeOf(r.frame) === ETHERTYPE_MACSEC));
});

test("a firmware restart that swallows a key switch: the new firmware catches up from the SecY's Status and rekeying goes on", async () => {
  const scenario = pairScenario({ durationNs: 500 * MS });
  const lines: string[] = [];
  const w = world(scenario, 4, { print: (line) => lines.push(line) });
  floodWhenUp(w, 60_000);
  w.scheduler.at(1 * MS, () => {
    for (const card of ["host", "chassis"]) assert.ok(fabric(w, card).writeRegister(SECY_BASE + SecyReg.RekeyFrames, 2000));
  });
  // The third transmit switch of the host card: its soft-core is reset at that instant, so the
  // TxSaSwitched event (and the derivation it would start) never reaches the firmware.
  const secy = fabric(w, "host").tunnels[0].secy as unknown as { host: { event(kind: FabricEventKind, arg: number): void } };
  const event = secy.host.event;
  let switches = 0;
  let rebootAt = 0;
  secy.host.event = (kind, arg) => {
    event(kind, arg);
    if (kind === FabricEventKind.TxSaSwitched && ++switches === 3) {
      rebootAt = w.scheduler.now;
      void w.cards.find((c) => c.name === "host")!.reset(ResetCause.Software);
    }
  };
  const summary = await w.run();
  assert.ok(rebootAt > 0, "the host card rebooted at a switch");
  assert.ok(lines.some((l) => /host .*session adopted after a restart/.test(l)));
  assert.deepEqual(failures(summary, scenario), []);
  assert.ok(switches >= 8, `${switches} switches of the host card, rekeying went on after the restart`);
  assert.equal(summary.macsec.badIcv + summary.macsec.unknownSa + summary.macsec.late, 0);
});

test("the card reports the MACsec frames it dropped: the fabric's counts in CardReg.MacsecDrops, and as the firmware read them within a second in `iov manage status` and the console's `link`", async () => {
  const w = world(pairScenario({ durationNs: Infinity, management: true }), 2);
  const cable = w.network.link("cable-chassis");
  let sample: Uint8Array | null = null;
  cable.tap = (frame, to) => {
    if (to === cable.a && isMacsec(frame)) sample = frame.slice(); // a protected frame to the chassis card
  };
  const seen: { status?: ManageReply; console: string; register: number[] } = { console: "", register: [] };
  w.startHooks.push((world) => {
    const client = world.management!.client({ tryMs: 20 });
    const chassis = world.cards.find((c) => c.name === "chassis")!;
    chassis.uart.line = (bytes) => (seen.console += Buffer.from(bytes).toString("latin1"));
    let injected = -1;
    const poll = () => {
      if (injected < 0 && sample && fabric(world, "chassis").tunnels[0].readRegister(TunnelReg.LinkState) === LinkState.Active) {
        // Five frames altered in flight (bad ICV), two whose SecTAG claims version 1 (bad SecTAG).
        for (let i = 0; i < 5; i++) {
          const bad = sample.slice();
          bad[bad.length - 24 - i] ^= 0x40; // in the Secure Data or the ICV, before the FCS
          writeFcs(bad);
          cable.b.send(bad);
        }
        for (let i = 0; i < 2; i++) {
          const bad = sample.slice();
          bad[bad[12] === 0x81 && bad[13] === 0x00 ? 18 : 14] |= 0x80; // the TCI's V bit, after the EtherType
          writeFcs(bad);
          cable.b.send(bad);
        }
        injected = world.scheduler.now;
      }
      // Past the firmware's next two looks (once a second): the status, then the console.
      if (injected >= 0 && world.scheduler.now >= injected + 2_100 * MS) {
        seen.register = Array.from({ length: MACSEC_DROP_REASONS }, (_, i) => fabric(world, "chassis").readRegister(CardReg.MacsecDrops + 4 * i));
        client.status(0x2000_0001).then((r) => {
          seen.status = r;
          chassis.uart.receive(new TextEncoder().encode("link\r"));
          world.scheduler.at(world.scheduler.now + 50 * MS, () => world.scheduler.stop());
        }).catch((error: Error) => {
          seen.console = error.message;
          world.scheduler.stop();
        });
        return;
      }
      world.scheduler.at(world.scheduler.now + MS, poll);
    };
    poll();
  });
  await w.run();
  assert.deepEqual(seen.register, [5, 0, 0, 0, 0, 2], "bad ICV, late, unknown AN, unknown SCI, in clear, bad SecTAG");
  assert.deepEqual(seen.status?.macsecDrops, { badIcv: 5, late: 0, unknownAn: 0, unknownSci: 0, inClear: 0, badTag: 2 });
  assert.match(seen.console, /MACsec frames dropped \(read each second\): bad ICV 5, late 0, unknown AN 0, unknown SCI 0, in clear 0, bad SecTAG 2\r\n/);
  assert.deepEqual([tunnelSum(w, TunnelCounter.RxBadIcv), tunnelSum(w, TunnelCounter.RxBadTag)], [5, 2], "the host card dropped none");
  assert.equal(fabric(w, "chassis").writeRegister(CardReg.MacsecDrops, 0), false, "read-only");
  assert.equal(fabric(w, "chassis").readRegister(CardReg.MacsecDrops), 5);
});
