// The host card's virtual PCIe switch (docs/config-space.md, "Virtual switch"): what the
// server sees of the card besides the TLPs the fabric's switch router moves at line rate.
//
//   - serves configuration requests for its ports (assembly/pcie/config.ts), and mirrors what
//     routing needs into the router's registers (SwitchReg) before it completes the write;
//   - completes with Unsupported Request the requests the router cannot route (the router
//     completes by itself those it had tunnelled through a port that stopped forwarding);
//   - binds downstream ports to chassis slots when a tunnel comes up (attach) and unbinds them
//     when it goes down (detach), raising the hot-plug events and their MSI.
//
// Port 0 is the upstream port, ports 1..SWITCH_DOWNSTREAM_PORTS the downstream ports; port N
// is Physical Slot N, and device N - 1 on the upstream port's secondary (internal) bus.

import { SwitchReg, SwitchControl, SWITCH_BASE, SWITCH_STRIDE, MAX_TUNNELS } from "../../board/map/registers";
import { RELEASE_IDLE_US } from "../../board/map/link";
import { Counter, TlpRxReason, LogLevel } from "../../board/map/mailbox";
import { Hdr, Hdr1, Exp, Command, SltCtl, SltSta, MsiCtrl, TlpType, SWITCH_PORTS, SwitchCapability } from "../../board/map/pcie";
import * as tx from "../abi/tx";
import * as log from "../log";
import * as timers from "../timers";
import { TimerId } from "../timers";
import { Text } from "../text";
import { count } from "../counters";
import * as config from "./config";
import * as tlp from "./tlp";
import * as retain from "../retain";

/** Where a bound port is in the release of its chassis slot to another server (docs/management.md). */
enum Release {
  None = 0,
  Asking = 1, //  its idle time (SwitchReg.IdleUs) was asked for
  Idle = 2, //    ... and it is idle
  Busy = 3, //    ... and it is not
  Pressed = 4, // the attention button is pressed: the server removes the device, then turns the power indicator off
  Done = 5, //    the server has turned the power indicator off
}

/** What the switch remembers of a downstream port's chassis slot (static memory, one per port). */
@unmanaged
class Binding {
  /** A chassis slot is behind the port now (its tunnel is up). */
  bound: bool;
  /** ...and it holds a device: the slot shows present. */
  occupied: bool;
  /** The port was ever bound since boot: (peerSerial, chassisSlot) below are its last binding. */
  used: bool;
  /** The hot-plug interrupt condition at the last evaluation: MSI is sent on its rising edge. */
  pending: bool;
  tunnel: i32;
  chassisSlot: i32;
  peerSerial: u32;
  release: i32;
}

const RECORD: i32 = 32; // >= offsetof<Binding>()
/** Power Indicator Control: Off (PCIe Base 7.5.3.10). */
const INDICATOR_OFF: u32 = 0x0300;
const bindings = memory.data(RECORD * SWITCH_PORTS);

function binding(port: i32): Binding {
  return changetype<Binding>(bindings + port * RECORD);
}

let active = false;
/** ConfigReady is set in the router. */
let ready = false;
/** A tunnel whose slots the server has all removed after the attention button, for takeReleased(); -1: none. */
let released: i32 = -1;
/** Bus and device of the upstream port (bus << 8 | device << 3), from the last Type 0 request. */
let upstreamId: u32 = 0;
/**
 * The slots' work, one step per batch (the Slots timer), so that a tunnel's slots do not make
 * one long batch (docs/softcore.md): removals not yet shown to the server (a bit per port; the
 * router stops forwarding at once, only what the server sees waits), and tunnels whose chassis
 * slots are still to be bound (a bit per tunnel, with what attach() was told).
 */
let pendingRemovals: u32 = 0;
let pendingAttach: u32 = 0;
enum AttachField {
  Serial = 0,
  Slots = 4,
  Present = 8,
  Next = 12, // the next chassis slot to bind
}
const attaching = memory.data(16 * MAX_TUNNELS);

