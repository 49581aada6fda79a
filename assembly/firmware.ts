// Firmware core: validates each framed event and dispatches it to its handler.
// Checks run in a fixed order, documented in docs/mailbox.md, so that the host-side
// reference decoder (board/mailbox-codec.ts) predicts every error the firmware reports.

import {
  MAILBOX_VERSION, MAX_SLOTS, TIMER_CHANNELS, Event, Counter, MailboxError, HelloStatus,
  BootBody, TimeBody, SyncBody, TimerFiredBody, RegValueBody, FabricEventBody, CardRole, ResetCause, LogLevel,
  FABRIC_EVENT_LAST, MAX_TUNNELS, errorCounter, ConfigBody, MACSEC_SETTING_LAST, FrameRxBody, NO_TUNNEL, TlpRxBody, TLP_RX_REASON_LAST, NO_PORT,
  BootFlag, FlashDoneBody, FlashOp, FlashStatus, FLASH_OP_LAST, FLASH_STATUS_LAST,
  HashDoneBody, HashStatus, HASH_CONTEXTS, HASH_STATUS_LAST, RetainBody, RETAIN_BYTES,
} from "../board/map/mailbox";
import { SLOTS } from "../board/map/flash";
import { Fmt, SWITCH_PORTS } from "../board/map/pcie";
import { MTU_MIN, MTU_MAX, CardReg, PORTS } from "../board/map/registers";
import { LINK_PROTOCOL_MIN, LINK_PROTOCOL_MAX, SILENCE_MIN_KEEPALIVES, AckPolicy } from "../board/map/link";
import * as config from "./link/config";
import * as link from "./link/link";
import * as drops from "./link/drops";
import * as paths from "./link/paths";
import * as vswitch from "./pcie/switch";
import * as pcie from "./pcie/tlp";
import { FabricEventKind } from "../board/map/registers";
import * as rx from "./abi/rx";
import * as tx from "./abi/tx";
import * as clock from "./clock";
import * as log from "./log";
import * as timers from "./timers";
import * as entropy from "./entropy";
import * as hash from "./hash";
import { Context, LINK_CONTEXTS } from "./hash";
import * as system from "./system";
import * as retain from "./retain";
import * as update from "./update/update";
import * as manage from "./manage/manage";
import * as configStore from "./manage/store";
import * as console from "./console/console";
import * as uart from "./console/uart";
import { TimerId } from "./timers";
import { count, get, clearAll } from "./counters";
import { FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH } from "./version";

const HEARTBEAT_NS: u64 = 1_000_000_000;
/**
 * After a reset of the soft-core alone that adopted a live session, the rest of the boot waits
 * this long: the server's requests and the session's recovery come first, while wasm3 compiles
 * only the functions they need (the batch that runs the rest of the boot compiles for about 10 ms).
 */
const BOOT_REST_AFTER_NS: u64 = 50_000_000;
/** The rest of the boot has been put off once already. */
let bootRestPutOff = false;

let booted = false;
let role: i32 = 0;
let serial: u32 = 0;
let slots: i32 = 0;
let syncSeen = false;
let boardId: u32 = 0;
let bootCause: i32 = 0;
let expectedSeq: u32 = 0;

export function isBooted(): bool {
  return booted;
}

export function cardRole(): i32 {
  return role;
}

/** Back to power-on state (used by tests; the card itself resets by re-instantiation). */
export function reset(): void {
  booted = false;
  role = 0;
  serial = 0;
  slots = 0;
  syncSeen = false;
  expectedSeq = 0;
  rx.reset();
  clock.reset();
  timers.reset();
  entropy.reset();
  hash.reset();
  config.reset();
  link.reset();
  vswitch.reset();
  retain.reset();
  system.reset();
  update.reset();
  manage.reset();
  console.reset();
  uart.discard();
  clearAll();
  log.clearHistory();
  log.setLevel(LogLevel.Info);
}

/** Handles every whole message buffered by rx. */
export function handleAll(): void {
  while (rx.next()) dispatch();
}

/** Called at end of input: a partial message left behind is reported as truncated. */
export function finish(): void {
  if (rx.pending() == 0) return;
  rx.describePending();
  reject(MailboxError.Truncated, rx.pending() as u32);
}

