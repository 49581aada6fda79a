// The host side of the console line: the XMODEM sender against real lrzsz and against
// scripted receivers, the progress bar, the console text reader, and `iov console` and
// `iov flash` against fake cards on TCP (and, through socat, on a pseudo-terminal).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { buildImage, developmentKey, inspectImage, isDefect, formatVersion, type ImageVersion } from "../../board/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { ACK, CAN, CRC_REQUEST, EOT, NAK, SOH, STX, crc16xmodem, checksum8, sendXmodem, XmodemError, type XmodemLine } from "../../tools/console/xmodem.ts";
import { ConsoleLines } from "../../tools/console/lines.ts";
import { openPort, parsePortSpec } from "../../tools/console/port.ts";
import { Progress } from "../../tools/cli/progress.ts";
import { ROOT } from "./helpers.ts";

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const lrzszSkip = has("rx") ? false : "lrzsz is not installed (apt-get install lrzsz): no real XMODEM receiver to test against";
const socatSkip = has("socat") ? false : "socat is not installed (apt-get install socat): no pseudo-terminal to test on";
const scriptSkip = has("script") ? false : "script (util-linux) is not installed: no terminal to run `iov console` on";
const temp = () => mkdtempSync(join(tmpdir(), "iov-console-"));
const ascii = (text: string) => new TextEncoder().encode(text);
const pattern = (size: number) => Uint8Array.from({ length: size }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
/** `data` as an XMODEM receiver stores it: padded with 0x1A to `length`. */
const padded = (data: Uint8Array, length: number) => {
  const out = new Uint8Array(length).fill(0x1a);
  out.set(data);
  return out;
};

/** `iov` without blocking this process (the fake cards live in it). */
function runIov(args: string[], input?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, ...args], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

/**
 * Real lrzsz `rx` receiving into `file`, run as its users run it: in the target directory with
 * a plain file name. Debian's lrzsz since 0.12.21-10+deb12u1 runs restricted by default and
 * refuses a path name ("rx: Security Violation", then CAN CAN); a plain name works with every version.
 */
function startRx(file: string, crc: boolean): ChildProcess {
  return spawn("rx", [...(crc ? ["-c"] : []), "-q", "-y", basename(file)], { cwd: dirname(file), stdio: ["pipe", "pipe", "ignore"] });
}

/** `startRx` with its stdin and stdout as an XMODEM line. */
function spawnRx(file: string, crc: boolean): { line: XmodemLine; exit: Promise<number | null>; child: ChildProcess } {
  const child = startRx(file, crc);
  const line: XmodemLine = {
    write: (bytes) => new Promise((resolve) => child.stdin!.write(bytes, () => resolve())),
    onData: (cb) => child.stdout!.on("data", (chunk: Buffer) => cb(new Uint8Array(chunk))),
  };
  return { line, exit: new Promise((resolve) => child.on("close", resolve)), child };
}

// ---- XMODEM against lrzsz -------------------------------------------------------

/** The blocks CRC mode uses for `size` bytes: 1K while more than 128 bytes are left, then 128. */
function crcBlockSizes(size: number): number[] {
  const sizes: number[] = [];
  for (let left = size; left > 0; left -= sizes.at(-1)!) sizes.push(left > 128 ? 1024 : 128);
  return sizes;
}

test("CRC-16/XMODEM of \"123456789\" is 0x31C3; the checksum is the byte sum", () => {
  assert.equal(crc16xmodem(ascii("123456789")), 0x31c3);
  assert.equal(crc16xmodem(new Uint8Array(0)), 0);
  assert.equal(checksum8(Uint8Array.of(0xff, 0x02, 0x10)), 0x11);
});

test("real lrzsz rx receives what sendXmodem sends, in CRC mode with 1K blocks", { skip: lrzszSkip }, async () => {
  const dir = temp();
  await Promise.all([1, 128, 129, 1024, 1025, 30000].map(async (size) => {
    const data = pattern(size);
    const file = join(dir, `crc-${size}`);
    const rx = spawnRx(file, true);
    const result = await sendXmodem(rx.line, data, { timeoutMs: 5000 });
    assert.equal(await rx.exit, 0, `rx exit status for ${size} bytes`);
    const sizes = crcBlockSizes(size);
    assert.equal(result.mode, "crc");
    assert.equal(result.blocks, sizes.length, `${size} bytes`);
    const stored = new Uint8Array(readFileSync(file));
    assert.deepEqual(stored, padded(data, sizes.reduce((a, b) => a + b, 0)), `${size} bytes arrive whole, then padding`);
  }));
});

test("real lrzsz rx receives what sendXmodem sends in checksum mode, block numbers wrapping past 255", { skip: lrzszSkip }, async () => {
  const dir = temp();
  await Promise.all([1, 129, 40000].map(async (size) => {
    const data = pattern(size);
    const file = join(dir, `sum-${size}`);
    const rx = spawnRx(file, false);
    const result = await sendXmodem(rx.line, data, { timeoutMs: 5000 });
    assert.equal(await rx.exit, 0);
    assert.equal(result.mode, "checksum");
    assert.equal(result.blocks, Math.ceil(size / 128), "128-byte blocks only");
    assert.deepEqual(new Uint8Array(readFileSync(file)), padded(data, Math.ceil(size / 128) * 128));
  }));
});

// ---- XMODEM against scripted receivers ------------------------------------------

type Packet =
  | { kind: "block"; size: number; number: number; data: Uint8Array; valid: boolean; attempt: number }
  | { kind: "eot"; attempt: number }
  | { kind: "can" };

/**
 * A receiver that checks each block like a real one and answers as `answer` says (the
 * default: ACK a good block, NAK a bad one, ACK EOT). `noise` may damage a block before it
 * is checked, as a noisy line would.
 */
class ScriptedReceiver implements XmodemLine {
  readonly writes: Uint8Array[] = [];
  readonly numbers: number[] = [];
  readonly sizes: number[] = [];
  private readonly stored: number[] = [];
  private expected = 1;
  private last = -1;
  private repeats = 0;
  private cb: (bytes: Uint8Array) => void = () => {};

  constructor(private readonly o: {
    start?: Uint8Array | null;
    crc?: boolean;
    answer?: (packet: Packet, self: ScriptedReceiver) => Uint8Array | null;
    noise?: (number: number, attempt: number, bytes: Uint8Array) => void;
  } = {}) {}

  get data(): Uint8Array {
    return Uint8Array.from(this.stored);
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.cb = cb;
    const start = this.o.start === undefined ? Uint8Array.of(this.o.crc === false ? NAK : CRC_REQUEST) : this.o.start;
    if (start) this.reply(start);
  }

  reply(bytes: Uint8Array): void {
    setImmediate(() => this.cb(bytes));
  }

  async write(bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    this.writes.push(copy);
    const packet = this.parse(copy);
    const answer = this.o.answer?.(packet, this) ?? defaultAnswer(packet);
    if (answer) this.reply(answer);
  }

  private parse(bytes: Uint8Array): Packet {
    if (bytes[0] === CAN) return { kind: "can" };
    if (bytes[0] === EOT) return { kind: "eot", attempt: this.attempt(EOT << 8) };
    const size = bytes[0] === STX ? 1024 : 128;
    const number = bytes[1];
    const attempt = this.attempt(number);
    this.o.noise?.(number, attempt, bytes);
    const data = bytes.subarray(3, 3 + size);
    const crc = this.o.crc !== false;
    const check = crc ? (bytes[3 + size] << 8) | bytes[4 + size] : bytes[3 + size];
    const valid = bytes.length === 3 + size + (crc ? 2 : 1) && bytes[1] + bytes[2] === 0xff &&
      check === (crc ? crc16xmodem(data) : checksum8(data));
    if (valid && number === (this.expected & 0xff)) {
      this.expected++;
      this.numbers.push(number);
      this.sizes.push(size);
      this.stored.push(...data);
    }
    return { kind: "block", size, number, data, valid, attempt };
  }

  /** How many times in a row this block number (or EOT) has come. */
  private attempt(key: number): number {
    this.repeats = key === this.last ? this.repeats + 1 : 1;
    this.last = key;
    return this.repeats;
  }
}

function defaultAnswer(packet: Packet): Uint8Array | null {
  if (packet.kind === "can") return null;
  if (packet.kind === "eot") return Uint8Array.of(ACK);
  return Uint8Array.of(packet.valid ? ACK : NAK);
}

test("a NAKed block and a block damaged on the line are sent again; garbage between answers is skipped", async () => {
  const data = pattern(5000);
  const receiver = new ScriptedReceiver({
    start: ascii("update: erasing\r\nC"),
    answer: (p) => {
      if (p.kind === "block" && p.number === 1 && p.attempt === 1) return Uint8Array.of(0x00, 0x41, 0xff, ACK);
      if (p.kind === "block" && p.number === 2 && p.attempt === 1) return Uint8Array.of(NAK);
      return null;
    },
    noise: (number, attempt, bytes) => {
      if (number === 3 && attempt === 1) bytes[500] ^= 0x04;
    },
  });
  const progress: number[] = [];
  const result = await sendXmodem(receiver, data, { onProgress: (sent, total) => progress.push(sent / total) });
  assert.deepEqual(receiver.data, padded(data, receiver.data.length));
  assert.deepEqual(receiver.numbers, [1, 2, 3, 4, 5]);
  assert.deepEqual(receiver.sizes, [1024, 1024, 1024, 1024, 1024], "904 bytes left: still a 1K block");
  assert.deepEqual([result.blocks, result.retries, result.bytes], [5, 2, 5000]);
  assert.deepEqual(progress, [1024, 2048, 3072, 4096, 5000].map((n) => n / 5000));
});

test("checksum mode after a NAK: 128-byte blocks only, numbered 1…255, 0, 1 …", async () => {
  const data = pattern(257 * 128 + 5);
  const receiver = new ScriptedReceiver({ crc: false, start: Uint8Array.of(0x0d, 0x0a, NAK) });
  const result = await sendXmodem(receiver, data);
  assert.equal(result.mode, "checksum");
  assert.equal(result.blocks, 258);
  assert.ok(receiver.sizes.every((s) => s === 128));
  assert.deepEqual(receiver.numbers.slice(253), [254, 255, 0, 1, 2]);
  assert.deepEqual(receiver.data, padded(data, 258 * 128));
});

test("a short tail goes in a 128-byte block; a block of 129..1024 bytes in a 1K block", async () => {
  for (const [size, sizes] of [[128, [128]], [129, [1024]], [1025, [1024, 128]], [1152, [1024, 128]], [1153, [1024, 1024]]] as const) {
    const receiver = new ScriptedReceiver();
    await sendXmodem(receiver, pattern(size));
    assert.deepEqual(receiver.sizes, sizes, `${size} bytes`);
    assert.deepEqual(crcBlockSizes(size), sizes);
    assert.equal(receiver.writes.at(-1)![0], EOT);
  }
});

test("two CAN in a row from the receiver cancel the transfer; one alone is noise", async () => {
  const lone = new ScriptedReceiver({ answer: (p) => (p.kind === "block" && p.number === 1 && p.attempt === 1 ? Uint8Array.of(CAN, ACK) : null) });
  assert.equal((await sendXmodem(lone, pattern(3000))).blocks, 3);

  const cancelling = new ScriptedReceiver({ answer: (p) => (p.kind === "block" && p.number === 2 ? Uint8Array.of(CAN, CAN, CAN, ...ascii("\r\nupdate: cancelled: too many bad blocks\r\n")) : null) });
  const error = await sendXmodem(cancelling, pattern(3000)).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof XmodemError);
  assert.match(error.message, /the receiver cancelled the transfer at block 2/);
  assert.equal(new TextDecoder().decode(error.trailing), "\x18\r\nupdate: cancelled: too many bad blocks\r\n", "what followed, for the console");
  assert.equal(cancelling.writes.at(-1)![0], STX, "nothing sent after the cancel");
});