/** Bytes of the switch's state that survive a reset of the soft-core (retain.ts): its flags, the bindings, the attaching tunnels. */
export const SAVED: i32 = 16 + RECORD * SWITCH_PORTS + 16 * MAX_TUNNELS;
const flags = memory.data(16);

/** Writes the switch's state to the retained RAM at `offset` (retain.ts). */
export function save(offset: i32): void {
  store<u8>(flags, active as u8);
  store<u8>(flags, ready as u8, 1);
  store<i32>(flags, released, 4);
  store<u32>(flags, upstreamId, 8);
  store<u16>(flags, pendingRemovals as u16, 12);
  store<u16>(flags, pendingAttach as u16, 14);
  tx.retain(offset, flags, 16);
  tx.retain(offset + 16, bindings, RECORD * SWITCH_PORTS);
  tx.retain(offset + 16 + RECORD * SWITCH_PORTS, attaching, 16 * MAX_TUNNELS);
}

/** The switch as a previous firmware left it (retain.ts): bindings, release steps and the slots' work still to do. */
export function restore(from: usize): void {
  active = load<u8>(from) != 0;
  ready = false; // setReady() mirrors the adopted state into the router
  released = load<i32>(from, 4);
  upstreamId = load<u32>(from, 8);
  pendingRemovals = load<u16>(from, 12) as u32;
  pendingAttach = load<u16>(from, 14) as u32;
  memory.copy(bindings, from + 16, RECORD * SWITCH_PORTS);
  memory.copy(attaching, from + 16 + RECORD * SWITCH_PORTS, 16 * MAX_TUNNELS);
  if ((pendingRemovals | pendingAttach) != 0) slotsLater();
}

/** Back to power-on: no ports (a chassis card has none), nothing bound or remembered. */
export function reset(): void {
  active = false;
  ready = false;
  released = -1;
  upstreamId = 0;
  pendingRemovals = 0;
  pendingAttach = 0;
  memory.fill(bindings, 0, RECORD * SWITCH_PORTS);
  config.reset();
  retain.switchChanged();
}

/** Presents the switch: called at BOOT on a host card. The router's registers reset to 0 with the card. */
export function init(): void {
  reset();
  active = true;
}

/**
 * The configuration space is set up (at BOOT, or once the state a previous firmware left is
 * adopted): ConfigReady is set, once. Until then the router answers the server's configuration
 * requests with Configuration Request Retry Status, and the server waits; from then on they come
 * to us. After a reset of the soft-core alone (`mirror`) the router kept its registers and went on
 * routing meanwhile: every one is written again from the configuration space, which holds the
 * values it has when the state was adopted. After power-on they are all 0, as the space's.
 */
export function setReady(mirror: bool): void {
  if (!active || ready) return;
  ready = true;
  retain.switchChanged();
  if (!mirror) {
    router(0, SwitchReg.Control, SwitchControl.ConfigReady);
    return;
  }
  for (let port = 0; port < SWITCH_PORTS; port++) {
    router(port, SwitchReg.Control, control(port) | (port == 0 ? SwitchControl.ConfigReady : 0));
    router(port, SwitchReg.Buses, config.read(port, Hdr1.PrimaryBus >> 2));
    router(port, SwitchReg.MemoryWindow, config.read(port, Hdr1.MemoryBase >> 2));
    router(port, SwitchReg.PrefetchWindow, config.read(port, Hdr1.PrefetchableBase >> 2));
    router(port, SwitchReg.PrefetchBaseUpper, config.read(port, Hdr1.PrefetchableBaseUpper >> 2));
    router(port, SwitchReg.PrefetchLimitUpper, config.read(port, Hdr1.PrefetchableLimitUpper >> 2));
    const b = binding(port);
    if (b.bound) router(port, SwitchReg.Binding, (b.tunnel as u32) | ((b.chassisSlot as u32) << 8));
  }
}

/** The routing ID of `port`: the upstream port's own, or device port - 1 on its secondary bus. */
export function portId(port: i32): u32 {
  if (port == 0 || port >= SWITCH_PORTS) return upstreamId;
  return (config.secondaryBus(0) << 8) | (((port - 1) as u32) << 3);
}

