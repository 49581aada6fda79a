// MACsec frames (board/macsec/frame.ts) against the test frames of IEEE 802.1AE-2018 Annex C
// (GCM-AES-128, GCM-AES-256) and 802.1AEbw-2013 (GCM-AES-XPN-128, GCM-AES-XPN-256): the 54- and
// 60-octet frames, integrity only and with confidentiality, byte for byte both ways; then the
// SecTAG checks, the 802.1Q tag kept in clear, and XPN packet number recovery.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CipherSuite, ICV_SIZE, Tci, frameSci, isMacsec, parseSecTag, protectFrame, recoverPn, validateFrame, type SecTag,
} from "../../board/macsec/frame.ts";
import { FCS_SIZE, encodeFrame, fcsValid, writeFcs } from "../../board/ethernet/frame.ts";

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ""), "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").toUpperCase();

const KEY_128_A = "AD7A2BD03EAC835A6F620FDCB506B345";
const KEY_256_A = "E3C08A8F06C6E3AD95A70557B23F75483CE33021A9C72B70256662 04C69C0B72";
const KEY_128_B = "071B113B0CA743FECCCF3D051F737382";
const KEY_256_B = "691D3EE909D7F54167FD1CA0B5D769081F2BDE1AEE655FDBAB80BD5295AE6BE7";
const XPN = { ssci: 0x7a30c118, salt: "E630E81A48DE86A21C66FA6D", high: 0xb0df459cn };

/** The two frames of Annex C this file uses: their addresses, user data, SCI, PN and TCI. */
const FRAME_A = { // 54-octet integrity (C.1), 60-octet confidentiality (C.4): explicit SCI
  da: "D609B1F05663", sa: "7A0D46DF998D", sci: "12153524C0895E81", pn: 0xb2c28465,
};
const FRAME_B = { // 60-octet integrity (C.2), 54-octet confidentiality (C.5): end station, implicit SCI
  da: "E20106D7CD0D", sa: "F0761E8DCD3D", sci: "F0761E8DCD3D0001", pn: 0x76d457ed,
};
const user54 = (last: string) => "08000F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F3031323334" + last;
const user60 = (last: string) => "08000F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A" + last;

interface Vector {
  name: string;
  suite: CipherSuite;
  key: string;
  frame: typeof FRAME_A;
  user: string;
  tci: number;
  encrypt: boolean;
  /** Secure Data (absent for integrity only: the user data itself) and ICV. */
  secure?: string;
  icv: string;
}

