// Fabric register map, shared by the firmware (AssemblyScript) and the board model
// (TypeScript); docs/registers.md describes every register. Registers are 32 bits wide,
// addressed in bytes. The firmware reaches them with REG_WRITE / REG_READ commands.
//
//   0x0000-0x00ff  card registers (Card)
//   0x0100-0x01ff  tunnel 0, 0x0200-0x02ff tunnel 1, ... one block per tunnel (Tunnel)
//                  A host card has one tunnel per chassis card it can pair with, a chassis card one.
//   0x0a00-0x0b1f  host cards: the switch router, one block per switch port (SwitchReg)
//   0x0900-0x097f  Ethernet ports: one block per port (PortReg)
//   0x0c00-0x0fff  MACsec: one SecY block per tunnel (SecyReg)
//   0x1000-0x11ff  paths: one block per tunnel, a path per Ethernet port in it (PathReg)

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
  MacsecDrops = 0x34, //   ro  MACSEC_DROP_REASONS words (0x34-0x48): MACsec frames the card's SecYs dropped since power-on, by reason, in TunnelCounter order from RxBadIcv (bad ICV, late, unknown AN, unknown SCI, in clear, bad SecTAG), every tunnel's summed
  Ports = 0x4c, //         ro  Ethernet ports: PORTS
}

/** Ethernet ports of a card, each with its own MAC (docs/registers.md, "Ethernet ports"). */
export const PORTS = 2;
/** Port p's MAC address is port 0's with p added to this byte of it. */
export const PORT_ADDRESS_BYTE = 1;
export const PORT_BASE = 0x900;
export const PORT_STRIDE = 0x40;

/** One Ethernet port and its MAC. Counters count live, since power-on, and wrap at 2^32. */
export enum PortReg {
  MacHigh = 0x00, //      ro  the port's MAC address, bytes 0-1 in bits 15-0
  MacLow = 0x04, //       ro  bytes 2-5
  Status = 0x08, //       ro  PortStatus bits
  RxFrames = 0x0c, //     ro  frames received with a good FCS, addressed to the card, of the tunnel or MACsec EtherType
  RxFcsErrors = 0x10, //  ro  frames dropped for a bad FCS
  RxDropped = 0x14, //    ro  other frames dropped by the MAC: runts, oversize, another address or EtherType, an unknown peer, CONTROL frames oversize or of another VLAN
  TxFrames = 0x18, //     ro  frames the port took for transmission
  TxDropped = 0x1c, //    ro  frames the port refused (egress queue full, link down)
  RxPause = 0x20, //      ro  802.1Qbb PFC frames received from the switch, honoured
}

export enum PortStatus {
  Carrier = 1 << 0, //    the port's link is up
  Connected = 1 << 1, //  a cable is plugged into the port (a port with nothing plugged in never has carrier)
  TxPaused = 1 << 2, //   the switch has paused a priority of this port's transmit (802.1Qbb PFC)
}

/** The words of CardReg.MacsecDrops: TunnelCounter.RxBadIcv to TunnelCounter.RxBadTag. */
export const MACSEC_DROP_REASONS = 6;

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
  Port = 0x6c, //          rw  the Ethernet port of the session's first path, whose peer address is PeerMacHigh/Low: 0..PORTS-1; written while the tunnel is disabled
  TargetNs = 0x70, //      rw  congestion control: queueing delay above a path's least round trip at which the window shrinks; 0: no delay signal
  CwndBytes = 0x74, //     ro  the congestion window: bytes of DATA frames allowed in flight (WindowBytes while congestion control is off)
  QueueBytes = 0x78, //    rw  bytes of TLPs the send queue takes from the card's PCIe side before it holds that side back; 0: no limit
  MinRttNs = 0x7c, //      ro  the least round trip seen on the first path lately (the delay signal's base); 0 before the first
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
  TargetNs = 50_000,
  QueueBytes = 2048,
}

