// Link training, pairing and health: the CONTROL frame format and the link protocol's
// states, reasons and defaults, shared by the firmware (AssemblyScript) and the host side
// (TypeScript). docs/wire-format.md ("CONTROL body") and docs/link.md describe them.
// Same rules as mailbox.ts: enums and integer functions only.
//
// A CONTROL frame is a tunnel frame of kind Control (0x10): Ethernet header with the
// 802.1Q tag of the sender's group, tunnel header (session 0 before a session exists, else
// the session ID; seq and ack 0), then a ControlHeader and a body by ControlType. All fields
// are big-endian, as in the tunnel header. DISCOVER goes to CONTROL_MULTICAST, everything
// else to the peer's unicast address.

/**
 * Link protocol versions this firmware speaks. Version 1: go-back-N and fixed timers; version 2
 * adds selective repeat and negotiated timers; version 3 adds MACsec (the proposal's ciphers,
 * the session's keys: docs/link.md, "Keys"); version 4 adds paths (JOIN: docs/link.md, "Paths").
 */
export const LINK_PROTOCOL_MIN = 1;
export const LINK_PROTOCOL_MAX = 4;
/** The first version whose sessions take a second path. */
export const LINK_PROTOCOL_PATHS = 4;

/** 03:49:4f:56:00:01, a locally administered multicast address ("IOV"), for DISCOVER. */
export const CONTROL_MULTICAST_HIGH = 0x0349;
export const CONTROL_MULTICAST_LOW = 0x4f56_0001;

export const NONCE_SIZE = 16;
export const TAG_SIZE = 32;
export const PAIRING_KEY_SIZE = 32;

export enum ControlType {
  Discover = 1, // announce: an unpaired card looking for a peer, or a host soliciting them
  Offer = 2, //    host to chassis: nonce and proposal, opens a handshake
  Accept = 3, //   chassis to host: nonce and proposal
  Auth = 4, //     either way: HMAC tag over the handshake transcript
  Ready = 5, //    either way: fabric programmed for the session in the tunnel header
  Reject = 6, //   either way: the handshake ends, with a RejectReason
  Close = 7, //    either way: the session in the tunnel header is over, with a RejectReason
  Release = 8, //  chassis to host: the chassis card moves to another group; remove its slots, then CLOSE (Released)
  ManageRequest = 9, // management station to cards, on the management VLAN: authenticated with the admin key
  ManageReply = 10, //  card to the station that asked: authenticated with the admin key
  Join = 11, //         either way, in a session: a path on another Ethernet port, authenticated with the session key
}

export const CONTROL_TYPE_LAST = ControlType.Join;

/** Fields of every CONTROL message, right after the tunnel header. */
export enum ControlHeader {
  Type = 0, //       u8  ControlType
  Version = 1, //    u8  link protocol version the message is written in
  Role = 2, //       u8  CardRole of the sender
  Reserved3 = 3, //  u8
  Group = 4, //      u16 the sender's group ID (also its VLAN ID)
  Reserved6 = 6, //  u16
  Serial = 8, //     u32 the sender's serial number
  BootId = 12, //    u32 random, new at every boot of the sender
  Size = 16,
}

export enum DiscoverBody {
  VersionMin = 0, // u8
  VersionMax = 1, // u8
  Flags = 2, //      u8 DiscoverFlag bits
  Slots = 3, //      u8 chassis: its slots; host: its free ports
  /** u32 this DISCOVER's number in the sender's boot, from 1 (a 4-byte body, from older firmware: unknown) */
  Number = 4,
  Size = 8,
}

export enum DiscoverFlag {
  Unpaired = 1 << 0, // the sender has no session and wants a peer
  Solicit = 1 << 1, //  unpaired peers should answer with a unicast DISCOVER at once
}

/**
 * OFFER and ACCEPT: a nonce, then the sender's proposal, then a u32: how many DISCOVERs the sender
 * had sent in this boot (absent from older firmware). A DISCOVER numbered no higher was sent before
 * the handshake: arriving during the session it is stale (docs/link.md, "Stale control frames").
 */
export enum HandshakeBody {
  Nonce = 0, // u8[NONCE_SIZE]
  Proposal = 16,
}