const vectors: Vector[] = [
  // 54-octet frame, integrity protection: TCI 0x22 (SC, AN 2)
  { name: "C.1.1 GCM-AES-128 54-octet integrity", suite: CipherSuite.GcmAes128, key: KEY_128_A, frame: FRAME_A, user: user54("0001"), tci: 0x22, encrypt: false, icv: "F09478A9B09007D06F46E9B6A1DA25DD" },
  { name: "C.1.2 GCM-AES-256 54-octet integrity", suite: CipherSuite.GcmAes256, key: KEY_256_A, frame: FRAME_A, user: user54("0001"), tci: 0x22, encrypt: false, icv: "2F0BC5AF409E06D609EA8B7D0FA5EA50" },
  { name: "C.1.3 GCM-AES-XPN-128 54-octet integrity", suite: CipherSuite.GcmAesXpn128, key: KEY_128_A, frame: FRAME_A, user: user54("0001"), tci: 0x22, encrypt: false, icv: "17FE1981EBDD4AFC5062697E8BAA0C23" },
  { name: "C.1.4 GCM-AES-XPN-256 54-octet integrity", suite: CipherSuite.GcmAesXpn256, key: KEY_256_A, frame: FRAME_A, user: user54("0001"), tci: 0x22, encrypt: false, icv: "4DBD2F6A754A6CF728CC129BA6931577" },
  // 60-octet frame, integrity protection: TCI 0x40 (ES, AN 0)
  { name: "C.2.1 GCM-AES-128 60-octet integrity", suite: CipherSuite.GcmAes128, key: KEY_128_B, frame: FRAME_B, user: user60("0003"), tci: 0x40, encrypt: false, icv: "0C017BC73B227DFCC9BAFA1C41ACC353" },
  { name: "C.2.2 GCM-AES-256 60-octet integrity", suite: CipherSuite.GcmAes256, key: KEY_256_B, frame: FRAME_B, user: user60("0003"), tci: 0x40, encrypt: false, icv: "35217C774BBC31B63166BCF9D4ABED07" },
  { name: "C.2.3 GCM-AES-XPN-128 60-octet integrity", suite: CipherSuite.GcmAesXpn128, key: KEY_128_B, frame: FRAME_B, user: user60("0003"), tci: 0x40, encrypt: false, icv: "ABC40685A3CF911D3787E49DB6A7265E" },
  { name: "C.2.4 GCM-AES-XPN-256 60-octet integrity", suite: CipherSuite.GcmAesXpn256, key: KEY_256_B, frame: FRAME_B, user: user60("0003"), tci: 0x40, encrypt: false, icv: "AC21957B8312AB3C99AB46849879C3F3" },
  // 60-octet frame, confidentiality protection: TCI 0x2E (SC, E, C, AN 2)
  {
    name: "C.4.1 GCM-AES-128 60-octet confidentiality", suite: CipherSuite.GcmAes128, key: KEY_128_A, frame: FRAME_A, user: user60("0002"), tci: 0x2e, encrypt: true,
    secure: "701AFA1CC039C0D765128A665DAB69243899BF7318CCDC81C9931DA17FBE8EDD7D17CB8B4C26FC81E3284F2B7FBA713D", icv: "4F8D55E7D3F06FD5A13C0C29B9D5B880",
  },
  {
    name: "C.4.2 GCM-AES-256 60-octet confidentiality", suite: CipherSuite.GcmAes256, key: KEY_256_A, frame: FRAME_A, user: user60("0002"), tci: 0x2e, encrypt: true,
    secure: "E2006EB42F5277022D9B19925BC419D7A592666C925FE2EF718EB4E308EFEAA7C5273B394118860A5BE2A97F56AB7836", icv: "5CA597CDBB3EDB8D1A1151EA0AF7B436",
  },
  {
    name: "C.4.3 GCM-AES-XPN-128 60-octet confidentiality", suite: CipherSuite.GcmAesXpn128, key: KEY_128_A, frame: FRAME_A, user: user60("0002"), tci: 0x2e, encrypt: true,
    secure: "0712D980CA50BBED35A0FA566338729FFA16D19FFCF07B3A1E7919B3776AACEC8A5937208B483A7691984D380792E07F", icv: "C2C3C79F263FA6BFF8E7581E2CE45AF8",
  },
  {
    name: "C.4.4 GCM-AES-XPN-256 60-octet confidentiality", suite: CipherSuite.GcmAesXpn256, key: KEY_256_A, frame: FRAME_A, user: user60("0002"), tci: 0x2e, encrypt: true,
    secure: "3EB04A4BBF54C6EB1222A9AEA00C38687F6C3520D976A3B694800650CE6585E620A4191917D2A605D870C78D2752CE49", icv: "3B442AC0C816D7ABD70AD65C25D46413",
  },
  // 54-octet frame, confidentiality protection: TCI 0x4C (ES, E, C, AN 0)
  {
    name: "C.5.1 GCM-AES-128 54-octet confidentiality", suite: CipherSuite.GcmAes128, key: KEY_128_B, frame: FRAME_B, user: user54("0004"), tci: 0x4c, encrypt: true,
    secure: "13B4C72B389DC5018E72A171DD85A5D3752274D3A019FBCAED09A425CD9B2E1C9B72EEE7C9DE7D52B3F3", icv: "D6A5284F4A6D3FE22A5D6C2B960494C3",
  },
  {
    name: "C.5.2 GCM-AES-256 54-octet confidentiality", suite: CipherSuite.GcmAes256, key: KEY_256_B, frame: FRAME_B, user: user54("0004"), tci: 0x4c, encrypt: true,
    secure: "C1623F55730C935330 97ADDAD25664966125352B43ADACBD61C5EF3AC90B5BEE929CE4630EA79F6CE519", icv: "12AF39C2D1FDC2051F8B7B3C9D397EF2",
  },
  {
    name: "C.5.3 GCM-AES-XPN-128 54-octet confidentiality", suite: CipherSuite.GcmAesXpn128, key: KEY_128_B, frame: FRAME_B, user: user54("0004"), tci: 0x4c, encrypt: true,
    secure: "9CA46984430203ED416EBDC2FE2622BA3E5EAB6961C36383009E187E9B0C88564653B9ABD216441C6AB6", icv: "F0A232E9E44C978CF7CD84D43484D101",
  },
  {
    name: "C.5.4 GCM-AES-XPN-256 54-octet confidentiality", suite: CipherSuite.GcmAesXpn256, key: KEY_256_B, frame: FRAME_B, user: user54("0004"), tci: 0x4c, encrypt: true,
    secure: "88D9F7D1F1578EE34BA7B1ABC89893EF1D3398C9F1DD3E47FBD8553E0FF786EF5699EB01EA10420D0EBD", icv: "39A0E273C4C7F95ED843207D7A497DFA",
  },
];

