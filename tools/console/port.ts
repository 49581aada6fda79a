// The card's console line as a byte stream: a serial device (through the `serialport`
// package, 8N1, no flow control) or a raw TCP socket such as the simulator's console
// endpoint (`tcp://127.0.0.1:PORT`, raw bytes both ways, no telnet negotiation).

import { constants, accessSync, statSync } from "node:fs";
import { connect, type Socket } from "node:net";

/** An open console line. */
export interface ConsolePort {
  /** Resolves when the bytes are handed to the operating system. */
  write(bytes: Uint8Array): Promise<void>;
  onData(cb: (bytes: Uint8Array) => void): void;
  /** The line closed: by close(), or by the other end or the device going away (then with the error). */
  onClose(cb: (error?: Error) => void): void;
  close(): Promise<void>;
  /** The spec it was opened with, for messages. */
  readonly name: string;
}

/** Why a port cannot be opened, as one line for the user. */
export class PortError extends Error {}

/** The rates a POSIX serial driver offers (termios B50 … B4000000). */
export const BAUD_RATES = [
  50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
  500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000,
];

export type PortSpec = { kind: "tcp"; host: string; port: number } | { kind: "serial"; path: string };

/** Checks a --port value and a baud rate without opening anything; throws PortError. */
export function parsePortSpec(spec: string, baud: number): PortSpec {
  if (!BAUD_RATES.includes(baud)) {
    throw new PortError(`unsupported baud rate ${baud}; standard rates: ${BAUD_RATES.filter((b) => b >= 1200).join(", ")}`);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec);
  if (!scheme) {
    if (spec.trim() === "") throw new PortError("no port given: expected tcp://HOST:PORT or a serial device such as /dev/ttyUSB0");
    return { kind: "serial", path: spec };
  }
  if (scheme[1].toLowerCase() !== "tcp") {
    throw new PortError(`bad port '${spec}': expected tcp://HOST:PORT or a serial device such as /dev/ttyUSB0`);
  }
  const match = /^tcp:\/\/(\[[0-9a-f:.]+\]|[^\s:/[\]]+):(\d{1,5})\/?$/i.exec(spec);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new PortError(`bad port '${spec}': expected tcp://HOST:PORT with PORT 1..65535, e.g. tcp://127.0.0.1:7001`);
  }
  return { kind: "tcp", host: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** Opens a console line: `tcp://HOST:PORT` or a serial device path. Throws PortError. */
export async function openPort(spec: string, o: { baud: number }): Promise<ConsolePort> {
  const parsed = parsePortSpec(spec, o.baud);
  return parsed.kind === "tcp" ? openTcp(spec, parsed.host, parsed.port) : openSerial(parsed.path, o.baud);
}

/** A port's callbacks: every chunk to each data callback; the closing to each close callback, once, even to one added later. */
class Listeners {
  private readonly data: ((bytes: Uint8Array) => void)[] = [];
  private readonly close: ((error?: Error) => void)[] = [];
  private closed: { error?: Error } | null = null;

  onData(cb: (bytes: Uint8Array) => void): void {
    this.data.push(cb);
  }

  onClose(cb: (error?: Error) => void): void {
    const closed = this.closed;
    if (closed) queueMicrotask(() => cb(closed.error));
    else this.close.push(cb);
  }

  emitData(chunk: Buffer): void {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    for (const cb of this.data) cb(bytes);
  }

  emitClose(error?: Error): void {
    if (this.closed) return;
    this.closed = { error };
    for (const cb of this.close.splice(0)) cb(error);
  }
}

const CONNECT_TIMEOUT_MS = 10_000;

function openTcp(name: string, host: string, port: number): Promise<ConsolePort> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host, port });
    const listeners = new Listeners();
    let lastError: Error | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new PortError(`${name}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s (connection timed out)`));
    }, CONNECT_TIMEOUT_MS);
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(tcpError(name, error));
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      socket.removeAllListeners("error");
      socket.on("error", (error: NodeJS.ErrnoException) => {
        lastError = new Error(`${name}: ${error.code === "ECONNRESET" ? "connection reset by the other end" : error.message}`);
      });
      socket.on("data", (chunk: Buffer) => listeners.emitData(chunk));
      socket.on("close", () => listeners.emitClose(lastError));
      resolve({
        name,
        write: (bytes) => new Promise((done, fail) => {
          if (socket.destroyed || !socket.writable) {
            fail(new Error(`${name}: the connection is closed`));
            return;
          }
          socket.write(bytes, (error) => (error ? fail(new Error(`${name}: ${error.message}`)) : done()));
        }),
        onData: (cb) => listeners.onData(cb),
        onClose: (cb) => listeners.onClose(cb),
        close: () => new Promise((done) => {
          if (socket.destroyed) {
            done();
            return;
          }
          socket.once("close", () => done());
          socket.end(() => socket.destroy());
        }),
      });
    });
  });
}

