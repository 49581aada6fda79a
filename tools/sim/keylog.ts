// The MACsec key log (`iov sim --keylog FILE`), as SSLKEYLOGFILE is for TLS: one line per
// secure association a card put in use for sending, so that a lab engineer can decrypt a
// capture of a simulated run (`iov pcap decrypt`). A card never shows a key: the simulator
// writes the log from the fabric model (board/macsec/secy.ts, onKeyInstalled). docs/traces.md
// describes the format:
//
//   # comment
//   MACSEC_SA <SCI, 16 hex digits> <AN> <cipher suite> <SAK hex> <salt hex> <SSCI, 8 hex digits>
//
// The cipher suite is written by name (GCM-AES-XPN-128, GCM-AES-XPN-256). Several lines may
// name the same SCI and AN: later generations reuse the four ANs.

import {
  CIPHER_SUITE_NAME, CipherSuite, SALT_SIZE, SCI_SIZE, isXpn, keyLength, parseSecTag, frameSci, recoverPn, validateFrame, isMacsec,
  type SecureAssociationKey, type SecTag,
} from "../../board/macsec/frame.ts";
import type { InstalledKey } from "../../board/macsec/secy.ts";

export const KEYLOG_LABEL = "MACSEC_SA";

export interface KeyLogEntry extends SecureAssociationKey {
  sci: Uint8Array;
  an: number;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** The line for a transmit SA a card installed. */
export function keyLogLine(key: InstalledKey): string {
  return `${KEYLOG_LABEL} ${hex(key.sci)} ${key.an} ${CIPHER_SUITE_NAME[key.suite]} ${hex(key.key)} ${hex(key.salt)} ${(key.ssci >>> 0).toString(16).padStart(8, "0")}`;
}

/** Parses a key log; throws an Error naming the first bad line. */
export function parseKeyLog(text: string): KeyLogEntry[] {
  const suites = new Map(Object.entries(CIPHER_SUITE_NAME).map(([k, name]) => [name, Number(k) as CipherSuite]));
  const entries: KeyLogEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const bad = (why: string) => new Error(`key log line ${i + 1}: ${why}: ${line.slice(0, 80)}`);
    const f = line.split(/\s+/);
    if (f[0] !== KEYLOG_LABEL) throw bad(`expected ${KEYLOG_LABEL}`);
    if (f.length !== 7) throw bad(`expected 7 fields, got ${f.length}`);
    const [, sci, an, suiteName, key, salt, ssci] = f;
    const suite = suites.get(suiteName);
    if (suite === undefined) throw bad(`unknown cipher suite ${suiteName}`);
    if (!/^[0-9a-f]{16}$/i.test(sci)) throw bad(`the SCI must be ${2 * SCI_SIZE} hex digits`);
    if (!/^[0-3]$/.test(an)) throw bad("the AN must be 0..3");
    if (!new RegExp(`^[0-9a-f]{${2 * keyLength(suite)}}$`, "i").test(key)) throw bad(`${suiteName} needs a ${keyLength(suite)}-byte key`);
    if (!new RegExp(`^[0-9a-f]{${2 * SALT_SIZE}}$`, "i").test(salt)) throw bad(`the salt must be ${2 * SALT_SIZE} hex digits`);
    if (!/^[0-9a-f]{8}$/i.test(ssci)) throw bad("the SSCI must be 8 hex digits");
    entries.push({
      sci: Buffer.from(sci, "hex"), an: Number(an), suite, key: Buffer.from(key, "hex"), salt: Buffer.from(salt, "hex"), ssci: parseInt(ssci, 16),
    });
  });
  return entries;
}

interface Candidate {
  entry: KeyLogEntry;
  /** The highest PN this SA validated so far: the base of XPN recovery. */
  highest: bigint;
}

/** What became of each frame given to a Decryptor. */
export type DecryptOutcome = "decrypted" | "clear" | "no-key" | "bad-icv" | "bad-tag";

/**
 * Decrypts the MACsec frames of a capture with a key log: each frame with every logged SA of
 * its SCI and AN, newest use first, until one validates. Frames come in capture order, so that
 * XPN packet numbers are recovered from the SA's previous frames.
 */
export class Decryptor {
  private readonly bySa = new Map<string, Candidate[]>();
  readonly counts: Record<DecryptOutcome, number> = { decrypted: 0, clear: 0, "no-key": 0, "bad-icv": 0, "bad-tag": 0 };

  constructor(entries: readonly KeyLogEntry[]) {
    for (const entry of entries) {
      const k = `${hex(entry.sci)}/${entry.an}`;
      const list = this.bySa.get(k) ?? [];
      if (!list.some((c) => Buffer.compare(c.entry.key, entry.key) === 0)) list.push({ entry, highest: 0n });
      this.bySa.set(k, list);
    }
  }

  /** The frame in clear (a new frame with a new FCS), or the frame itself when it was not MACsec or could not be decrypted. */
  decrypt(frame: Uint8Array): { frame: Uint8Array; outcome: DecryptOutcome } {
    if (!isMacsec(frame)) return this.done(frame, "clear");
    const tag = parseSecTag(frame);
    if (typeof tag === "string") return this.done(frame, "bad-tag");
    const sci = frameSci(frame, tag);
    const candidates = sci ? this.bySa.get(`${hex(sci)}/${tag.an}`) : undefined;
    if (!sci || !candidates) return this.done(frame, "no-key");
    for (const c of [...candidates].reverse()) {
      const clear = this.tryOne(frame, tag, sci, c);
      if (clear) return this.done(clear, "decrypted");
    }
    return this.done(frame, "bad-icv");
  }

  private tryOne(frame: Uint8Array, tag: SecTag, sci: Uint8Array, c: Candidate): Uint8Array | null {
    const lowest = c.highest > 1n << 30n ? c.highest - (1n << 30n) : 1n;
    const pn = isXpn(c.entry.suite) ? recoverPn(c.entry.suite, tag.pn, lowest) : BigInt(tag.pn);
    const clear = validateFrame(frame, tag, c.entry, sci, pn);
    if (clear && pn > c.highest) c.highest = pn;
    return clear;
  }

  private done(frame: Uint8Array, outcome: DecryptOutcome): { frame: Uint8Array; outcome: DecryptOutcome } {
    this.counts[outcome]++;
    return { frame, outcome };
  }
}