function isXpnSuite(suite: CipherSuite): boolean {
  return suite === CipherSuite.GcmAesXpn128 || suite === CipherSuite.GcmAesXpn256;
}

function sa(v: Vector) {
  return isXpnSuite(v.suite) ? { suite: v.suite, key: bytes(v.key), salt: bytes(XPN.salt), ssci: XPN.ssci } : { suite: v.suite, key: bytes(v.key) };
}

function fullPn(v: Vector): bigint {
  return isXpnSuite(v.suite) ? (XPN.high << 32n) | BigInt(v.frame.pn) : BigInt(v.frame.pn);
}

/** The cleartext frame of a vector as bytes on the wire: DA, SA, user data, FCS (padded by encodeFrame when short). */
function clearFrame(v: Vector): Uint8Array {
  const user = bytes(v.user);
  return encodeFrame({ dst: bytes(v.frame.da), src: bytes(v.frame.sa), vlan: null, etherType: (user[0] << 8) | user[1], payload: user.subarray(2) });
}

/** The MACsec frame the standard lists, without FCS. */
function expectedSecure(v: Vector): string {
  const user = bytes(v.user);
  const sl = user.length < 48 ? user.length : 0;
  const pn = v.frame.pn.toString(16).toUpperCase().padStart(8, "0");
  const sci = v.tci & Tci.Sci ? v.frame.sci : "";
  return (v.frame.da + v.frame.sa + "88E5" + v.tci.toString(16).toUpperCase().padStart(2, "0") + sl.toString(16).toUpperCase().padStart(2, "0") + pn + sci +
    (v.secure ?? v.user) + v.icv).replace(/\s+/g, "");
}

for (const v of vectors) {
  test(`${v.name}: protection gives the standard's frame byte for byte`, () => {
    const out = protectFrame(clearFrame(v), bytes(v.user).length, sa(v), {
      an: v.tci & 3, pn: fullPn(v), sci: bytes(v.frame.sci), includeSci: (v.tci & Tci.Sci) !== 0, encrypt: v.encrypt,
    });
    assert.equal(hex(out.subarray(0, out.length - FCS_SIZE)), expectedSecure(v));
    assert.ok(fcsValid(out));
  });

  test(`${v.name}: validation recovers the frame, and one flipped bit anywhere past the addresses fails it`, () => {
    const secure = bytes(expectedSecure(v) + "00000000");
    writeFcs(secure);
    const tag = parseSecTag(secure) as SecTag;
    assert.equal(typeof tag, "object");
    assert.equal(tag.tci | tag.an, v.tci);
    const sci = frameSci(secure, tag)!;
    assert.equal(hex(sci), v.frame.sci);
    const clear = validateFrame(secure, tag, sa(v), sci, fullPn(v));
    assert.ok(clear);
    assert.equal(hex(clear.subarray(0, 12 + bytes(v.user).length)), v.frame.da + v.frame.sa + v.user);
    for (const at of [0, 6, 14, 16, tag.dataAt, tag.dataAt + tag.dataLength - 1, tag.dataAt + tag.dataLength + ICV_SIZE - 1]) {
      const bad = secure.slice();
      bad[at] ^= 0x01;
      assert.equal(validateFrame(bad, tag, sa(v), sci, fullPn(v)), null, `bit flipped at ${at}`);
    }
    assert.equal(validateFrame(secure, tag, sa(v), sci, fullPn(v) + 1n), null, "another PN");
  });
}

