// Mailbox protocol: the message catalogue shared by the firmware (AssemblyScript)
// and the host side (TypeScript). Both compilers accept this file, so it is the one
// place where message types, body layouts, error codes and counter indices are defined.
// Keep it to enums and integer functions over them (and imports of the other shared map,
// with their .ts extension, which both compilers resolve): no strings, no allocation, no
// 64-bit arithmetic (JavaScript numbers would not wrap as Wasm integers do).
//
// Stream format: little-endian messages, each a 4-byte header then `bodyLength` bytes.
//   offset 0  u16  bodyLength  bytes after the header (0..MAX_BODY)
//   offset 2  u8   type        Event (0x01-0x7f, fabric to firmware, fd 0)
//                               Command (0x80-0xff, firmware to fabric, fd 1)
//   offset 3  u8   flags       reserved, must be 0
// docs/mailbox.md describes every message and field.

import { FABRIC_EVENT_LAST, MAX_TUNNELS, PORTS } from "./registers.ts";

export { FABRIC_EVENT_LAST, MAX_TUNNELS, PORTS };

export const MAILBOX_VERSION = 10;
export const HEADER_SIZE = 4;
export const MAX_BODY = 1536;

export enum Header {
  BodyLength = 0,
  Type = 2,
  Flags = 3,
}

/** Events: fabric (board) to firmware, read by the firmware on fd 0. */
export enum Event {
  Boot = 0x01,
  Time = 0x02,
  Sync = 0x03,
  TimerFired = 0x04,
  Entropy = 0x05,
  CountersQuery = 0x06,
  RegValue = 0x07,
  FabricEvent = 0x08,
  Config = 0x09,
  FrameRx = 0x0a,
  TlpRx = 0x0b,
  UartRx = 0x0c,
  FlashDone = 0x0d,
  HashDone = 0x0e,
  Retained = 0x0f,
}

/** Commands: firmware to fabric, written by the firmware on fd 1. */
export enum Command {
  Hello = 0x81,
  SyncAck = 0x82,
  TimerArm = 0x83,
  TimerDisarm = 0x84,
  Error = 0x85,
  Counters = 0x86,
  RegWrite = 0x87,
  RegRead = 0x88,
  FrameTx = 0x89,
  TlpTx = 0x8a,
  UartTx = 0x8b,
  FlashErase = 0x8c,
  FlashProgram = 0x8d,
  FlashRead = 0x8e,
  Hash = 0x8f,
  Retain = 0x90,
}

// Body layouts: byte offsets of each field, and the body size as `Size`.
// Fields named `Reserved*` must be zero; a non-zero reserved field is an error.

export enum BootBody {
  MailboxVersion = 0, // u16
  Role = 2, //           u8  CardRole
  ResetCause = 3, //     u8  ResetCause
  BoardId = 4, //        u32
  Serial = 8, //         u32
  LogLevel = 12, //      u8  LogLevel: most verbose level written to fd 2
  Slots = 13, //         u8  downstream ports (host) or chassis slots (chassis), 1..MAX_SLOTS
  BootSlot = 14, //      u8  flash slot the boot ROM started (board/map/flash.ts), < SLOTS
  BootFlags = 15, //     u8  BootFlag bits
  Mac = 16, //           u8[6] the card's Ethernet address
  Retained = 22, //      u16 bytes of retained RAM that RETAINED events bring after BOOT (0 after power-on), <= RETAIN_BYTES
  Carrier = 24, //       u8  bit p set while Ethernet port p has carrier as BOOT is posted (bits PORTS and up 0); changes after come as CarrierUp, CarrierDown
  Reserved25 = 25, //    u8[3]
  Size = 28,
}

export enum BootFlag {
  Trial = 1 << 0, // the image in BootSlot runs on trial: confirm it (CardReg.BootControl) or the next reset rolls it back
}

export enum TimeBody {
  Now = 0, // u64 virtual time in nanoseconds; never decreases
  Size = 8,
}

export enum SyncBody {
  Seq = 0, // u32 batch number; each SYNC is the previous one plus 1 (mod 2^32)
  Size = 4,
}

