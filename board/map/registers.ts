// Fabric register map, shared by the firmware (AssemblyScript) and the board model
// (TypeScript); docs/registers.md describes every register. Registers are 32 bits wide,
// addressed in bytes. The firmware reaches them with REG_WRITE / REG_READ commands.
//
//   0x0000-0x00ff  card registers (Card)
//   0x0100-0x01ff  tunnel 0, 0x0200-0x02ff tunnel 1, ... one block per tunnel (Tunnel)
//                  A host card has one tunnel per chassis card it can pair with, a chassis card one.
//   0x0a00-0x0b1f  host cards: the switch router, one block per switch port (SwitchReg)

export const TUNNEL_BASE = 0x100;
export const TUNNEL_STRIDE = 0x100;
export const MAX_TUNNELS = 8;
export const FABRIC_VERSION = 0x0001_0000;
/** CardReg.BoardId of the IOV card, revision A; images name the board they are built for. */
export const BOARD_ID = 0x10f0_0a01;

export enum CardReg {
  BoardId = 0x00, //       ro  board type and revision
  FabricVersion = 0x04, // ro  FABRIC_VERSION: major in bits 31-16, minor in 15-0
  Tunnels = 0x08, //       ro  number of tunnel blocks
  Scratch = 0x0c, //       rw  no effect; for bus checks
  RegErrors = 0x10, //     ro  register writes refused (read-only register, bad value, no such register)
  SwitchPorts = 0x14, //   ro  switch router port blocks: SWITCH_PORTS on a host card, 0 on a chassis card
  SlotsPresent = 0x18, //  ro  chassis cards: bit s set while chassis slot s's PCIe link is up (a device is there); 0 on a host card
  WatchdogKick = 0x1c, //  wo  write WATCHDOG_KEY: restart the watchdog's WATCHDOG_TIMEOUT_NS countdown
  BootControl = 0x20, //   wo  BootCommand in bits 7-0, a flash slot in bits 15-8 (Trial): requests to the boot ROM
  ControlVlan = 0x24, //   rw  bits 11-0: the VLAN (the group) whose CONTROL frames the MAC hands to the firmware; 0 (reset): every VLAN and untagged frames
  ManagementVlan = 0x28, // rw bits 11-0: a second VLAN whose CONTROL frames the MAC hands over (management); 0 (reset): none besides ControlVlan
  SlotReset = 0x2c, //     wo  chassis cards: bit s set resets the device in chassis slot s to its power-on state (a fundamental reset); 0 on a host card is refused
  EntropyRequest = 0x30, // wo  1..ENTROPY_REQUEST_MAX: the random number generator posts ENTROPY with that many bytes; other values are refused
}

/** Most bytes one CardReg.EntropyRequest asks for (EntropyBody.MaxSize). */
export const ENTROPY_REQUEST_MAX = 64;

/** The key a watchdog kick must write; any other value is refused (RegErrors). */
export const WATCHDOG_KEY = 0x5afe_cafe;
/** The boot ROM starts the watchdog; firmware that does not kick it this often is reset (ResetCause.Watchdog). */
export const WATCHDOG_TIMEOUT_NS = 1_000_000_000;

export enum BootCommand {
  Confirm = 1, // the running trial image is healthy: make it permanent
  Trial = 2, //   reset and try the image in the slot in bits 15-8 (the inactive one) once
  Reboot = 3, //  reset (ResetCause.Software)
}

export const SWITCH_BASE = 0xa00;
export const SWITCH_STRIDE = 0x20;

/**
 * The host card's switch router (docs/pcie.md): what the firmware mirrors from each virtual
 * port's configuration space so that the fabric routes TLPs at line rate. Port 0 is the
 * upstream port, ports 1..SWITCH_DOWNSTREAM_PORTS the downstream ports (board/map/pcie.ts).
 * All registers reset to 0: nothing is forwarded until the firmware says so.
 */
export enum SwitchReg {
  Control = 0x00, //        rw  SwitchControl bits
  Buses = 0x04, //          rw  as the port's configuration DW 0x18: primary (7:0), secondary (15:8), subordinate (23:16)
  MemoryWindow = 0x08, //   rw  as DW 0x20: Memory Base (15:0), Memory Limit (31:16)
  PrefetchWindow = 0x0c, // rw  as DW 0x24: Prefetchable Base (15:0), Limit (31:16)
  PrefetchBaseUpper = 0x10, // rw as DW 0x28
  PrefetchLimitUpper = 0x14, // rw as DW 0x2c
  Binding = 0x18, //        rw  downstream ports: tunnel (7:0) and chassis slot (15:8) the port's traffic goes through
  IdleUs = 0x1c, //         ro  downstream ports: microseconds since a TLP last crossed the port either way (saturates; since reset if none did)
}