function reject(code: i32, detail: u32): void {
  count(Counter.Errors);
  count(errorCounter(code));
  tx.error(code, rx.msgType, rx.msgLength, rx.msgOffset, detail);
  log.warn();
  log.str("mailbox: rejected type ");
  log.hex(rx.msgType as u32, 2);
  log.str(" at offset ");
  log.dec(rx.msgOffset);
  log.str(": error ");
  log.dec(code);
  log.str(" detail ");
  log.dec(detail);
  log.end();
}

function accept(): void {
  count(Counter.EventsIn);
}

/** Offset of the first non-zero byte in a reserved field, or -1. */
function nonZero(body: usize, offset: i32, length: i32): i32 {
  for (let i = 0; i < length; i++) {
    if (load<u8>(body + offset + i) != 0) return offset + i;
  }
  return -1;
}

/**
 * Each event type's handler, Event.Boot to Event.Retained in order. Called through the table, each
 * stays a function of its own, which wasm3 compiles at its first call: a restart compiles the
 * handlers of its first events, not every event's.
 */
const HANDLERS: StaticArray<(body: usize, length: i32) => void> = [
  (body: usize, length: i32): void => onBoot(body),
  (body: usize, length: i32): void => onTime(body),
  (body: usize, length: i32): void => onSync(body),
  (body: usize, length: i32): void => onTimerFired(body),
  (body: usize, length: i32): void => onEntropy(body, length),
  (body: usize, length: i32): void => onCountersQuery(),
  (body: usize, length: i32): void => onRegValue(body),
  (body: usize, length: i32): void => onFabricEvent(body),
  (body: usize, length: i32): void => onConfig(body),
  (body: usize, length: i32): void => onFrameRx(body, length),
  (body: usize, length: i32): void => onTlpRx(body, length),
  (body: usize, length: i32): void => onUartRx(body, length),
  (body: usize, length: i32): void => onFlashDone(body, length),
  (body: usize, length: i32): void => onHashDone(body),
  (body: usize, length: i32): void => onRetained(body, length),
];

function dispatch(): void {
  if (rx.msgError != 0) {
    reject(rx.msgError, 0);
    return;
  }
  const type = rx.msgType;
  // rx.next() has checked the type: an event's, Event.Boot to Event.Retained.
  if (!booted && type != Event.Boot && type != Event.Time && type != Event.Sync) reject(MailboxError.OutOfOrder, 0);
  else unchecked(HANDLERS[type - Event.Boot])(rx.msgBody, rx.msgLength);
}

/** RETAINED, checked in this order: announced by BOOT and bytes still to come, Reserved, Offset (the next byte) and length. */
function onRetained(body: usize, length: i32): void {
  if (!retain.expecting()) {
    reject(MailboxError.OutOfOrder, 0);
    return;
  }
  const bad = nonZero(body, RetainBody.Reserved2, 2);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  if (!retain.fits(load<u16>(body, RetainBody.Offset) as i32, length - RetainBody.Data)) {
    reject(MailboxError.BadField, RetainBody.Offset);
    return;
  }
  accept();
  retain.receive(body, length);
}

function onUartRx(body: usize, length: i32): void {
  accept();
  console.onBytes(body, length);
}

/** FLASH_DONE, checked in this order: Op, Status, then Length against the body and the operation (docs/mailbox.md). */
function onFlashDone(body: usize, length: i32): void {
  const op = load<u8>(body, FlashDoneBody.Op) as i32;
  const status = load<u8>(body, FlashDoneBody.Status) as i32;
  const data = load<u16>(body, FlashDoneBody.Length) as i32;
  let bad = -1;
  if (op < 1 || op > FLASH_OP_LAST) bad = FlashDoneBody.Op;
  else if (status > FLASH_STATUS_LAST) bad = FlashDoneBody.Status;
  else if (data != length - FlashDoneBody.Data || (op == FlashOp.Read && status == FlashStatus.Ok ? data == 0 : data != 0)) bad = FlashDoneBody.Length;
  if (bad >= 0) {
    reject(MailboxError.BadField, bad as u32);
    return;
  }
  accept();
  if (configStore.busy()) {
    const outcome = configStore.onFlashDone(body);
    if (outcome != configStore.Outcome.Pending) manage.onStored(outcome == configStore.Outcome.Written);
  } else update.onFlashDone(body);
  console.resumeAfterUpdate();
}