/** The u32 after an OFFER's or ACCEPT's proposal: the DISCOVERs the sender had sent in this boot. */
export const HANDSHAKE_TRAILER = 4;

/** What a card proposes; the link uses the safe intersection (docs/link.md, "Negotiation"). */
export enum Proposal {
  VersionMin = 0, //   u8
  VersionMax = 1, //   u8
  AckPolicies = 2, //  u8  AckPolicy bits the sender accepts
  AckFrames = 3, //    u8  acknowledge after this many DATA frames
  Mtu = 4, //          u16 largest Ethernet payload the sender's path carries
  MaxPayload = 6, //   u16 largest TLP data payload the sender handles
  ReorderKiB = 8, //   u16 the sender's reorder buffer: the most the peer may have in flight
  Slots = 10, //       u8  chassis slots (chassis), 0 (host)
  SlotsPresent = 11, // u8  chassis: bit s set when slot s holds a device (CardReg.SlotsPresent); 0 (host)
  CreditPh = 12, //    u16 receive credits the sender will announce, PH PD NPH NPD CPLH CPLD
  CreditPd = 14,
  CreditNph = 16,
  CreditNpd = 18,
  CreditCplh = 20,
  CreditCpld = 22,
  SizeV1 = 24,
  // Version 2 appends the timers; version 1 uses LinkTiming for all of them.
  KeepaliveNs = 24, // u32
  SilenceNs = 28, //   u32
  GraceNs = 32, //     u32
  AckDelayNs = 36, //  u32
  SizeV2 = 40,
  // Version 3 appends the data path's protection.
  Ciphers = 40, //     u8  LinkCipher bits the sender accepts
  Reserved41 = 41, //  u8[3]
  SizeV3 = 44,
}

/** How a session's DATA, ACK and KEEPALIVE frames travel: the proposal's Ciphers bits. */
export enum LinkCipher {
  Clear = 1 << 0, //   in clear: only by an explicit setting on both cards (ConfigBody.Macsec = MacsecSetting.Off)
  Xpn128 = 1 << 1, //  MACsec, GCM-AES-XPN-128
  Xpn256 = 1 << 2, //  MACsec, GCM-AES-XPN-256
}

export enum AuthBody {
  Tag = 0, // u8[TAG_SIZE]
  Size = 32,
}

export enum ReadyBody {
  Flags = 0, //     u8 ReadyFlag bits
  Reserved1 = 1, // u8[3]
  Size = 4,
}

export enum ReadyFlag {
  Reply = 1 << 0, // answers a READY; never answered itself
}

/**
 * JOIN: the host card sends it to CONTROL_MULTICAST from an Ethernet port that has no path of the
 * session yet, with the session ID in the tunnel header; the chassis card answers with a JOIN
 * (Reply) from the port it came in on, to the sender's address. Each checks the other's tag before
 * it enables the path (PathReg) to the sender's address (docs/link.md, "Paths").
 */
export enum JoinBody {
  Flags = 0, //     u8 JoinFlag bits
  Port = 1, //      u8 the Ethernet port the sender sent it from, 0..PORTS-1
  Reserved2 = 2, // u16
  Tag = 4, //       u8[TAG_SIZE] HMAC-SHA-256(session key, "IOVj" | session (u32) | sender role (u8) | Port (u8) | the sender's address on that port (6))
  Size = 36,
}

export enum JoinFlag {
  Reply = 1 << 0, // answers a JOIN; never answered itself
}

/** REJECT and CLOSE. */
export enum ReasonBody {
  Reason = 0, //    u8 RejectReason
  Reserved1 = 1, // u8[3]
  Size = 4,
}

export enum AckPolicy {
  Selective = 1 << 0, // selective repeat (protocol 2 and later)
  GoBackN = 1 << 1,
}

