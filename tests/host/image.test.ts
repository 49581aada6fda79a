import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify, type KeyObject } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import {
  buildImage, compareVersions, developmentKey, formatVersion, inspectImage, isDefect, keyIdOf, parseVersion, verifyImage,
  type CheckedImage, type DefectCode, type ImageDefect,
} from "../../board/image.ts";
import { ImageHeader, SIGNATURE_SIZE, imageSize } from "../../board/map/image.ts";
import { IMAGE_MAX, SLOT_SIZE } from "../../board/map/flash.ts";
import { BOARD_ID } from "../../board/map/registers.ts";
import { MAILBOX_VERSION, HelloStatus } from "../../board/map/mailbox.ts";
import { encodeCommand } from "../../board/mailbox-codec.ts";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "../../assembly/version.ts";
import { FIRMWARE, ROOT, iov, assertOneLineError } from "./helpers.ts";

const temp = () => mkdtempSync(join(tmpdir(), "iov-image-"));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());
const newKey = () => generateKeyPairSync("ed25519").privateKey;

const PAYLOAD = new Uint8Array(1000).map((_, i) => (i * 7 + 3) & 0xff);
const KEY = newKey();
const VERSION = { major: 0, minor: 2, patch: 300 };
const signed = (payload = PAYLOAD, key: KeyObject | null = KEY) => buildImage(payload, { boardId: BOARD_ID, version: VERSION, key });
const END = ImageHeader.Size + PAYLOAD.length;

function ok(result: CheckedImage | ImageDefect): CheckedImage {
  assert.ok(!isDefect(result), isDefect(result) ? `${result.code}: ${result.reason}` : "");
  return result as CheckedImage;
}

/** The defect's code, after checking its reason is one line, lower case first, no final period. */
function code(result: CheckedImage | ImageDefect): DefectCode {
  assert.ok(isDefect(result), "expected a defect, the image passed");
  const { reason } = result as ImageDefect;
  assert.match(reason, /^[^A-Z\n][^\n]*[^.\n]$/, reason);
  return (result as ImageDefect).code;
}

const check = (bytes: Uint8Array, trustedKeys = [KEY], boardId?: number) => verifyImage(bytes, { trustedKeys, boardId });

function edited(image: Uint8Array, edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = image.slice();
  edit(copy, new DataView(copy.buffer));
  return copy;
}

test("an image round-trips: every header field is where board/map/image.ts says, and inspect and verify read it back", () => {
  const buildId = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const image = buildImage(PAYLOAD, { boardId: 0x12345678, version: { major: 127, minor: 255, patch: 65535 }, buildId, key: KEY });
  assert.equal(image.length, imageSize(PAYLOAD.length));
  const view = new DataView(image.buffer);
  assert.equal(Buffer.from(image.subarray(0, 4)).toString("ascii"), "IOVF");
  assert.equal(view.getUint16(4, true), 1);
  assert.equal(view.getUint16(6, true), 80);
  assert.equal(view.getUint32(8, true), 0x12345678);
  assert.deepEqual([image[12], image[13], view.getUint16(14, true)], [127, 255, 65535]);
  assert.deepEqual(image.subarray(16, 32), buildId);
  assert.equal(view.getUint32(32, true), PAYLOAD.length);
  assert.deepEqual(image.subarray(36, 44), keyIdOf(createPublicKey(KEY)));
  assert.equal(view.getUint32(44, true), 0);
  assert.deepEqual(image.subarray(48, 80), sha256(PAYLOAD));
  assert.deepEqual(image.subarray(80, END), PAYLOAD);
  assert.ok(verify(null, image.subarray(0, 80), createPublicKey(KEY), image.subarray(END)), "Ed25519 over the 80 header bytes");

  const expected = {
    boardId: 0x12345678, version: { major: 127, minor: 255, patch: 65535 }, buildId, payloadLength: PAYLOAD.length,
    keyId: keyIdOf(KEY), sha256: sha256(PAYLOAD), size: image.length, signed: true,
  };
  for (const result of [inspectImage(image), check(image, [createPublicKey(KEY)], 0x12345678)]) {
    const { info, payload } = ok(result);
    assert.deepEqual(info, expected);
    assert.deepEqual(payload, PAYLOAD);
  }
});