test("a receiver that stops answering gets each block 10 times, then CAN CAN", async () => {
  const receiver = new ScriptedReceiver({ answer: (p) => (p.kind === "block" && p.number === 2 ? new Uint8Array(0) : null) });
  await assert.rejects(sendXmodem(receiver, pattern(2048), { timeoutMs: 5 }), /block 2 was not acknowledged after 10 tries \(last: no answer\)/);
  const blocks2 = receiver.writes.filter((w) => w[0] === STX && w[1] === 2);
  assert.equal(blocks2.length, 10);
  assert.ok(blocks2.every((w) => Buffer.compare(w, blocks2[0]) === 0), "the same block each time");
  assert.deepEqual([...receiver.writes.at(-1)!], [CAN, CAN]);
});

test("a receiver that NAKs every block gets CAN CAN after 10 tries", async () => {
  const receiver = new ScriptedReceiver({ answer: (p) => (p.kind === "block" ? Uint8Array.of(NAK) : null) });
  await assert.rejects(sendXmodem(receiver, pattern(10)), /block 1 was not acknowledged after 10 tries \(last: NAK\)/);
  assert.equal(receiver.writes.filter((w) => w[0] === SOH).length, 10);
  assert.deepEqual([...receiver.writes.at(-1)!], [CAN, CAN]);
});

