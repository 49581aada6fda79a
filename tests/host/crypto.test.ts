// Checks assembly/crypto against node:crypto on random inputs: SHA-256 and HMAC-SHA-256
// one-shot and streamed in random chunks, and HMAC_DRBG against a small reference written
// here over createHmac. The modules are compiled once, with the firmware's runtime, memory
// and feature options from asconfig.json, from an entry that exists only in this file.

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import asc from "assemblyscript/asc";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Every crypto export, plus a scratch area the test writes inputs to and reads outputs from. */
const ENTRY = "tests/host/crypto-entry.ts";
const SCRATCH = 4096;
const ENTRY_SOURCE = `
export { sha256, sha256Init, sha256Update, sha256Final } from "../../assembly/crypto/sha256";
export { hmac, hmacInit, hmacUpdate, hmacFinal, equal32 } from "../../assembly/crypto/hmac";
export { drbgInstantiate, drbgReseed, drbgGenerate, drbgReady, drbgReset } from "../../assembly/crypto/drbg";
export const scratch: usize = memory.data(${SCRATCH});
`;
/** What the three modules and this entry's exports may weigh, in bytes of -O3 wasm (about 2000 now). */
const SIZE_BUDGET = 2560;

interface Crypto {
  memory: WebAssembly.Memory;
  scratch: WebAssembly.Global;
  sha256(data: number, length: number, out: number): void;
  sha256Init(): void;
  sha256Update(data: number, length: number): void;
  sha256Final(out: number): void;
  hmac(key: number, keyLength: number, data: number, length: number, out: number): void;
  hmacInit(key: number, keyLength: number): void;
  hmacUpdate(data: number, length: number): void;
  hmacFinal(out: number): void;
  equal32(a: number, b: number): number;
  drbgInstantiate(seed: number, length: number): void;
  drbgReseed(entropy: number, length: number): void;
  drbgGenerate(out: number, length: number): void;
  drbgReady(): number;
  drbgReset(): void;
}

async function compile(): Promise<Uint8Array> {
  const { options } = JSON.parse(readFileSync(join(ROOT, "asconfig.json"), "utf8"));
  let binary: Uint8Array | undefined;
  const stderr = asc.createMemoryStream();
  const { error } = await asc.main(
    [
      ENTRY, "--baseDir", ROOT, "--outFile", "crypto.wasm",
      "--runtime", options.runtime,
      "--initialMemory", String(options.initialMemory), "--maximumMemory", String(options.maximumMemory),
      "--disable", options.disable.join(","), "--enable", options.enable.join(","),
      "--optimizeLevel", "3", "--shrinkLevel", "1", "--noAssert",
    ],
    {
      stderr,
      readFile: (name, baseDir) => {
        if (name === ENTRY) return ENTRY_SOURCE;
        if (name === "asconfig.json") return null; // the firmware's entries, not ours
        try {
          return readFileSync(join(baseDir, name), "utf8");
        } catch {
          return null;
        }
      },
      writeFile: (name, contents) => {
        if (name === "crypto.wasm") binary = contents as Uint8Array;
      },
      listFiles: () => [],
    },
  );
  if (error || !binary) throw new Error(`crypto build failed: ${error?.message}\n${stderr.toString()}`);
  return binary;
}

let wasm: Uint8Array;
let c: Crypto;
let base: number;
const KEY = 0; // offsets in scratch: key 0..255, data 256..1535, out 1536..
const DATA = 256;
const OUT = 1536;

before(async () => {
  wasm = await compile();
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>), {
    env: { abort: () => { throw new Error("abort"); } },
  });
  c = instance.exports as unknown as Crypto;
  base = c.scratch.value as number;
});

const bytes = (at: number, length: number) => new Uint8Array(c.memory.buffer, base + at, length).slice();
const put = (at: number, data: Uint8Array) => new Uint8Array(c.memory.buffer, base + at, data.length).set(data);

function generator(seed: number) {
  const rng: RandomGenerator = xoroshiro128plus(seed);
  const int = (lo: number, hi: number) => uniformInt(rng, lo, hi);
  const random = (n: number) => Uint8Array.from({ length: n }, () => int(0, 255));
  /** Lengths summing to `total`, each 0..max. */
  const chunks = (total: number, max: number) => {
    const out: number[] = [];
    for (let left = total; left > 0;) {
      const n = Math.min(int(0, max), left);
      out.push(n);
      left -= n;
    }
    return out;
  };
  return { int, random, chunks };
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest();
const hmac = (key: Uint8Array, ...data: Uint8Array[]) => {
  const mac = createHmac("sha256", key);
  for (const d of data) mac.update(d);
  return mac.digest();
};

/** HMAC_DRBG (SP 800-90A 10.1.2), SHA-256, no additional input: the reference. */
class ReferenceDrbg {
  K = new Uint8Array(32);
  V = new Uint8Array(32).fill(1);
  constructor(seed: Uint8Array) {
    this.update(seed);
  }
  update(data: Uint8Array) {
    this.K = hmac(this.K, this.V, Uint8Array.of(0), data);
    this.V = hmac(this.K, this.V);
    if (data.length === 0) return;
    this.K = hmac(this.K, this.V, Uint8Array.of(1), data);
    this.V = hmac(this.K, this.V);
  }
  generate(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += 32) {
      this.V = hmac(this.K, this.V);
      out.set(this.V.subarray(0, Math.min(32, length - at)), at);
    }
    this.update(new Uint8Array(0));
    return out;
  }
}