export enum TunnelControl {
  Enable = 1 << 0, //      start: send a keepalive with credits, accept frames
  GoBackN = 1 << 1, //     retransmission policy: 0 selective repeat, 1 go-back-N (baseline)
  Reset = 1 << 2, //       write 1: clear sequence numbers, buffers and credits (queued TLPs stay); reads 0
  Flush = 1 << 3, //       write 1: discard the TLPs queued to send (counted in TlpsFlushed); reads 0
  CongestionControl = 1 << 4, // the congestion window limits what is in flight (docs/congestion.md); 0: WindowBytes alone (the uncontrolled baseline)
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
  TxProtected = 19, //     frames sent as MACsec frames (OutPktsEncrypted)
  RxValidated = 20, //     MACsec frames of the peer that passed validation (InPktsOK)
  RxBadIcv = 21, //        MACsec frames whose ICV did not match: forged, altered, or another key (InPktsNotValid)
  RxLate = 22, //          MACsec frames with a PN below the replay window: replays (InPktsLate)
  RxUnknownSa = 23, //     MACsec frames under an AN with no receive SA installed (InPktsNotUsingSA)
  RxUnknownSci = 24, //    MACsec frames from the peer's address under an SCI that is not the peer's (InPktsUnknownSCI)
  RxUntagged = 25, //      DATA, ACK or KEEPALIVE frames in clear while MACsec protects the tunnel (InPktsNoTag)
  RxBadTag = 26, //        frames with the MACsec EtherType whose SecTAG is invalid (InPktsBadTag)
  SaSwitches = 27, //      transmit SA switches (rekeys)
  RxCongested = 28, //     valid frames of the session whose 802.1Q tag came with DEI set: marked congestion experienced by a switch
  EcnDecreases = 29, //    congestion window decreases on marks echoed by the peer
  DelayDecreases = 30, //  congestion window decreases on queueing delay above TargetNs
  QueueFull = 31, //       times the send queue reached QueueBytes and held the card's PCIe side back
  Count = 32,
}

/** Events the fabric raises to the firmware (FABRIC_EVENT). */
export enum FabricEventKind {
  PeerSilent = 1, //       nothing received for SilenceNs; arg: ns since the last frame
  PeerHeard = 2, //        a frame arrived after PeerSilent
  RetransmitTimeout = 3, // arg: timeouts in a row
  RetryLimit = 4, //       arg: RetryLimit; retransmission stopped until re-enabled
  CountersReady = 5, //    the snapshot requested through Snapshot is in the Count* registers
  RegisterRejected = 6, // arg: register address of a refused write
  CarrierDown = 7, //      an Ethernet port lost its link (card-wide: tunnel 0); arg: the port
  CarrierUp = 8, //        the port's link is back (card-wide: tunnel 0); arg: the port
  FrameRejected = 9, //    a FRAME_TX the MAC refused (not a CONTROL frame from this card); arg: its length
  TlpRejected = 10, //     a TLP_TX the switch router refused (malformed, or not a completion or one-DW memory write); arg: its length
  RttChanged = 11, //      the round-trip time moved by more than 1/8 since the last report (at most one per RttReportNs); arg: RttNs
  TxSaSwitched = 12, //    the SecY switched to its next transmit SA (a rekey) and dropped the old one; arg: the new AN
  RxSaInUse = 13, //       the first valid frame of the peer under another receive SA than the last; arg: its AN
  PathSilent = 14, //      a tunnel with two paths or more: nothing received on a path for SilenceNs, or its port lost carrier; arg: the path's port. What it had in flight goes again on the others
  PathHeard = 15, //       a frame of the session arrived on a silent path: it carries data again; arg: the path's port
}

export const FABRIC_EVENT_LAST = FabricEventKind.PathHeard;

/**
 * Bytes MACsec adds to a frame's Ethernet payload: the SecTAG with its SCI (16) and the ICV (16).
 * A protected tunnel fills its frames to Mtu minus this, so that they still fit the path's MTU.
 */
export const MACSEC_OVERHEAD = 32;

export const SECY_BASE = 0xc00;
export const SECY_STRIDE = 0x80;

/**
 * The MAC Security Entity of each tunnel (IEEE 802.1AE, docs/registers.md "MACsec"): one
 * transmit SC with this card's SCI, one receive SC with the peer's, four SAs each. Keys and
 * salts are write-only: they are staged in the Key and Salt registers and moved into an SA by Install, which
 * clears the staging registers; no register ever reads a key back.
 */