function tcpError(name: string, error: NodeJS.ErrnoException): PortError {
  switch (error.code) {
    case "ECONNREFUSED": return new PortError(`${name}: connection refused; is \`iov sim --console\` running?`);
    case "ENOTFOUND":
    case "EAI_AGAIN": return new PortError(`${name}: unknown host`);
    case "ETIMEDOUT": return new PortError(`${name}: no answer (connection timed out)`);
    case "EHOSTUNREACH":
    case "ENETUNREACH": return new PortError(`${name}: host unreachable`);
    default: return new PortError(`${name}: cannot connect (${error.code ?? error.message})`);
  }
}

async function openSerial(path: string, baud: number): Promise<ConsolePort> {
  if (process.platform !== "win32") checkDevice(path); // COM ports are not files
  const { SerialPort } = await import("serialport");
  const device = new SerialPort({ path, baudRate: baud, dataBits: 8, parity: "none", stopBits: 1, rtscts: false, autoOpen: false });
  await new Promise<void>((resolve, reject) => device.open((error) => (error ? reject(serialError(path, error)) : resolve())));
  const listeners = new Listeners();
  let lastError: Error | undefined;
  device.on("data", (chunk: Buffer) => listeners.emitData(chunk));
  device.on("error", (error: Error) => {
    lastError = new Error(`${path}: ${error.message.replace(/^Error: /, "")}`);
  });
  device.on("close", (error?: Error & { disconnected?: boolean }) => {
    listeners.emitClose(error?.disconnected ? new Error(`${path}: the device was disconnected`) : lastError);
  });
  return {
    name: path,
    write: (bytes) => new Promise((done, fail) => {
      if (!device.isOpen) {
        fail(new Error(`${path}: the device is closed`));
        return;
      }
      device.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), (error) => (error ? fail(new Error(`${path}: ${error.message}`)) : done()));
    }),
    onData: (cb) => listeners.onData(cb),
    onClose: (cb) => listeners.onClose(cb),
    close: () => new Promise((done) => {
      if (!device.isOpen) {
        done();
        return;
      }
      device.drain(() => device.close(() => done()));
    }),
  };
}

/** The failures a user can fix, named before serialport reports them less plainly. */
function checkDevice(path: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new PortError(`${path}: no such device (is the cable plugged in? \`ls /dev/ttyUSB* /dev/ttyACM*\` lists serial devices)`);
    throw new PortError(`${path}: cannot open (${code ?? (error as Error).message})`);
  }
  if (!stat.isCharacterDevice()) throw new PortError(`${path}: not a serial device`);
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch {
    throw new PortError(`${path}: permission denied (on Linux, add yourself to the 'dialout' group and log in again)`);
  }
}

function serialError(path: string, error: Error): PortError {
  const message = error.message.replace(/^Error: /, "");
  if (/permission denied/i.test(message)) return new PortError(`${path}: permission denied (on Linux, add yourself to the 'dialout' group and log in again)`);
  if (/inappropriate ioctl|not a typewriter/i.test(message)) return new PortError(`${path}: not a serial device`);
  if (/cannot lock|resource temporarily unavailable/i.test(message)) return new PortError(`${path}: in use by another program`);
  if (/no such file|no such device/i.test(message)) return new PortError(`${path}: no such device`);
  return new PortError(`${path}: cannot open (${message})`);
}