test(`the crypto modules compile to at most ${SIZE_BUDGET} bytes of wasm, without imports`, () => {
  assert.ok(wasm.length <= SIZE_BUDGET, `${wasm.length} bytes`);
  assert.deepEqual(WebAssembly.Module.imports(new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>)), []);
});

test("sha256 equals node:crypto on 200 random messages of 0..300 bytes", () => {
  const { int, random } = generator(1);
  for (let i = 0; i < 200; i++) {
    const message = random(int(0, 300));
    put(DATA, message);
    c.sha256(base + DATA, message.length, base + OUT);
    assert.deepEqual(bytes(OUT, 32), new Uint8Array(sha256(message)), `message ${i}, ${message.length} bytes`);
  }
});

test("streamed sha256 equals node:crypto for random chunkings of 0..1200 bytes", () => {
  const { int, random, chunks } = generator(2);
  for (let i = 0; i < 100; i++) {
    const message = random(int(0, 1200));
    put(DATA, message);
    c.sha256Init();
    let at = 0;
    for (const n of chunks(message.length, int(1, 130))) {
      c.sha256Update(base + DATA + at, n);
      at += n;
    }
    c.sha256Final(base + OUT);
    assert.deepEqual(bytes(OUT, 32), new Uint8Array(sha256(message)), `message ${i}, ${message.length} bytes`);
  }
});

test("hmac equals node:crypto for random keys of 0..150 bytes over random messages", () => {
  const { int, random } = generator(3);
  for (let i = 0; i < 200; i++) {
    const key = random(int(0, 150));
    const message = random(int(0, 300));
    put(KEY, key);
    put(DATA, message);
    c.hmac(base + KEY, key.length, base + DATA, message.length, base + OUT);
    assert.deepEqual(bytes(OUT, 32), new Uint8Array(hmac(key, message)), `case ${i}: key ${key.length}, message ${message.length} bytes`);
  }
});

test("streamed hmac equals node:crypto for random chunkings", () => {
  const { int, random, chunks } = generator(4);
  for (let i = 0; i < 100; i++) {
    const key = random(int(0, 150));
    const message = random(int(0, 1200));
    put(KEY, key);
    put(DATA, message);
    c.hmacInit(base + KEY, key.length);
    let at = 0;
    for (const n of chunks(message.length, int(1, 200))) {
      c.hmacUpdate(base + DATA + at, n);
      at += n;
    }
    c.hmacFinal(base + OUT);
    assert.deepEqual(bytes(OUT, 32), new Uint8Array(hmac(key, message)), `case ${i}: key ${key.length}, message ${message.length} bytes`);
  }
});

test("equal32 agrees with a byte comparison", () => {
  const { int, random } = generator(5);
  for (let i = 0; i < 200; i++) {
    const a = random(32);
    const b = a.slice();
    if (i % 2) b[int(0, 31)] ^= 1 << int(0, 7);
    put(KEY, a);
    put(DATA, b);
    assert.equal(c.equal32(base + KEY, base + DATA), i % 2 ? 0 : 1, `case ${i}`);
  }
});

test("HMAC_DRBG equals the reference: instantiate, generate 3 times, reseed, generate", () => {
  const { int, random } = generator(6);
  for (let i = 0; i < 30; i++) {
    c.drbgReset();
    assert.equal(c.drbgReady(), 0);
    const seed = random(int(48, 200));
    put(DATA, seed);
    c.drbgInstantiate(base + DATA, seed.length);
    assert.equal(c.drbgReady(), 1);
    const reference = new ReferenceDrbg(seed);
    const lengths = [int(0, 64), int(1, 1024), int(0, 1024), -1, int(0, 1024)];
    for (const length of lengths) {
      if (length < 0) {
        const entropy = random(int(32, 200));
        put(DATA, entropy);
        c.drbgReseed(base + DATA, entropy.length);
        reference.update(entropy);
        continue;
      }
      c.drbgGenerate(base + OUT, length);
      assert.deepEqual(bytes(OUT, length), reference.generate(length), `run ${i}, ${length} bytes`);
    }
  }
});

test("HMAC_DRBG traps when used before instantiation or with a short seed", () => {
  c.drbgReset();
  assert.throws(() => c.drbgGenerate(base + OUT, 32), WebAssembly.RuntimeError);
  assert.throws(() => c.drbgReseed(base + DATA, 32), WebAssembly.RuntimeError);
  assert.throws(() => c.drbgInstantiate(base + DATA, 47), WebAssembly.RuntimeError);
  c.drbgInstantiate(base + DATA, 48);
  assert.throws(() => c.drbgGenerate(base + OUT, 1025), WebAssembly.RuntimeError);
  assert.throws(() => c.drbgReseed(base + DATA, 31), WebAssembly.RuntimeError);
});