test("an 802.1Q tag stays in clear in front of the SecTAG, outside the ICV", () => {
  const v = vectors[8];
  const user = bytes(v.user);
  const tagged = encodeFrame({ dst: bytes(v.frame.da), src: bytes(v.frame.sa), vlan: { pcp: 5, dei: 0, vid: 100 }, etherType: 0x0800, payload: user.subarray(2) });
  const options = { an: 2, pn: fullPn(v), sci: bytes(v.frame.sci), includeSci: true, encrypt: true };
  const out = protectFrame(tagged, user.length, sa(v), options);
  assert.equal(hex(out.subarray(12, 16)), "8100A064");
  assert.ok(isMacsec(out));
  // The same bytes as the untagged frame once the tag is taken out: the tag is not authenticated.
  const plain = protectFrame(clearFrame(v), user.length, sa(v), options);
  assert.equal(hex(out.subarray(16, out.length - FCS_SIZE)), hex(plain.subarray(12, plain.length - FCS_SIZE)));
  // A switch that re-marks the priority does not break the frame.
  out[14] = (out[14] & 0x1f) | (2 << 5);
  const tag = parseSecTag(out) as SecTag;
  const clear = validateFrame(out, tag, sa(v), bytes(v.frame.sci), fullPn(v));
  assert.ok(clear);
  assert.equal(hex(clear.subarray(12, 18)), "81004064" + "0800");
});

test("a SecTAG the standard forbids is refused with its reason", () => {
  const v = vectors[8];
  const good = protectFrame(clearFrame(v), bytes(v.user).length, sa(v), { an: 2, pn: fullPn(v), sci: bytes(v.frame.sci), includeSci: true, encrypt: true });
  const variant = (at: number, value: number) => {
    const f = good.slice();
    f[at] = value;
    writeFcs(f);
    return parseSecTag(f);
  };
  assert.match(String(variant(14, 0xae)), /version/);
  assert.match(String(variant(14, 0x62)), /ES and SC/);
  assert.match(String(variant(14, 0x36)), /SC and SCB/);
  assert.match(String(variant(14, 0x24)), /C set without E/);
  assert.match(String(variant(15, 48)), /SL 48/);
  assert.match(String(variant(15, 0x40)), /high bits/);
  assert.equal(typeof variant(15, 0), "object", "a 48-byte Secure Data with SL 0 is fine");
  assert.equal((variant(15, 47) as SecTag).dataLength, 47, "SL below the bytes present: the rest is padding");
  const short = good.slice(0, 30);
  writeFcs(short);
  assert.match(String(parseSecTag(short)), /ICV|SecTAG/);
  assert.equal(parseSecTag(clearFrame(v)), "not a MACsec frame");
});

test("a 42-byte Secure Data carries SL 42, and SL 0 on it is refused", () => {
  const v = vectors[12];
  const good = protectFrame(clearFrame(v), bytes(v.user).length, sa(v), { an: 0, pn: fullPn(v), sci: bytes(v.frame.sci), includeSci: false, encrypt: true });
  assert.equal(good[15], 42);
  const f = good.slice();
  f[15] = 0;
  writeFcs(f);
  assert.match(String(parseSecTag(f)), /SL 0 with 42 bytes/);
});

test("XPN: the full packet number is the one nearest above the lowest acceptable PN", () => {
  assert.equal(recoverPn(CipherSuite.GcmAesXpn128, 0x10, 0x1_0000_0005n), 0x1_0000_0010n);
  assert.equal(recoverPn(CipherSuite.GcmAesXpn128, 0x4, 0x1_0000_0005n), 0x2_0000_0004n);
  assert.equal(recoverPn(CipherSuite.GcmAesXpn128, 0xffff_fff0, 0x0_ffff_ff00n), 0x0_ffff_fff0n);
  assert.equal(recoverPn(CipherSuite.GcmAesXpn128, 0x3, 0x0_ffff_ff00n), 0x1_0000_0003n);
  assert.equal(recoverPn(CipherSuite.GcmAes128, 0x3, 0x0_ffff_ff00n), 3n);
});

test("a key of the wrong length for its suite is refused", () => {
  const v = vectors[0];
  assert.throws(() => protectFrame(clearFrame(v), bytes(v.user).length, { suite: CipherSuite.GcmAes256, key: bytes(KEY_128_A) }, {
    an: 0, pn: 1n, sci: bytes(v.frame.sci), includeSci: true, encrypt: true,
  }), /32-byte key/);
});