/** HASH_DONE, checked in this order: Context, Status (docs/mailbox.md); a stale one is dropped. */
function onHashDone(body: usize): void {
  const context = load<u8>(body, HashDoneBody.Context) as i32;
  const status = load<u8>(body, HashDoneBody.Status) as i32;
  if (context >= HASH_CONTEXTS) {
    reject(MailboxError.BadField, HashDoneBody.Context);
    return;
  }
  if (status > HASH_STATUS_LAST) {
    reject(MailboxError.BadField, HashDoneBody.Status);
    return;
  }
  accept();
  if (status != HashStatus.Ok) {
    log.error();
    log.str("hash: the engine had no hash on context ");
    log.dec(context);
    log.end();
  }
  if (!hash.current(context, load<u16>(body, HashDoneBody.Tag) as u32, status)) return;
  const digest = body + HashDoneBody.Digest;
  if (context == Context.Update) {
    update.onDigest(digest);
    console.resumeAfterUpdate();
  } else if (context == Context.Store) configStore.onDigest(digest);
  else if (context == Context.Manage) manage.onDigest(digest);
  else if (context < Context.Link + LINK_CONTEXTS * config.ports) link.onDigest(context - Context.Link, digest);
}

function onTime(body: usize): void {
  if (!clock.advanceTo(load<u64>(body, TimeBody.Now))) {
    reject(MailboxError.OutOfOrder, 0);
    return;
  }
  accept();
}

function onSync(body: usize): void {
  const seq = load<u32>(body, SyncBody.Seq);
  if (syncSeen && seq != expectedSeq) reject(MailboxError.OutOfOrder, expectedSeq);
  else accept();
  // A SYNC is always acknowledged, so the board never waits for a lost batch.
  syncSeen = true;
  expectedSeq = seq + 1;
  timers.program();
  count(Counter.Batches);
  retain.flush();
  uart.flush();
  tx.syncAck(seq);
}

function onBoot(body: usize): void {
  if (booted) {
    reject(MailboxError.OutOfOrder, 0);
    return;
  }
  const version = load<u16>(body, BootBody.MailboxVersion) as u32;
  if (version != MAILBOX_VERSION) {
    reject(MailboxError.Version, MAILBOX_VERSION);
    tx.hello(HelloStatus.VersionMismatch, FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH);
    log.error();
    log.str("boot: board speaks mailbox v");
    log.dec(version);
    log.str(", firmware speaks v");
    log.dec(MAILBOX_VERSION);
    log.str("; not booting");
    log.end();
    return;
  }
  let bad = (load<u8>(body, BootBody.BootFlags) & ~BootFlag.Trial) != 0 ? BootBody.BootFlags : nonZero(body, BootBody.Reserved25, 3);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  const newRole = load<u8>(body, BootBody.Role) as i32;
  const cause = load<u8>(body, BootBody.ResetCause) as i32;
  const level = load<u8>(body, BootBody.LogLevel) as i32;
  const newSlots = load<u8>(body, BootBody.Slots) as i32;
  if (newRole > CardRole.Chassis) bad = BootBody.Role;
  else if (cause > ResetCause.Update) bad = BootBody.ResetCause;
  else if (level > LogLevel.Debug) bad = BootBody.LogLevel;
  else if (newSlots < 1 || newSlots > MAX_SLOTS) bad = BootBody.Slots;
  else if ((load<u8>(body, BootBody.BootSlot) as i32) >= SLOTS) bad = BootBody.BootSlot;
  else if ((load<u16>(body, BootBody.Retained) as i32) > RETAIN_BYTES) bad = BootBody.Retained;
  else if ((load<u8>(body, BootBody.Carrier) as u32) >> PORTS != 0) bad = BootBody.Carrier;
  if (bad >= 0) {
    reject(MailboxError.BadField, bad as u32);
    return;
  }
  accept();
  booted = true;
  role = newRole;
  serial = load<u32>(body, BootBody.Serial);
  slots = newSlots;
  log.setLevel(level);
  config.setIdentity(role, serial, slots, body + BootBody.Mac);
  paths.setCarriers(load<u8>(body, BootBody.Carrier) as u32);
  retain.expect(load<u16>(body, BootBody.Retained) as i32);
  // A switch the last firmware left is adopted whole (retain.ts), or set up from reset if it cannot be.
  if (role == CardRole.Host && !retain.expecting()) vswitch.init();
  retain.headerChanged();
  tx.hello(HelloStatus.Ok, FIRMWARE_MAJOR, FIRMWARE_MINOR, FIRMWARE_PATCH);
  // With state retained by a previous firmware, the switch is ready once it is adopted (retain.ts).
  if (!retain.expecting()) vswitch.setReady(cause != ResetCause.PowerOn);
  // Which chassis slots hold a device goes into every proposal: the host card shows only those as present.
  if (role == CardRole.Chassis) tx.regRead(CardReg.SlotsPresent);
  timers.start(TimerId.Heartbeat, HEARTBEAT_NS);
  system.start(body);
  boardId = load<u32>(body, BootBody.BoardId);
  bootCause = cause;
  // After a reset of the soft-core alone, the server's requests that waited in the fabric go
  // first (docs/registers.md, "What survives a reset"): the rest of the boot, the functions
  // wasm3 compiles at their first call, comes in a batch of its own after them, later still
  // when a session was adopted (onTimer).
  bootRestPutOff = false;
  if (retain.expecting()) timers.start(TimerId.Boot, 0);
  else bootRest();
}