test("the build ID defaults to the first 16 bytes of the payload's SHA-256; an unsigned image has no signature and a zero key ID", () => {
  assert.deepEqual(ok(inspectImage(signed())).info.buildId, sha256(PAYLOAD).subarray(0, 16));
  const unsigned = signed(PAYLOAD, null);
  assert.equal(unsigned.length, END);
  const { info } = ok(inspectImage(unsigned));
  assert.equal(info.signed, false);
  assert.equal(info.size, END);
  assert.deepEqual(info.keyId, new Uint8Array(8));
});

test("the development key is the published one: its seed is the SHA-256 of the published sentence", () => {
  const seed = sha256(new TextEncoder().encode("IOV development signing key: public, never trust it in a product"));
  const d = developmentKey().export({ format: "jwk" }).d!;
  assert.equal(Buffer.from(d, "base64url").toString("hex"), hex(seed));
  assert.equal(developmentKey().type, "private");
  const doc = readFileSync(`${ROOT}docs/image-format.md`, "utf8");
  assert.ok(doc.includes(`Its key ID is \`${hex(keyIdOf(developmentKey()))}\``), "docs/image-format.md names the development key's ID");
  assert.ok(doc.includes("\n## Boot ROM\n"));
  ok(check(buildImage(PAYLOAD, { boardId: BOARD_ID, version: VERSION, key: developmentKey() }), [developmentKey()]));
});

test("a key ID is the first 8 bytes of the SHA-256 of the raw public key, the same from the private key", () => {
  const raw = Buffer.from(createPublicKey(KEY).export({ format: "jwk" }).x!, "base64url");
  assert.equal(hex(keyIdOf(createPublicKey(KEY))), hex(sha256(raw).subarray(0, 8)));
  assert.deepEqual(keyIdOf(KEY), keyIdOf(createPublicKey(KEY)));
  assert.throws(() => keyIdOf(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey), /image keys are Ed25519, not ec/);
});

test("versions: parse, format and order; out-of-range or malformed text is refused with a clear message", () => {
  assert.deepEqual(parseVersion("1.22.333"), { major: 1, minor: 22, patch: 333 });
  assert.equal(formatVersion(parseVersion("127.255.65535")), "127.255.65535");
  assert.ok(compareVersions(parseVersion("0.2.0"), parseVersion("0.1.9")) > 0);
  assert.ok(compareVersions(parseVersion("0.1.9"), parseVersion("1.0.0")) < 0);
  assert.ok(compareVersions(parseVersion("0.1.10"), parseVersion("0.1.9")) > 0);
  assert.equal(compareVersions(parseVersion("3.4.5"), parseVersion("3.4.5")), 0);
  assert.throws(() => parseVersion("1.2"), /expected a version such as 0.2.0 \(MAJOR.MINOR.PATCH\), got '1.2'/);
  assert.throws(() => parseVersion("v1.2.3"), /got 'v1.2.3'/);
  assert.throws(() => parseVersion("128.0.0"), /major must be 0..127, got 128/);
  assert.throws(() => parseVersion("0.256.0"), /minor must be 0..255, got 256/);
  assert.throws(() => parseVersion("0.0.65536"), /patch must be 0..65535, got 65536/);
});

test("buildImage refuses what the format cannot hold", () => {
  const o = { boardId: BOARD_ID, version: VERSION, key: KEY };
  assert.throws(() => buildImage(new Uint8Array(IMAGE_MAX - ImageHeader.Size - SIGNATURE_SIZE + 1), o), /a flash slot holds at most 65504/);
  buildImage(new Uint8Array(IMAGE_MAX - ImageHeader.Size - SIGNATURE_SIZE), o);
  assert.throws(() => buildImage(PAYLOAD, { ...o, buildId: new Uint8Array(15) }), /a build ID has 16 bytes, not 15/);
  assert.throws(() => buildImage(PAYLOAD, { ...o, boardId: 2 ** 32 }), /board ID must be a 32-bit unsigned number/);
  assert.throws(() => buildImage(PAYLOAD, { ...o, version: { major: 128, minor: 0, patch: 0 } }), /major must be 0..127/);
  assert.throws(() => buildImage(PAYLOAD, { ...o, key: createPublicKey(KEY) }), /signing needs the private key/);
});

