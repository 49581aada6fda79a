// The MAC Security Entity of one tunnel (IEEE 802.1AE-2018 clause 10), the executable
// specification of the RTL block beside each tunnel engine. It protects every DATA, ACK and
// KEEPALIVE frame the engine sends and validates every MACsec frame of the peer before the
// engine sees it. One transmit secure channel (this card's SCI) and one receive secure channel
// (the peer's SCI), each with four secure associations named by their AN. The firmware derives
// the keys and writes them into write-only registers (SecyReg); nothing reads a key back.
//
// Rekeying follows MKA's order without a message of its own: each side installs the next
// receive SA before it may be used, and says so in every ACK and KEEPALIVE it sends (the newest
// receive AN, authenticated by the SA in use). The transmitter switches to its next SA when the
// switch is due (RekeyFrames frames or RekeyMs since the last switch) and the peer has said that
// it can receive it; it then drops the old transmit SA. The firmware hears of each switch
// (TxSaSwitched) and of the first frame the peer sends under a new SA (RxSaInUse) and installs
// the following key. docs/registers.md ("MACsec") and docs/link.md ("Keys") say the rest.

import { SecyReg, SecyControl, SecyStatus, SecyInstall, SecyDefault, TunnelCounter, FabricEventKind } from "../map/registers.ts";
import { payloadOffset } from "../ethernet/frame.ts";
import { TUNNEL_HEADER } from "../tunnel/wire.ts";
import {
  CipherSuite, SCI_SIZE, keyLength, protectFrame, recoverPn, validateFrame, type SecTag, type SecureAssociationKey,
} from "./frame.ts";

/** What the SecY needs from its tunnel engine. */
export interface SecyHost {
  now(): number;
  count(counter: TunnelCounter): void;
  event(kind: FabricEventKind, arg: number): void;
  /** The transmit side can go again (an SA was installed). */
  transmitReady(): void;
}

/** A key as the simulator's key log sees it (the card itself never shows one). */
export interface InstalledKey {
  transmit: boolean;
  an: number;
  suite: CipherSuite;
  key: Uint8Array;
  salt: Uint8Array;
  ssci: number;
  sci: Uint8Array;
}

interface Association extends SecureAssociationKey {
  /** Transmit: the next PN to use. Receive: the next PN expected (highest seen + 1). */
  nextPn: bigint;
  /** Receive: frames below this PN are late (replays). */
  lowestPn: bigint;
}

const KEY_WORDS = 8;
const SALT_WORDS = 3;
const AN_COUNT = 4;

export class Secy {
  private control = 0;
  private txSci = new Uint8Array(SCI_SIZE);
  private rxSci = new Uint8Array(SCI_SIZE);
  private txSsci = 0;
  private rxSsci = 0;
  private replayWindow: number = SecyDefault.ReplayWindow;
  private rekeyFrames: number = SecyDefault.RekeyFrames;
  private rekeyMs: number = SecyDefault.RekeyMs;
  private readonly keyWords = new Uint32Array(KEY_WORDS);
  private readonly saltWords = new Uint32Array(SALT_WORDS);
  private readonly tx: (Association | null)[] = [null, null, null, null];
  private readonly rx: (Association | null)[] = [null, null, null, null];
  /** The transmit SA in use, or -1. */
  private txAn = -1;
  private txFramesSinceSwitch = 0;
  private txSwitchedAt = 0;
  /** The receive AN the firmware installed last (announced to the peer), or -1. */
  private rxNewest = -1;
  /** The receive AN whose frames came last, or -1: a frame under another raises RxSaInUse. */
  private rxInUse = -1;
  /** The peer's newest receive AN from its last ACK or KEEPALIVE, or -1. */
  private peerRxNewest = -1;
  /** The simulator's key log (debugging only: `iov sim --keylog`). */
  onKeyInstalled: ((key: InstalledKey) => void) | null = null;