// ---- The switch router's registers ------------------------------------------------------

function router(port: i32, reg: i32, value: u32): void {
  tx.regWrite((SWITCH_BASE + port * SWITCH_STRIDE + reg) as u32, value);
}

/** SwitchReg.Control for `port`: Forward while its chassis slot is bound, the rest from Command. */
function control(port: i32): u32 {
  const command = config.command(port);
  let value: u32 = 0;
  if (port > 0 && binding(port).bound) value |= SwitchControl.Forward;
  if ((command & Command.Memory) != 0) value |= SwitchControl.MemoryEnable;
  if ((command & Command.BusMaster) != 0) value |= SwitchControl.BusMaster;
  return value;
}

/** After a configuration write to DW `dw` of `port`: the router register that mirrors it, if any. */
function mirror(port: i32, dw: i32, firstBe: i32): void {
  if (firstBe == 0) return;
  if (config.touches(Hdr.Command, 2, dw, firstBe)) router(port, SwitchReg.Control, control(port));
  else if (dw == Hdr1.PrimaryBus >> 2) router(port, SwitchReg.Buses, config.read(port, dw));
  else if (dw == Hdr1.MemoryBase >> 2) router(port, SwitchReg.MemoryWindow, config.read(port, dw));
  else if (dw == Hdr1.PrefetchableBase >> 2) router(port, SwitchReg.PrefetchWindow, config.read(port, dw));
  else if (dw == Hdr1.PrefetchableBaseUpper >> 2) router(port, SwitchReg.PrefetchBaseUpper, config.read(port, dw));
  else if (dw == Hdr1.PrefetchableLimitUpper >> 2) router(port, SwitchReg.PrefetchLimitUpper, config.read(port, dw));
}

// ---- Hot-plug interrupt (PCIe Base 6.7.3.4) ------------------------------------------------

/** The port's hot-plug interrupt condition: an enabled event is pending and MSI may be sent. */
function interruptPending(port: i32): bool {
  const control = config.slotControl(port);
  const status = config.slotStatus(port);
  if ((config.msiControl(port) & MsiCtrl.Enable) == 0) return false;
  if ((config.command(port) & Command.BusMaster) == 0) return false;
  if ((control & SltCtl.HotPlugInterruptEnable) == 0) return false;
  return ((status & SltSta.AttentionButtonPressed) != 0 && (control & SltCtl.AttentionButtonEnable) != 0) ||
    ((status & SltSta.PresenceDetectChanged) != 0 && (control & SltCtl.PresenceDetectEnable) != 0) ||
    ((status & SltSta.CommandCompleted) != 0 && (control & SltCtl.CommandCompletedEnable) != 0) ||
    ((status & SltSta.DlStateChanged) != 0 && (control & SltCtl.DlStateChangedEnable) != 0);
}

/**
 * Re-evaluates the interrupt condition of downstream port `port` after anything that may
 * change it. MSI is edge-triggered: one message each time the condition goes from false to
 * true, none while it stays true (software must clear every enabled event first).
 */
function evaluate(port: i32): void {
  const b = binding(port);
  const now = interruptPending(port);
  if (now && !b.pending) {
    tlp.sendMemoryWrite(portId(port), config.msiAddressLow(port), config.msiAddressHigh(port), config.msiData(port));
    count(Counter.MsiSent);
  }
  if (b.pending != now) retain.switchChanged();
  b.pending = now;
}

// ---- TLPs from the router (TLP_RX) -------------------------------------------------------

/** A request nothing serves: Unsupported Request if it waits for a completion, else dropped. */
function unsupported(request: usize, completer: u32): void {
  count(Counter.UnsupportedRequests);
  if (tlp.isNonPosted(request)) tlp.completeUnsupported(request, completer);
}

