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

/** Link protocol versions this firmware speaks. Version 1: go-back-N and fixed timers; version 2 adds selective repeat and negotiated timers. */
export const LINK_PROTOCOL_MIN = 1;
export const LINK_PROTOCOL_MAX = 2;

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
}

export const CONTROL_TYPE_LAST = ControlType.Close;

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
  Size = 4,
}

export enum DiscoverFlag {
  Unpaired = 1 << 0, // the sender has no session and wants a peer
  Solicit = 1 << 1, //  unpaired peers should answer with a unicast DISCOVER at once
}

/** OFFER and ACCEPT: a nonce, then the sender's proposal. */
export enum HandshakeBody {
  Nonce = 0, // u8[NONCE_SIZE]
  Proposal = 16,
}

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
}

export const REJECT_REASON_LAST = RejectReason.PeerClosed;

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
  HandshakeTimeoutNs = 1_000_000, // resend OFFER, ACCEPT, AUTH or READY after this
  HandshakeAttempts = 4, //          sends before the handshake is given up
  DiscoverMinNs = 1_000_000, //      first DISCOVER repeat; doubles up to DiscoverMaxNs
  DiscoverMaxNs = 32_000_000,
  PenaltyMinNs = 4_000_000, //       after a failed handshake with a peer; doubles up to PenaltyMaxNs
  PenaltyMaxNs = 256_000_000,
  DownHoldNs = 1_000_000, //         in Down before discovering again
  HealthIntervalNs = 1_000_000, //   RTT sample period while active
  ProbeIntervalNs = 1_000_000, //    resume probe period in recovery
  RtoInitialNs = 200_000,
  RtoMinNs = 50_000,
  RtoMaxNs = 2_000_000,
}

/** Silence must cover at least this many keepalive intervals. */
export const SILENCE_MIN_KEEPALIVES = 4;