  constructor(private readonly host: SecyHost) {}

  /** Protect is on: the tunnel's frames go out as MACsec frames and only MACsec frames come in. */
  get protecting(): boolean {
    return (this.control & SecyControl.Protect) !== 0;
  }

  get suite(): CipherSuite {
    return this.control & SecyControl.Xpn256 ? CipherSuite.GcmAesXpn256 : CipherSuite.GcmAesXpn128;
  }

  /** Whether a frame's SCI is the peer's (the receive SC's): the MAC's demultiplexing while protecting. */
  receives(sci: Uint8Array): boolean {
    for (let i = 0; i < SCI_SIZE; i++) if (sci[i] !== this.rxSci[i]) return false;
    return true;
  }

  // ---- Registers -----------------------------------------------------------------

  readRegister(offset: number): number {
    switch (offset) {
      case SecyReg.Control: return this.control;
      case SecyReg.Status: return this.status();
      case SecyReg.TxSciHigh: return readU32(this.txSci, 0);
      case SecyReg.TxSciLow: return readU32(this.txSci, 4);
      case SecyReg.RxSciHigh: return readU32(this.rxSci, 0);
      case SecyReg.RxSciLow: return readU32(this.rxSci, 4);
      case SecyReg.TxSsci: return this.txSsci;
      case SecyReg.RxSsci: return this.rxSsci;
      case SecyReg.ReplayWindow: return this.replayWindow;
      case SecyReg.RekeyFrames: return this.rekeyFrames;
      case SecyReg.RekeyMs: return this.rekeyMs;
      case SecyReg.TxPnHigh: return this.txAn < 0 ? 0 : Number(this.tx[this.txAn]!.nextPn >> 32n);
      case SecyReg.TxPnLow: return this.txAn < 0 ? 0 : Number(this.tx[this.txAn]!.nextPn & 0xffff_ffffn);
      default: return 0; // keys and salts are write-only
    }
  }

  writeRegister(offset: number, value: number): boolean {
    value >>>= 0;
    if (offset >= SecyReg.Key0 && offset < SecyReg.Key0 + 4 * KEY_WORDS) {
      this.keyWords[(offset - SecyReg.Key0) / 4] = value;
      return true;
    }
    if (offset >= SecyReg.Salt0 && offset < SecyReg.Salt0 + 4 * SALT_WORDS) {
      this.saltWords[(offset - SecyReg.Salt0) / 4] = value;
      return true;
    }
    switch (offset) {
      case SecyReg.Control:
        if (value & ~(SecyControl.Protect | SecyControl.Xpn256)) return false;
        this.clear();
        this.control = value;
        this.host.transmitReady();
        return true;
      case SecyReg.TxSciHigh: writeU32(this.txSci, 0, value); return true;
      case SecyReg.TxSciLow: writeU32(this.txSci, 4, value); return true;
      case SecyReg.RxSciHigh: writeU32(this.rxSci, 0, value); return true;
      case SecyReg.RxSciLow: writeU32(this.rxSci, 4, value); return true;
      case SecyReg.TxSsci: this.txSsci = value; return true;
      case SecyReg.RxSsci: this.rxSsci = value; return true;
      case SecyReg.ReplayWindow:
        if (value > SecyDefault.ReplayWindowMax) return false;
        this.replayWindow = value;
        return true;
      case SecyReg.RekeyFrames:
        if (value < SecyDefault.RekeyFramesMin) return false;
        this.rekeyFrames = value;
        return true;
      case SecyReg.RekeyMs:
        if (value < 1) return false;
        this.rekeyMs = value;
        return true;
      case SecyReg.Install:
        return this.install(value);
      default:
        return false;
    }
  }