/** A configuration request for `port`'s own configuration space. */
function serveConfig(port: i32, request: usize, completer: u32): void {
  count(Counter.ConfigRequests);
  const dw = tlp.register(request);
  if (!tlp.hasData(request)) {
    tlp.completeRead(request, completer, config.read(port, dw));
    return;
  }
  const firstBe = tlp.firstBe(request);
  config.write(port, dw, tlp.data(request), firstBe);
  // The server may route through the port as soon as it sees the completion: the router first.
  mirror(port, dw, firstBe);
  tlp.completeWrite(request, completer);
  if (port > 0) {
    evaluate(port);
    if (config.touches(SwitchCapability.Express + Exp.SltCtl, 2, dw, firstBe)) watchIndicator(port);
  }
}

/** TLP_RX Config: Type 0 for the upstream port, Type 1 on the internal bus for a downstream port. */
function onConfig(port: i32, request: usize): void {
  if (tlp.type(request) == TlpType.Cfg0) {
    // The upstream port learns its bus and device from the requests addressed to it.
    const id = (tlp.bus(request) << 8) | (tlp.device(request) << 3);
    if (id != upstreamId) retain.switchChanged();
    upstreamId = id;
    if (tlp.fn(request) != 0) unsupported(request, upstreamId);
    else serveConfig(0, request, upstreamId);
    return;
  }
  if (port == 0 || port >= SWITCH_PORTS || tlp.fn(request) != 0) {
    unsupported(request, upstreamId);
    return;
  }
  serveConfig(port, request, portId(port));
}

/**
 * A TLP the switch router handed over (TLP_RX), `length` bytes at `request`, already checked
 * by the dispatcher: a header of the size its Fmt says and at most one data DW.
 */
export function onTlpRx(reason: i32, port: i32, request: usize, length: i32): void {
  if (!active || length < tlp.headerBytes(request)) return;
  if (tlp.isCompletion(request)) {
    // Completions are routed by the router alone; one here has no request to go to.
    count(Counter.UnsupportedRequests);
    return;
  }
  if (reason == TlpRxReason.Config && tlp.isConfig(request)) onConfig(port, request);
  else unsupported(request, portId(port));
}

// ---- Binding chassis slots to downstream ports --------------------------------------------

function logSlot(port: i32, b: Binding, what: Text): void {
  log.info();
  log.str("slot ");
  log.dec(port);
  log.str(" (port ");
  log.dec(port);
  log.str("): chassis ");
  log.hex(b.peerSerial, 8);
  log.str(" slot ");
  log.dec(b.chassisSlot);
  log.str(what);
  log.end();
}

/**
 * The downstream port for chassis slot `slot` of card `peerSerial`: the free port it was
 * last bound to, else the lowest-numbered port never bound, else the lowest-numbered free
 * port; -1 when every port is bound. So a chassis that comes back gets its slots back.
 */
function choosePort(peerSerial: u32, slot: i32): i32 {
  for (let p = 1; p < SWITCH_PORTS; p++) {
    const b = binding(p);
    if (!b.bound && b.used && b.peerSerial == peerSerial && b.chassisSlot == slot) return p;
  }
  for (let p = 1; p < SWITCH_PORTS; p++) if (!binding(p).used) return p;
  for (let p = 1; p < SWITCH_PORTS; p++) if (!binding(p).bound) return p;
  return -1;
}

/** Port `port`'s slot appears (`present`) or disappears: presence, link, events, interrupt. */
function slotEvent(port: i32, present: bool): void {
  config.setSlotPresent(port, present);
  count(Counter.HotplugEvents);
  logSlot(port, binding(port), present ? " present, link up" : " removed, link down");
  evaluate(port);
}

/** Starts the Slots timer, due at once: it runs at the next TIMER_FIRED, never in the batch that queued its work. */
function slotsLater(): void {
  if (!timers.isRunning(TimerId.Slots)) timers.start(TimerId.Slots, 0);
}

/**
 * The Slots timer: one step of the slots' work per batch, removals first, then the next slot of
 * a tunnel that came up (bound, forwarding, and shown inserted if it holds a device); it comes
 * back while work is left.
 */
export function onSlotsTimer(): void {
  retain.switchChanged();
  if (pendingRemovals != 0) {
    const port = ctz(pendingRemovals) as i32;
    pendingRemovals &= ~(1 << port);
    slotEvent(port, false);
  } else if (pendingAttach != 0) attachNext(ctz(pendingAttach) as i32);
  if ((pendingRemovals | pendingAttach) != 0) slotsLater();
}