test("no receiver: nothing is sent when nobody asks", async () => {
  const receiver = new ScriptedReceiver({ start: ascii("iov> ") });
  await assert.rejects(sendXmodem(receiver, pattern(10), { startTimeoutMs: 20 }), /no receiver: nothing asked for the data \(no 'C' or NAK\) within 20 ms/);
  assert.equal(receiver.writes.length, 0);
});

test("EOT is sent again after a NAK; 'C' while block 1 is unanswered asks for it again", async () => {
  const receiver = new ScriptedReceiver({
    answer: (p) => {
      if (p.kind === "eot" && p.attempt === 1) return Uint8Array.of(NAK);
      if (p.kind === "block" && p.number === 1 && p.attempt === 1) return Uint8Array.of(CRC_REQUEST);
      return null;
    },
  });
  const result = await sendXmodem(receiver, pattern(100));
  assert.deepEqual(receiver.writes.map((w) => w[0]), [SOH, SOH, EOT, EOT]);
  assert.equal(result.retries, 1, "the block sent again counts; the second EOT a receiver asks for does not");
});

test("aborting tells the receiver with CAN CAN", async () => {
  const abort = new AbortController();
  const receiver = new ScriptedReceiver({
    answer: (p) => {
      if (p.kind === "block" && p.number === 2) {
        abort.abort();
        return new Uint8Array(0);
      }
      return null;
    },
  });
  await assert.rejects(sendXmodem(receiver, pattern(5000), { signal: abort.signal }), /transfer aborted/);
  assert.deepEqual([...receiver.writes.at(-1)!], [CAN, CAN]);
});

