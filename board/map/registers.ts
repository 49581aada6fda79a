// Fabric register map, shared by the firmware (AssemblyScript) and the board model
// (TypeScript); docs/registers.md describes every register. Registers are 32 bits wide,
// addressed in bytes. The firmware reaches them with REG_WRITE / REG_READ commands.
//
//   0x0000-0x00ff  card registers (Card)
//   0x0100-0x01ff  tunnel 0, 0x0200-0x02ff tunnel 1, ... one block per tunnel (Tunnel)
//                  A host card has one tunnel per downstream port, a chassis card one.

export const TUNNEL_BASE = 0x100;
export const TUNNEL_STRIDE = 0x100;
export const MAX_TUNNELS = 8;
export const FABRIC_VERSION = 0x0001_0000;

export enum CardReg {
  BoardId = 0x00, //       ro  board type and revision
  FabricVersion = 0x04, // ro  FABRIC_VERSION: major in bits 31-16, minor in 15-0
  Tunnels = 0x08, //       ro  number of tunnel blocks
  Scratch = 0x0c, //       rw  no effect; for bus checks
  RegErrors = 0x10, //     ro  register writes refused (read-only register, bad value, no such register)
}

/** Offsets inside a tunnel block. */
export enum TunnelReg {
  Control = 0x00, //       rw  TunnelControl bits
  Status = 0x04, //        ro  TunnelStatus bits
  Session = 0x08, //       rw  session ID carried by every frame; frames with another are dropped
  PeerMacHigh = 0x0c, //   rw  peer MAC bytes 0-1 in bits 15-0
  PeerMacLow = 0x10, //    rw  peer MAC bytes 2-5
  Vlan = 0x14, //          rw  bits 11-0 VID (0: untagged), bits 15-13 PCP
  Mtu = 0x18, //           rw  Ethernet payload bytes, MTU_MIN..MTU_MAX
  MaxPayload = 0x1c, //    rw  largest TLP data payload, 128..4096, a power of two
  AckFrames = 0x20, //     rw  acknowledge after this many data frames, 1..255
  AckDelayNs = 0x24, //    rw  ...or this long after the first unacknowledged one
  RtoNs = 0x28, //         rw  retransmission timeout, >= 1000
  RetryLimit = 0x2c, //    rw  timeouts in a row without progress before RetryLimit, 1..255
  KeepaliveNs = 0x30, //   rw  send a keepalive when nothing was sent for this long
  SilenceNs = 0x34, //     rw  raise PeerSilent when nothing was received for this long
  ReplayBytes = 0x38, //   rw  replay buffer: bytes of unacknowledged frames kept for retransmission
  ReorderBytes = 0x3c, //  rw  reorder buffer: bytes of out-of-order frames kept (selective repeat)
  WindowBytes = 0x40, //   rw  bytes in flight allowed: at most the peer's ReorderBytes
  CreditPh = 0x44, //      rw  receive buffer offered to the peer, posted headers
  CreditPd = 0x48, //      rw  posted data (16-byte units)
  CreditNph = 0x4c, //     rw  non-posted headers
  CreditNpd = 0x50, //     rw  non-posted data
  CreditCplh = 0x54, //    rw  completion headers
  CreditCpld = 0x58, //    rw  completion data
  Snapshot = 0x5c, //      wo  write 1: copy the live counters to the Count* registers, then raise CountersReady
  RttNs = 0x60, //         ro  last round-trip sample (a frame sent once, acknowledged)
  CountTxFrames = 0x80, // ro  counters as of the last snapshot, in TunnelCounter order
}

export enum TunnelControl {
  Enable = 1 << 0, //      start: send a keepalive with credits, accept frames
  GoBackN = 1 << 1, //     retransmission policy: 0 selective repeat, 1 go-back-N (baseline)
  Reset = 1 << 2, //       write 1: clear sequence numbers, buffers and credits (queued TLPs stay); reads 0
}

export enum TunnelStatus {
  Enabled = 1 << 0,
  PeerSeen = 1 << 1, //    a valid frame arrived from the peer this session
  Silent = 1 << 2, //      nothing received for SilenceNs
  RetryExhausted = 1 << 3, // RetryLimit timeouts without progress; retransmission stopped
}

/** Counters of a tunnel, in snapshot register order (CountTxFrames + 4 * index). */
export enum TunnelCounter {
  TxFrames = 0,
  TxDataFrames = 1,
  TxAckFrames = 2,
  TxKeepalives = 3,
  TxTlps = 4,
  TxPayloadBytes = 5,
  Retransmits = 6,
  Timeouts = 7,
  FastRetransmits = 8,
  RxFrames = 9,
  RxTlps = 10,
  RxDuplicates = 11, //    data frames already received
  RxOutOfOrder = 12, //    data frames buffered ahead of a gap (selective) or dropped (go-back-N)
  RxOutsideWindow = 13, // data frames beyond the reorder buffer or sequence window
  RxWrongSession = 14,
  RxMalformed = 15, //     bad version, kind, length or TLP records
  CreditStalls = 16, //    times a TLP waited for credits
  RxWhileDisabled = 17, // frames from the peer dropped because the tunnel was not enabled
  Count = 18,
}

/** Events the fabric raises to the firmware (FABRIC_EVENT). */
export enum FabricEventKind {
  PeerSilent = 1, //       nothing received for SilenceNs; arg: ns since the last frame
  PeerHeard = 2, //        a frame arrived after PeerSilent
  RetransmitTimeout = 3, // arg: timeouts in a row
  RetryLimit = 4, //       arg: RetryLimit; retransmission stopped until re-enabled
  CountersReady = 5, //    the snapshot requested through Snapshot is in the Count* registers
  RegisterRejected = 6, // arg: register address of a refused write
}

export const FABRIC_EVENT_LAST = FabricEventKind.RegisterRejected;

export const MTU_MIN = 576;
export const MTU_MAX = 9000;