export enum TimerFiredBody {
  Channel = 0, //   u8 hardware timer channel, < TIMER_CHANNELS
  Reserved1 = 1, // u8[3]
  Size = 4,
}

export enum EntropyBody {
  Bytes = 0, // u8[1..MAX_ENTROPY] from the board's random number generator
  MinSize = 1,
  MaxSize = 64,
}

export enum RegValueBody {
  Address = 0, // u32 register address (board/map/registers.ts)
  Value = 4, //   u32 its value, answering REG_READ
  Size = 8,
}

export enum FabricEventBody {
  Tunnel = 0, //    u8  tunnel index, < MAX_TUNNELS (0 for card-wide events such as RegisterRejected)
  Kind = 1, //      u8  FabricEventKind (board/map/registers.ts)
  Reserved2 = 2, // u16
  Arg = 4, //       u32 kind-specific argument
  Size = 8,
}

/** The card's configuration record from flash, posted right after BOOT. */
export enum ConfigBody {
  Group = 0, //       u16 group ID, also the VLAN ID of every frame, 1..4094
  ProtocolMax = 2, // u8  newest link protocol version to offer, LINK_PROTOCOL_MIN..LINK_PROTOCOL_MAX
  AckPolicies = 3, // u8  AckPolicy bits this card accepts, at least one
  Mtu = 4, //         u16 largest Ethernet payload of the path, MTU_MIN..MTU_MAX
  MaxPayload = 6, //  u16 largest TLP data payload, 128..4096, a power of two
  KeepaliveNs = 8, // u32 >= 1000
  SilenceNs = 12, //  u32 >= SILENCE_MIN_KEEPALIVES * KeepaliveNs
  GraceNs = 16, //    u32 >= SilenceNs
  ManagementVlan = 20, // u16 VLAN of management requests and replies, 1..4094, not Group
  Macsec = 22, //     u8  MacsecSetting: how the data path is protected
  Reserved23 = 23, // u8
  PairingKey = 24, // u8[PAIRING_KEY_SIZE] per-installation secret: pairs host and chassis cards
  AdminKey = 56, //   u8[ADMIN_KEY_SIZE] per-installation secret: authenticates management requests
  Size = 88,
}

/** A CONTROL frame the MAC received (docs/wire-format.md). */
export enum FrameRxBody {
  Tunnel = 0, //    u8 the tunnel whose peer address and VLAN match the frame's, or NO_TUNNEL
  Port = 1, //      u8 the Ethernet port the frame came in on, 0..PORTS-1
  Reserved2 = 2, // u8[2]
  Frame = 4, //     u8[] the Ethernet frame from the destination address to the end of the payload, FCS removed
  MinSize = 34, //  4 + Ethernet header (14) + tunnel header (16)
  MaxSize = 1522, // 4 + a tagged frame of 1518 bytes without FCS
}

export const NO_TUNNEL = 0xff;

/** ConfigBody.Macsec: the cipher suites a card accepts for its sessions' data path (docs/link.md, "Keys"). */
export enum MacsecSetting {
  Xpn128 = 0, // MACsec, GCM-AES-XPN-128 or -256 (the default: a record from before MACsec holds 0 here)
  Xpn256 = 1, // MACsec, GCM-AES-XPN-256 only
  Off = 2, //    in clear, and only with a peer set the same way
}

export const MACSEC_SETTING_LAST = MacsecSetting.Off;

/**
 * A TLP from the server that the host card's switch router hands to the firmware (docs/pcie.md,
 * "Slow path"): the request's header and, when it carries data, its first data DW only; the
 * header's Length field still gives the original size. Host cards only.
 */
export enum TlpRxBody {
  Reason = 0, //    u8  TlpRxReason
  Port = 1, //      u8  switch port, < SWITCH_PORTS, or NO_PORT (see TlpRxReason)
  Reserved2 = 2, // u16
  Tlp = 4, //       u8[] header (12 or 16 bytes, by Fmt) and data DW 0 when Fmt says data
  MinSize = 16, //  4 + 3DW header
  MaxSize = 24, //  4 + 4DW header + 1 DW
}

