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
//   session key = HMAC(key, "IOVm" | T): what the MACsec keys are derived from (keys.ts)
//
// The fabric's hash engine computes the four at once as soon as the transcript is complete
// (startTags()); they come back as HASH_DONEs into the port's TAGS field (onTag()), and the
// handshake goes on when the last has come (port.tagsPending == 0).

import { CardRole } from "../../board/map/mailbox";
import { NONCE_SIZE, TAG_SIZE, Proposal } from "../../board/map/link";
import * as hash from "../hash";
import { Context, LINK_TAGS, LINK_CONTEXTS } from "../hash";
import { store16be, store32be, load32be } from "./be";
import { field, port, NONCE, PEER_NONCE, PROPOSAL, PEER_PROPOSAL, TAGS } from "./port";
import * as config from "./config";

/** The transcript's tags, in the order of their contexts and of the port's TAGS field. */
export enum TranscriptTag {
  Host = 0,
  Chassis = 1,
  Session = 2,
  Master = 3,
}

const LABELS = memory.data<u32>([0x68564f49, 0x63564f49, 0x73564f49, 0x6d564f49]); // "IOVh", "IOVc", "IOVs", "IOVm" as bytes
/** A label, then the transcript: laid out once, then hashed under each label. */
const message = memory.data(4 + 2 * NONCE_SIZE + 2 * Proposal.SizeV3 + 11);

/** Copies `length` bytes from `from` to `at`; returns the end. */
function put(at: usize, from: usize, length: i32): usize {
  memory.copy(at, from, length);
  return at + length;
}

/** Asks the hash engine for port `index`'s four tags over its transcript, which must be complete. */
export function startTags(index: i32): void {
  const p = port(index);
  const host = config.role == CardRole.Host;
  let at = put(message + 4, field(index, host ? NONCE : PEER_NONCE), NONCE_SIZE);
  at = put(at, field(index, host ? PEER_NONCE : NONCE), NONCE_SIZE);
  at = put(at, field(index, host ? PROPOSAL : PEER_PROPOSAL), p.proposalLength);
  at = put(at, field(index, host ? PEER_PROPOSAL : PROPOSAL), p.proposalLength);
  store32be(at, host ? config.serial : p.peerSerial);
  store32be(at + 4, host ? p.peerSerial : config.serial);
  store16be(at + 8, config.group);
  store<u8>(at + 10, p.version as u8);
  const length = (at + 11 - message) as i32;
  for (let t = 0; t < LINK_TAGS; t++) {
    const context = Context.Link + LINK_CONTEXTS * index + t;
    store<u32>(message, load<u32>(LABELS + 4 * t));
    hash.startHmac(context, config.pairingKey, 32);
    hash.update(context, message, length);
    hash.finish(context);
  }
  p.tagsPending = LINK_TAGS;
}

/**
 * A digest of port `index`'s context `which` while its tags are awaited; true when it was the last
 * tag. A context past the tags (a key derivation of a handshake since restarted) is not one.
 */
export function onTag(index: i32, which: i32, digest: usize): bool {
  const p = port(index);
  if (p.tagsPending == 0 || which >= LINK_TAGS) return false;
  memory.copy(tag(index, which), digest, TAG_SIZE);
  return --p.tagsPending == 0;
}

/** Port `index`'s tag `which` (TranscriptTag), valid once its tagsPending is 0. */
export function tag(index: i32, which: i32): usize {
  return field(index, TAGS) + which * TAG_SIZE;
}

/** The session ID both cards derive for port `index`, once its tags are in. */
export function sessionId(index: i32): u32 {
  const id = load32be(tag(index, TranscriptTag.Session));
  return id == 0 ? 1 : id;
}