test("a file cut anywhere is truncated, except right after the payload, where it is an unsigned image", () => {
  const image = signed();
  for (const at of [0, 1, 79, 80, 81, END - 1, END + 1, END + 32, image.length - 1]) {
    assert.equal(code(inspectImage(image.subarray(0, at))), "truncated", `cut at ${at}`);
    assert.equal(code(check(image.subarray(0, at))), "truncated", `cut at ${at}`);
  }
  assert.match((check(image.subarray(0, 40)) as ImageDefect).reason, /^40 bytes, shorter than the 80-byte image header$/);
  assert.match((check(image.subarray(0, 500)) as ImageDefect).reason, /^cut short: 500 bytes, the header and 1000-byte payload need 1080$/);
  assert.match((check(image.subarray(0, END + 10)) as ImageDefect).reason, /^cut short inside the signature: 10 of its 64 bytes are there$/);
  assert.equal(ok(inspectImage(image.subarray(0, END))).info.signed, false);
  assert.equal(code(check(image.subarray(0, END))), "unsigned");
});

test("each header defect is reported by its own code, from a real image", () => {
  const image = signed();
  const cases: [DefectCode, RegExp, (b: Uint8Array, v: DataView) => void][] = [
    ["magic", /^not a flash image: magic 0x46564f48, expected 0x46564f49 \("IOVF"\)$/, (b) => (b[0] ^= 1)],
    ["format", /^image format 2 is not supported \(only format 1\)$/, (_, v) => v.setUint16(4, 2, true)],
    ["header-size", /^header size 96, format 1 has an 80-byte header$/, (_, v) => v.setUint16(6, 96, true)],
    ["reserved", /^reserved header word at offset 44 is 0x01000000, not zero$/, (b) => (b[47] = 1)],
    ["reserved", /^major version byte is 128: its top bit is reserved and must be zero$/, (b) => (b[12] = 0x80)],
    ["too-large", /^a 65361-byte payload makes a 65505-byte image; a flash slot holds at most 65504$/, (_, v) => v.setUint32(32, 65361, true)],
  ];
  for (const [expected, reason, edit] of cases) {
    const bad = edited(image, edit);
    for (const result of [inspectImage(bad), check(bad)]) {
      assert.equal(code(result), expected);
      assert.match((result as ImageDefect).reason, reason);
    }
  }
});

test("a blank signature (all 0x00 or all 0xff) or none at all makes an unsigned image, which verify refuses", () => {
  for (const fill of [0x00, 0xff]) {
    const blank = edited(signed(), (b) => b.fill(fill, END));
    assert.equal(ok(inspectImage(blank)).info.signed, false);
    assert.equal(code(check(blank)), "unsigned");
    assert.match((check(blank) as ImageDefect).reason, /^unsigned image \(the signature bytes are blank\)$/);
  }
  assert.match((check(signed(PAYLOAD, null)) as ImageDefect).reason, /^unsigned image \(no signature after the payload\)$/);
});

test("trailing bytes, a flipped payload byte, another signer, an altered header or signature, another board: one code each", () => {
  const image = signed();
  const trailing = Uint8Array.of(...image, 0);
  assert.equal(code(inspectImage(trailing)), "trailing-data");
  assert.match((check(trailing) as ImageDefect).reason, /^1 byte\(s\) after the end of the 1144-byte image$/);

  const flipped = edited(image, (b) => (b[ImageHeader.Size + 500] ^= 0x10));
  assert.equal(code(inspectImage(flipped)), "corrupt");
  assert.equal((check(flipped) as ImageDefect).reason, "payload SHA-256 does not match the header (corrupt image)");

  const other = newKey();
  const foreignSigner = signed(PAYLOAD, other);
  ok(inspectImage(foreignSigner));
  assert.equal(code(check(foreignSigner)), "untrusted-key");
  assert.equal((check(foreignSigner) as ImageDefect).reason, `signed by key ${hex(keyIdOf(other))}, which is not trusted`);
  ok(check(foreignSigner, [KEY, createPublicKey(other)]));

  const newerHeader = edited(image, (_, v) => v.setUint16(ImageHeader.Patch, 301, true));
  assert.equal(ok(inspectImage(newerHeader)).info.version.patch, 301);
  assert.equal(code(check(newerHeader)), "bad-signature");
  const badSignature = edited(image, (b) => (b[image.length - 1] ^= 1));
  assert.equal(code(check(badSignature)), "bad-signature");
  assert.match((check(badSignature) as ImageDefect).reason, /^the signature does not verify with trusted key [0-9a-f]{16} \(header or signature altered\)$/);
  const keyIdSwapped = edited(foreignSigner, (b) => b.set(keyIdOf(KEY), ImageHeader.KeyId));
  assert.equal(code(check(keyIdSwapped)), "bad-signature", "another signer cannot borrow a trusted key's ID");

  assert.equal(code(check(image, [KEY], 0x10f00a02)), "foreign-board");
  assert.equal((check(buildImage(PAYLOAD, { boardId: 0x12345678, version: VERSION, key: KEY }), [KEY], BOARD_ID) as ImageDefect).reason,
    "built for board 0x12345678, this card is 0x10f00a01");
  ok(check(image, [KEY], BOARD_ID));
});