// ---- Progress bar, console text, port specs -------------------------------------

function recorder(isTTY: boolean) {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (text: string) => out.push(text) } };
}

test("progress into a pipe: one line at each quarter, then the message", () => {
  const { out, stream } = recorder(false);
  let now = 0;
  const bar = new Progress(24_883, { stream, now: () => now, label: "sending" });
  for (let done = 0; done <= 24_883; done += 1024) {
    now += 100;
    bar.update(done);
  }
  bar.update(24_883);
  bar.done("25 blocks");
  assert.equal(out.length, 5);
  assert.match(out[0], /^sending \[###-------\]  2\d%  \d+\.\d\/24\.3 KiB  \d+\.\d KiB\/s\n$/);
  assert.match(out[3], /^sending \[##########\] 100%  24\.3\/24\.3 KiB  9\.\d KiB\/s\n$/);
  assert.equal(out[4], "25 blocks\n");
});

test("progress on a terminal: redrawn in place, at most every 100 ms, closed with a newline", () => {
  const { out, stream } = recorder(true);
  let now = 0;
  const bar = new Progress(11_000, { stream, now: () => now, unit: "bytes" });
  bar.update(0);
  now = 50;
  bar.update(5000);
  now = 1000;
  bar.update(5000);
  bar.update(11_000);
  bar.done("ok");
  assert.equal(out.length, 4, "the update at 50 ms is skipped");
  assert.equal(out[0], "\r[----------]   0%  0.0/10.7 KiB\x1b[K");
  assert.equal(out[1], "\r[#####-----]  45%  4.9/10.7 KiB  4.9 KiB/s\x1b[K");
  assert.ok(out[3].startsWith("\r[##########] 100%  10.7/10.7 KiB  10.7 KiB/s  ok") && out[3].endsWith("\n"));
  const runs = recorder(false);
  let clock = 0;
  const count = new Progress(4, { stream: runs.stream, unit: "runs", now: () => clock });
  clock = 2000;
  count.update(1);
  assert.match(runs.out[0], /^\[###-------\]  25%  1\/4 runs  0\.5 runs\/s\n$/);
});

test("console text reads like a terminal: CR LF lines, carriage returns, erases, the prompt", () => {
  const lines: string[] = [];
  const reader = new ConsoleLines((line) => lines.push(line));
  reader.push(ascii("IOV card firmware 0.2.0\r\niov> "));
  assert.equal(reader.partial, "iov> ");
  reader.push(ascii("\r\x1b[Jupdate: image 0.2.0 confirmed\r"));
  reader.push(ascii("\niov> statu\x08\x1b[Ks\x1b[2Dxy\r\n\x1b[1;31mred\x1b[0m\n\x07caf"));
  reader.push(Uint8Array.of(0xe9, 0x0d, 0x0a));
  assert.deepEqual(lines, ["IOV card firmware 0.2.0", "update: image 0.2.0 confirmed", "iov> staxy", "red", "caf?"]);
});

test("port specs: tcp://HOST:PORT or a device path; a baud rate must be a standard one", () => {
  assert.deepEqual(parsePortSpec("tcp://127.0.0.1:7001", 115200), { kind: "tcp", host: "127.0.0.1", port: 7001 });
  assert.deepEqual(parsePortSpec("tcp://[::1]:7001/", 9600), { kind: "tcp", host: "::1", port: 7001 });
  assert.deepEqual(parsePortSpec("/dev/ttyUSB0", 921600), { kind: "serial", path: "/dev/ttyUSB0" });
  assert.throws(() => parsePortSpec("tcp://127.0.0.1", 115200), /bad port 'tcp:\/\/127.0.0.1': expected tcp:\/\/HOST:PORT with PORT 1..65535/);
  assert.throws(() => parsePortSpec("tcp://host:70000", 115200), /PORT 1..65535/);
  assert.throws(() => parsePortSpec("telnet://host:23", 115200), /bad port 'telnet:\/\/host:23': expected tcp:\/\/HOST:PORT or a serial device/);
  assert.throws(() => parsePortSpec("/dev/ttyUSB0", 115201), /unsupported baud rate 115201; standard rates: 1200, .* 115200/);
});

// ---- Fake cards -----------------------------------------------------------------

const PROMPT = "iov> ";
const READY_LINE = "update: ready for XMODEM (1K or 128-byte blocks, CRC or checksum), at most 65504 bytes; Ctrl-X cancels";

type Ending = "confirm" | "refuse" | "roll back" | "cancel" | "busy";

/**
 * A card's console on TCP that speaks the console contract: an echoing line editor with
 * Ctrl-C, and `update`, which receives with real lrzsz `rx` bridged to the socket and then
 * prints what a card would for `ending`.
 */
class FakeCard {
  readonly server: Server;
  /** What rx stored for the last update. */
  received: Uint8Array | null = null;
  /** Every byte the card got outside transfers. */
  typed = "";
  /** The line the new firmware prints once it has confirmed itself. */
  private confirmed = "";

  private constructor(private readonly ending: Ending | "silent", private readonly readyLine: string) {
    this.server = createServer((socket) => this.serve(socket));
  }

  /** `readyLine`: the firmware's words for "start sending" (any case of "xmodem"). */
  static async start(ending: Ending | "silent", readyLine = READY_LINE): Promise<FakeCard> {
    const card = new FakeCard(ending, readyLine);
    await new Promise<void>((resolve) => card.server.listen(0, "127.0.0.1", resolve));
    return card;
  }

  get spec(): string {
    const address = this.server.address();
    return `tcp://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    let line = "";
    let transfer: ChildProcess | null = null;
    const say = (text: string) => socket.write(text);
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      if (transfer) {
        transfer.stdin!.write(chunk);
        return;
      }
      for (const b of chunk) {
        this.typed += String.fromCharCode(b);
        if (this.ending === "silent") continue;
        if (b === 0x03) {
          say(`^C\r\n${PROMPT}`);
          line = "";
        } else if (b === 0x0d) {
          say("\r\n");
          if (line === "update") {
            transfer = this.update(socket, () => (transfer = null));
          } else {
            if (line !== "") say(`unknown command '${line}'\r\n`);
            say(PROMPT);
          }
          line = "";
          if (transfer) return;
        } else if (b >= 0x20 && b < 0x7f) {
          line += String.fromCharCode(b);
          say(String.fromCharCode(b));
        }
      }
    });
  }

  private update(socket: Socket, done: () => void): ChildProcess | null {
    if (this.ending === "busy") {
      socket.write(`update: one is already running\r\n${PROMPT}`);
      return null;
    }
    socket.write(`update: erasing slot 1 (64 KiB)\r\n${this.readyLine}\r\n`);
    if (this.ending === "cancel") {
      // A receiver that looks at the first block and cancels, as the card does for a file that is no image.
      const receiver = spawn("sh", ["-c", "printf C; head -c 1 >/dev/null; printf '\\030\\030\\030\\r\\nupdate: cancelled: not an IOV image (no IOVF magic)\\r\\niov> '"], { stdio: ["pipe", "pipe", "ignore"] });
      receiver.stdin!.on("error", () => {}); // it stops reading after one byte
      receiver.stdout!.on("data", (chunk: Buffer) => socket.write(chunk));
      receiver.on("close", done);
      return receiver;
    }
    const file = join(temp(), "received.img");
    const rx = startRx(file, true);
    rx.stdin!.on("error", () => {});
    rx.stdout!.on("data", (chunk: Buffer) => socket.write(chunk));
    rx.on("close", (status) => {
      done();
      const lines = status === 0 ? this.afterTransfer(new Uint8Array(readFileSync(file))) : ["update: cancelled: the sender cancelled"];
      socket.write(lines.map((l) => (l === PROMPT ? l : `${l}\r\n`)).join(""));
      if (this.ending === "confirm" && status === 0 && !lines.some((l) => l.startsWith("update: refused"))) {
        setTimeout(() => socket.write(`\r\x1b[J${this.confirmed}\r\n${PROMPT}`), 50);
      }
    });
    return rx;
  }

  private afterTransfer(received: Uint8Array): string[] {
    this.received = received;
    const checked = inspectImage(received, { inFlash: true });
    if (isDefect(checked)) return [`update: received ${received.length} bytes`, `update: refused: ${checked.reason}`, PROMPT];
    const { info } = checked;
    const version = formatVersion(info.version);
    const got = [`update: received ${info.size} bytes`];
    if (this.ending === "refuse") return [...got, "update: refused: older than the running firmware (downgrade)", PROMPT];
    const reboot = [
      `update: image ${version} build ${Buffer.from(info.buildId).toString("hex")} checks out; rebooting into a trial`,
      "boot: IOV boot ROM, reset cause update",
      "boot: slot 0: 0.1.0 build 0011223344556677, confirmed",
      "boot: slot 1: trial requested",
      `boot: starting slot 1 (${version}) on trial`,
      "",
      `IOV card firmware ${version} (host card, serial 0x10000001), slot 1 on trial`,
      "type 'help' for commands",
      PROMPT,
    ];
    this.confirmed = `update: image ${version} confirmed`;
    if (this.ending === "roll back") {
      return [...got, ...reboot, "", "boot: IOV boot ROM, reset cause watchdog",
        `boot: slot 1: rolled back: the trial of ${version} was not confirmed`, "boot: starting slot 0 (0.1.0)"];
    }
    return [...got, ...reboot];
  }
}

function image(version: ImageVersion, payloadSize = 20_000): { file: string; bytes: Uint8Array } {
  const bytes = buildImage(pattern(payloadSize), { boardId: BOARD_ID, version, key: developmentKey() });
  const file = join(temp(), `firmware-${formatVersion(version)}.img`);
  writeFileSync(file, bytes);
  return { file, bytes };
}

test("iov flash sends the image to a card, follows its trial boot and reports the confirmation", { skip: lrzszSkip }, async () => {
  const card = await FakeCard.start("confirm");
  try {
    const { file, bytes } = image({ major: 0, minor: 2, patch: 0 });
    const result = await runIov(["flash", "--port", card.spec, file]);
    assert.equal(result.status, 0, result.stderr);
    assert.ok(card.received, "the card received an image");
    assert.deepEqual(card.received.subarray(0, bytes.length), bytes, "byte for byte, through real rx");
    assert.ok(card.typed.startsWith("\x03\r") && card.typed.includes("update\r"), JSON.stringify(card.typed));
    const checked = inspectImage(bytes);
    assert.ok(!isDefect(checked));
    const build = Buffer.from(checked.info.buildId).toString("hex");
    assert.match(result.stdout, /^card: update: erasing slot 1 \(64 KiB\)$/m);
    assert.match(result.stdout, /^card: boot: starting slot 1 \(0\.2\.0\) on trial$/m);
    assert.match(result.stdout, /^card: update: image 0\.2\.0 confirmed$/m, "the line after the prompt is erased reads cleanly");
    assert.match(lastLine(result.stdout), new RegExp(`^flashed ${file} \\(0\\.2\\.0 build ${build}\\) to ${card.spec}: confirmed in slot 1 after \\d+\\.\\d s$`));
    assert.match(result.stderr, /^sending \[##########\] 100%  19\.7\/19\.7 KiB  [\d.]+ [KM]iB\/s$/m);

    const quiet = await runIov(["flash", "--quiet", "--port", card.spec, file]);
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.equal(quiet.stderr, "");
    assert.equal(quiet.stdout.split("\n").length, 2, quiet.stdout);
  } finally {
    await card.close();
  }
});

test("iov flash fails with the card's reason: image refused, trial rolled back, transfer cancelled, update not started", { skip: lrzszSkip }, async () => {
  const { file } = image({ major: 0, minor: 2, patch: 0 });
  for (const [ending, reason] of [
    ["refuse", "iov: flash failed: the card refused the image: older than the running firmware (downgrade)"],
    ["roll back", "iov: flash failed: the boot ROM rolled back slot 1: the trial of 0.2.0 was not confirmed"],
    ["cancel", "iov: flash failed: the card cancelled the transfer: not an IOV image (no IOVF magic)"],
    ["busy", "iov: flash failed: one is already running"],
  ] as const) {
    const card = await FakeCard.start(ending);
    try {
      const result = await runIov(["flash", "--port", card.spec, file]);
      assert.equal(result.status, 1, `${ending}: ${result.stdout}`);
      assert.equal(lastLine(result.stderr), reason);
      assert.doesNotMatch(result.stdout, /^flashed/m);
    } finally {
      await card.close();
    }
  }
});

test("iov flash through a pseudo-terminal, as on a serial device", { skip: lrzszSkip || socatSkip }, async () => {
  const card = await FakeCard.start("confirm", READY_LINE.replace("XMODEM", "xmodem").replace("CRC", "crc-16").replace("Ctrl-X", "^X^X"));
  const tty = join(temp(), "tty");
  const socat = spawn("socat", [`pty,rawer,link=${tty}`, `TCP:${card.spec.slice("tcp://".length)}`], { stdio: "ignore" });
  try {
    for (let i = 0; i < 200 && !existsSync(tty); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(tty), "socat made the pseudo-terminal");
    const { file, bytes } = image({ major: 0, minor: 3, patch: 1 }, 40_000);
    const result = await runIov(["flash", "--port", tty, "--baud", "115200", file]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(card.received!.subarray(0, bytes.length), bytes);
    assert.match(lastLine(result.stdout), new RegExp(`^flashed .* \\(0\\.3\\.1 build [0-9a-f]{32}\\) to ${tty}: confirmed in slot 1 after`));
  } finally {
    socat.kill();
    await card.close();
  }
});

test("iov flash: bad arguments and unreachable cards get one line saying why", async () => {
  const dir = temp();
  const { file } = image({ major: 0, minor: 2, patch: 0 }, 100);
  writeFileSync(join(dir, "noise.bin"), pattern(300));
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  const cases: [string[], number, RegExp][] = [
    [["flash", "--port", "ftp://card:21", file], 1, /^iov: bad port 'ftp:\/\/card:21': expected tcp:\/\/HOST:PORT or a serial device such as \/dev\/ttyUSB0$/],
    [["flash", "--port", "tcp://127.0.0.1:99999", file], 1, /^iov: bad port .*PORT 1..65535/],
    [["flash", "--port", "/dev/ttyS0", "--baud", "12345", file], 1, /^iov: unsupported baud rate 12345; standard rates:/],
    [["flash", "--port", "/dev/ttyS0", "--baud", "fast", file], 2, /^iov: option '--baud <n>' argument 'fast' is invalid/],
    [["flash", "--port", "tcp://127.0.0.1:7001", "/nonexistent/fw.img"], 1, /^iov: cannot read image '\/nonexistent\/fw.img': no such file$/],
    [["flash", "--port", "tcp://127.0.0.1:7001", join(dir, "noise.bin")], 1, /^iov: .*noise.bin: not a flash image: magic 0x[0-9a-f]{8}, expected 0x46564f49 \("IOVF"\)$/],
    [["flash", "--port", `tcp://127.0.0.1:${port}`, file], 1, new RegExp(`^iov: tcp://127.0.0.1:${port}: connection refused; is \`iov sim --console\` running\\?$`)],
    [["flash", "--port", "/dev/ttyNOPE9", file], 1, /^iov: \/dev\/ttyNOPE9: no such device/],
    [["flash", "--port", join(dir, "noise.bin"), file], 1, /^iov: .*noise.bin: not a serial device$/],
    [["flash", file], 2, /^iov: required option '--port <port>' not specified$/],
    [["console", "--port", "tcp://127.0.0.1"], 1, /^iov: bad port/],
  ];
  const results = await Promise.all(cases.map(([args]) => runIov(args)));
  for (const [i, [args, status, message]] of cases.entries()) {
    const result = results[i];
    assert.equal(result.status, status, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
    assert.match(result.stderr.trimEnd(), message);
  }
});

test("iov flash says so when the line has no console prompt", async () => {
  const card = await FakeCard.start("silent");
  try {
    const { file } = image({ major: 0, minor: 2, patch: 0 }, 100);
    const result = await runIov(["flash", "--port", card.spec, file]);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, `iov: no console prompt on ${card.spec} within 5 s (is the card on? is the baud rate right?)\n`);
    assert.equal(card.typed, "\x03\r", "nothing but Ctrl-C and Enter was sent");
  } finally {
    await card.close();
  }
});

// ---- iov console ------------------------------------------------------------------

test("iov console with piped stdin sends it and prints the card's answer", async () => {
  let got = "";
  const server = createServer((socket) => {
    socket.on("data", (chunk) => {
      got += chunk.toString("latin1");
      if (got.endsWith("\r")) socket.write("\r\nlink: tunnel0 active, 1500 MTU\r\niov> ");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const spec = `tcp://127.0.0.1:${(server.address() as { port: number }).port}`;
    const result = await runIov(["console", "--port", spec, "--linger", "1000"], "link\r");
    assert.equal(result.status, 0, result.stderr);
    assert.equal(got, "link\r");
    assert.equal(result.stdout, "\r\nlink: tunnel0 active, 1500 MTU\r\niov> ");
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("iov console says so when the other end closes the line", async () => {
  const server = createServer((socket) => socket.resume().end("console of host is in use by another client\r\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const spec = `tcp://127.0.0.1:${(server.address() as { port: number }).port}`;
    const result = await runIov(["console", "--port", spec, "--linger", "60000"], "status\r");
    assert.equal(result.status, 1);
    assert.equal(result.stdout, "console of host is in use by another client\r\n");
    assert.equal(result.stderr, `iov: ${spec}: the line was closed by the other end\n`);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("iov console on a terminal: raw keys to the card (Ctrl-C too), Ctrl-] quits, the terminal is restored", { skip: scriptSkip }, async () => {
  let got = "";
  let typed: () => void = () => {};
  const enter = new Promise<void>((resolve) => (typed = resolve));
  const server = createServer((socket) => socket.on("data", (chunk) => {
    got += chunk.toString("latin1");
    if (got.endsWith("\r")) socket.write("\r\nok\r\niov> ", () => typed());
  }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const spec = `tcp://127.0.0.1:${(server.address() as { port: number }).port}`;
    const command = `${process.execPath} ${ROOT}tools/iov.mjs console --port ${spec}; echo "exit=$?"; stty -a`;
    const terminal = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let screen = "";
    terminal.stdout.on("data", (chunk: Buffer) => {
      const before = screen;
      screen += chunk.toString("latin1");
      if (!before.includes("to quit") && screen.includes("to quit")) terminal.stdin.write("ab\x03st\r");
    });
    const exited = new Promise((resolve) => terminal.on("close", resolve));
    await enter;
    terminal.stdin.write("\x1d");
    await exited;
    assert.equal(got, "ab\x03st\r", "the keys as typed: no signal for Ctrl-C, no CR to LF");
    assert.match(screen, /connected to tcp:\/\/127\.0\.0\.1:\d+; press Ctrl-\] to quit/);
    assert.match(screen, /ok\r+\n/);
    assert.match(screen, /exit=0/);
    const settings = screen.slice(screen.indexOf("exit=0"));
    assert.match(settings, /(^|[\s;])icanon\b/, "canonical mode is back");
    assert.match(settings, /(^|[\s;])echo\b/, "echo is back");
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("openPort opens a pseudo-terminal through serialport, both ways", { skip: socatSkip }, async () => {
  const dir = temp();
  const [a, b] = [join(dir, "a"), join(dir, "b")];
  const socat = spawn("socat", [`pty,rawer,link=${a}`, `pty,rawer,link=${b}`], { stdio: "ignore" });
  try {
    for (let i = 0; i < 200 && !(existsSync(a) && existsSync(b)); i++) await new Promise((r) => setTimeout(r, 25));
    const left = await openPort(a, { baud: 115200 });
    const right = await openPort(b, { baud: 115200 });
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const heard: number[] = [];
    const arrived = new Promise<void>((resolve) => right.onData((bytes) => {
      heard.push(...bytes);
      if (heard.length >= all.length) resolve();
    }));
    await left.write(all);
    await arrived;
    assert.deepEqual(heard, [...all], "every byte value passes unchanged");
    await Promise.all([left.close(), right.close()]);
  } finally {
    socat.kill();
  }
});