// ---- The SecY of a tunnel (board/macsec/secy.ts) ------------------------------------------

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { EventScheduler } from "../../tools/sim/scheduler.ts";
import { tunnelPair, macsecTestKey, macsecTestSalt, MAC_A, MAC_B, type PairOptions, type PairSide } from "../../tools/sim/tunnel-pair.ts";
import { TlpStream, DeliveryChecker } from "../../tools/sim/traffic.ts";
import {
  TunnelCounter, FabricEventKind, SECY_BASE, SecyReg, SecyStatus, SecyInstall, SecyControl, TUNNEL_BASE, TunnelReg, CardReg, MACSEC_OVERHEAD,
} from "../../board/map/registers.ts";
import { ETHERTYPE_IOV, payloadOffset } from "../../board/ethernet/frame.ts";
import { FrameKind, TUNNEL_HEADER } from "../../board/tunnel/wire.ts";
import { ETHERTYPE_MACSEC } from "../../board/macsec/frame.ts";
import type { ImpairmentConfig } from "../../tools/sim/net/impairments.ts";

interface SecRun {
  a: PairSide;
  b: PairSide;
  toB: DeliveryChecker;
  toA: DeliveryChecker;
  /** Every frame that crossed the cable, as sent. */
  wire: Uint8Array[];
  scheduler: EventScheduler;
}

/** `count` mixed TLPs each way over a MACsec-protected tunnel, with the cable impaired; runs until all arrive. */
async function secureExchange(impair: ImpairmentConfig, options: PairOptions & { count?: number; seed?: number } = {}): Promise<SecRun> {
  const scheduler = new EventScheduler();
  const seed = options.seed ?? 1;
  const { a, b, link } = tunnelPair(scheduler, { macsec: {}, ...options, link: { seed, aToB: impair, bToA: impair } });
  const wire: Uint8Array[] = [];
  link.tap = (frame) => wire.push(frame);
  const count = options.count ?? 2000;
  const mix = { posted: 6, nonPosted: 2, completion: 2 };
  const streams = [new TlpStream(xoroshiro128plus(seed * 2), mix, 128), new TlpStream(xoroshiro128plus(seed * 2 + 1), mix, 128)];
  const toB = new DeliveryChecker(streams[0]);
  const toA = new DeliveryChecker(streams[1]);
  b.onTlp = (tlp, cls, tunnel) => {
    toB.deliver(tlp);
    tunnel.release(cls, tlp);
  };
  a.onTlp = (tlp, cls, tunnel) => {
    toA.deliver(tlp);
    tunnel.release(cls, tlp);
  };
  const feed = () => {
    for (const [side, stream] of [[a, streams[0]], [b, streams[1]]] as const) {
      while (side.tunnel.queuedTlps < 32 && stream.count < count) assert.ok(side.tunnel.submit(stream.next()));
    }
    if (streams[0].count < count || streams[1].count < count || toB.received.length < count || toA.received.length < count) scheduler.at(scheduler.now + 2_000, feed);
  };
  feed();
  await scheduler.run(2e9);
  return { a, b, toB, toA, wire, scheduler };
}

function assertDelivered(run: SecRun, count = 2000): void {
  assert.deepEqual(run.toB.errors, []);
  assert.deepEqual(run.toA.errors, []);
  assert.equal(run.toB.received.length, count, "every TLP a→b delivered");
  assert.equal(run.toA.received.length, count, "every TLP b→a delivered");
}

const etherTypeOf = (frame: Uint8Array) => {
  const at = payloadOffset(frame);
  return (frame[at - 2] << 8) | frame[at - 1];
};

const secure: [string, ImpairmentConfig][] = [
  ["no impairment", {}],
  ["5 % loss", { loss: 0.05 }],
  ["reordering", { reorder: { probability: 0.05, delayNs: 20_000 } }],
  ["duplication", { duplication: 0.05 }],
  ["corruption", { corruption: 0.05 }],
];