test("the checks run in the documented order: the first failure is the one reported", () => {
  const image = signed();
  assert.equal(code(check(edited(image, (b) => { b[0] = 0; b[4] = 9; }))), "magic");
  assert.equal(code(check(edited(image, (b) => { b[4] = 9; b[6] = 9; }))), "format");
  assert.equal(code(check(edited(image, (b, v) => { b[6] = 9; v.setUint32(32, 1e6, true); }))), "header-size");
  assert.equal(code(check(edited(image, (b, v) => { b[44] = 1; v.setUint32(32, 1e6, true); }))), "reserved");
  assert.equal(code(check(edited(image, (_, v) => v.setUint32(32, 1e6, true)).subarray(0, 100))), "too-large");
  const unsignedCorrupt = edited(signed(PAYLOAD, null), (b) => (b[100] ^= 1));
  assert.equal(code(check(unsignedCorrupt)), "unsigned", "verify refuses an unsigned image before hashing it");
  assert.equal(code(inspectImage(unsignedCorrupt)), "corrupt", "inspect goes on to the hash");
  assert.equal(code(check(Uint8Array.of(...edited(image, (b) => (b[100] ^= 1)), 0))), "trailing-data");
  assert.equal(code(check(edited(signed(PAYLOAD, newKey()), (b) => (b[100] ^= 1)))), "corrupt");
  assert.equal(code(check(buildImage(PAYLOAD, { boardId: 7, version: VERSION, key: newKey() }), [KEY], BOARD_ID)), "untrusted-key");
  assert.equal(code(check(edited(buildImage(PAYLOAD, { boardId: 7, version: VERSION, key: KEY }), (b) => (b[b.length - 1] ^= 1)), [KEY], BOARD_ID)), "bad-signature");
});

test("in flash, a whole slot padded with 0xff verifies; an erased signature there is an unsigned image", () => {
  const slot = (image: Uint8Array) => {
    const bytes = new Uint8Array(SLOT_SIZE).fill(0xff);
    bytes.set(image);
    return bytes;
  };
  const image = signed();
  const { info, payload } = ok(verifyImage(slot(image), { trustedKeys: [KEY], boardId: BOARD_ID, inFlash: true }));
  assert.equal(info.size, image.length);
  assert.deepEqual(payload, PAYLOAD);
  assert.equal(code(verifyImage(slot(image), { trustedKeys: [KEY] })), "trailing-data", "the same bytes as a file have trailing data");

  const erased = slot(signed(PAYLOAD, null));
  const inspected = ok(inspectImage(erased, { inFlash: true })).info;
  assert.equal(inspected.signed, false);
  assert.equal(inspected.size, image.length);
  assert.equal(code(verifyImage(erased, { trustedKeys: [KEY], inFlash: true })), "unsigned");
  assert.equal(code(verifyImage(slot(edited(image, (b) => (b[90] ^= 1))), { trustedKeys: [KEY], inFlash: true })), "corrupt");
});

// The command line.

/** A WASI module whose `_start` writes `commands` to fd 1 and returns, like a firmware answering BOOT. */
function firmwareAnswering(commands: Uint8Array): string {
  const data = [...commands].map((b) => `\\${b.toString(16).padStart(2, "0")}`).join("");
  const module = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    (data (i32.const 64) "${data}")
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const ${commands.length}))
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
  const path = join(temp(), "fw.wasm");
  writeFileSync(path, module.emitBinary());
  module.dispose();
  return path;
}

