// `iov image build|inspect|verify`: make a flash image from firmware.wasm, show its header,
// check it as a card's boot ROM would. The format is board/image.ts (docs/image-format.md).

import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import {
  buildImage, developmentKey, formatVersion, inspectImage, isDefect, keyIdOf, verifyImage, type ImageInfo, type ImageVersion,
} from "../../board/image.ts";
import { encodeEvent, MessageReader, decodeCommand } from "../../board/mailbox-codec.ts";
import { CardRole, LogLevel, MAILBOX_VERSION, ResetCause } from "../../board/map/mailbox.ts";
import { IMAGE_FORMAT, ImageHeader, SIGNATURE_SIZE } from "../../board/map/image.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { concat } from "../../board/bytes.ts";
import { replay } from "../engines/index.ts";
import { CliError } from "./args.ts";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const hex32 = (value: number) => `0x${value.toString(16).padStart(8, "0")}`;

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${what} '${path}': ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : code ?? (error as Error).message}`);
  }
}

function readKey(path: string, type: "private" | "public"): KeyObject {
  const pem = Buffer.from(readInput(path, "key"));
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString("latin1"))) {
    throw new CliError(`${path} is encrypted; iov reads keys without a passphrase`);
  }
  let key: KeyObject;
  try {
    key = type === "private" ? createPrivateKey(pem) : createPublicKey(pem);
  } catch {
    throw new CliError(`${path} is not a PEM ${type === "private" ? "private" : "public or private"} key${type === "private" ? " (make one with `iov keygen`)" : ""}`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new CliError(`${path} holds a key of type ${key.asymmetricKeyType}; image keys are Ed25519`);
  return key;
}

function checkWasm(path: string, bytes: Uint8Array): void {
  const magic = [0x00, 0x61, 0x73, 0x6d];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) throw new CliError(`${path} is not a WebAssembly module (it does not start with \\0asm)`);
  const version = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  if (version !== 1) throw new CliError(`${path} is WebAssembly binary version ${version}; the card runs version 1`);
}

/** The version a firmware reports: boot it once in-process and read its HELLO. */
async function firmwareVersion(path: string, boardId: number): Promise<ImageVersion> {
  const events = concat([
    encodeEvent({
      kind: "boot", mailboxVersion: MAILBOX_VERSION, role: CardRole.Host, resetCause: ResetCause.PowerOn,
      boardId, serial: 0, logLevel: LogLevel.Info, slots: 1, mac: Uint8Array.of(2, 0, 0, 0, 0, 1),
    }),
    encodeEvent({ kind: "sync", seq: 0 }),
  ]);
  const ask = `${path} does not report its version`;
  let commands: Uint8Array;
  try {
    commands = (await replay("node", { firmware: path }, events)).commands;
  } catch (error) {
    throw new CliError(`${ask} (it does not run: ${(error as Error).message.split("\n")[0]}): pass --version X.Y.Z`);
  }
  const reader = new MessageReader("commands");
  reader.push(commands);
  for (const raw of reader.all()) {
    try {
      const command = decodeCommand(raw);
      if (command.kind === "hello") {
        const [major, minor, patch] = command.firmware;
        return { major, minor, patch };
      }
    } catch {
      break;
    }
  }
  throw new CliError(`${ask} (it does not answer BOOT with HELLO): pass --version X.Y.Z`);
}

export interface ImageBuildFlags {
  output: string;
  key?: string;
  devKey?: boolean;
  unsigned?: boolean;
  boardId?: number;
  version?: ImageVersion;
  buildId?: Uint8Array;
}

export async function runImageBuild(firmware: string, flags: ImageBuildFlags, command: Command): Promise<void> {
  const chosen = [flags.key !== undefined && "--key", flags.devKey && "--dev-key", flags.unsigned && "--unsigned"].filter(Boolean);
  if (chosen.length !== 1) {
    command.error(`${chosen.length ? `${chosen.join(" and ")} exclude each other` : "say how to sign the image"}: pass one of --key FILE, --dev-key, --unsigned`, { exitCode: 2 });
  }
  const key = flags.key !== undefined ? readKey(flags.key, "private") : flags.devKey ? developmentKey() : null;
  const payload = readInput(firmware, "firmware");
  checkWasm(firmware, payload);
  const boardId = flags.boardId ?? BOARD_ID;
  const version = flags.version ?? (await firmwareVersion(firmware, boardId));
  let image: Uint8Array;
  try {
    image = buildImage(payload, { boardId, version, buildId: flags.buildId, key });
  } catch (error) {
    throw new CliError(`${firmware}: ${(error as Error).message}`);
  }
  try {
    writeFileSync(flags.output, image);
  } catch (error) {
    throw new CliError(`cannot write ${flags.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const info = (inspectImage(image) as { info: ImageInfo }).info;
  process.stdout.write(`${flags.output}: firmware ${formatVersion(version)} build ${hex(info.buildId)} for board ${hex32(boardId)}, ` +
    `${image.length} bytes, ${signer(info)}\n`);
}