export enum SwitchControl {
  Forward = 1 << 0, //      downstream ports: tunnel what the port's bus range and windows claim; clearing it hands the port's outstanding non-posted requests to the firmware (TLP_RX Orphaned)
  MemoryEnable = 1 << 1, // the port's Command.Memory: its windows claim memory requests
  BusMaster = 1 << 2, //    the port's Command.BusMaster: it forwards requests from below (DMA, MSI) upstream
  ConfigReady = 1 << 3, //  port 0 only: the firmware serves configuration requests; until it is set (0 at every card reset) the router completes each one itself with Configuration Request Retry Status; once set it stays set until reset
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
  LinkState = 0x64, //     rw  the firmware's link state (LinkState, board/map/link.ts): shown to the card's PCIe side, no effect on the data path
  RttReportNs = 0x68, //   rw  RttChanged at most this often, >= 1000
  CountTxFrames = 0x80, // ro  counters as of the last snapshot, in TunnelCounter order
}

/** Reset values of the tunnel registers the firmware sizes its proposals from (docs/registers.md). */
export enum TunnelDefault {
  Mtu = 1500,
  MaxPayload = 256,
  AckFrames = 8,
  AckDelayNs = 4_000,
  RtoNs = 200_000,
  RetryLimit = 8,
  KeepaliveNs = 100_000,
  SilenceNs = 1_000_000,
  ReplayBytes = 262_144,
  ReorderBytes = 262_144,
  WindowBytes = 262_144,
  CreditPh = 128,
  CreditPd = 2048,
  CreditNph = 64,
  CreditNpd = 64,
  CreditCplh = 128,
  CreditCpld = 2048,
  RttReportNs = 10_000_000,
}

export enum TunnelControl {
  Enable = 1 << 0, //      start: send a keepalive with credits, accept frames
  GoBackN = 1 << 1, //     retransmission policy: 0 selective repeat, 1 go-back-N (baseline)
  Reset = 1 << 2, //       write 1: clear sequence numbers, buffers and credits (queued TLPs stay); reads 0
  Flush = 1 << 3, //       write 1: discard the TLPs queued to send (counted in TlpsFlushed); reads 0
}

export enum TunnelStatus {
  Enabled = 1 << 0,
  PeerSeen = 1 << 1, //    a valid frame arrived from the peer this session
  Silent = 1 << 2, //      nothing received for SilenceNs
  RetryExhausted = 1 << 3, // RetryLimit timeouts without progress; retransmission stopped
  Stalled = 1 << 4, //     a retransmission timeout expired and no acknowledgement has advanced since
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
  TlpsFlushed = 18, //     queued TLPs discarded by Flush
  Count = 19,
}

/** Events the fabric raises to the firmware (FABRIC_EVENT). */
export enum FabricEventKind {
  PeerSilent = 1, //       nothing received for SilenceNs; arg: ns since the last frame
  PeerHeard = 2, //        a frame arrived after PeerSilent
  RetransmitTimeout = 3, // arg: timeouts in a row
  RetryLimit = 4, //       arg: RetryLimit; retransmission stopped until re-enabled
  CountersReady = 5, //    the snapshot requested through Snapshot is in the Count* registers
  RegisterRejected = 6, // arg: register address of a refused write
  CarrierDown = 7, //      the card's Ethernet port lost its link (card-wide: tunnel 0)
  CarrierUp = 8, //        the port's link is back (card-wide: tunnel 0)
  FrameRejected = 9, //    a FRAME_TX the MAC refused (not a CONTROL frame from this card); arg: its length
  TlpRejected = 10, //     a TLP_TX the switch router refused (malformed, or not a completion or one-DW memory write); arg: its length
  RttChanged = 11, //      the round-trip time moved by more than 1/8 since the last report (at most one per RttReportNs); arg: RttNs
}

export const FABRIC_EVENT_LAST = FabricEventKind.RttChanged;

export const MTU_MIN = 576;
export const MTU_MAX = 9000;