/** The boot's log line, the update's look at the running image, the console's banner. */
function bootRest(): void {
  update.start(boardId);
  log.info();
  log.str("boot: firmware ");
  log.dec(FIRMWARE_MAJOR);
  log.str(".");
  log.dec(FIRMWARE_MINOR);
  log.str(".");
  log.dec(FIRMWARE_PATCH);
  log.str(", mailbox v");
  log.dec(MAILBOX_VERSION);
  log.str(role == CardRole.Host ? ", host card" : ", chassis card");
  log.str(", serial ");
  log.hex(serial, 8);
  log.str(", ");
  log.dec(slots);
  log.str(role == CardRole.Host ? " port(s), reset " : " slot(s), reset ");
  log.str(system.causeName(bootCause));
  log.str(", image slot ");
  log.dec(system.bootSlot);
  log.str(system.trial ? " on trial" : "");
  log.end();
  console.start();
}

function onTimerFired(body: usize): void {
  const bad = nonZero(body, TimerFiredBody.Reserved1, 3);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  if (load<u8>(body, TimerFiredBody.Channel) as i32 >= TIMER_CHANNELS) {
    reject(MailboxError.BadField, TimerFiredBody.Channel);
    return;
  }
  accept();
  timers.hardwareFired();
  // At most one expiry per logical timer per event, of those due when it came: a timer started
  // or restarted already due meanwhile runs at the next TIMER_FIRED, in a batch of its own, so
  // no input can keep the firmware here.
  let eligible = timers.due();
  for (let id = timers.nextExpired(eligible); id >= 0; id = timers.nextExpired(eligible)) {
    eligible &= ~(1 << id);
    count(Counter.TimersFired);
    onTimer(id);
  }
}

function onTimer(id: i32): void {
  if (id == TimerId.Watchdog) system.onWatchdogTimer();
  else if (id == TimerId.Confirm) {
    if (system.onConfirmTimer()) console.confirmed();
  } else if (id == TimerId.Update) {
    update.onTimer();
    console.resumeAfterUpdate();
  } else if (id == TimerId.Slots) vswitch.onSlotsTimer();
  else if (id == TimerId.Boot) {
    if (!bootRestPutOff && link.sessionsLive()) {
      bootRestPutOff = true;
      timers.start(TimerId.Boot, BOOT_REST_AFTER_NS);
    } else bootRest();
  }
  else if (id != TimerId.Heartbeat) link.onTimer(id);
  else {
    timers.restartPeriodic(TimerId.Heartbeat, HEARTBEAT_NS);
    drops.poll();
    paths.poll();
    log.info();
    log.str("heartbeat: ");
    log.dec(get(Counter.EventsIn));
    log.str(" events, ");
    log.dec(get(Counter.Batches));
    log.str(" batches, ");
    log.dec(get(Counter.Errors));
    log.str(" errors");
    log.end();
    if (!link.isStarted()) {
      // Disabled has no timeout of its own: the heartbeat says why the link is not starting.
      log.warn();
      log.str(config.configured ? "link: disabled, waiting for entropy" : "link: disabled, no link configuration (CONFIG)");
      log.end();
    }
  }
}