for (const [name, impair] of secure) {
  test(`MACsec, ${name}: every frame on the cable is a MACsec frame, and every TLP arrives exactly once, in order`, async () => {
    const run = await secureExchange(impair);
    assertDelivered(run);
    assert.ok(run.wire.length > 100);
    assert.deepEqual([...new Set(run.wire.filter(fcsValid).map(etherTypeOf))], [ETHERTYPE_MACSEC], "no tunnel frame in clear");
    for (const side of [run.a, run.b]) {
      const c = side.tunnel.counters;
      assert.equal(c[TunnelCounter.RxBadIcv] + c[TunnelCounter.RxUnknownSa] + c[TunnelCounter.RxUnknownSci] + c[TunnelCounter.RxUntagged], 0, "nothing refused");
      assert.equal(c[TunnelCounter.TxProtected], c[TunnelCounter.TxFrames], "every frame sent was protected");
    }
    if (impair.duplication) {
      // A duplicate within the replay window passes MACsec and is caught by the tunnel's sequence check.
      assert.ok(run.a.tunnel.counters[TunnelCounter.RxDuplicates] + run.b.tunnel.counters[TunnelCounter.RxDuplicates] > 0);
    }
  });
}

test("MACsec: the TLPs' bytes appear nowhere on the cable", async () => {
  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler, { macsec: {} });
  const wire: Uint8Array[] = [];
  link.tap = (frame) => wire.push(frame);
  const got: Uint8Array[] = [];
  b.onTlp = (tlp, cls, tunnel) => {
    got.push(tlp.slice());
    tunnel.release(cls, tlp);
  };
  const secret = new TextEncoder().encode("keystrokes and NVMe blocks: nobody on the switch may read these");
  const data = new Uint8Array(64);
  data.set(secret);
  const { memoryWrite } = await import("../../board/pcie/tlp.ts");
  assert.ok(a.tunnel.submit(memoryWrite(1, 1, 0x1000, data)));
  await scheduler.run(1_000_000);
  assert.equal(got.length, 1);
  assert.ok(Buffer.from(got[0]).includes(Buffer.from(secret)), "delivered in clear to the PCIe side");
  for (const frame of wire) assert.ok(!Buffer.from(frame).includes(Buffer.from(secret.subarray(0, 16))), "no 16 bytes of it on the wire");
});

test("MACsec rekeying under load: the SA switches dozens of times, no frame is lost or refused across a switch", async () => {
  const run = await secureExchange({ loss: 0.01, reorder: { probability: 0.02, delayNs: 10_000 } }, {
    count: 6000, macsec: { registers: { [SecyReg.RekeyFrames]: 64 } },
  });
  assertDelivered(run, 6000);
  for (const side of [run.a, run.b]) {
    const c = side.tunnel.counters;
    assert.ok(c[TunnelCounter.SaSwitches] >= 20, `${c[TunnelCounter.SaSwitches]} switches`);
    assert.equal(c[TunnelCounter.RxBadIcv] + c[TunnelCounter.RxUnknownSa] + c[TunnelCounter.RxLate], 0, "no frame refused across a switch");
    assert.equal(side.events.filter((e) => e.kind === FabricEventKind.TxSaSwitched).length, c[TunnelCounter.SaSwitches]);
  }
  const ans = new Set(run.wire.map((f) => f[payloadOffset(f)] & 3)); // the TCI/AN octet follows the MACsec EtherType
  assert.equal(ans.size, 4, "all four ANs in use");
});

test("MACsec: the transmitter never switches to a key the peer has not said it can receive", async () => {
  const scheduler = new EventScheduler();
  const { a, b } = tunnelPair(scheduler, { macsec: { registers: { [SecyReg.RekeyFrames]: 16 } } });
  // b's firmware never answers: after its first switch it has no next receive SA to announce.
  b.keys = null;
  const { memoryWrite } = await import("../../board/pcie/tlp.ts");
  for (let i = 0; i < 400; i++) {
    a.tunnel.submit(memoryWrite(1, i & 0xff, 0x1000 + 64 * i, new Uint8Array(64)));
    await scheduler.run(scheduler.now + 5_000);
  }
  await scheduler.run(scheduler.now + 1_000_000);
  assert.equal(a.tunnel.counters[TunnelCounter.SaSwitches], 1, "gen 1 was announced at Configure; gen 2 never was");
  assert.equal(b.tunnel.counters[TunnelCounter.RxUnknownSa] + b.tunnel.counters[TunnelCounter.RxBadIcv], 0);
  assert.equal(b.tunnel.counters[TunnelCounter.RxTlps], 400);
});

