// Authentication (docs/link.md, "Authentication"): each card proves it holds the pairing
// key with an HMAC-SHA-256 tag over the handshake transcript, which binds both nonces,
// both proposals (so the negotiated parameters), both serials, the group and the version.
// The session ID comes from the same transcript under a third label.
//
//   T = host nonce | chassis nonce | host proposal | chassis proposal
//       | host serial (u32) | chassis serial (u32) | group (u16) | version (u8)
//   host tag    = HMAC(key, "IOVh" | T)
//   chassis tag = HMAC(key, "IOVc" | T)
//   session ID  = first 4 bytes of HMAC(key, "IOVs" | T), big-endian; 0 becomes 1

import { CardRole } from "../../board/map/mailbox";
import { NONCE_SIZE } from "../../board/map/link";
import { hmacInit, hmacUpdate, hmacFinal } from "../crypto/hmac";
import { store16be, store32be, load32be } from "./be";
import { field, port, NONCE, PEER_NONCE, PROPOSAL, PEER_PROPOSAL } from "./port";
import * as config from "./config";

export const LABEL_HOST: u32 = 0x494f5668; //    "IOVh"
export const LABEL_CHASSIS: u32 = 0x494f5663; // "IOVc"
export const LABEL_SESSION: u32 = 0x494f5673; // "IOVs"

const scratch = memory.data(16);

/** HMAC(key, label | T) of port `index` into `out` (32 bytes). */
export function transcriptTag(index: i32, label: u32, out: usize): void {
  const p = port(index);
  const host = config.role == CardRole.Host;
  hmacInit(config.pairingKey, 32);
  store32be(scratch, label);
  hmacUpdate(scratch, 4);
  hmacUpdate(field(index, host ? NONCE : PEER_NONCE), NONCE_SIZE);
  hmacUpdate(field(index, host ? PEER_NONCE : NONCE), NONCE_SIZE);
  hmacUpdate(field(index, host ? PROPOSAL : PEER_PROPOSAL), p.proposalLength);
  hmacUpdate(field(index, host ? PEER_PROPOSAL : PROPOSAL), p.proposalLength);
  store32be(scratch, host ? config.serial : p.peerSerial);
  store32be(scratch + 4, host ? p.peerSerial : config.serial);
  store16be(scratch + 8, config.group);
  store<u8>(scratch + 10, p.version as u8);
  hmacUpdate(scratch, 11);
  hmacFinal(out);
}

/** The session ID both cards derive for port `index`. */
export function sessionId(index: i32): u32 {
  const tag = memory.data(32);
  transcriptTag(index, LABEL_SESSION, tag);
  const id = load32be(tag);
  return id == 0 ? 1 : id;
}
