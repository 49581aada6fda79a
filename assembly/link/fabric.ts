// The link state machine's hands on the fabric: REG_WRITE / REG_READ of one tunnel block
// (board/map/registers.ts). Values read back arrive as REG_VALUE in the next batch.

import { TUNNEL_BASE, TUNNEL_STRIDE, SECY_BASE, SECY_STRIDE, TunnelReg, TunnelControl, TunnelDefault } from "../../board/map/registers";
import { AckPolicy, LinkTiming } from "../../board/map/link";
import * as tx from "../abi/tx";
import { load16be, load32be } from "./be";
import { Port } from "./port";
import * as config from "./config";
import * as keys from "./keys";

function address(index: i32, reg: i32): u32 {
  return (TUNNEL_BASE + index * TUNNEL_STRIDE + reg) as u32;
}

export function write(index: i32, reg: i32, value: u32): void {
  tx.regWrite(address(index, reg), value);
}

export function read(index: i32, reg: i32): void {
  tx.regRead(address(index, reg));
}

/** The port a tunnel or SecY register address belongs to, or -1. */
export function portOf(address: u32): i32 {
  if (address >= (SECY_BASE as u32)) return ((address - SECY_BASE) / SECY_STRIDE) as i32;
  if (address < (TUNNEL_BASE as u32)) return -1;
  return ((address - TUNNEL_BASE) / TUNNEL_STRIDE) as i32;
}

/** The register offset inside its tunnel block, or SecY block. */
export function regOf(address: u32): i32 {
  if (isSecy(address)) return ((address - SECY_BASE) % SECY_STRIDE) as i32;
  return ((address - TUNNEL_BASE) % TUNNEL_STRIDE) as i32;
}

/** Whether an address is in a SecY block rather than a tunnel block. */
export function isSecy(address: u32): bool {
  return address >= (SECY_BASE as u32);
}

/** The tunnel's policy bits: the negotiated retransmission policy, and congestion control, always on (docs/congestion.md). */
function policyBits(p: Port): u32 {
  return (p.ackPolicy == AckPolicy.GoBackN ? TunnelControl.GoBackN : 0) | TunnelControl.CongestionControl;
}

/**
 * Programs tunnel `index` for the negotiated session of `p` with the peer at `peerMac`, then
 * enables it from a clean state and asks for its status (the confirmation Configure waits for).
 * Its SecY has its keys already (keys.program(), as soon as they were derived).
 */
export function program(index: i32, p: Port, peerMac: usize): void {
  write(index, TunnelReg.Port, p.ethPort as u32);
  write(index, TunnelReg.PeerMacHigh, load16be(peerMac));
  write(index, TunnelReg.PeerMacLow, load32be(peerMac + 2));
  write(index, TunnelReg.Vlan, config.group);
  write(index, TunnelReg.Session, p.session);
  write(index, TunnelReg.Mtu, p.mtu as u32);
  write(index, TunnelReg.MaxPayload, p.maxPayload as u32);
  write(index, TunnelReg.AckFrames, p.ackFrames as u32);
  write(index, TunnelReg.AckDelayNs, p.ackDelayNs);
  write(index, TunnelReg.RtoNs, LinkTiming.RtoInitialNs);
  write(index, TunnelReg.KeepaliveNs, p.keepaliveNs);
  write(index, TunnelReg.SilenceNs, p.silenceNs);
  write(index, TunnelReg.ReorderBytes, TunnelDefault.ReorderBytes);
  write(index, TunnelReg.WindowBytes, p.window);
  write(index, TunnelReg.CreditPh, TunnelDefault.CreditPh);
  write(index, TunnelReg.CreditPd, TunnelDefault.CreditPd);
  write(index, TunnelReg.CreditNph, TunnelDefault.CreditNph);
  write(index, TunnelReg.CreditNpd, TunnelDefault.CreditNpd);
  write(index, TunnelReg.CreditCplh, TunnelDefault.CreditCplh);
  write(index, TunnelReg.CreditCpld, TunnelDefault.CreditCpld);
  write(index, TunnelReg.Control, TunnelControl.Enable | TunnelControl.Reset | TunnelControl.Flush | policyBits(p));
  read(index, TunnelReg.Status);
}

/** Stops tunnel `index`: sequence numbers, buffers, credits and queued TLPs cleared, its SecY's keys with them. */
export function shut(index: i32): void {
  write(index, TunnelReg.Control, TunnelControl.Reset | TunnelControl.Flush);
  keys.wipe(index);
}

/** Disables and re-enables tunnel `index` in its session: retransmission restarts at once, back-off cleared. */
export function kick(index: i32, p: Port): void {
  write(index, TunnelReg.Control, policyBits(p));
  write(index, TunnelReg.Control, TunnelControl.Enable | policyBits(p));
}
