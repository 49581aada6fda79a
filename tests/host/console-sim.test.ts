// The simulator's console sockets in real time: a standard XMODEM sender (lrzsz's sx)
// updating the firmware through them, and `iov flash` driving a whole update of a card in
// `iov sim --console`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage, developmentKey } from "../../board/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { World } from "../../tools/sim/world.ts";
import { FIRMWARE, ROOT } from "./helpers.ts";
import { singleCardScenario } from "./support/console-card.ts";

const sxSkip = spawnSync("sx", ["--version"]).error ? "lrzsz's sx is not installed (apt-get install lrzsz)" : false;

function newerImage(): string {
  const file = join(mkdtempSync(join(tmpdir(), "iov-sx-")), "firmware.img");
  writeFileSync(file, buildImage(readFileSync(FIRMWARE), { boardId: BOARD_ID, version: { major: 0, minor: 3, patch: 0 }, key: developmentKey() }));
  return file;
}

/** A one-card world in real time with its console on a TCP port, at 921 600 baud to keep the test short. */
async function liveCard(): Promise<{ world: World; port: number; done: Promise<unknown> }> {
  let port = 0;
  const world = new World({
    scenario: { ...singleCardScenario(Infinity), uartBaud: 921_600 }, seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE },
    console: 0, onConsoles: (endpoints) => (port = endpoints[0].port),
  });
  const done = world.run();
  while (port === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  return { world, port, done };
}

/** Reads the socket's text until `pattern` shows up (or `ms` pass). */
function until(socket: Socket, seen: { text: string }, pattern: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${ms} ms; the card said:\n${seen.text}`)), ms);
    const check = () => {
      if (!pattern.test(seen.text)) return;
      clearTimeout(timer);
      socket.off("data", check);
      resolve();
    };
    socket.on("data", check);
    check();
  });
}

for (const [mode, args] of [["1K blocks, CRC-16", ["-k"]], ["128-byte blocks, CRC-16", []]] as const) {
  test(`the firmware's XMODEM receiver takes an image from lrzsz sx (${mode}) and the card runs it`, { skip: sxSkip }, async () => {
    const image = newerImage();
    const { world, port, done } = await liveCard();
    const socket = connect(port, "127.0.0.1");
    const seen = { text: "" };
    socket.on("data", (chunk: Buffer) => (seen.text += chunk.toString("latin1")));
    try {
      // The console is there once the firmware has booted and printed its prompt: at the soft-cores'
      // 100 MHz, after the module's load and the boot batch (~50 ms). The CR gets a prompt even if
      // the banner's went out before the socket was attached.
      socket.write("\r");
      await until(socket, seen, /iov> $/, 5000);
      socket.write("update\r");
      // sx must not see the card's text: it would take any 'C' in it for the receiver's start.
      await until(socket, seen, /update: ready for xmodem/, 5000);
      seen.text = "";
      const sx = spawn("sx", [...args, image], { stdio: ["pipe", "pipe", "pipe"] });
      let log = "";
      sx.stderr.on("data", (chunk: Buffer) => (log += chunk.toString()));
      sx.stdin.on("error", () => {}); // the card may still be talking when sx has finished
      const relay = (chunk: Buffer) => sx.stdin.write(chunk);
      socket.on("data", relay);
      sx.stdout.on("data", (chunk: Buffer) => socket.write(chunk));
      const code = await new Promise<number | null>((resolve) => sx.on("close", resolve));
      socket.off("data", relay);
      assert.equal(code, 0, `sx failed: ${log}`);
      await until(socket, seen, /update: image 0\.3\.0 confirmed\r\n/, 10_000);
      assert.match(seen.text, /update: received \d+ bytes\r\nupdate: image 0\.3\.0 build [0-9a-f]{32} checks out; rebooting into a trial\r\n/);
      assert.match(seen.text, /boot: starting slot 1 \(0\.3\.0\) on trial\r\n/);
      assert.deepEqual([world.cards[0].booted?.slot, world.cards[0].booted?.trial], [1, false]);
    } finally {
      socket.destroy();
      world.scheduler.stop();
      await done;
    }
  });
}

test("iov flash updates a card of iov sim --console end to end, and the update outlives the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "iov-flash-sim-"));
  const image = newerImage();
  const sim = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, "sim", "--scenario", "console", "--console", "--quiet", "--flash-dir", dir], { cwd: ROOT });
  let simOut = "";
  sim.stdout.on("data", (chunk: Buffer) => (simOut += chunk.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!/console of host: (tcp:\/\/\S+)/.test(simOut) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const port = /console of host: (tcp:\/\/\S+)/.exec(simOut)?.[1];
    assert.ok(port, simOut);
    const flash = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, "flash", "--port", port, image], { cwd: ROOT });
    let out = "";
    let err = "";
    flash.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    flash.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => flash.on("close", resolve));
    assert.equal(code, 0, `${out}\n${err}`);
    assert.match(out, /^card: boot: starting slot 1 \(0\.3\.0\) on trial$/m);
    assert.match(out, new RegExp(`^flashed ${image.replace(/[.]/g, "\\.")} \\(0\\.3\\.0 build [0-9a-f]{32}\\) to ${port}: confirmed in slot 1 after [0-9.]+ s$`, "m"));
  } finally {
    sim.kill("SIGINT");
    await new Promise((resolve) => sim.on("close", resolve));
  }
  // The host card's flash file now starts the new image.
  let booted = "";
  const world = new World({
    scenario: { ...singleCardScenario(50e6), cards: [{ name: "host", role: 0, serial: 0x1000_0001, slots: 1, powerOnNs: 0, link: null }] },
    seed: 1, engine: "node", engineOptions: { firmware: FIRMWARE }, flashDir: dir,
  });
  world.stopHooks.push((w) => {
    booted = `${w.cards[0].booted?.slot} ${w.cards[0].booted?.trial}`;
  });
  await world.run();
  assert.equal(booted, "1 false");
});
