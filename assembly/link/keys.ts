// MACsec keys (docs/link.md, "Keys"): what the SecY of a session's tunnel needs, derived from
// the session key M (auth.ts: HMAC(pairing key, "IOVm" | transcript)) with the hash engine's
// HMAC-SHA-256. Nothing new is sent: both cards derive the same values.
//
//   channel   = HMAC(M, "IOVc"): salt of the host card's SC (12), salt of the chassis card's SC
//               (12), SCI port of the host card's SC (u16), of the chassis card's (u16), unused (4)
//   SAK(d, g) = HMAC(M, "IOVk" | d | g): d (u8) 0 for the host card's SC, 1 for the chassis card's;
//               g (u32) the generation. GCM-AES-XPN-128 takes the first 16 bytes, -256 all 32.
//
// Generation g travels under AN g mod 4; each SC's SSCI is 1 (host card) or 2 (chassis card), as
// 802.1X assigns them in SCI order to two participants. Configure installs generations 0 and 1 of
// both directions; the fabric switches to the next transmit SA when the peer's SecY has said it can
// receive it (board/macsec/secy.ts), and each switch or first frame under a new receive SA makes
// this module derive and install the generation after.

import { SECY_BASE, SECY_STRIDE, SecyReg, SecyControl, SecyInstall, SecyStatus } from "../../board/map/registers";
import { CardRole, LogLevel } from "../../board/map/mailbox";
import { LinkCipher, TAG_SIZE } from "../../board/map/link";
import * as tx from "../abi/tx";
import * as hash from "../hash";
import * as log from "../log";
import { Context, LINK_CONTEXTS } from "../hash";
import { load16be, load32be, store32be } from "./be";
import { Port, port, field, PEER_MAC, MASTER, CHANNEL, KEYS, TAGS } from "./port";
import * as config from "./config";
import * as retain from "../retain";
import { Text } from "../text";

/** What each of a port's hash contexts derives once the handshake's tags are in. */
export enum KeyContext {
  Channel = 0,
  Tx = 1, //     this card's SC, generation 0; then unused
  Rx = 2, //     the peer's SC, generation 0; then unused
  TxNext = 3, // this card's SC, generation 1; then each next transmit generation
  RxNext = 4, // the peer's SC, generation 1; then each next receive generation
}

const SALT_BYTES: i32 = 12;
const MASTER_TAG: i32 = 3; // TranscriptTag.Master
const KEY_LABEL: u32 = 0x6b564f49; // "IOVk" as bytes
const CHANNEL_LABEL: u32 = 0x63564f49; // "IOVc"
const message = memory.data(9);

/** The direction of port `index`'s transmit SC: 0 host card to chassis card, 1 back. */
function txDir(): u32 {
  return config.role == CardRole.Host ? 0 : 1;
}

function context(index: i32, which: i32): i32 {
  return Context.Link + LINK_CONTEXTS * index + which;
}

function derive(index: i32, which: i32, label: u32, dir: u32, generation: u32): void {
  store<u32>(message, label);
  store<u8>(message + 4, dir as u8);
  store32be(message + 5, generation);
  const c = context(index, which);
  hash.startHmac(c, field(index, MASTER), TAG_SIZE);
  hash.update(c, message, label == CHANNEL_LABEL ? 4 : 9);
  hash.finish(c);
}

/**
 * The handshake's tags are in: keeps the session key and, when the session is protected, asks for
 * the channel and the first two generations of both SCs. Configure waits for them (pending()).
 */
export function begin(index: i32): void {
  const p = port(index);
  memory.copy(field(index, MASTER), field(index, TAGS) + MASTER_TAG * TAG_SIZE, TAG_SIZE);
  p.txGen = 0;
  p.rxGen = 1;
  p.keysPending = 0;
  retain.portChanged(index);
  if (p.cipher == LinkCipher.Clear) return;
  const tx = txDir();
  derive(index, KeyContext.Channel, CHANNEL_LABEL, 0, 0);
  derive(index, KeyContext.Tx, KEY_LABEL, tx, 0);
  derive(index, KeyContext.Rx, KEY_LABEL, tx ^ 1, 0);
  derive(index, KeyContext.TxNext, KEY_LABEL, tx, 1);
  derive(index, KeyContext.RxNext, KEY_LABEL, tx ^ 1, 1);
  p.keysPending = LINK_CONTEXTS;
}