/** Why the switch router handed a TLP to the firmware. */
export enum TlpRxReason {
  Config = 1, //   configuration request for a switch port: Type 0 (Port 0, the upstream port) or Type 1 on the internal bus (Port 1 + device, NO_PORT past the last port)
  Unrouted = 2, // request no forwarding port takes: Port is the downstream port whose bus range or window claims it while it does not forward, NO_PORT when none claims it
}

export const TLP_RX_REASON_LAST = TlpRxReason.Unrouted;
export const NO_PORT = 0xff;

/**
 * A TLP for the switch router to send up to the server: a completion (Cpl, CplD with one DW)
 * or a memory write of one DW (an MSI). The router refuses anything else (FabricEventKind.TlpRejected).
 */
export enum TlpTxBody {
  Tlp = 0, //      u8[] the whole TLP
  MinSize = 12, // 3DW header
  MaxSize = 20, // 4DW header + 1 DW
}

/** Bytes the UART received, oldest first (docs/console.md). */
export enum UartRxBody {
  Bytes = 0, // u8[1..MaxSize]
  MinSize = 1,
  MaxSize = 64,
}

/** The flash controller finished (or refused) the last FLASH_ERASE, FLASH_PROGRAM or FLASH_READ. */
export enum FlashDoneBody {
  Op = 0, //       u8  FlashOp
  Status = 1, //   u8  FlashStatus
  Length = 2, //   u16 bytes of Data: what FLASH_READ read, 0 otherwise
  Address = 4, //  u32 the command's address
  Data = 8, //     u8[Length]
  MinSize = 8,
  MaxSize = 8 + 256,
}

export enum FlashOp {
  Erase = 1,
  Program = 2,
  Read = 3,
}

export enum FlashStatus {
  Ok = 0,
  Busy = 1, //       another operation is still running: command ignored
  Range = 2, //      outside the flash, not sector-aligned (erase), crossing a page (program) or a bad length
  Protected = 3, //  the running image's slot: only the boot ROM writes it
}

export const FLASH_OP_LAST = FlashOp.Read;

/**
 * The hash engine finished a HASH Finish (docs/mailbox.md, "Hash engine"): the digest of what the
 * context's Start and Updates fed it, or why there is none.
 */
export enum HashDoneBody {
  Context = 0, // u8  the context, < HASH_CONTEXTS
  Status = 1, //  u8  HashStatus
  Tag = 2, //     u16 the Finish's Tag
  Digest = 4, //  u8[HASH_DIGEST_SIZE] SHA-256 or HMAC-SHA-256; zero unless Status is Ok
  Size = 36,
}

/**
 * The retained RAM (docs/registers.md, "What survives a reset"): RETAIN_BYTES the firmware writes
 * with RETAIN and gets back, after a reset of the soft-core, in RETAINED events after BOOT. A
 * power cut clears it; nothing but the firmware gives it meaning.
 */
export const RETAIN_BYTES = 4096;
/** The most bytes one RETAIN or RETAINED carries: a whole body, less its header. */
export const RETAIN_CHUNK = 1532;

/** RETAINED (event) and RETAIN (command): `Data` at `Offset` of the retained RAM. */
export enum RetainBody {
  Offset = 0, //     u16 offset + data length <= RETAIN_BYTES
  Reserved2 = 2, //  u16
  Data = 4, //       u8[1..RETAIN_CHUNK]
  MinSize = 5,
  MaxSize = 4 + 1532, // MAX_BODY
}

export enum HashStatus {
  Ok = 0,
  Idle = 1, // Update or Finish on a context that no Start began (or that a Finish ended)
}

export const HASH_STATUS_LAST = HashStatus.Idle;
export const HASH_DIGEST_SIZE = 32;
/** Most bytes one FLASH_READ returns. */
export const FLASH_READ_MAX = 256;
export const FLASH_STATUS_LAST = FlashStatus.Protected;

