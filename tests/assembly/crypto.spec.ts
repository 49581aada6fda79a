// Known-answer tests of the specs' stand-in for the fabric's hash engine (support/sha256.ts,
// support/hmac.ts): SHA-256 (FIPS 180-4 / NIST examples) and HMAC-SHA-256 (RFC 4231), so that
// the tags and digests the other specs expect are the real ones. The engine's own model
// (board/hash-engine.ts) is checked against node:crypto by tests/host/hash-engine.test.ts.
// Also the firmware's constant-time comparison of tags (assembly/hash.ts, equal32).

import { sha256, sha256Init, sha256Update, sha256Final } from "./support/sha256";
import { hmac, hmacInit, hmacUpdate, hmacFinal } from "./support/hmac";
import { equal32 } from "../../assembly/hash";

const input = memory.data(2048);
const key = memory.data(256);
const out = memory.data(1040);
const other = memory.data(32);

// ---- Bytes in and out of memory -------------------------------------------------------

/** Writes the bytes of `hex` at `at`; returns their count. */
function fromHex(hex: string, at: usize): i32 {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) store<u8>(at + i, U8.parseInt(hex.substr(2 * i, 2), 16));
  return n;
}

/** Writes the characters of an ASCII `text` at `at`; returns their count. */
function fromText(text: string, at: usize): i32 {
  for (let i = 0; i < text.length; i++) store<u8>(at + i, text.charCodeAt(i) as u8);
  return text.length;
}

function fill(at: usize, value: u8, length: i32): i32 {
  memory.fill(at, value, length);
  return length;
}

function toHex(at: usize, length: i32): string {
  const digits = "0123456789abcdef";
  let text = "";
  for (let i = 0; i < length; i++) {
    const byte = load<u8>(at + i);
    text += digits.charAt(byte >> 4) + digits.charAt(byte & 15);
  }
  return text;
}

function sha256Hex(text: string): string {
  sha256(input, fromText(text, input), out);
  return toHex(out, 32);
}

/** A message of `length` bytes that is not periodic in 64. */
function pattern(at: usize, length: i32): i32 {
  for (let i = 0; i < length; i++) store<u8>(at + i, (i * 7 + (i >> 6) + 3) as u8);
  return length;
}

// ---- SHA-256 -------------------------------------------------------------------------

describe("SHA-256 (FIPS 180-4 examples)", () => {
  it("hashes \"abc\"", () => {
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("hashes the empty string", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("hashes the 448-bit message (padding spills into a second block)", () => {
    expect(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
      .toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  it("hashes the 896-bit message", () => {
    expect(sha256Hex(
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    )).toBe("cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  });

  it("hashes one million 'a' fed in uneven chunks", () => {
    fill(input, 0x61, 1000);
    const chunks: i32[] = [1, 7, 55, 64, 65, 127, 999, 3, 1000, 63];
    sha256Init();
    let left = 1000000;
    for (let i = 0; left > 0; i++) {
      const n = min(chunks[i % chunks.length], left);
      sha256Update(input, n);
      left -= n;
    }
    sha256Final(out);
    expect(toHex(out, 32)).toBe("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  });
});

describe("SHA-256 streaming", () => {
  it("equals the one-shot hash when split at any block boundary", () => {
    const length = pattern(input, 130);
    sha256(input, length, other);
    const splits: i32[] = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 130];
    for (let i = 0; i < splits.length; i++) {
      const at = splits[i];
      sha256Init();
      sha256Update(input, at);
      sha256Update(input + at, length - at);
      sha256Final(out);
      expect(toHex(out, 32)).toBe(toHex(other, 32), "split at " + at.toString());
    }
  });

  it("equals the one-shot hash fed byte by byte, for lengths around the padding limits", () => {
    const lengths: i32[] = [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128, 129];
    pattern(input, 200);
    for (let l = 0; l < lengths.length; l++) {
      const length = lengths[l];
      sha256(input, length, other);
      sha256Init();
      for (let i = 0; i < length; i++) sha256Update(input + i, 1);
      sha256Final(out);
      expect(toHex(out, 32)).toBe(toHex(other, 32), "length " + length.toString());
    }
  });

  it("may write the digest over its input", () => {
    const length = pattern(input, 100);
    sha256(input, length, other);
    sha256(input, length, input);
    expect(toHex(input, 32)).toBe(toHex(other, 32));
  });

  it("restarts cleanly after sha256Init, whatever was buffered", () => {
    sha256Init();
    sha256Update(input, 30);
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

// ---- HMAC-SHA-256 --------------------------------------------------------------------

function hmacHex(keyLength: i32, dataLength: i32): string {
  hmac(key, keyLength, input, dataLength, out);
  return toHex(out, 32);
}

describe("HMAC-SHA-256 (RFC 4231)", () => {
  it("test case 1", () => {
    expect(hmacHex(fill(key, 0x0b, 20), fromText("Hi There", input)))
      .toBe("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  });

  it("test case 2: a key shorter than the output", () => {
    expect(hmacHex(fromText("Jefe", key), fromText("what do ya want for nothing?", input)))
      .toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  it("test case 3", () => {
    expect(hmacHex(fill(key, 0xaa, 20), fill(input, 0xdd, 50)))
      .toBe("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  });

  it("test case 4", () => {
    expect(hmacHex(fromHex("0102030405060708090a0b0c0d0e0f10111213141516171819", key), fill(input, 0xcd, 50)))
      .toBe("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  });

  it("test case 6: a 131-byte key is hashed first", () => {
    expect(hmacHex(fill(key, 0xaa, 131), fromText("Test Using Larger Than Block-Size Key - Hash Key First", input)))
      .toBe("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  });

  it("test case 7: a 131-byte key and a 152-byte message", () => {
    const data = "This is a test using a larger than block-size key and a larger than block-size data. " +
      "The key needs to be hashed before being used by the HMAC algorithm.";
    expect(hmacHex(fill(key, 0xaa, 131), fromText(data, input)))
      .toBe("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  });

  it("streams: chunked updates equal the one-shot MAC", () => {
    const keyLength = fill(key, 0xaa, 131);
    const length = fromText("This is a test using a larger than block-size key and a larger than block-size data. " +
      "The key needs to be hashed before being used by the HMAC algorithm.", input);
    hmacInit(key, keyLength);
    hmacUpdate(input, 10);
    hmacUpdate(input + 10, 0);
    hmacUpdate(input + 10, 100);
    hmacUpdate(input + 110, length - 110);
    hmacFinal(out);
    expect(toHex(out, 32)).toBe("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  });

  it("may write the MAC over its key", () => {
    fill(key, 0x0b, 20);
    hmac(key, 20, input, fromText("Hi There", input), key);
    expect(toHex(key, 32)).toBe("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  });
});

describe("equal32", () => {
  it("is true for equal values, including a value with itself", () => {
    pattern(out, 32);
    pattern(other, 32);
    expect(equal32(out, other)).toBe(true);
    expect(equal32(out, out)).toBe(true);
  });

  it("is false when any single bit of any byte differs", () => {
    pattern(out, 32);
    for (let i = 0; i < 32; i++) {
      for (let bit = 0; bit < 8; bit++) {
        pattern(other, 32);
        store<u8>(other + i, ((load<u8>(other + i) as i32) ^ (1 << bit)) as u8);
        expect(equal32(out, other)).toBe(false, "byte " + i.toString() + " bit " + bit.toString());
      }
    }
  });

  it("looks at exactly 32 bytes", () => {
    fill(out, 0, 40);
    fill(other, 0, 32);
    store<u8>(out + 32, 1);
    expect(equal32(out, other)).toBe(true);
  });
});