/** Why a handshake or a session ended. */
export enum RejectReason {
  Busy = 1, //              the chassis card is paired or pairing with another host card
  NoCommonVersion = 2,
  NoCommonAckPolicy = 3,
  PayloadUnfit = 4, //      no TLP payload of at least 128 bytes fits both MTU and credits
  AuthFailed = 5, //        the peer's tag is wrong: another pairing key
  ConfigureFailed = 6, //   the fabric refused the negotiated settings
  Timeout = 7, //           the peer stopped answering during the handshake
  GraceExpired = 8, //      the peer was silent for longer than the grace window
  PeerRebooted = 9, //      the peer announced itself with a new boot ID
  PeerLost = 10, //         the peer announced itself unpaired: it ended the session
  PeerClosed = 11, //       the peer sent CLOSE
  Reassigned = 12, //       this card's group changed (management), or the host card did not release the slots in time
  Released = 13, //         the host card removed the chassis card's slots after a RELEASE
  NoCommonCipher = 14, //   one card protects its data path with MACsec and the other does not, or not with a cipher suite it accepts
}

export const REJECT_REASON_LAST = RejectReason.NoCommonCipher;

/**
 * Management (docs/management.md). A station (ControlHeader.Role = MANAGEMENT_ROLE) sends
 * MANAGE_REQUEST on the management VLAN to CONTROL_MULTICAST or a card's address, with
 * ControlHeader.Group 0 and its own serial and boot ID. A card accepts a request only if
 * its tag verifies under the admin key, BootId names the card's current boot (or is 0 for
 * a Discover), and Counter is above the last counter the card accepted in this boot; it
 * answers with MANAGE_REPLY to the station's address. Refused requests get no answer.
 */
export const MANAGEMENT_ROLE = 2;
export const ADMIN_KEY_SIZE = 32;
/** ManageRequestBody.Target that addresses every card (Discover only). */
export const ALL_CARDS = 0xffff_ffff;
/** Counters a reply reports, in ManageReplyBody.Counters. */
export const REPLY_COUNTERS = 8;

export enum ManageOp {
  Discover = 1, // every card (Target ALL_CARDS) or one: who it is and how it is
  Status = 2, //   one card: the same report
  SetGroup = 3, // one card: move to NewGroup, persisted in its flash configuration
}

export const MANAGE_OP_LAST = ManageOp.SetGroup;

export enum ManageRequestBody {
  Op = 0, //         u8  ManageOp
  Reserved1 = 1, //  u8
  NewGroup = 2, //   u16 SetGroup: 1..4094; otherwise 0
  Target = 4, //     u32 the serial of the card addressed, or ALL_CARDS
  BootId = 8, //     u32 the target's current boot ID; 0 only in a Discover
  CounterHigh = 12, // u32 the station's request counter, 64 bits: strictly increasing
  CounterLow = 16, //  u32
  Tag = 20, //       u8[TAG_SIZE] HMAC-SHA-256(admin key, "IOVm" | ControlHeader | body bytes 0..19)
  Size = 52,
}

export enum ManageStatus {
  Ok = 0,
  Busy = 1, //       the flash is busy (an update) or a group change is still in progress
  BadGroup = 2, //   NewGroup outside 1..4094, or the management VLAN
  FlashFailed = 3, // the configuration record could not be written; nothing changed
}

export const MANAGE_STATUS_LAST = ManageStatus.FlashFailed;

export enum ManageReplyBody {
  Op = 0, //          u8  the request's ManageOp
  Status = 1, //      u8  ManageStatus
  Group = 2, //       u16 the card's group now (SetGroup Ok: the new one)
  CounterHigh = 4, // u32 the request's counter, tying the reply to it
  CounterLow = 8, //  u32
  FirmwareMajor = 12, // u8
  FirmwareMinor = 13, // u8
  FirmwarePatch = 14, // u8
  Slots = 15, //      u8  chassis slots (chassis card) or downstream ports (host card)
  BootSlot = 16, //   u8  flash slot running
  BootFlags = 17, //  u8  BootFlag bits (board/map/mailbox.ts)
  SlotsPresent = 18, // u8 chassis card: slots holding a device; host card: 0
  Ports = 19, //      u8  link state machines: the host card's downstream ports, 1 on a chassis card
  LinkStates = 20, // u8[8] LinkState of each port (0 past Ports)
  PeerSerials = 28, // u32[8] the serial of each port's peer in a handshake or session, else 0
  Counters = 60, //   u32[REPLY_COUNTERS] the card's LinkUps, LinkDowns, Recoveries, AuthFailures, HotplugEvents, ManageRequests, ManageAuthFailures, ManageReplays (Counter, board/map/mailbox.ts)
  MacsecDrops = 92, // u32[MACSEC_DROP_REASONS] MACsec frames the card dropped, by reason (CardReg.MacsecDrops, board/map/registers.ts), as of the firmware's last look (once a second)
  Paths = 116, //     u8[8] each port's session paths: bit e (0..PORTS-1) set for each Ethernet port it has a path on, bit 4 + e while that path is silent; 0 without a session
  PathHealth = 124, // u32[8][PORTS][PATH_FIGURES] each port's session path on each Ethernet port: PathReg RttNs, TxFrames, RxFrames, Resent (board/map/registers.ts), as of the firmware's last look (once a second); 0 for no path
  Tag = 380, //       u8[TAG_SIZE] HMAC-SHA-256(admin key, "IOVr" | ControlHeader | body bytes 0..379)
  Size = 412,
}