/**
 * Link port (tunnel) `tunnel` became Active with chassis card `peerSerial`, which has
 * `peerSlots` slots, those in `present` holding a device: each slot gets a downstream port,
 * bound in the router, one slot per step of the Slots timer; each occupied one is shown to the
 * server as a hot-plug insertion in its step, an empty one stays an empty slot.
 */
export function attach(tunnel: i32, peerSerial: u32, peerSlots: i32, present: u32): void {
  if (!active) return;
  retain.switchChanged();
  detach(tunnel); // a session the link never reported down is over
  store<u32>(attaching + 16 * tunnel, peerSerial, AttachField.Serial);
  store<u32>(attaching + 16 * tunnel, peerSlots, AttachField.Slots);
  store<u32>(attaching + 16 * tunnel, present, AttachField.Present);
  store<u32>(attaching + 16 * tunnel, 0, AttachField.Next);
  pendingAttach |= 1 << tunnel;
  slotsLater();
}

/** Binds the next chassis slot of `tunnel` to a downstream port. */
function attachNext(tunnel: i32): void {
  const at = attaching + 16 * tunnel;
  const peerSerial = load<u32>(at, AttachField.Serial);
  const slot = load<u32>(at, AttachField.Next) as i32;
  store<u32>(at, slot + 1, AttachField.Next);
  if (slot + 1 >= (load<u32>(at, AttachField.Slots) as i32)) pendingAttach &= ~(1 << tunnel);
  const port = choosePort(peerSerial, slot);
  if (port < 0) {
    pendingAttach &= ~(1 << tunnel);
    log.begin(LogLevel.Warn);
    log.str("switch: every downstream port is bound; chassis ");
    log.hex(peerSerial, 8);
    log.str(" slots ");
    log.dec(slot);
    log.str(" and up stay unplugged");
    log.end();
    return;
  }
  // Removals go first (onSlotsTimer): a port's last chassis slot was shown removed, with its names, before this one binds it.
  const b = binding(port);
  b.bound = true;
  b.used = true;
  b.tunnel = tunnel;
  b.chassisSlot = slot;
  b.peerSerial = peerSerial;
  b.occupied = (load<u32>(at, AttachField.Present) & (1 << slot)) != 0;
  router(port, SwitchReg.Binding, (tunnel as u32) | ((slot as u32) << 8));
  router(port, SwitchReg.Control, control(port));
  if (b.occupied) slotEvent(port, true);
}

/**
 * Link port (tunnel) `tunnel` went down: each downstream port bound to it stops forwarding
 * first (the router completes its outstanding requests with Unsupported Request), then the server
 * sees a surprise removal. The binding is remembered for when the chassis comes back.
 */
export function detach(tunnel: i32): void {
  if (!active) return;
  retain.switchChanged();
  pendingAttach &= ~(1 << tunnel); // its slots not bound yet never will be
  for (let port = 1; port < SWITCH_PORTS; port++) {
    const b = binding(port);
    if (!b.bound || b.tunnel != tunnel) continue;
    b.bound = false;
    b.release = Release.None;
    router(port, SwitchReg.Control, control(port));
    if (b.occupied) {
      pendingRemovals |= 1 << port;
      slotsLater();
    }
    b.occupied = false;
  }
}

/** The chassis card behind `port` now, or that it last had (the console's `slots`); 0 if never bound. */
export function chassisOf(port: i32): u32 {
  const b = binding(port);
  return b.used ? b.peerSerial : 0;
}

/** The chassis slot behind `port` (meaningful when chassisOf() is not 0). */
export function chassisSlotOf(port: i32): i32 {
  return binding(port).chassisSlot;
}

/** A device is behind `port` and shown present. */
export function isOccupied(port: i32): bool {
  return binding(port).occupied;
}

/** The switch is presented (a host card). */
export function isActive(): bool {
  return active;
}

/** The tunnel port `port` is bound to, or -1 (for tests and the console). */
export function boundTunnel(port: i32): i32 {
  const b = binding(port);
  return b.bound ? b.tunnel : -1;
}