/** A pair with MACsec up and some traffic exchanged; returns a protected DATA frame a sent, as captured. */
async function capturedPair() {
  const scheduler = new EventScheduler();
  const pair = tunnelPair(scheduler, { macsec: {} });
  const wire: Uint8Array[] = [];
  pair.link.tap = (frame, to) => {
    if (to === pair.link.b) wire.push(frame.slice());
  };
  const { memoryWrite } = await import("../../board/pcie/tlp.ts");
  for (let i = 0; i < 8; i++) pair.a.tunnel.submit(memoryWrite(1, i, 0x2000 + 64 * i, new Uint8Array(64).fill(i)));
  await scheduler.run(500_000);
  const data = wire.filter((f) => f.length > 150);
  assert.ok(data.length > 0);
  return { scheduler, ...pair, wire, data };
}

const counter = (side: PairSide, c: TunnelCounter) => side.tunnel.counters[c];

test("MACsec receive rules: a replayed frame is late once the window has moved past it, a fresh replay is a duplicate to the tunnel", async () => {
  const { scheduler, a, b, data } = await capturedPair();
  const rxTlps = counter(b, TunnelCounter.RxTlps);
  b.fabric.mac.receive(data[0]);
  assert.equal(counter(b, TunnelCounter.RxDuplicates), 1, "inside the replay window: validated, then dropped by sequence");
  assert.equal(counter(b, TunnelCounter.RxTlps), rxTlps, "nothing delivered twice");
  // Move b's window: shrink it to 4 PNs and let a send more.
  assert.ok(b.fabric.writeRegister(SECY_BASE + SecyReg.ReplayWindow, 4));
  const { memoryWrite } = await import("../../board/pcie/tlp.ts");
  for (let i = 0; i < 10; i++) a.tunnel.submit(memoryWrite(1, i, 0x3000 + 64 * i, new Uint8Array(64)));
  await scheduler.run(scheduler.now + 2_000_000); // and 20 keepalives: the PNs move on
  const late = counter(b, TunnelCounter.RxLate);
  b.fabric.mac.receive(data[0]);
  assert.equal(counter(b, TunnelCounter.RxLate), late + 1, "below the window: late");
});

test("MACsec receive rules: altered, forged, unknown-AN, unknown-SCI, cleartext and malformed frames are dropped and counted", async () => {
  const { b, data } = await capturedPair();
  const frame = data[0];
  const tagAt = payloadOffset(frame) - 2;
  const before = [...b.tunnel.counters];
  const delta = (c: TunnelCounter) => b.tunnel.counters[c] - before[c];
  const { writeFcs } = await import("../../board/ethernet/frame.ts");
  const variant = (mutate: (f: Uint8Array) => void) => {
    const f = frame.slice();
    mutate(f);
    writeFcs(f);
    b.fabric.mac.receive(f);
  };
  variant((f) => (f[tagAt + 40] ^= 0x80)); // a bit of the Secure Data, FCS recomputed
  variant((f) => (f[f.length - 6] ^= 1)); // a bit of the ICV
  variant((f) => (f[5] ^= 0)); // unchanged: a replay inside the window
  assert.equal(delta(TunnelCounter.RxBadIcv), 2);
  variant((f) => (f[tagAt + 2] = (f[tagAt + 2] & ~3) | 3)); // AN 3: no SA installed
  assert.equal(delta(TunnelCounter.RxUnknownSa), 1);
  variant((f) => (f[tagAt + 15] ^= 0x40)); // another SCI port
  assert.equal(delta(TunnelCounter.RxUnknownSci), 1);
  variant((f) => (f[tagAt + 2] |= 0x80)); // SecTAG version 1
  assert.equal(delta(TunnelCounter.RxBadTag), 1);
  // A cleartext DATA frame with the live session's fields.
  const clearSession = b.tunnel.readRegister(TunnelReg.Session);
  const { encodeFrame } = await import("../../board/ethernet/frame.ts");
  const payload = new Uint8Array(TUNNEL_HEADER + 20);
  const v = new DataView(payload.buffer);
  v.setUint8(0, 1);
  v.setUint8(1, FrameKind.Data);
  v.setUint16(2, 20);
  v.setUint32(4, clearSession);
  b.fabric.mac.receive(encodeFrame({ dst: MAC_B, src: MAC_A, vlan: null, etherType: ETHERTYPE_IOV, payload }));
  assert.equal(delta(TunnelCounter.RxUntagged), 1);
  assert.equal(delta(TunnelCounter.RxTlps), 0, "none of it delivered");
  assert.equal(delta(TunnelCounter.RxDuplicates), 1, "the untouched replay reached the tunnel and was a duplicate there");
});