function onEntropy(body: usize, length: i32): void {
  accept();
  entropy.feed(body, length);
  link.tryStart();
}

/** Offset of the first out-of-range CONFIG field, in the order board/mailbox-codec.ts configFieldError() checks, or -1. */
function configFieldError(body: usize): i32 {
  const group = load<u16>(body, ConfigBody.Group) as u32;
  const protocol = load<u8>(body, ConfigBody.ProtocolMax) as i32;
  const policies = load<u8>(body, ConfigBody.AckPolicies) as i32;
  const mtu = load<u16>(body, ConfigBody.Mtu) as i32;
  const payload = load<u16>(body, ConfigBody.MaxPayload) as i32;
  const keepalive = load<u32>(body, ConfigBody.KeepaliveNs) as u64;
  const silence = load<u32>(body, ConfigBody.SilenceNs) as u64;
  if (group < 1 || group > 4094) return ConfigBody.Group;
  if (protocol < LINK_PROTOCOL_MIN || protocol > LINK_PROTOCOL_MAX) return ConfigBody.ProtocolMax;
  if (policies == 0 || (policies & ~(AckPolicy.Selective | AckPolicy.GoBackN)) != 0) return ConfigBody.AckPolicies;
  if (mtu < MTU_MIN || mtu > MTU_MAX) return ConfigBody.Mtu;
  if (payload < 128 || payload > 4096 || (payload & (payload - 1)) != 0) return ConfigBody.MaxPayload;
  if (keepalive < 1000) return ConfigBody.KeepaliveNs;
  if (silence < SILENCE_MIN_KEEPALIVES * keepalive) return ConfigBody.SilenceNs;
  if ((load<u32>(body, ConfigBody.GraceNs) as u64) < silence) return ConfigBody.GraceNs;
  const management = load<u16>(body, ConfigBody.ManagementVlan) as u32;
  if (management < 1 || management > 4094 || management == group) return ConfigBody.ManagementVlan;
  if ((load<u8>(body, ConfigBody.Macsec) as i32) > MACSEC_SETTING_LAST) return ConfigBody.Macsec;
  return -1;
}

function onConfig(body: usize): void {
  if (config.configured) {
    reject(MailboxError.OutOfOrder, 0);
    return;
  }
  let bad = nonZero(body, ConfigBody.Reserved23, 1);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  bad = configFieldError(body);
  if (bad >= 0) {
    reject(MailboxError.BadField, bad as u32);
    return;
  }
  accept();
  config.apply(body);
  link.tryStart();
}

function onFrameRx(body: usize, length: i32): void {
  const bad = nonZero(body, FrameRxBody.Reserved2, 2);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  const tunnel = load<u8>(body, FrameRxBody.Tunnel) as i32;
  if (tunnel >= MAX_TUNNELS && tunnel != NO_TUNNEL) {
    reject(MailboxError.BadField, FrameRxBody.Tunnel);
    return;
  }
  const port = load<u8>(body, FrameRxBody.Port) as i32;
  if (port >= PORTS) {
    reject(MailboxError.BadField, FrameRxBody.Port);
    return;
  }
  accept();
  if (link.onControl(body + FrameRxBody.Frame, length - FrameRxBody.Frame, port)) manage.onRequest();
}

/**
 * TLP_RX, checked in this order (docs/mailbox.md): host cards only (OutOfOrder); Reserved2;
 * Reason; Port; the TLP's Fmt; the body length the Fmt implies (header and one data DW).
 */