  private status(): number {
    let value = 0;
    if (this.txAn >= 0) value |= SecyStatus.TxInUse | this.txAn;
    if (this.txAn >= 0 && this.tx[(this.txAn + 1) % AN_COUNT]) value |= SecyStatus.TxNextReady;
    for (let an = 0; an < AN_COUNT; an++) if (this.rx[an]) value |= SecyStatus.RxInstalled0 << an;
    if (this.rxNewest >= 0) value |= SecyStatus.RxNewestValid | (this.rxNewest << SecyStatus.RxNewestShift);
    if (this.peerRxNewest >= 0) value |= SecyStatus.PeerRxValid | (this.peerRxNewest << SecyStatus.PeerRxShift);
    if (this.rxInUse >= 0) value |= SecyStatus.RxInUseValid | (this.rxInUse << SecyStatus.RxInUseShift);
    return value;
  }

  /**
   * Install: the staged key (and salt) become the SA of the AN in bits 1-0, for transmit or
   * receive; Remove takes an SA away. The staging registers are cleared either way. A transmit
   * SA goes in use at once when none is; otherwise it must be the next AN after the one in use.
   */
  private install(value: number): boolean {
    if (value & ~(SecyInstall.AnMask | SecyInstall.Transmit | SecyInstall.Remove)) return false;
    const an = value & SecyInstall.AnMask;
    const transmit = (value & SecyInstall.Transmit) !== 0;
    const key = wordsToBytes(this.keyWords).subarray(0, keyLength(this.suite));
    const salt = wordsToBytes(this.saltWords);
    this.keyWords.fill(0);
    this.saltWords.fill(0);
    if (value & SecyInstall.Remove) {
      if (transmit) {
        if (an === this.txAn) return false; // the SA in use goes only by a switch
        this.tx[an] = null;
      } else {
        this.rx[an] = null;
        if (this.rxNewest === an) this.rxNewest = -1;
      }
      return true;
    }
    if (!this.protecting) return false;
    const sa: Association = { suite: this.suite, key: key.slice(), salt: salt.slice(), ssci: transmit ? this.txSsci : this.rxSsci, nextPn: 1n, lowestPn: 1n };
    if (transmit) {
      if (this.txAn >= 0 && an !== (this.txAn + 1) % AN_COUNT) return false;
      this.tx[an] = sa;
      if (this.txAn < 0) this.useTx(an);
    } else {
      this.rx[an] = sa;
      this.rxNewest = an;
      if (this.rxInUse === an) this.rxInUse = -1;
    }
    this.onKeyInstalled?.({ transmit, an, suite: sa.suite, key: sa.key, salt: sa.salt!, ssci: sa.ssci!, sci: (transmit ? this.txSci : this.rxSci).slice() });
    this.host.transmitReady();
    return true;
  }

  private useTx(an: number): void {
    this.txAn = an;
    this.txFramesSinceSwitch = 0;
    this.txSwitchedAt = this.host.now();
  }

  /** Every SA and the rekeying state gone: a new session, a shut, or the block's reset. */
  clear(): void {
    this.tx.fill(null);
    this.rx.fill(null);
    this.txAn = this.rxNewest = this.rxInUse = this.peerRxNewest = -1;
    this.txFramesSinceSwitch = 0;
  }

  /** Registers back to their reset values. */
  hardReset(): void {
    this.clear();
    this.control = 0;
    this.txSci.fill(0);
    this.rxSci.fill(0);
    this.txSsci = this.rxSsci = 0;
    this.replayWindow = SecyDefault.ReplayWindow;
    this.rekeyFrames = SecyDefault.RekeyFrames;
    this.rekeyMs = SecyDefault.RekeyMs;
    this.keyWords.fill(0);
    this.saltWords.fill(0);
  }

  // ---- Transmit ------------------------------------------------------------------

  /** Whether a frame can go now: a transmit SA is in use. */
  canTransmit(): boolean {
    return this.txAn >= 0;
  }

  /** The byte an ACK or KEEPALIVE carries: bit 7 set and the newest receive AN, or 0. */
  advertisement(): number {
    return this.rxNewest >= 0 ? 0x80 | this.rxNewest : 0;
  }