export enum HelloBody {
  MailboxVersion = 0, // u16 the version the firmware speaks
  Status = 2, //         u8  HelloStatus
  Reserved3 = 3, //      u8
  FirmwareMajor = 4, //  u8
  FirmwareMinor = 5, //  u8
  FirmwarePatch = 6, //  u8
  Reserved7 = 7, //      u8
  Size = 8,
}

export enum SyncAckBody {
  Seq = 0, // u32 the SYNC being acknowledged
  Size = 4,
}

export enum TimerArmBody {
  Channel = 0, //   u8
  Reserved1 = 1, // u8[3]
  Deadline = 4, //  u64 absolute virtual time in nanoseconds
  Size = 12,
}

export enum TimerDisarmBody {
  Channel = 0, //   u8
  Reserved1 = 1, // u8[3]
  Size = 4,
}

export enum ErrorBody {
  Code = 0, //         u8  MailboxError
  MessageType = 1, //  u8  type of the offending message
  BodyLength = 2, //   u16 its declared body length
  StreamOffset = 4, // u32 byte offset of its header in the fd 0 stream (mod 2^32)
  Detail = 8, //       u32 code-specific: the expected value, or the offending field offset
  Size = 12,
}

export enum RegWriteBody {
  Address = 0, // u32
  Value = 4, //   u32
  Size = 8,
}

export enum RegReadBody {
  Address = 0, // u32; the board answers REG_VALUE in the next batch
  Size = 4,
}

/** A CONTROL frame for the MAC to send; it pads it to 60 bytes and appends the FCS. */
export enum FrameTxBody {
  Frame = 0, //     u8[] from the destination address to the end of the payload
  MinSize = 30, //  Ethernet header (14) + tunnel header (16)
  MaxSize = 1518,
}

/** Bytes for the UART to send, oldest first. */
export enum UartTxBody {
  Bytes = 0, // u8[1..MaxSize]
  MinSize = 1,
  MaxSize = 256,
}

/** Erase `Sectors` sectors from `Address` (sector-aligned); FLASH_DONE when done. */
export enum FlashEraseBody {
  Address = 0, //   u32
  Sectors = 4, //   u16 1..
  Reserved6 = 6, // u16
  Size = 8,
}

/** Program `Data` at `Address`, inside one page; FLASH_DONE when done. */
export enum FlashProgramBody {
  Address = 0, // u32
  Data = 4, //    u8[1..PAGE_SIZE]
  MinSize = 5,
  MaxSize = 4 + 256,
}

/**
 * Feeds the fabric's hash engine, one SHA-256 core shared by HASH_CONTEXTS contexts
 * (docs/mailbox.md, "Hash engine"). A context runs one hash at a time: Start or StartHmac
 * begins it (and drops whatever the context held), Updates feed it in order, Finish ends it,
 * and the engine answers HASH_DONE with the digest once its core has worked through the bytes.
 */
export enum HashBody {
  Context = 0, // u8  < HASH_CONTEXTS
  Op = 1, //      u8  HashOp
  Tag = 2, //     u16 Finish: echoed in HASH_DONE; otherwise 0
  Data = 4, //    u8[] StartHmac: the key (1..HASH_KEY_MAX bytes); Update: 1..HASH_UPDATE_MAX bytes; Start, Finish: none
  MinSize = 4,
  MaxSize = 4 + 1024,
}

export enum HashOp {
  Start = 1, //     SHA-256
  StartHmac = 2, // HMAC-SHA-256 under the key in Data
  Update = 3,
  Finish = 4,
}

export const HASH_OP_LAST = HashOp.Finish;
export const HASH_CONTEXTS = 64;
export const HASH_KEY_MAX = 64;
export const HASH_UPDATE_MAX = 1024;

/** Read `Length` bytes from `Address`; FLASH_DONE carries them. */
export enum FlashReadBody {
  Address = 0, //   u32
  Length = 4, //    u16 1..256
  Reserved6 = 6, // u16
  Size = 8,
}

export enum CountersBody {
  Count = 0, //      u16 number of u32 values that follow, Counter.Count
  Reserved2 = 2, //  u16
  Values = 4, //     u32[Count] indexed by Counter
  MinSize = 4,
}

export enum CardRole {
  Host = 0,
  Chassis = 1,
}

