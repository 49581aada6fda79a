// Negotiation: what this card proposes, and the safe intersection of two proposals
// (docs/link.md, "Negotiation"). Both cards compute the same result from the same two
// proposals, so the result itself never travels; the AUTH tags bind both proposals.

import { Proposal, AckPolicy, RejectReason, LinkTiming, LinkCipher, LINK_PROTOCOL_MIN, SILENCE_MIN_KEEPALIVES } from "../../board/map/link";
import { TunnelDefault, MACSEC_OVERHEAD } from "../../board/map/registers";
import { CardRole } from "../../board/map/mailbox";
import { load16be, load32be, store16be, store32be } from "./be";
import { Port } from "./port";
import * as config from "./config";

/** Bytes of a proposal written in link protocol `version`. */
export function proposalSize(version: i32): i32 {
  return version >= 3 ? Proposal.SizeV3 : version >= 2 ? Proposal.SizeV2 : Proposal.SizeV1;
}

/** Writes this card's proposal in the layout of `version`; returns its size. */
export function writeProposal(out: usize, version: i32): i32 {
  const size = proposalSize(version);
  memory.fill(out, 0, size);
  store<u8>(out + Proposal.VersionMin, LINK_PROTOCOL_MIN as u8);
  store<u8>(out + Proposal.VersionMax, config.protocolMax as u8);
  store<u8>(out + Proposal.AckPolicies, config.ackPolicies as u8);
  store<u8>(out + Proposal.AckFrames, TunnelDefault.AckFrames as u8);
  store16be(out + Proposal.Mtu, config.mtu as u32);
  store16be(out + Proposal.MaxPayload, config.maxPayload as u32);
  store16be(out + Proposal.ReorderKiB, (TunnelDefault.ReorderBytes >> 10) as u32);
  store<u8>(out + Proposal.Slots, (config.role == CardRole.Chassis ? config.slots : 0) as u8);
  store<u8>(out + Proposal.SlotsPresent, config.slotsPresent as u8);
  store16be(out + Proposal.CreditPh, TunnelDefault.CreditPh as u32);
  store16be(out + Proposal.CreditPd, TunnelDefault.CreditPd as u32);
  store16be(out + Proposal.CreditNph, TunnelDefault.CreditNph as u32);
  store16be(out + Proposal.CreditNpd, TunnelDefault.CreditNpd as u32);
  store16be(out + Proposal.CreditCplh, TunnelDefault.CreditCplh as u32);
  store16be(out + Proposal.CreditCpld, TunnelDefault.CreditCpld as u32);
  if (version >= 2) {
    store32be(out + Proposal.KeepaliveNs, config.keepaliveNs);
    store32be(out + Proposal.SilenceNs, config.silenceNs);
    store32be(out + Proposal.GraceNs, config.graceNs);
    store32be(out + Proposal.AckDelayNs, LinkTiming.AckDelayNs as u32);
  }
  if (version >= 3) store<u8>(out + Proposal.Ciphers, config.ciphers() as u8);
  return size;
}

/** The protocol version two cards use, or 0: the newest both speak. */
export function commonVersion(theirMin: i32, theirMax: i32): i32 {
  const version = min(theirMax, config.protocolMax);
  return version >= max(theirMin, LINK_PROTOCOL_MIN) ? version : 0;
}

function u16min(a: usize, b: usize, field: i32): u32 {
  return min(load16be(a + field), load16be(b + field));
}

/** Smallest data credit (16-byte units) either side offers for posted and completion data. */
function dataCredits(a: usize, b: usize): u32 {
  return min(u16min(a, b, Proposal.CreditPd), u16min(a, b, Proposal.CreditCpld));
}

function headerCredits(a: usize, b: usize): u32 {
  return min(u16min(a, b, Proposal.CreditPh), min(u16min(a, b, Proposal.CreditNph), u16min(a, b, Proposal.CreditCplh)));
}

/**
 * The LinkCipher both cards accept, or 0: GCM-AES-XPN-128 when both take it, else
 * GCM-AES-XPN-256, else the clear data path (only when both are set so). A peer of protocol
 * version 1 or 2 has no MACsec: it accepts the clear data path alone.
 */