test("iov keygen writes a 0600 PKCS#8 private key and an SPKI public key, prints the key ID, and will not overwrite", () => {
  const dir = temp();
  const out = join(dir, "release.key");
  const result = iov(["keygen", out]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const privateKey = createPrivateKey(readFileSync(out));
  const publicKey = createPublicKey(readFileSync(`${out}.pub`));
  assert.match(readFileSync(out, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(readFileSync(`${out}.pub`, "utf8"), /^-----BEGIN PUBLIC KEY-----\n/);
  assert.equal(privateKey.asymmetricKeyType, "ed25519");
  assert.deepEqual(keyIdOf(privateKey), keyIdOf(publicKey));
  assert.match(result.stdout, new RegExp(`^key ${hex(keyIdOf(publicKey))}: `));

  assertOneLineError(iov(["keygen", out]), 1, /release.key exists: pass --force to replace it/);
  assert.deepEqual(keyIdOf(createPrivateKey(readFileSync(out))), keyIdOf(privateKey), "the refused run left the key alone");
  writeFileSync(join(dir, "only.pub"), "");
  assertOneLineError(iov(["keygen", join(dir, "only")]), 1, /only.pub exists/);
  assert.ok(!existsSync(join(dir, "only")), "nothing written when either file is in the way");

  writeFileSync(out, "old", { mode: 0o644 });
  assert.equal(iov(["keygen", out, "--force"]).status, 0);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.notDeepEqual(keyIdOf(createPrivateKey(readFileSync(out))), keyIdOf(privateKey));
});

test("iov image build, inspect and verify: a signed image round-trips, and each failure is one line with exit status 1", () => {
  const dir = temp();
  const key = join(dir, "k");
  assert.equal(iov(["keygen", key]).status, 0);
  const keyId = hex(keyIdOf(createPublicKey(readFileSync(`${key}.pub`))));
  const firmware = firmwareAnswering(new Uint8Array(0));
  const payload = new Uint8Array(readFileSync(firmware));
  const img = join(dir, "fw.img");
  const build = iov(["image", "build", firmware, "-o", img, "--key", key, "--version", "1.2.3", "--build-id", "00112233445566778899aabbccddeeff", "--board-id", "0x12345678"]);
  assert.equal(build.status, 0, build.stderr);
  assert.equal(build.stdout, `${img}: firmware 1.2.3 build 00112233445566778899aabbccddeeff for board 0x12345678, ${payload.length + 144} bytes, signed by key ${keyId}\n`);
  const { info, payload: inside } = ok(verifyImage(new Uint8Array(readFileSync(img)), { trustedKeys: [createPublicKey(readFileSync(`${key}.pub`))], boardId: 0x12345678 }));
  assert.deepEqual(inside, payload);
  assert.deepEqual(info.version, { major: 1, minor: 2, patch: 3 });

  const inspect = iov(["image", "inspect", img]);
  assert.equal(inspect.status, 0, inspect.stderr);
  for (const line of ["board     0x12345678", "version   1.2.3", "build     00112233445566778899aabbccddeeff", `payload   ${payload.length} bytes, SHA-256 ${hex(sha256(payload))}`, `key ID    ${keyId}`, "signed    yes"]) {
    assert.ok(inspect.stdout.includes(`\n  ${line}`), `${line} in\n${inspect.stdout}`);
  }
  const json = JSON.parse(iov(["image", "inspect", img, "--json"]).stdout);
  assert.deepEqual({ ...json, file: undefined }, {
    file: undefined, size: payload.length + 144, magic: "IOVF", format: 1, headerSize: 80, boardId: 0x12345678, version: "1.2.3",
    buildId: "00112233445566778899aabbccddeeff", payloadLength: payload.length, sha256: hex(sha256(payload)), keyId, developmentKey: false, signed: true,
  });

  const verified = iov(["image", "verify", img, "--trust", `${key}.pub`, "--board-id", "0x12345678"]);
  assert.equal(verified.status, 0, verified.stderr);
  assert.equal(verified.stdout, `${img}: ok (1.2.3, build 00112233445566778899aabbccddeeff, board 0x12345678, signed by key ${keyId})\n`);
  assertOneLineError(iov(["image", "verify", img, "--dev-key"]), 1, new RegExp(`^iov: ${img}: signed by key ${keyId}, which is not trusted$`));
  assertOneLineError(iov(["image", "verify", img, "--trust", `${key}.pub`, "--board-id", "0x10f00a01"]), 1, /: built for board 0x12345678, this card is 0x10f00a01$/);
  const corrupt = join(dir, "corrupt.img");
  writeFileSync(corrupt, edited(new Uint8Array(readFileSync(img)), (b) => (b[ImageHeader.Size + 3] ^= 1)));
  assertOneLineError(iov(["image", "verify", corrupt, "--trust", `${key}.pub`]), 1, /corrupt.img: payload SHA-256 does not match the header \(corrupt image\)$/);
  assertOneLineError(iov(["image", "inspect", corrupt]), 1, /corrupt image/);
  assertOneLineError(iov(["image", "inspect", firmware]), 1, /fw.wasm: not a flash image: magic 0x6d736100/);
  assertOneLineError(iov(["image", "inspect", join(dir, "none.img")]), 1, /cannot read image '.*none.img': no such file/);

  const unsigned = join(dir, "unsigned.img");
  assert.equal(iov(["image", "build", firmware, "-o", unsigned, "--unsigned", "--version", "1.2.3"]).status, 0);
  assert.match(iov(["image", "inspect", unsigned]).stdout, /signed {4}no \(unsigned image\)/);
  assertOneLineError(iov(["image", "verify", unsigned, "--dev-key"]), 1, /unsigned.img: unsigned image \(no signature after the payload\)$/);
});

test("iov image build takes the version from the firmware's HELLO, and says so when there is none", () => {
  const hello = encodeCommand({ kind: "hello", mailboxVersion: MAILBOX_VERSION, status: HelloStatus.Ok, firmware: [3, 4, 5] });
  const dir = temp();
  const out = join(dir, "fw.img");
  const built = iov(["image", "build", firmwareAnswering(hello), "-o", out, "--dev-key"]);
  assert.equal(built.status, 0, built.stderr);
  assert.match(built.stdout, /: firmware 3\.4\.5 build [0-9a-f]{32} for board 0x10f00a01, \d+ bytes, signed with the development key [0-9a-f]{16} \(never trust it in a product\)\n$/);
  assert.deepEqual(ok(verifyImage(new Uint8Array(readFileSync(out)), { trustedKeys: [developmentKey()] })).info.version, { major: 3, minor: 4, patch: 5 });
  assertOneLineError(iov(["image", "build", firmwareAnswering(new Uint8Array(0)), "-o", out, "--dev-key"]), 1,
    /fw.wasm does not report its version \(it does not answer BOOT with HELLO\): pass --version X.Y.Z$/);
});

test("iov image build of build/firmware.wasm takes the version of assembly/version.ts, which the firmware reports", { skip: !existsSync(FIRMWARE) && "build/firmware.wasm is missing" }, () => {
  const out = join(temp(), "firmware.img");
  const built = iov(["image", "build", FIRMWARE, "-o", out, "--dev-key"]);
  assert.equal(built.status, 0, built.stderr);
  const { info } = ok(verifyImage(new Uint8Array(readFileSync(out)), { trustedKeys: [developmentKey()], boardId: BOARD_ID }));
  assert.deepEqual(info.version, { major: FIRMWARE_MAJOR, minor: FIRMWARE_MINOR, patch: FIRMWARE_PATCH });
});

test("bad iov image and keygen arguments get a one-line error: usage errors exit 2, unusable files exit 1", () => {
  const dir = temp();
  const firmware = firmwareAnswering(new Uint8Array(0));
  const out = join(dir, "x.img");
  const build = (...args: string[]) => iov(["image", "build", firmware, "-o", out, ...args]);
  assertOneLineError(build("--dev-key", "--version", "1.2"), 2, /option '--version <x.y.z>' argument '1.2' is invalid. expected a version such as 0.2.0/);
  assertOneLineError(build("--dev-key", "--version", "1.2.999999"), 2, /patch must be 0..65535, got 999999/);
  assertOneLineError(build("--dev-key", "--version", "1.2.3", "--build-id", "xyz"), 2, /expected 32 hexadecimal digits \(16 bytes\), got 'xyz'/);
  assertOneLineError(build("--dev-key", "--version", "1.2.3", "--build-id", "0011"), 2, /expected 32 hexadecimal digits/);
  assertOneLineError(build("--dev-key", "--version", "1.2.3", "--board-id", "0x123456789"), 2, /expected a board ID such as 0x10f00a01, got '0x123456789'/);
  assertOneLineError(build("--dev-key", "--version", "1.2.3", "--board-id", "4294967296"), 2, /a board ID is 32 bits/);
  assertOneLineError(build("--dev-key", "--unsigned", "--version", "1.2.3"), 2, /--dev-key and --unsigned exclude each other: pass one of --key FILE, --dev-key, --unsigned/);
  assertOneLineError(build("--key", join(dir, "k"), "--dev-key"), 2, /--key and --dev-key exclude each other/);
  assertOneLineError(build("--version", "1.2.3"), 2, /say how to sign the image: pass one of --key FILE, --dev-key, --unsigned/);
  assertOneLineError(iov(["image", "build", firmware, "--dev-key"]), 2, /required option '-o, --output <file>' not specified/);
  assertOneLineError(build("--key", join(dir, "missing.pem"), "--version", "1.2.3"), 1, /cannot read key '.*missing.pem': no such file/);
  writeFileSync(join(dir, "junk.pem"), "not a key\n");
  assertOneLineError(build("--key", join(dir, "junk.pem"), "--version", "1.2.3"), 1, /junk.pem is not a PEM private key \(make one with `iov keygen`\)/);
  writeFileSync(join(dir, "rsa.pem"), generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "pem", type: "pkcs8" }));
  assertOneLineError(build("--key", join(dir, "rsa.pem"), "--version", "1.2.3"), 1, /rsa.pem holds a key of type rsa; image keys are Ed25519/);
  writeFileSync(join(dir, "locked.pem"), newKey().export({ format: "pem", type: "pkcs8", cipher: "aes-256-cbc", passphrase: "secret" }));
  assertOneLineError(build("--key", join(dir, "locked.pem"), "--version", "1.2.3"), 1, /locked.pem is encrypted; iov reads keys without a passphrase/);
  assert.equal(iov(["keygen", join(dir, "k")]).status, 0);
  assertOneLineError(build("--key", join(dir, "k.pub"), "--version", "1.2.3"), 1, /k.pub is not a PEM private key/);
  assertOneLineError(iov(["image", "build", join(dir, "k.pub"), "-o", out, "--unsigned", "--version", "1.2.3"]), 1, /k.pub is not a WebAssembly module \(it does not start with \\0asm\)/);
  const v2 = join(dir, "v2.wasm");
  writeFileSync(v2, Uint8Array.of(0, 0x61, 0x73, 0x6d, 2, 0, 0, 0));
  assertOneLineError(iov(["image", "build", v2, "-o", out, "--unsigned", "--version", "1.2.3"]), 1, /v2.wasm is WebAssembly binary version 2; the card runs version 1/);
  assertOneLineError(iov(["image", "build", join(dir, "none.wasm"), "-o", out, "--unsigned"]), 1, /cannot read firmware '.*none.wasm': no such file/);
  const big = join(dir, "big.wasm");
  writeFileSync(big, Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...new Uint8Array(IMAGE_MAX)));
  assertOneLineError(iov(["image", "build", big, "-o", out, "--unsigned", "--version", "1.2.3"]), 1, /big.wasm: a 65512-byte payload makes a 65656-byte image; a flash slot holds at most 65504/);
  assertOneLineError(build("--dev-key", "--version", "1.2.3", "-o", join(dir, "no", "such", "dir.img")), 1, /cannot write .*dir.img: ENOENT/);

  assertOneLineError(iov(["image", "verify", out]), 2, /trust at least one key: pass --trust PUB.pem \(repeatable\) or --dev-key/);
  assertOneLineError(iov(["image", "verify", out, "--trust", join(dir, "junk.pem")]), 1, /junk.pem is not a PEM public or private key/);
  assertOneLineError(iov(["keygen", join(dir, "no", "such", "k")]), 1, /cannot write .*k: ENOENT/);
});