export enum ResetCause {
  PowerOn = 0,
  Watchdog = 1,
  Software = 2,
  Update = 3,
}

export enum LogLevel {
  Error = 0,
  Warn = 1,
  Info = 2,
  Debug = 3,
}

export enum HelloStatus {
  Ok = 0,
  VersionMismatch = 1,
}

/** Why the firmware rejected an input message (the Code of an ERROR command). */
export enum MailboxError {
  UnknownType = 1, //  not an event type of this version: body skipped
  BadLength = 2, //    body length not allowed for the type: body skipped
  Oversize = 3, //     body length above MAX_BODY: body skipped
  Reserved = 4, //     header flags or a reserved field not zero
  BadField = 5, //     a field value out of range
  OutOfOrder = 6, //   valid message at the wrong time (before BOOT, second BOOT, time going back, SYNC gap)
  Version = 7, //      BOOT with a mailbox version this firmware does not speak
  Truncated = 8, //    the stream ended inside a message
}

/** Firmware counters, reported in order by the COUNTERS command. */
export enum Counter {
  EventsIn = 0, //      well-formed events accepted
  CommandsOut = 1,
  BytesIn = 2,
  BytesOut = 3,
  Batches = 4, //       SYNCs acknowledged
  TimersFired = 5, //   logical timer expiries
  Errors = 6, //        all rejected messages; the next eight split them by MailboxError
  ErrUnknownType = 7,
  ErrBadLength = 8,
  ErrOversize = 9,
  ErrReserved = 10,
  ErrBadField = 11,
  ErrOutOfOrder = 12,
  ErrVersion = 13,
  ErrTruncated = 14,
  FabricEvents = 15, // FABRIC_EVENTs accepted
  ControlRx = 16, //      CONTROL frames received
  ControlTx = 17, //      CONTROL frames sent
  ControlMalformed = 18, // CONTROL frames too short, of an unknown type or version, or with bad fields
  ForeignGroup = 19, //   CONTROL frames of another group or VLAN, ignored
  ControlIgnored = 20, // well-formed CONTROL frames that do not fit the state (stray, stale, penalised peer)
  NegotiationFailures = 21, // handshakes this card ended because the proposals do not intersect
  AuthFailures = 22, //   peer tags that did not verify
  PeerRejects = 23, //    REJECTs received
  HandshakeTimeouts = 24,
  LinkUps = 25,
  Recoveries = 26,
  Resumes = 27, //        recoveries that ended with the session resumed
  LinkDowns = 28,
  PeerReboots = 29,
  RtoUpdates = 30, //     RtoNs writes from RTT measurements
  TlpRx = 31, //          TLP_RX events accepted
  ConfigRequests = 32, // configuration requests served for the virtual switch's ports
  UnsupportedRequests = 33, // requests answered with Unsupported Request (non-posted) or dropped (posted)
  HotplugEvents = 34, //  slot events raised: presence and DL Link Active changes
  MsiSent = 35, //        MSI writes for hot-plug events
  ConsoleCommands = 36, // console lines run as commands
  ConsoleErrors = 37, //  console lines refused: unknown command, bad argument, line too long
  XmodemBlocks = 38, //   update blocks received and written to flash
  XmodemErrors = 39, //   update blocks refused (bad check value, bad number, timeout) and transfers cancelled
  UpdatesVerified = 40, // images received, checked, and handed to the boot ROM for a trial
  UpdatesRefused = 41, // received images that failed the firmware's checks
  FlashErrors = 42, //    FLASH_DONE with a status other than Ok
  ManageRequests = 43, // management requests authenticated and answered
  ManageAuthFailures = 44, // management requests refused: the tag does not verify (no or another admin key)
  ManageReplays = 45, //  management requests refused: authentic, but an old counter or another boot ID (replayed or stale)
  GroupChanges = 46, //   group changes written to flash and applied
  Releases = 47, //       chassis slots released to a new owner in order (host card: orderly removals; chassis card: RELEASEs answered)
  StaleControl = 48, //   CONTROL frames of an earlier session or boot of a peer (late, duplicated or reordered), ignored
  PathJoins = 49, //      paths joined to a session on a second Ethernet port (JOIN and its reply checked)
  JoinsRefused = 50, //   JOINs refused: another or no session, a bad tag, a port that has a path or that the card does not have
  PathLosses = 51, //     paths that went silent (PathSilent) while the session kept another
  OwnFrames = 52, //      CONTROL frames from this card's own address that came back on a port (a port cabled to the card itself, or to a segment its other port is on)
  Count = 53,
}