function commonCipher(theirs: u32): i32 {
  const common = config.ciphers() & theirs;
  if ((common & LinkCipher.Xpn128) != 0) return LinkCipher.Xpn128;
  if ((common & LinkCipher.Xpn256) != 0) return LinkCipher.Xpn256;
  return (common & LinkCipher.Clear) as i32;
}

/**
 * Fills the session parameters of `p` from this card's proposal `mine` and the peer's
 * `theirs`, both in the layout of `version`. Returns 0, or the RejectReason that makes the
 * combination impossible; then `p` is left unconfigured.
 */
export function intersect(p: Port, mine: usize, theirs: usize, version: i32): i32 {
  const theirMin = load<u8>(theirs + Proposal.VersionMin) as i32;
  const theirMax = load<u8>(theirs + Proposal.VersionMax) as i32;
  if (version < max(theirMin, LINK_PROTOCOL_MIN) || version > min(theirMax, config.protocolMax)) return RejectReason.NoCommonVersion;
  const common = (load<u8>(mine + Proposal.AckPolicies) & load<u8>(theirs + Proposal.AckPolicies)) as i32;
  let policy = 0;
  if (version >= 2 && (common & AckPolicy.Selective) != 0) policy = AckPolicy.Selective;
  else if ((common & AckPolicy.GoBackN) != 0) policy = AckPolicy.GoBackN;
  if (policy == 0) return RejectReason.NoCommonAckPolicy;
  const mtu = u16min(mine, theirs, Proposal.Mtu) as i32;
  const cipher = commonCipher(version >= 3 ? load<u8>(theirs + Proposal.Ciphers) as u32 : LinkCipher.Clear);
  if (cipher == 0) return RejectReason.NoCommonCipher;
  // The largest TLP (4DW header + payload) must fit one frame's record, with MACsec's SecTAG and
  // ICV when the session has them, and each side's posted and completion data credits must hold it.
  const room = mtu - (cipher == LinkCipher.Clear ? 0 : MACSEC_OVERHEAD);
  let payload = u16min(mine, theirs, Proposal.MaxPayload) as i32;
  const credits = dataCredits(mine, theirs) as i32;
  while (payload >= 128 && (payload + 16 + 2 + 16 > room || (payload >> 4) > credits)) payload >>= 1;
  const window = min<u32>(TunnelDefault.ReplayBytes, load16be(theirs + Proposal.ReorderKiB) << 10);
  if (payload < 128 || headerCredits(mine, theirs) == 0 || window < (mtu as u32) + 64) return RejectReason.PayloadUnfit;
  p.cipher = cipher;
  p.version = version;
  p.ackPolicy = policy;
  p.mtu = mtu;
  p.maxPayload = payload;
  p.ackFrames = max<i32>(1, min(load<u8>(mine + Proposal.AckFrames), load<u8>(theirs + Proposal.AckFrames)) as i32);
  p.window = window;
  if (version >= 2) {
    p.keepaliveNs = min(load32be(mine + Proposal.KeepaliveNs), load32be(theirs + Proposal.KeepaliveNs));
    if (p.keepaliveNs < 1000) p.keepaliveNs = 1000;
    const floor: u64 = SILENCE_MIN_KEEPALIVES * (p.keepaliveNs as u64);
    p.silenceNs = min<u64>(U32.MAX_VALUE, max<u64>(max(load32be(mine + Proposal.SilenceNs), load32be(theirs + Proposal.SilenceNs)), floor)) as u32;
    p.graceNs = max(max(load32be(mine + Proposal.GraceNs), load32be(theirs + Proposal.GraceNs)), p.silenceNs);
    p.ackDelayNs = max<u32>(1000, min(load32be(mine + Proposal.AckDelayNs), load32be(theirs + Proposal.AckDelayNs)));
  } else {
    p.keepaliveNs = LinkTiming.KeepaliveNs;
    p.silenceNs = LinkTiming.SilenceNs;
    p.graceNs = LinkTiming.GraceNs;
    p.ackDelayNs = LinkTiming.AckDelayNs;
  }
  return 0;
}