function onTlpRx(body: usize, length: i32): void {
  if (role != CardRole.Host) {
    reject(MailboxError.OutOfOrder, 0);
    return;
  }
  const bad = nonZero(body, TlpRxBody.Reserved2, 2);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  const reason = load<u8>(body, TlpRxBody.Reason) as i32;
  const port = load<u8>(body, TlpRxBody.Port) as i32;
  if (reason < 1 || reason > TLP_RX_REASON_LAST) {
    reject(MailboxError.BadField, TlpRxBody.Reason);
    return;
  }
  if (port >= SWITCH_PORTS && port != NO_PORT) {
    reject(MailboxError.BadField, TlpRxBody.Port);
    return;
  }
  const tlp = body + TlpRxBody.Tlp;
  // The rx layer has checked MinSize, so the header's first DW is there.
  if (pcie.fmt(tlp) > Fmt.Data4DW || length != TlpRxBody.Tlp + pcie.headerBytes(tlp) + (pcie.hasData(tlp) ? 4 : 0)) {
    reject(MailboxError.BadField, TlpRxBody.Tlp);
    return;
  }
  accept();
  count(Counter.TlpRx);
  vswitch.onTlpRx(reason, port, tlp, length - TlpRxBody.Tlp);
  const released = vswitch.takeReleased();
  if (released >= 0) link.onReleased(released);
}

function onCountersQuery(): void {
  accept();
  tx.countersReport();
}

function onRegValue(body: usize): void {
  accept();
  const address = load<u32>(body, RegValueBody.Address);
  if (address == CardReg.SlotsPresent) config.setSlotsPresent(load<u32>(body, RegValueBody.Value));
  link.onRegValue(address, load<u32>(body, RegValueBody.Value));
  drops.onRegValue(address, load<u32>(body, RegValueBody.Value));
  paths.onRegValue(address, load<u32>(body, RegValueBody.Value));
  const idle = vswitch.onRegValue(address, load<u32>(body, RegValueBody.Value));
  if (idle >= 0) link.onPortsIdle(idle);
  log.debug();
  log.str("fabric: register ");
  log.hex(load<u32>(body, RegValueBody.Address), 4);
  log.str(" = ");
  log.hex(load<u32>(body, RegValueBody.Value), 8);
  log.end();
}

function onFabricEvent(body: usize): void {
  const bad = nonZero(body, FabricEventBody.Reserved2, 2);
  if (bad >= 0) {
    reject(MailboxError.Reserved, bad as u32);
    return;
  }
  const tunnel = load<u8>(body, FabricEventBody.Tunnel) as i32;
  const kind = load<u8>(body, FabricEventBody.Kind) as i32;
  if (tunnel >= MAX_TUNNELS) {
    reject(MailboxError.BadField, FabricEventBody.Tunnel);
    return;
  }
  if (kind < 1 || kind > FABRIC_EVENT_LAST) {
    reject(MailboxError.BadField, FabricEventBody.Kind);
    return;
  }
  accept();
  count(Counter.FabricEvents);
  log.debug();
  log.str("fabric: tunnel ");
  log.dec(tunnel);
  log.str(
    kind == FabricEventKind.PeerSilent ? " peer silent for " :
    kind == FabricEventKind.PeerHeard ? " peer heard again " :
    kind == FabricEventKind.RetransmitTimeout ? " retransmission timeout, in a row: " :
    kind == FabricEventKind.RetryLimit ? " retry limit reached: " :
    kind == FabricEventKind.CountersReady ? " counters ready " :
    kind == FabricEventKind.RegisterRejected ? " register write refused: " :
    kind == FabricEventKind.CarrierDown ? " carrier down " :
    kind == FabricEventKind.CarrierUp ? " carrier up " :
    kind == FabricEventKind.FrameRejected ? " control frame refused, length " :
    kind == FabricEventKind.RttChanged ? " round trip now ns " : " TLP refused by the switch router, length ",
  );
  log.dec(load<u32>(body, FabricEventBody.Arg));
  log.end();
  if (kind == FabricEventKind.RegisterRejected) {
    log.warn();
    log.str("fabric: register write refused at ");
    log.hex(load<u32>(body, FabricEventBody.Arg), 4);
    log.end();
  } else if (kind == FabricEventKind.TlpRejected) {
    log.warn();
    log.str("switch: TLP_TX of ");
    log.dec(load<u32>(body, FabricEventBody.Arg));
    log.str(" bytes refused by the switch router");
    log.end();
  }
  link.onFabricEvent(tunnel, kind, load<u32>(body, FabricEventBody.Arg));
}