// ---- Releasing a chassis card's slots to another server -----------------------------------

/** Starts the release of tunnel `tunnel`'s slots: asks each occupied port's idle time. False when no port shows a device. */
export function releasePorts(tunnel: i32): bool {
  retain.switchChanged();
  let any = false;
  for (let port = 1; port < SWITCH_PORTS; port++) {
    const b = binding(port);
    if (!b.bound || b.tunnel != tunnel || !b.occupied) continue;
    b.release = Release.Asking;
    tx.regRead((SWITCH_BASE + port * SWITCH_STRIDE + SwitchReg.IdleUs) as u32);
    any = true;
  }
  return any;
}

/** A release of tunnel `tunnel`'s slots is under way (a RELEASE sent again changes nothing). */
export function releasing(tunnel: i32): bool {
  for (let port = 1; port < SWITCH_PORTS; port++) {
    const b = binding(port);
    if (b.bound && b.tunnel == tunnel && b.release != Release.None) return true;
  }
  return false;
}

/** The tunnel bound to `port` when none of its ports is in release step `step` any more but some was; else -1. */
function tunnelPast(port: i32, step: i32): i32 {
  const tunnel = binding(port).tunnel;
  for (let p = 1; p < SWITCH_PORTS; p++) {
    const b = binding(p);
    if (b.bound && b.tunnel == tunnel && b.release == step) return -1;
  }
  return tunnel;
}

/** A REG_VALUE: when it answers the last idle-time question of a release, that tunnel; else -1. */
export function onRegValue(address: u32, value: u32): i32 {
  const offset = (address as i32) - SWITCH_BASE;
  if (offset < 0 || offset >= SWITCH_PORTS * SWITCH_STRIDE || offset % SWITCH_STRIDE != SwitchReg.IdleUs) return -1;
  const port = offset / SWITCH_STRIDE;
  const b = binding(port);
  if (port == 0 || !b.bound || b.release != Release.Asking) return -1;
  // A slot whose server has not enabled its attention button (pciehp has not probed it yet)
  // would never answer a press: it goes as a busy one, by surprise removal.
  const listening = (config.slotControl(port) & SltCtl.AttentionButtonEnable) != 0;
  retain.switchChanged();
  b.release = listening && value >= (RELEASE_IDLE_US as u32) ? Release.Idle : Release.Busy;
  return tunnelPast(port, Release.Asking);
}

/**
 * Every port of tunnel `tunnel` told its idle time. All idle: the attention button of each is
 * pressed (Attention Button Pressed, and its interrupt) and true is returned; else false.
 */
export function pressButtons(tunnel: i32): bool {
  retain.switchChanged();
  let idle = true;
  for (let port = 1; port < SWITCH_PORTS; port++) {
    const b = binding(port);
    if (b.bound && b.tunnel == tunnel && b.release == Release.Busy) idle = false;
  }
  for (let port = 1; port < SWITCH_PORTS; port++) {
    const b = binding(port);
    if (!b.bound || b.tunnel != tunnel || b.release == Release.None) continue;
    if (!idle) {
      b.release = Release.None;
      continue;
    }
    b.release = Release.Pressed;
    config.pressAttentionButton(port);
    count(Counter.HotplugEvents);
    evaluate(port);
  }
  return idle;
}

/** After a Slot Control write: the power indicator off on a port whose button was pressed means the server removed its device. */
function watchIndicator(port: i32): void {
  const b = binding(port);
  if (!b.bound || b.release != Release.Pressed) return;
  if ((config.slotControl(port) & SltCtl.PowerIndicator) != INDICATOR_OFF) return;
  b.release = Release.Done;
  released = tunnelPast(port, Release.Pressed);
  retain.switchChanged();
}

/** The tunnel whose slots the server has all removed in order since the last call, or -1. */
export function takeReleased(): i32 {
  if (released >= 0) retain.switchChanged();
  const t = released;
  released = -1;
  return t;
}

assert(offsetof<Binding>() <= (RECORD as usize));