test("SecY registers: keys are write-only, Install clears the staging registers, the rules of Install are enforced", () => {
  const scheduler = new EventScheduler();
  const { a } = tunnelPair(scheduler, { macsec: {} });
  const reg = (r: SecyReg) => a.fabric.readRegister(SECY_BASE + r);
  const write = (r: SecyReg, value: number) => a.fabric.writeRegister(SECY_BASE + r, value);
  for (let w = 0; w < 8; w++) assert.ok(write(SecyReg.Key0 + 4 * w, 0xdead0000 + w));
  for (let w = 0; w < 8; w++) assert.equal(reg(SecyReg.Key0 + 4 * w), 0, "a key reads 0");
  for (let w = 0; w < 3; w++) assert.equal(reg(SecyReg.Salt0 + 4 * w), 0, "a salt reads 0");
  const status = reg(SecyReg.Status);
  assert.equal(status & SecyStatus.TxAnMask, 0);
  assert.ok(status & SecyStatus.TxInUse && status & SecyStatus.TxNextReady);
  assert.equal((status >> 4) & 0xf, 0b0011, "receive SAs 0 and 1");
  const errors = a.fabric.readRegister(CardReg.RegErrors);
  assert.equal(write(SecyReg.Install, 3 | SecyInstall.Transmit), false, "a transmit SA other than the next one");
  assert.equal(write(SecyReg.Install, 0 | SecyInstall.Transmit | SecyInstall.Remove), false, "the transmit SA in use");
  assert.equal(write(SecyReg.RekeyFrames, 15), false, "a rekey threshold below the minimum");
  assert.equal(write(SecyReg.Control, 1 << 5), false, "an unknown control bit");
  assert.equal(a.fabric.readRegister(CardReg.RegErrors), errors + 4, "each refusal counted");
  assert.ok(write(SecyReg.Control, SecyControl.Protect));
  assert.equal(reg(SecyReg.Status) & (SecyStatus.TxInUse | (0xf << 4)), 0, "a Control write removes every SA");
  void macsecTestKey;
  void macsecTestSalt;
});

test("MACsec: a protected tunnel fills its frames to the MTU less the SecTAG and ICV, so they still fit the path", async () => {
  const run = await secureExchange({}, { mtu: 1500, count: 1000 });
  assertDelivered(run, 1000);
  const largest = Math.max(...run.wire.map((f) => f.length));
  assert.ok(largest <= 14 + 1500 + 4, `largest frame ${largest} bytes`);
  assert.ok(largest > 14 + 1500 + 4 - 300, "frames are still filled");
  assert.equal(run.a.fabric.mac.counters.rxOversize + run.b.fabric.mac.counters.rxOversize, 0);
  void MACSEC_OVERHEAD;
  void TUNNEL_BASE;
  void MAC_A;
});

test("MACsec: a replayed old ACK inside the replay window cannot set the credits back, even once they have wrapped", async () => {
  const scheduler = new EventScheduler();
  const { a, b, link } = tunnelPair(scheduler, { macsec: {} });
  const acks: Uint8Array[] = [];
  link.tap = (frame, to) => {
    if (to === link.a && frame.length < 120) acks.push(frame.slice()); // b's ACKs and KEEPALIVEs
  };
  const { memoryWrite } = await import("../../board/pcie/tlp.ts");
  let delivered = 0;
  b.onTlp = (tlp, cls, tunnel) => {
    delivered++;
    tunnel.release(cls, tlp);
  };
  const send = async (count: number) => {
    for (let i = 0; i < count; i++) {
      while (!a.tunnel.submit(memoryWrite(1, i & 0xff, 0x10_0000 + 256 * i, new Uint8Array(256)))) await scheduler.run(scheduler.now + 1_000);
      if (i % 16 === 15) await scheduler.run(scheduler.now + 5_000);
    }
    await scheduler.run(scheduler.now + 2_000_000);
  };
  await send(64);
  const early = acks.at(-1)!;
  // 2 100 writes of 256 bytes: 33 600 posted data credits, past half the 16-bit space.
  await send(2100);
  assert.equal(delivered, 2164);
  a.fabric.mac.receive(early);
  assert.ok(b.tunnel.counters[TunnelCounter.TxFrames] - acks.length < 4096, "the old ACK is still inside the replay window");
  await send(200);
  assert.equal(delivered, 2364, "posted writes still flow after the replay");
});