/** ManageReplyBody.PathHealth: the figures of a path, PathReg RttNs to Resent in register order. */
export const PATH_FIGURES = 4;

/** The tag's place in a reply of a firmware that reports no MACsec drops (124-byte body): the tools still read it. */
export const REPLY_TAG_WITHOUT_DROPS = 92;
/** ...and of one that reports no paths (148-byte body). */
export const REPLY_TAG_WITHOUT_PATHS = 116;
/** ...and of one that reports paths but not their health (156-byte body). */
export const REPLY_TAG_WITHOUT_HEALTH = 124;
/** ManageReplyBody.Paths: where a port's silent paths start. */
export const REPLY_SILENT_SHIFT = 4;

/** How long a chassis card waits for its host card to release its slots (CLOSE after RELEASE) before it closes the session itself. */
export const RELEASE_TIMEOUT_NS = 10_000_000_000;
/** A port is idle when no TLP crossed it for this long (SwitchReg.IdleUs): RELEASE then asks the server for an orderly removal. */
export const RELEASE_IDLE_US = 10_000;

/** The tunnel link state machine (docs/link.md); also the value of the LinkState register. */
export enum LinkState {
  Disabled = 0,
  Discover = 1,
  Negotiate = 2,
  Authenticate = 3,
  Configure = 4,
  Active = 5,
  Recovery = 6,
  Down = 7,
}

export const LINK_STATE_LAST = LinkState.Down;

/**
 * Timers of the link protocol: the defaults of the configurable ones (keepalive, silence,
 * grace, ack delay; protocol 1 always uses these) and the fixed ones. docs/link.md justifies
 * each for a 10GbE link.
 */
export enum LinkTiming {
  KeepaliveNs = 25_000,
  SilenceNs = 200_000,
  GraceNs = 20_000_000,
  AckDelayNs = 4_000,
  HandshakeTimeoutNs = 10_000_000, // resend OFFER, ACCEPT, AUTH or READY after this
  HandshakeAttempts = 4, //          sends before the handshake is given up
  DiscoverMinNs = 1_000_000, //      first DISCOVER repeat; doubles up to DiscoverMaxNs
  DiscoverMaxNs = 1_024_000_000,
  PenaltyMinNs = 4_000_000, //       after a failed handshake with a peer; doubles up to PenaltyMaxNs
  PenaltyMaxNs = 256_000_000,
  FlapForgiveNs = 1_000_000_000, //  a session that lasts this long clears its peer's penalty count
  StableNs = 1_000_000, //           up this long after a resume, the link ends its outage train (docs/link.md, "The hold bound")
  DownHoldNs = 1_000_000, //         in Down before discovering again
  ReleaseRepeatNs = 1_000_000, //    a chassis card's RELEASE is sent again after this while unanswered
  ProbeIntervalNs = 1_000_000, //    resume probe period in recovery
  JoinMinNs = 10_000_000, //         first JOIN repeat on a port without a path, a handshake timeout (the peer's batches and two hash-engine round trips); doubles up to JoinMaxNs
  JoinMaxNs = 1_024_000_000,
  RtoInitialNs = 200_000,
  RtoMinNs = 50_000,
  RtoMaxNs = 2_000_000,
}

/** Silence must cover at least this many keepalive intervals. */
export const SILENCE_MIN_KEEPALIVES = 4;