const isDevelopmentKey = (keyId: Uint8Array) => hex(keyId) === hex(keyIdOf(developmentKey()));

function signer(info: ImageInfo): string {
  if (!info.signed) return "unsigned";
  return isDevelopmentKey(info.keyId) ? `signed with the development key ${hex(info.keyId)} (never trust it in a product)` : `signed by key ${hex(info.keyId)}`;
}

export function runImageInspect(path: string, flags: { json?: boolean }): void {
  const result = inspectImage(readInput(path, "image"));
  if (isDefect(result)) throw new CliError(`${path}: ${result.reason}`);
  const { info } = result;
  const development = isDevelopmentKey(info.keyId);
  if (flags.json) {
    process.stdout.write(JSON.stringify({
      file: path, size: info.size, magic: "IOVF", format: IMAGE_FORMAT, headerSize: ImageHeader.Size, boardId: info.boardId,
      version: formatVersion(info.version), buildId: hex(info.buildId), payloadLength: info.payloadLength, sha256: hex(info.sha256),
      keyId: hex(info.keyId), developmentKey: development, signed: info.signed,
    }, null, 2) + "\n");
    return;
  }
  process.stdout.write([
    `${path}: flash image, ${info.size} bytes`,
    `  format    ${IMAGE_FORMAT} (magic IOVF, ${ImageHeader.Size}-byte header)`,
    `  board     ${hex32(info.boardId)}`,
    `  version   ${formatVersion(info.version)}`,
    `  build     ${hex(info.buildId)}`,
    `  payload   ${info.payloadLength} bytes, SHA-256 ${hex(info.sha256)}`,
    `  key ID    ${hex(info.keyId)}${development ? " (the development key: never trust it in a product)" : ""}`,
    `  signed    ${info.signed ? `yes, Ed25519 (${SIGNATURE_SIZE} bytes)` : "no (unsigned image)"}`,
  ].join("\n") + "\n");
}

export interface ImageVerifyFlags {
  trust?: string[];
  devKey?: boolean;
  boardId?: number;
}

export function runImageVerify(path: string, flags: ImageVerifyFlags, command: Command): void {
  const trustedKeys = (flags.trust ?? []).map((file) => readKey(file, "public"));
  if (flags.devKey) trustedKeys.push(developmentKey());
  if (trustedKeys.length === 0) command.error("trust at least one key: pass --trust PUB.pem (repeatable) or --dev-key", { exitCode: 2 });
  const result = verifyImage(readInput(path, "image"), { trustedKeys, boardId: flags.boardId });
  if (isDefect(result)) throw new CliError(`${path}: ${result.reason}`);
  const { info } = result;
  process.stdout.write(`${path}: ok (${formatVersion(info.version)}, build ${hex(info.buildId)}, board ${hex32(info.boardId)}, signed by key ${hex(info.keyId)})\n`);
}