/**
 * A digest of port `index`'s context `which` past its tags. Returns true when it was the last
 * one Configure waited for. After Configure, a digest is a next generation: installed at once.
 */
export function onDigest(index: i32, which: i32, digest: usize): bool {
  const p = port(index);
  if (p.keysPending > 0) {
    if (which == KeyContext.Channel) {
      memory.copy(field(index, CHANNEL), digest, TAG_SIZE);
      retain.portChanged(index);
    } else memory.copy(field(index, KEYS) + which * TAG_SIZE, digest, TAG_SIZE);
    return --p.keysPending == 0;
  }
  if (which == KeyContext.TxNext) install(index, digest, true, p.txGen + 1);
  else if (which == KeyContext.RxNext) {
    p.rxGen++;
    retain.portChanged(index);
    install(index, digest, false, p.rxGen);
    if (p.rxGen >= 3) write(index, SecyReg.Install, ((p.rxGen - 3) & 3) | SecyInstall.Remove);
  }
  return false;
}

function write(index: i32, reg: i32, value: u32): void {
  tx.regWrite((SECY_BASE + index * SECY_STRIDE + reg) as u32, value);
}

/** Stages the SAK at `key` and its SC's salt, then installs generation `generation` under its AN. */
function install(index: i32, key: usize, transmit: bool, generation: u32): void {
  const words = port(index).cipher == LinkCipher.Xpn256 ? 8 : 4;
  for (let w = 0; w < words; w++) write(index, SecyReg.Key0 + 4 * w, load32be(key + 4 * w));
  const dir = transmit ? txDir() : txDir() ^ 1;
  const salt = field(index, CHANNEL) + dir * SALT_BYTES;
  for (let w = 0; w < 3; w++) write(index, SecyReg.Salt0 + 4 * w, load32be(salt + 4 * w));
  write(index, SecyReg.Install, (generation & 3) | (transmit ? SecyInstall.Transmit : 0));
}

/** SCI port identifier of the SC of direction `dir`, from the channel. */
function sciPort(index: i32, dir: u32): u32 {
  return load16be(field(index, CHANNEL) + 2 * SALT_BYTES + 2 * dir);
}

/**
 * Programs port `index`'s SecY for its session as soon as the keys are derived, before Configure
 * programs and enables the tunnel, so that no frame of the session goes in clear: a protected
 * session gets its SCIs, SSCIs and generations 0 and 1 of both SCs (the derived keys are then
 * wiped from the firmware's memory); a clear one has MACsec turned off. The port's tunnel is shut meanwhile (a handshake), and a
 * handshake that fails shuts it again, which removes the keys (fabric.shut()).
 */
export function program(index: i32, p: Port): void {
  if (p.cipher == LinkCipher.Clear) {
    write(index, SecyReg.Control, 0);
    return;
  }
  const tx = txDir();
  write(index, SecyReg.Control, SecyControl.Protect | (p.cipher == LinkCipher.Xpn256 ? SecyControl.Xpn256 : 0));
  // This card's SCI is its address on the session's first path: the one the peer has as PEER_MAC.
  const own = config.address(p.ethPort);
  write(index, SecyReg.TxSciHigh, load32be(own));
  write(index, SecyReg.TxSciLow, (load16be(own + 4) << 16) | sciPort(index, tx));
  write(index, SecyReg.RxSciHigh, load32be(field(index, PEER_MAC)));
  write(index, SecyReg.RxSciLow, (load16be(field(index, PEER_MAC) + 4) << 16) | sciPort(index, tx ^ 1));
  write(index, SecyReg.TxSsci, tx + 1);
  write(index, SecyReg.RxSsci, (tx ^ 1) + 1);
  const keys = field(index, KEYS);
  install(index, keys + KeyContext.Tx * TAG_SIZE, true, 0);
  install(index, keys + KeyContext.Rx * TAG_SIZE, false, 0);
  install(index, keys + KeyContext.RxNext * TAG_SIZE, false, 1);
  install(index, keys + KeyContext.TxNext * TAG_SIZE, true, 1);
  wipe(index);
}

