// How a management station's Ethernet frames reach the cards (docs/management.md,
// "Transports"). A FrameTransport carries whole Ethernet frames without FCS, each way.
//
// `tcp://HOST:PORT` is a stream of frames framed as QEMU's `-netdev stream` and
// `-netdev socket` do it (net/stream.c sends, net/net.c net_fill_rstate() receives): each
// frame is a 4-byte big-endian length followed by that many bytes of frame, no FCS, no
// vnet header. `iov sim --manage` serves its management port that way; so does a QEMU
// guest's NIC given `-netdev stream,server=on,addr.type=inet,...`.
//
// A raw Ethernet transport (an AF_PACKET socket on a real interface, `raw://IFACE`) is the
// next one to add: parseNetSpec() gains its scheme, NetSpec its kind and openTransport()
// its case; ManageClient does not change.

import { connect, type Socket } from "node:net";

export interface FrameTransport {
  /** Sends one Ethernet frame (no FCS). */
  send(frame: Uint8Array): void;
  /** Each frame received (no FCS). */
  onFrame(cb: (frame: Uint8Array) => void): void;
  close(): void;
}

/** Largest frame QEMU accepts on a stream (NET_BUFSIZE: 4096 + 65536); a longer length ends the connection. */
export const STREAM_MAX_FRAME = 4096 + 65536;
export const STREAM_LENGTH_SIZE = 4;

/** The transports --net names. */
export type NetSpec = { kind: "tcp"; host: string; port: number };

export const NET_SCHEMES = "tcp://HOST:PORT (a QEMU-style frame stream, such as `iov sim --manage`)";

/** Why a --net value is not usable, as one line. */
export class NetSpecError extends Error {}

/** Checks a --net value without opening anything; throws NetSpecError. */
export function parseNetSpec(spec: string): NetSpec {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec.trim());
  if (!scheme) throw new NetSpecError(`bad network '${spec}': expected ${NET_SCHEMES}`);
  if (scheme[1].toLowerCase() !== "tcp") throw new NetSpecError(`unsupported network '${spec}': the supported one is ${NET_SCHEMES}`);
  const match = /^tcp:\/\/(\[[0-9a-f:.]+\]|[^\s:/[\]]+):(\d{1,5})\/?$/i.exec(spec.trim());
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) throw new NetSpecError(`bad network '${spec}': expected tcp://HOST:PORT with PORT 1..65535, e.g. tcp://127.0.0.1:7100`);
  return { kind: "tcp", host: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** Opens the transport a --net value names. Throws NetSpecError. */
export async function openTransport(spec: string): Promise<StreamTransport> {
  const parsed = parseNetSpec(spec);
  switch (parsed.kind) {
    case "tcp":
      return StreamTransport.connect(parsed.host, parsed.port, spec);
  }
}

/** One frame as a stream carries it: its length (u32, big-endian), then the frame. */
export function streamFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(STREAM_LENGTH_SIZE + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length);
  out.set(frame, STREAM_LENGTH_SIZE);
  return out;
}

/** Splits a byte stream into frames as net_fill_rstate() does; a length above STREAM_MAX_FRAME is an error. */
export class StreamDecoder {
  private header = new Uint8Array(STREAM_LENGTH_SIZE);
  private headerFill = 0;
  private frame: Uint8Array | null = null;
  private frameFill = 0;

  constructor(private readonly deliver: (frame: Uint8Array) => void) {}

  /** Feeds bytes in; throws on an oversized length (the stream cannot be resynchronised). */
  push(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length || (this.frame && this.frameFill === this.frame.length)) {
      if (!this.frame) {
        const take = Math.min(STREAM_LENGTH_SIZE - this.headerFill, bytes.length - at);
        this.header.set(bytes.subarray(at, at + take), this.headerFill);
        this.headerFill += take;
        at += take;
        if (this.headerFill < STREAM_LENGTH_SIZE) return;
        const length = new DataView(this.header.buffer).getUint32(0);
        this.headerFill = 0;
        if (length > STREAM_MAX_FRAME) throw new Error(`a frame of ${length} bytes announced, more than the ${STREAM_MAX_FRAME} a stream carries`);
        this.frame = new Uint8Array(length);
        this.frameFill = 0;
      }
      const take = Math.min(this.frame.length - this.frameFill, bytes.length - at);
      this.frame.set(bytes.subarray(at, at + take), this.frameFill);
      this.frameFill += take;
      at += take;
      if (this.frameFill === this.frame.length) {
        const frame = this.frame;
        this.frame = null;
        this.deliver(frame);
      }
    }
  }
}

const CONNECT_TIMEOUT_MS = 10_000;

/** Frames over a TCP connection, framed as QEMU's stream netdev. */
export class StreamTransport implements FrameTransport {
  private readonly frames: ((frame: Uint8Array) => void)[] = [];
  private readonly closes: ((error?: Error) => void)[] = [];
  private closed: { error?: Error } | null = null;
  private readonly decoder = new StreamDecoder((frame) => {
    for (const cb of this.frames) cb(frame);
  });

  private constructor(private readonly socket: Socket, readonly name: string) {
    let lastError: Error | undefined;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      } catch (error) {
        lastError = new Error(`${name}: ${(error as Error).message}; connection closed`);
        socket.destroy();
      }
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      lastError = new Error(`${name}: ${error.code === "ECONNRESET" ? "connection reset by the other end" : error.message}`);
    });
    socket.on("close", () => this.ended(lastError));
  }

  /** Connects to a stream server (e.g. `iov sim --manage`); throws NetSpecError with a one-line reason. */
  static connect(host: string, port: number, name = `tcp://${host}:${port}`): Promise<StreamTransport> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new NetSpecError(`${name}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s (connection timed out)`));
      }, CONNECT_TIMEOUT_MS);
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(connectError(name, error));
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new StreamTransport(socket, name));
      });
    });
  }

  /** A transport over a socket that is already connected (the server side, tests). */
  static over(socket: Socket, name = "stream"): StreamTransport {
    return new StreamTransport(socket, name);
  }

  send(frame: Uint8Array): void {
    if (this.closed || !this.socket.writable) return;
    this.socket.write(streamFrame(frame));
  }

  onFrame(cb: (frame: Uint8Array) => void): void {
    this.frames.push(cb);
  }

  /** The connection ended: by close(), or by the other end (then with the error, if any). */
  onClose(cb: (error?: Error) => void): void {
    const closed = this.closed;
    if (closed) queueMicrotask(() => cb(closed.error));
    else this.closes.push(cb);
  }

  close(): void {
    if (this.socket.destroyed) return;
    this.socket.end(() => this.socket.destroy());
  }

  private ended(error?: Error): void {
    if (this.closed) return;
    this.closed = { error };
    for (const cb of this.closes.splice(0)) cb(error);
  }
}

function connectError(name: string, error: NodeJS.ErrnoException): NetSpecError {
  switch (error.code) {
    case "ECONNREFUSED": return new NetSpecError(`${name}: connection refused; is \`iov sim --manage\` running?`);
    case "ENOTFOUND":
    case "EAI_AGAIN": return new NetSpecError(`${name}: unknown host`);
    case "ETIMEDOUT": return new NetSpecError(`${name}: no answer (connection timed out)`);
    case "EHOSTUNREACH":
    case "ENETUNREACH": return new NetSpecError(`${name}: host unreachable`);
    default: return new NetSpecError(`${name}: cannot connect (${error.code ?? error.message})`);
  }
}