export const TIMER_CHANNELS = 1;
export const MAX_SLOTS = 8;

/** Counter index for a MailboxError code. */
export function errorCounter(code: i32): i32 {
  return Counter.Errors + code;
}

/**
 * The smallest and the largest body of each event, Event.Boot to Event.Retained in order, then of
 * each command, Command.Hello to Command.Retain: a table, so that checking a message's length costs
 * the firmware two loads and no branch per type.
 */
export const BODY_LIMITS: StaticArray<i32> = [
  BootBody.Size, BootBody.Size,
  TimeBody.Size, TimeBody.Size,
  SyncBody.Size, SyncBody.Size,
  TimerFiredBody.Size, TimerFiredBody.Size,
  EntropyBody.MinSize, EntropyBody.MaxSize,
  0, 0,
  RegValueBody.Size, RegValueBody.Size,
  FabricEventBody.Size, FabricEventBody.Size,
  ConfigBody.Size, ConfigBody.Size,
  FrameRxBody.MinSize, FrameRxBody.MaxSize,
  TlpRxBody.MinSize, TlpRxBody.MaxSize,
  UartRxBody.MinSize, UartRxBody.MaxSize,
  FlashDoneBody.MinSize, FlashDoneBody.MaxSize,
  HashDoneBody.Size, HashDoneBody.Size,
  RetainBody.MinSize, RetainBody.MaxSize,
  HelloBody.Size, HelloBody.Size,
  SyncAckBody.Size, SyncAckBody.Size,
  TimerArmBody.Size, TimerArmBody.Size,
  TimerDisarmBody.Size, TimerDisarmBody.Size,
  ErrorBody.Size, ErrorBody.Size,
  CountersBody.MinSize, CountersBody.Values + 4 * Counter.Count,
  RegWriteBody.Size, RegWriteBody.Size,
  RegReadBody.Size, RegReadBody.Size,
  FrameTxBody.MinSize, FrameTxBody.MaxSize,
  TlpTxBody.MinSize, TlpTxBody.MaxSize,
  UartTxBody.MinSize, UartTxBody.MaxSize,
  FlashEraseBody.Size, FlashEraseBody.Size,
  FlashProgramBody.MinSize, FlashProgramBody.MaxSize,
  FlashReadBody.Size, FlashReadBody.Size,
  HashBody.MinSize, HashBody.MaxSize,
  RetainBody.MinSize, RetainBody.MaxSize,
];

/** The entry of `type` in BODY_LIMITS (its smallest body; the largest follows), or -1 if the type is unknown. */
export function bodyLimits(type: i32): i32 {
  if (type >= Event.Boot && type <= Event.Retained) return 2 * (type - Event.Boot);
  if (type >= Command.Hello && type <= Command.Retain) return 2 * (Event.Retained - Event.Boot + 1 + type - Command.Hello);
  return -1;
}

/** Smallest body length allowed for an event or command type, or -1 if the type is unknown. */
export function minBody(type: i32): i32 {
  const at = bodyLimits(type);
  return at < 0 ? -1 : BODY_LIMITS[at];
}

/** Largest body length allowed for an event or command type, or -1 if the type is unknown. */
export function maxBody(type: i32): i32 {
  const at = bodyLimits(type);
  return at < 0 ? -1 : BODY_LIMITS[at + 1];
}

/** True for types the fabric sends to the firmware. */
export function isEvent(type: i32): bool {
  return type < 0x80 && minBody(type) >= 0;
}

/** True for types the firmware sends to the fabric. */
export function isCommand(type: i32): bool {
  return type >= 0x80 && minBody(type) >= 0;
}