export enum SecyReg {
  Control = 0x00, //      rw  SecyControl bits; a write removes every SA (a new session starts here)
  Status = 0x04, //       ro  SecyStatus bits
  TxSciHigh = 0x08, //    rw  this card's SCI, bytes 0-3 (its MAC address, bytes 0-3)
  TxSciLow = 0x0c, //     rw  SCI bytes 4-7 (MAC address bytes 4-5, port identifier)
  RxSciHigh = 0x10, //    rw  the peer's SCI, bytes 0-3
  RxSciLow = 0x14, //     rw  bytes 4-7
  TxSsci = 0x18, //       rw  XPN short SCI of the transmit SC
  RxSsci = 0x1c, //       rw  XPN short SCI of the receive SC
  ReplayWindow = 0x20, // rw  receive: frames whose PN is this far below the highest seen are still taken, 0..SecyDefault.ReplayWindowMax
  RekeyFrames = 0x24, //  rw  transmit: switch to the next SA after this many frames under one SA, >= RekeyFramesMin
  RekeyMs = 0x28, //      rw  ...or this many milliseconds, >= 1
  Key0 = 0x30, //         wo  Key0..Key7 (0x30-0x4c): the staged SAK, big-endian words; XPN-128 uses Key0..Key3
  Salt0 = 0x50, //        wo  Salt0..Salt2 (0x50-0x58): the staged 96-bit salt
  Install = 0x5c, //      wo  SecyInstall: the staged key and salt become an SA
  TxPnHigh = 0x60, //     ro  next PN of the transmit SA in use, bits 63-32
  TxPnLow = 0x64, //      ro  bits 31-0
}

export enum SecyControl {
  Protect = 1 << 0, //    DATA, ACK and KEEPALIVE frames of the tunnel go and come only as MACsec frames
  Xpn256 = 1 << 1, //     cipher suite GCM-AES-XPN-256 (0: GCM-AES-XPN-128)
}

export enum SecyStatus {
  TxAnMask = 0x3, //      the transmit SA in use, valid with TxInUse
  TxInUse = 1 << 2,
  TxNextReady = 1 << 3, // the next transmit SA is installed
  RxInstalled0 = 1 << 4, // bits 7-4: receive SAs installed, one bit per AN
  RxNewestValid = 1 << 8,
  RxNewestShift = 9, //   bits 10-9: the receive AN installed last (announced to the peer)
  PeerRxValid = 1 << 11,
  PeerRxShift = 12, //    bits 13-12: the peer's newest receive AN, from its last ACK or KEEPALIVE
  RxInUseValid = 1 << 14,
  RxInUseShift = 15, //   bits 16-15: the receive AN of the peer's last valid frame (RxSaInUse's)
}

export enum SecyInstall {
  AnMask = 0x3, //        the SA's association number
  Transmit = 1 << 8, //   a transmit SA (0: receive)
  Remove = 1 << 9, //     take the SA away instead (the transmit SA in use cannot be removed)
}

/** SecY reset values and limits (docs/registers.md). */
export enum SecyDefault {
  ReplayWindow = 4096, //       a 256 KiB reorder buffer holds at most 4096 minimum-size frames
  ReplayWindowMax = 1 << 20,
  RekeyFrames = 1 << 30,
  RekeyFramesMin = 16,
  RekeyMs = 3_600_000, //       an hour
}

export const MTU_MIN = 576;
export const MTU_MAX = 9000;

export const PATH_BASE = 0x1000;
/** A tunnel's path block: PATH_SIZE bytes per Ethernet port. */
export const PATH_STRIDE = 0x40;
export const PATH_SIZE = 0x20;

/**
 * The paths of a tunnel (docs/registers.md, "Path block"): one per Ethernet port of the card, each
 * to the peer's address reachable through that port. The session's first path is the tunnel
 * block's (TunnelReg.Port and PeerMacHigh/Low), on while the tunnel is enabled; its block here
 * shows it and refuses writes. Another port's path carries the session once the firmware enables
 * it (after the peer joined it, docs/link.md "Paths"). DATA frames go on every live path, acknowledgements on any;
 * sequence numbers, credits and the SecY are the tunnel's, one for all paths.
 */
export enum PathReg {
  PeerMacHigh = 0x00, //  rw  the peer's address through this port, bytes 0-1 in bits 15-0; written while the path is off
  PeerMacLow = 0x04, //   rw  bytes 2-5
  Control = 0x08, //      rw  PathControl bits
  Status = 0x0c, //       ro  PathStatus bits
  RttNs = 0x10, //        ro  smoothed round trip of frames sent once on this path (7/8 old + 1/8 new); 0 before the first
  TxFrames = 0x14, //     ro  frames the tunnel sent on this path (live, wraps at 2^32)
  RxFrames = 0x18, //     ro  valid frames of the session received on it
  Resent = 0x1c, //       ro  frames sent on this path that went again (lost, late, or the path went silent)
}

export enum PathControl {
  Enable = 1 << 0, //     the path carries the session; clearing it moves what it had in flight to the others
}

export enum PathStatus {
  Enabled = 1 << 0, //    the path carries the session (the first path while the tunnel is enabled, another once enabled)
  Silent = 1 << 1, //     nothing received on it for SilenceNs, or its port has no carrier: it sends keepalives only
}
