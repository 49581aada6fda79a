// `iov manage` (tools/cli/manage.ts): argument errors, the --json documents and the exit
// codes against fake cards behind a stream server, and the real thing: `iov manage`
// handing a chassis card from one server to another in `iov sim --scenario handover --manage`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinkState, ManageStatus } from "../../board/map/link.ts";
import { CardRole } from "../../board/map/mailbox.ts";
import { StreamTransport } from "../../tools/manage/transport.ts";
import { adminKey } from "../../tools/sim/scenarios.ts";
import { assertOneLineError, iov, ROOT } from "./helpers.ts";
import { FakeCard } from "./support/manage-card.ts";

const KEY = adminKey("lab");

/** `iov ARGS` without blocking this process (the fake cards answer from it). */
function iovAsync(args: string[], timeoutMs = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Fake cards behind a stream server, as `iov sim --manage` serves a management port. */
async function fakeNetwork(cards: FakeCard[]): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    const transport = StreamTransport.over(socket);
    transport.onFrame((frame) => {
      for (const card of cards) {
        const reply = card.answer(frame);
        if (reply) transport.send(reply);
      }
    });
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `tcp://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

test("iov manage and its subcommands have --help", () => {
  for (const args of [["manage"], ["manage", "discover"], ["manage", "status"], ["manage", "assign"]]) {
    const result = iov([...args, "--help"]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage: iov manage/);
  }
});

test("iov manage: bad arguments get a one-line error and exit status 2", () => {
  const net = ["--net", "tcp://127.0.0.1:9", "--installation", "lab"];
  assertOneLineError(iov(["manage", "discover", "--installation", "lab"]), 2, /required option '--net <url>' not specified/);
  assertOneLineError(iov(["manage", "discover", "--net", "raw://eth0", "--installation", "lab"]), 2,
    /unsupported network 'raw:\/\/eth0': the supported one is tcp:\/\/HOST:PORT/);
  assertOneLineError(iov(["manage", "discover", "--net", "tcp://nowhere", "--installation", "lab"]), 2, /bad network 'tcp:\/\/nowhere'/);
  assertOneLineError(iov(["manage", "discover", "--net", "tcp://127.0.0.1:9"]), 2, /no admin key: pass --key-file FILE \(64 hex digits\) or, for a simulated installation, --installation NAME/);
  assertOneLineError(iov(["manage", "discover", ...net, "--key-file", "k"]), 2, /'--installation <name>' cannot be used with option '--key-file <file>'/);
  assertOneLineError(iov(["manage", "status", "0x2000000g", ...net]), 2, /expected a card serial in hex, such as 0x20000001 or 20000001, got '0x2000000g'/);
  assertOneLineError(iov(["manage", "status", "123456789", ...net]), 2, /expected a card serial in hex/);
  assertOneLineError(iov(["manage", "status", "ffffffff", ...net]), 2, /0xffffffff is not a card's serial/);
  assertOneLineError(iov(["manage", "status", ...net]), 2, /missing required argument 'serial'/);
  assertOneLineError(iov(["manage", "assign", "20000001", ...net]), 2, /required option '--group <n>' not specified/);
  assertOneLineError(iov(["manage", "assign", "20000001", "--group", "4095", ...net]), 2, /expected 1\.\.4094, got 4095/);
  assertOneLineError(iov(["manage", "assign", "20000001", "--group", "4000", ...net]), 2, /group 4000 is the management VLAN/);
  assertOneLineError(iov(["manage", "discover", ...net, "--vlan", "0"]), 2, /expected 1\.\.4094, got 0/);
  assertOneLineError(iov(["manage", "discover", ...net, "--timeout", "soon"]), 2, /expected a whole number, got 'soon'/);
  assertOneLineError(iov(["manage", "frobnicate"]), 2, /unknown command 'frobnicate'/);
});

test("iov sim --manage needs a scenario with a management port and a free TCP port", async () => {
  assertOneLineError(iov(["sim", "--manage", "abc"]), 2, /option '--manage \[port\]' argument 'abc' is invalid/);
  assertOneLineError(iov(["sim", "--manage"]), 1, /^iov: scenario default has no management port: --manage needs one \(built-in: handover, fleet, fleet-dual\)$/);
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  try {
    const port = (taken.address() as { port: number }).port;
    const result = await iovAsync(["sim", "--scenario", "handover", "--manage", String(port), "--quiet"]);
    assertOneLineError(result, 1, new RegExp(`^iov: management port: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)$`));
  } finally {
    taken.close();
  }
});

test("iov manage: an unreadable or malformed key file and an unreachable network are failures (status 1)", () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-manage-"));
  const net = ["--net", "tcp://127.0.0.1:9"];
  assertOneLineError(iov(["manage", "discover", ...net, "--key-file", join(dir, "none")]), 1, /cannot read key file '.*none': no such file/);
  writeFileSync(join(dir, "short"), "abcd\n");
  assertOneLineError(iov(["manage", "discover", ...net, "--key-file", join(dir, "short")]), 1, /key file '.*short': expected the 32-byte admin key as 64 hex digits/);
  assertOneLineError(iov(["manage", "discover", ...net, "--installation", "lab"]), 1, /tcp:\/\/127\.0\.0\.1:9: connection refused/);
  const json = iov(["manage", "status", "20000001", ...net, "--installation", "lab", "--json"]);
  assert.equal(json.status, 1);
  assert.deepEqual(JSON.parse(json.stdout), { command: "status", ok: false, error: "tcp://127.0.0.1:9: connection refused; is `iov sim --manage` running?" });
});

test("iov manage discover and status: the table, the report and their --json documents", async () => {
  const host = new FakeCard({ serial: 0x1000_0001, role: CardRole.Host, key: KEY, slots: 2 });
  host.linkStates = [LinkState.Active, LinkState.Discover];
  host.peerSerials = [0x2000_0001, 0];
  host.counters.linkUps = 3;
  host.macsecDrops = null; // a firmware from before the MACsec drops in the reply
  const chassis = new FakeCard({ serial: 0x2000_0001, role: CardRole.Chassis, key: KEY });
  chassis.linkStates = [LinkState.Active];
  chassis.peerSerials = [0x1000_0001];
  chassis.macsecDrops = { badIcv: 7, late: 2, unknownAn: 0, unknownSci: 1, inClear: 3, badTag: 0 };
  chassis.paths = [{ on: [0, 1], silent: [1], health: [{ rttNs: 4_812, txFrames: 4186, rxFrames: 4000, resent: 3 }, { rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }] }];
  const { url, server } = await fakeNetwork([chassis, host]);
  const dir = mkdtempSync(join(tmpdir(), "iov-manage-"));
  writeFileSync(join(dir, "admin.key"), Buffer.from(KEY).toString("hex") + "\n");
  try {
    const table = await iovAsync(["manage", "discover", "--net", url, "--key-file", join(dir, "admin.key"), "--timeout", "200"]);
    assert.equal(table.status, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^ROLE +SERIAL +MAC +FIRMWARE +BOOT +GROUP +SLOTS +LINK \(STATE PEER\) +UPS +DOWNS +AUTHFAIL +REFUSED +MACSEC DROPS$/);
    assert.match(lines[1], /^host +0x10000001 +02:10:10:00:00:01 +0\.1\.0 +slot 0 +100 +2 port\(s\) +0:active 0x20000001, 1:discover +3 +0 +0 +0 +-$/);
    assert.match(lines[2], /^chassis +0x20000001 +02:10:20:00:00:01 +0\.1\.0 +slot 0 +100 +2, device in 0 +active 0x10000001 +0 +0 +0 +0 +13$/);
    assert.equal(lines[3], "2 card(s) answered within 200 ms");

    const discover = await iovAsync(["manage", "discover", "--net", url, "--installation", "lab", "--timeout", "200", "--json"]);
    assert.equal(discover.status, 0, discover.stderr);
    const doc = JSON.parse(discover.stdout);
    assert.deepEqual(Object.keys(doc), ["command", "ok", "cards", "ignored"]);
    assert.deepEqual(doc.ignored, { badTags: 0, unexpected: 0, malformed: 0 });
    assert.deepEqual(doc.cards[1], {
      serial: "0x20000001", role: "chassis", mac: "02:10:20:00:00:01", bootId: `0x${chassis.bootId.toString(16).padStart(8, "0")}`,
      firmware: "0.1.0", group: 100, boot: { slot: 0, trial: false, flags: 0 }, slots: 2, slotsPresent: [0],
      ports: [{
        port: 0, state: "active", peer: "0x10000001",
        paths: [{ ethernet: 0, silent: false, rttNs: 4_812, txFrames: 4186, rxFrames: 4000, resent: 3 }, { ethernet: 1, silent: true, rttNs: 0, txFrames: 0, rxFrames: 0, resent: 0 }],
      }],
      counters: { linkUps: 0, linkDowns: 0, recoveries: 0, authFailures: 0, hotplugEvents: 0, manageRequests: 4, manageAuthFailures: 0, manageReplays: 0 },
      macsecDrops: { badIcv: 7, late: 2, unknownAn: 0, unknownSci: 1, inClear: 3, badTag: 0 },
    });
    assert.equal(doc.cards[0].macsecDrops, null, "the host card's firmware reports none");
    assert.deepEqual(doc.cards[0].ports, [{ port: 0, state: "active", peer: "0x20000001", paths: null }, { port: 1, state: "discover", peer: null, paths: null }], "a firmware from before the paths");

    const status = await iovAsync(["manage", "status", "20000001", "--net", url, "--installation", "lab"]);
    assert.equal(status.status, 0, status.stderr);
    assert.equal(status.stdout, [
      `card 0x20000001: chassis, MAC 02:10:20:00:00:01, boot ID 0x${chassis.bootId.toString(16).padStart(8, "0")}`,
      "firmware: 0.1.0, slot 0",
      "group: 100",
      "slots: 2, device in 0",
      "link port 0: active, peer 0x10000001, paths eth0 (RTT 4.8 us, 4186 frames out, 4000 in, 3 resent: 0.07 %), eth1 silent (RTT not measured yet, 0 frames out, 0 in, 0 resent)",
      "counters: link ups 0, link downs 0, recoveries 0, auth failures 0, hot-plug events 0, management requests 6, refused: bad tag 0, refused: replayed or stale 0",
      "MACsec frames dropped (as the card read them within the last second): bad ICV 7, late 2, unknown AN 0, unknown SCI 1, in clear 3, bad SecTAG 0",
      "",
    ].join("\n"));
    const statusJson = JSON.parse((await iovAsync(["manage", "status", "0x10000001", "--net", url, "--installation", "lab", "--json"])).stdout);
    assert.deepEqual([statusJson.command, statusJson.ok, statusJson.card.serial, statusJson.card.role], ["status", true, "0x10000001", "host"]);
    assert.equal(statusJson.card.macsecDrops, null);
    const oldStatus = await iovAsync(["manage", "status", "10000001", "--net", url, "--installation", "lab"]);
    assert.match(oldStatus.stdout, /\nMACsec frames dropped: not reported by this firmware\n$/);

    // Another installation's key: the cards stay silent.
    const wrong = await iovAsync(["manage", "discover", "--net", url, "--installation", "other", "--timeout", "100", "--json"]);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /^iov: no card answered within 100 ms on VLAN 4000 of tcp:\/\/127\.0\.0\.1:\d+ \(wrong admin key or VLAN\? cards not on\?\)\n$/);
    assert.deepEqual(JSON.parse(wrong.stdout).cards, []);
    const silent = await iovAsync(["manage", "status", "20000009", "--net", url, "--installation", "lab", "--timeout", "20"]);
    assertOneLineError(silent, 1, /card 0x20000009 did not answer a discovery \(3 tries, 20 ms each\)/);
  } finally {
    server.close();
  }
});

test("iov manage assign: the move, a card already there, and a refusal with --json", async () => {
  const host = new FakeCard({ serial: 0x1000_0001, role: CardRole.Host, key: KEY, slots: 2 });
  const chassis = new FakeCard({ serial: 0x2000_0001, role: CardRole.Chassis, key: KEY });
  const { url, server } = await fakeNetwork([chassis, host]);
  try {
    const moved = await iovAsync(["manage", "assign", "10000001", "--group", "200", "--net", url, "--installation", "lab"]);
    assert.equal(moved.status, 0, moved.stderr);
    assert.match(moved.stdout, /^card 0x10000001 \(host\): group 100 -> 200\n  the card took the new group \(written to its flash\) and is moving\n  [0-9.]+ s: group 200, link 0:discover, 1:discover\ncard 0x10000001 is in group 200 after [0-9.]+ s\n$/);
    assert.equal(host.group, 200);
    const again = await iovAsync(["manage", "assign", "10000001", "--group", "200", "--net", url, "--installation", "lab", "--json"]);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual((({ command, ok, changed, from, to }) => ({ command, ok, changed, from, to }))(JSON.parse(again.stdout)),
      { command: "assign", ok: true, changed: false, from: 200, to: 200 });
    // A chassis card whose link does not come back within --wait.
    const lonely = await iovAsync(["manage", "assign", "20000001", "--group", "300", "--wait", "600", "--net", url, "--installation", "lab"]);
    assert.equal(lonely.status, 1);
    assert.match(lonely.stderr, /^iov: card 0x20000001 is in group 300, but its link was not active with a host card within 600 ms \(discover\); is a host card in group 300\?\n$/);
    chassis.setGroupStatus = ManageStatus.FlashFailed;
    const refused = await iovAsync(["manage", "assign", "20000001", "--group", "400", "--net", url, "--installation", "lab", "--json"]);
    assert.equal(refused.status, 1);
    assert.deepEqual(JSON.parse(refused.stdout), {
      command: "assign", serial: "0x20000001", status: "flashFailed", ok: false,
      error: "card 0x20000001 refused the group change to 400: flash failed (the configuration could not be written; nothing changed)",
    });
    assert.equal(refused.stderr, "iov: card 0x20000001 refused the group change to 400: flash failed (the configuration could not be written; nothing changed)\n");
  } finally {
    server.close();
  }
});

test("iov manage hands a chassis card from one server to another in iov sim --scenario handover --manage", async () => {
  const sim = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, "sim", "--scenario", "handover", "--manage", "--quiet"], { cwd: ROOT });
  let simOut = "";
  sim.stdout.on("data", (chunk: Buffer) => (simOut += chunk.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!/management port: (tcp:\/\/\S+)/.test(simOut) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const url = /management port: (tcp:\/\/\S+) +\(try: iov manage discover --net \S+ --installation default\)/.exec(simOut)?.[1];
    assert.ok(url, simOut);
    // The first simulated second (enumeration, the DMA test, drawing) runs behind the wall clock: give the answers time.
    const found = await iovAsync(["manage", "discover", "--net", url, "--installation", "default", "--timeout", "3000", "--json"]);
    assert.equal(found.status, 0, found.stderr);
    const cards = JSON.parse(found.stdout).cards as { serial: string; role: string; group: number; ports: { port: number; state: string; peer: string | null; paths: { ethernet: number; silent: boolean }[] | null }[] }[];
    // A path's figures are as the card last read them (each second), so when the question comes: numbers, whatever they are.
    const shape = (ports: typeof cards[number]["ports"]) => ports.map((p) => ({
      ...p, paths: p.paths && p.paths.map((x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, ["rttNs", "txFrames", "rxFrames", "resent"].includes(k) ? typeof v : v]))),
    }));
    const figures = { rttNs: "number", txFrames: "number", rxFrames: "number", resent: "number" };
    assert.deepEqual(cards.map((c) => [c.serial, c.role, c.group]), [["0x10000001", "host", 100], ["0x10000002", "host", 200], ["0x20000001", "chassis", 100]]);
    assert.deepEqual(shape(cards[2].ports), [{ port: 0, state: "active", peer: "0x10000001", paths: [{ ethernet: 0, silent: false, ...figures }] }], "one cable: the handshake's path alone");
    const moved = await iovAsync(["manage", "assign", "0x20000001", "--group", "200", "--net", url, "--installation", "default"]);
    assert.equal(moved.status, 0, `${moved.stdout}\n${moved.stderr}`);
    assert.match(moved.stdout, /^card 0x20000001 is in group 200, link active with host card 0x10000002 after [0-9.]+ s$/m);
    const status = await iovAsync(["manage", "status", "20000001", "--net", url, "--installation", "default", "--json"]);
    assert.deepEqual(shape(JSON.parse(status.stdout).card.ports), [{ port: 0, state: "active", peer: "0x10000002", paths: [{ ethernet: 0, silent: false, ...figures }] }]);
  } finally {
    sim.kill("SIGINT");
    await new Promise((resolve) => sim.on("close", resolve));
  }
});