/** Port `index`'s session is over (or never came): its derived keys leave the firmware's memory (the fabric's go with the shut). */
export function wipe(index: i32): void {
  memory.fill(field(index, KEYS), 0, LINK_CONTEXTS * TAG_SIZE);
}

/**
 * Port `index`'s handshake failed: derivations still under way are forgotten, and what the SecY
 * may hold already (keys.program() runs as soon as they come) is removed with a Control write.
 */
export function abandon(index: i32): void {
  port(index).keysPending = 0;
  write(index, SecyReg.Control, 0);
  wipe(index);
}

/** After a restart of the firmware: asks for port `index`'s SecY Status, to catch up with rekeying (onStatus). */
export function readStatus(index: i32): void {
  if (port(index).cipher != LinkCipher.Clear) tx.regRead((SECY_BASE + index * SECY_STRIDE + SecyReg.Status) as u32);
}

/**
 * Port `index`'s SecY Status, read after a restart: a switch or a first frame under a new SA that
 * the old firmware did not see through (its events, or the derivation they started, went with it)
 * gets its next key now.
 */
export function onStatus(index: i32, status: u32): void {
  const p = port(index);
  if (p.cipher == LinkCipher.Clear) return;
  if ((status & SecyStatus.TxInUse) != 0) {
    const an = status & SecyStatus.TxAnMask;
    if (an == ((p.txGen + 1) & 3)) {
      p.txGen++;
      retain.portChanged(index);
    }
    if ((status & SecyStatus.TxNextReady) == 0) derive(index, KeyContext.TxNext, KEY_LABEL, txDir(), p.txGen + 1);
  }
  const next = (p.rxGen + 1) & 3;
  if ((status & SecyStatus.RxInUseValid) != 0 && ((status >> SecyStatus.RxInUseShift) & 3) == (p.rxGen & 3) && (status & (SecyStatus.RxInstalled0 << next)) == 0) {
    derive(index, KeyContext.RxNext, KEY_LABEL, txDir() ^ 1, p.rxGen + 1);
  }
}

/** The fabric switched port `index`'s transmit SC to AN `an`: the generation after it is derived and installed. */
export function onTxSwitched(index: i32, an: u32): void {
  const p = port(index);
  if (p.cipher == LinkCipher.Clear || an != ((p.txGen + 1) & 3)) return;
  p.txGen++;
  retain.portChanged(index);
  derive(index, KeyContext.TxNext, KEY_LABEL, txDir(), p.txGen + 1);
  rekeyed(index, true, p.txGen);
}

/** The peer's first frame under AN `an` passed: when it is the newest generation, the one after it is derived. */
export function onRxInUse(index: i32, an: u32): void {
  const p = port(index);
  if (p.cipher == LinkCipher.Clear || an != (p.rxGen & 3)) return;
  derive(index, KeyContext.RxNext, KEY_LABEL, txDir() ^ 1, p.rxGen + 1);
  rekeyed(index, false, p.rxGen);
}

function rekeyed(index: i32, transmit: bool, generation: u32): void {
  log.begin(LogLevel.Debug);
  log.str("link ");
  log.dec(index);
  log.str(transmit ? ": sending under key generation " : ": peer sends under key generation ");
  log.dec(generation);
  log.end();
}

/** The name of a session's data path protection, for the log and the console. */
export function cipherName(cipher: i32): Text {
  return cipher == LinkCipher.Xpn256 ? "GCM-AES-XPN-256" : cipher == LinkCipher.Xpn128 ? "GCM-AES-XPN-128" : "clear";
}
