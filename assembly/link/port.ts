// Per-port state of the link state machine, in static memory: one record per tunnel
// (a host card's downstream ports; port 0 on a chassis card), and its byte fields.

import { MAX_TUNNELS } from "../../board/map/registers";
import { NONCE_SIZE, Proposal, TAG_SIZE } from "../../board/map/link";
import { LINK_TAGS, LINK_CONTEXTS } from "../hash";

@unmanaged
export class Port {
  state: i32;
  /** Sends of the current handshake message, or resume probes in recovery. */
  attempts: i32;
  enteredAt: u64;
  peerSerial: u32;
  peerBootId: u32;
  /** Host card: how many DISCOVERs the peer had sent when it answered this handshake (its ACCEPT); 0: unknown. */
  peerDiscovers: u32;
  peerVersionMax: i32;
  /** Chassis slots of the peer (host side), from its proposal. */
  peerSlots: i32;
  /** Which of them hold a device (bit per slot), from its proposal. */
  peerSlotsPresent: u32;
  // The negotiated session (docs/link.md, "Negotiation").
  version: i32;
  session: u32;
  ackPolicy: i32;
  mtu: i32;
  maxPayload: i32;
  ackFrames: i32;
  window: u32;
  keepaliveNs: u32;
  silenceNs: u32;
  graceNs: u32;
  ackDelayNs: u32;
  proposalLength: i32;
  /** Transcript tags the hash engine has still to return (auth.ts); the handshake waits for them. */
  tagsPending: i32;
  /** LinkCipher of the session: Clear, or the MACsec cipher suite (negotiate.ts). */
  cipher: i32;
  /** Key derivations the fabric must have before Configure programs it (keys.ts). */
  keysPending: i32;
  /** MACsec generations (keys.ts): of the transmit SA in use, and of the newest receive SA installed. */
  txGen: u32;
  rxGen: u32;
  // Configure.
  fabricReady: bool;
  peerReady: bool;
  // Health.
  retryExhausted: bool;
  /** RejectReason or FabricEventKind that led to recovery or down. */
  cause: i32;
  srtt: u32;
  rttvar: u32;
  rto: u32;
  /** When the session became Active (its handshake ended). */
  upAt: u64;
  /** When the current train of outages began (its first Recovery), 0 for none: the grace window runs from here. */
  trainStart: u64;
  /** When the last Recovery ended with the session resumed. */
  resumedAt: u64;
  /** Recovery's Status reads not answered yet: their REG_VALUEs come first, in order, and may come after a resume. */
  probes: i32;
  // Paths (paths.ts).
  /** The Ethernet port of the session's first path: the one the handshake came in on. */
  ethPort: i32;
  /** Ethernet ports with a joined path (the first path's not included), and those the fabric reported silent, a bit each. */
  paths: u32;
  silentPaths: u32;
  /** The host card's JOIN repeat interval, ns. */
  joinInterval: u32;
  /** Digests a join waits for; the Ethernet port a JOIN being checked came in on (-1: none, or its tag was bad). */
  joinHashes: i32;
  joinPort: i32;
  /** The Ethernet port whose JOIN tag OWN_TAG holds (-1: none), and the one being signed. */
  ownPort: i32;
  ownPending: i32;
}

const RECORD: i32 = 192; // >= offsetof<Port>()
// Byte fields of each port, after its record.
export const PEER_MAC: i32 = RECORD; //                       u8[6] (+2)
export const MASTER: i32 = PEER_MAC + 8; //                   u8[TAG_SIZE] the session key (keys.ts)
export const CHANNEL: i32 = MASTER + TAG_SIZE; //               u8[TAG_SIZE] salts and SCI ports of the session's SCs (keys.ts)
export const NONCE: i32 = CHANNEL + TAG_SIZE; //               u8[NONCE_SIZE] this card's
export const PEER_NONCE: i32 = NONCE + NONCE_SIZE; //          u8[NONCE_SIZE]
export const PROPOSAL: i32 = PEER_NONCE + NONCE_SIZE; //       u8[Proposal.SizeV3] as this card sent it
export const PEER_PROPOSAL: i32 = PROPOSAL + Proposal.SizeV3; // u8[Proposal.SizeV3] as received
export const TAGS: i32 = PEER_PROPOSAL + Proposal.SizeV3; //     u8[TAG_SIZE] per TranscriptTag, from the hash engine
export const KEYS: i32 = TAGS + LINK_TAGS * TAG_SIZE; //         u8[TAG_SIZE] per KeyContext: digests waiting for Configure
// While the session runs, the handshake's tags are done with: a join uses their place (paths.ts).
export const JOIN_MAC: i32 = TAGS; //                            u8[6] (+2) the address a JOIN being checked came from
export const JOIN_TAG: i32 = TAGS + 8; //                         u8[TAG_SIZE] the tag it carried
export const OWN_TAG: i32 = JOIN_TAG + TAG_SIZE; //               u8[TAG_SIZE] this card's JOIN tag for port ownPort
const STRIDE: i32 = 688;

const storage = memory.data(STRIDE * MAX_TUNNELS);

/** The record of port `index`. */
export function port(index: i32): Port {
  return changetype<Port>(storage + index * STRIDE);
}

/** Start of port `index`'s byte field at `offset` (PEER_MAC, NONCE, ...). */
export function field(index: i32, offset: i32): usize {
  return storage + index * STRIDE + offset;
}

/** Bytes of a port that survive a reset of the soft-core (retain.ts): its record, its peer's address, the session key and channel. */
export const SAVED: i32 = CHANNEL + TAG_SIZE;

export function resetAll(): void {
  memory.fill(storage, 0, STRIDE * MAX_TUNNELS);
}

// Compile-time layout checks.
assert(offsetof<Port>() <= (RECORD as usize));
assert(KEYS + LINK_CONTEXTS * TAG_SIZE <= STRIDE);