  /** The peer's advertisement from an ACK or KEEPALIVE that passed validation. */
  peerAdvertised(value: number): void {
    this.peerRxNewest = value & 0x80 ? value & 3 : -1;
  }

  /** Protects a cleartext tunnel frame (FCS included) under the transmit SA in use, switching first when due. */
  protect(frame: Uint8Array): Uint8Array {
    this.maybeSwitch();
    const sa = this.tx[this.txAn]!;
    const at = payloadOffset(frame);
    const length = (frame[at + 2] << 8) | frame[at + 3];
    const pn = sa.nextPn++;
    this.txFramesSinceSwitch++;
    this.host.count(TunnelCounter.TxProtected);
    return protectFrame(frame, 2 + TUNNEL_HEADER + length, sa, { an: this.txAn, pn, sci: this.txSci, includeSci: true, encrypt: true });
  }

  private maybeSwitch(): void {
    const next = (this.txAn + 1) % AN_COUNT;
    if (!this.tx[next] || this.peerRxNewest !== next) return;
    const due = this.txFramesSinceSwitch >= this.rekeyFrames || this.host.now() - this.txSwitchedAt >= this.rekeyMs * 1e6;
    if (!due) return;
    this.tx[this.txAn] = null;
    this.useTx(next);
    this.host.count(TunnelCounter.SaSwitches);
    this.host.event(FabricEventKind.TxSaSwitched, next);
  }

  // ---- Receive -------------------------------------------------------------------

  /**
   * Validates a MACsec frame of the peer's SC (802.1AE 10.6): an installed SA for its AN, a PN
   * not below the replay window, the ICV. Returns the cleartext frame and whether its PN was
   * above every PN its SA had validated (`fresh`: not a duplicate or a reordered frame), or null
   * when it is dropped (counted).
   */
  validate(frame: Uint8Array, tag: SecTag, sci: Uint8Array): { clear: Uint8Array; fresh: boolean; pn: bigint } | null {
    const sa = this.rx[tag.an];
    if (!sa) {
      this.host.count(TunnelCounter.RxUnknownSa);
      return null;
    }
    if (tag.pn === 0 && sa.lowestPn <= 0xffff_ffffn) {
      this.host.count(TunnelCounter.RxLate); // PN 0 is never sent
      return null;
    }
    const pn = recoverPn(sa.suite, tag.pn, sa.lowestPn);
    if (pn < sa.lowestPn) {
      this.host.count(TunnelCounter.RxLate);
      return null;
    }
    const clear = validateFrame(frame, tag, sa, sci, pn);
    if (!clear) {
      // With XPN a PN field below the window reads as the next 2^32 epoch (recoverPn), and the ICV
      // fails. Tried under the current epoch, a replay validates: it is counted as late, not forged.
      const replay = pn > 0xffff_ffffn && pn - 0x1_0000_0000n < sa.lowestPn && validateFrame(frame, tag, sa, sci, pn - 0x1_0000_0000n) !== null;
      this.host.count(replay ? TunnelCounter.RxLate : TunnelCounter.RxBadIcv);
      return null;
    }
    const fresh = pn >= sa.nextPn;
    if (fresh) {
      sa.nextPn = pn + 1n;
      const lowest = sa.nextPn - BigInt(this.replayWindow);
      if (lowest > sa.lowestPn) sa.lowestPn = lowest;
    }
    this.host.count(TunnelCounter.RxValidated);
    if (this.rxInUse !== tag.an) {
      this.rxInUse = tag.an;
      this.host.event(FabricEventKind.RxSaInUse, tag.an);
    }
    return { clear, fresh, pn };
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

function wordsToBytes(words: Uint32Array): Uint8Array {
  const out = new Uint8Array(words.length * 4);
  words.forEach((w, i) => writeU32(out, 4 * i, w));
  return out;
}
