// The server's PCI Express hot-plug driver: one controller per hot-plug port, a step-by-step
// mirror of Linux's pciehp (drivers/pci/hotplug/pciehp_core.c, pciehp_hpc.c, pciehp_ctrl.c,
// pciehp_pci.c, with pcie_wait_for_link from drivers/pci/pci.c). Each method names the Linux
// function it mirrors; docs/hotplug.md has the whole sequence with its timings.
//
// Linux runs pciehp in three contexts, and so does this model, each as a task (task.ts):
// - the probe (pciehp_probe), once, when the OS binds the port services;
// - the hard interrupt handler (pciehp_isr), at every MSI of the port: it reads Slot Status,
//   acknowledges the events, wakes a waiter for Command Completed and hands the rest on;
// - the interrupt thread (pciehp_ist), which acts on the events: it takes the slot down on
//   a surprise removal and brings it up when a card (a chassis device behind a cable that is
//   back) is present; an Attention Button press starts the 5 s blinking that ends in an
//   orderly removal (or insertion) unless a second press cancels it;
// - and, like Linux's system workqueue, the push-button work (pciehp_queue_pushbutton_work):
//   a timer 5 s after a press that hands the thread the disable or enable request.
// Attention Button, Power Indicator and Attention Indicator are each used only when Slot
// Capabilities says the slot has them, as Linux does (ATTN_BUTTN, PWR_LED, ATTN_LED); a power
// controller and an MRL sensor are never used: the host card's slots have neither.
// All waits are virtual-time sleeps of the root complex; the model never reads a clock.

import { spawn, wait, Lock, MS, type Op, type Task } from "./task.ts";
import { Exp, LnkCap, LnkSta, SltCap, SltCtl, SltSta } from "../../board/map/pcie.ts";
import type { OperatingSystem, PciFunction } from "./os.ts";

/** pcie_wait_cmd: how long a Slot Control command may take (1000 ms; 2500 ms in poll mode). */
export const COMMAND_TIMEOUT_MS = 1000;
export const COMMAND_TIMEOUT_POLL_MODE_MS = 2500;
/** pcie_poll_cmd: Slot Status is read every 10 ms while waiting for Command Completed without interrupts. */
export const COMMAND_POLL_MS = 10;
/** pcie_wait_for_link_delay: a component enters LTSSM Detect within 20 ms (PCIe r4.0 6.6.1); polling starts after it. */
export const LINK_DETECT_MS = 20;
/** pcie_wait_for_link_delay: DL Link Active is polled every 10 ms ... */
export const LINK_POLL_MS = 10;
/** ... for up to PCIE_LINK_RETRAIN_TIMEOUT_MS; without DL Link Active reporting this is waited in full. */
export const LINK_TIMEOUT_MS = 1000;
/** pcie_wait_for_link: the 100 ms software must wait after the link is up before configuration requests (PCIe r4.0 6.6.1). */
export const CONFIG_READY_MS = 100;
/** pci_bus_check_dev: the Vendor ID is read every 20 ms ("step = 20") ... */
export const VENDOR_ID_POLL_MS = 20;
/** ... for up to 1000 ms ("delay = 1000"). */
export const VENDOR_ID_TIMEOUT_MS = 1000;
/** pciehp_poll: poll mode starts 10 s after probe and reads Slot Status every pciehp_poll_time (default 2 s). */
export const POLL_MODE_START_MS = 10_000;
export const POLL_MODE_INTERVAL_MS = 2000;
/** pciehp_handle_button_press: the push-button work runs 5 s after a press (schedule_delayed_work(..., 5 * HZ)). */
export const BUTTON_DELAY_MS = 5000;

/**
 * Linux ctrl->state. The blinking states are the 5 s after an Attention Button press: ON
 * becomes BLINKINGOFF (a removal is pending), OFF becomes BLINKINGON (an insertion is pending).
 */
export enum SlotState {
  Off = "OFF_STATE",
  BlinkingOn = "BLINKINGON_STATE",
  BlinkingOff = "BLINKINGOFF_STATE",
  PowerOn = "POWERON_STATE",
  PowerOff = "POWEROFF_STATE",
  On = "ON_STATE",
}

/** The states' numbers in pciehp.h, as Linux prints an invalid one ("%#x"). */
const STATE_NUMBER: Record<SlotState, number> = {
  [SlotState.Off]: 0, [SlotState.BlinkingOn]: 1, [SlotState.BlinkingOff]: 2,
  [SlotState.PowerOn]: 3, [SlotState.PowerOff]: 4, [SlotState.On]: 5,
};

/** Slot Control Power Indicator Control values (pci_regs.h PCI_EXP_SLTCTL_PWR_IND_*). */
export const PwrInd = { On: 0x0100, Blink: 0x0200, Off: 0x0300 } as const;
/** Slot Control Attention Indicator Control values (pci_regs.h PCI_EXP_SLTCTL_ATTN_IND_*). */
export const AttnInd = { On: 0x0040, Blink: 0x0080, Off: 0x00c0 } as const;
/** pciehp.h INDICATOR_NOOP: leave that indicator as it is. */
const INDICATOR_NOOP = -1;

/** A request for the interrupt thread that is not a Slot Status bit (pciehp.h DISABLE_SLOT). */
const DISABLE_SLOT = 1 << 16;
/** The Slot Status bits that are events (RW1C), as pciehp_isr keeps them. */
const EVENT_BITS = SltSta.AttentionButtonPressed | SltSta.PowerFaultDetected | SltSta.PresenceDetectChanged | SltSta.CommandCompleted | SltSta.DlStateChanged;
/** Slot Control In-Band Presence Detect Disable and Slot Capabilities 2 In-Band PD Disable Supported. */
const SLTCTL_IBPD_DISABLE = 0x4000;
const SLTCAP2_IBPD = 0x0001;
const ENODEV = -19;
const EEXIST = -17;

enum IrqReturn {
  None,
  Handled,
  WakeThread,
}

export interface HotplugCounters {
  /** MSIs of the port the interrupt handler ran for. */
  interrupts: number;
  /** Slot Control writes (pcie_do_write_cmd). */
  commands: number;
  /** Commands whose Command Completed did not come in time ("Timeout on hotplug command"). */
  commandTimeouts: number;
  /** Slots taken down: every function below removed (pciehp_disable_slot); orderlyRemovals + surpriseRemovals. */
  removals: number;
  /** Of those, safe removals (SAFE_REMOVAL): after an Attention Button press and its 5 s, or asked for by software. */
  orderlyRemovals: number;
  /** Of those, surprise removals (SURPRISE_REMOVAL): a link or presence change of a slot that was on. */
  surpriseRemovals: number;
  /** Attention Button Pressed events handled (pciehp_handle_button_press), cancelling presses included. */
  buttonPresses: number;
  /** Slots brought up with their device configured and handed to its driver (pciehp_enable_slot succeeded). */
  insertions: number;
  /** Attempts to bring a slot up that failed: no link, no device, no room. */
  failedInsertions: number;
}

/** A controller's counters, all zero. */
export function newHotplugCounters(): HotplugCounters {
  return { interrupts: 0, commands: 0, commandTimeouts: 0, removals: 0, orderlyRemovals: 0, surpriseRemovals: 0, buttonPresses: 0, insertions: 0, failedInsertions: 0 };
}

/** pciehp's module parameters. */
export interface PciehpOptions {
  /** pciehp_poll_mode: no hot-plug interrupts; Slot Status is polled, commands are polled for completion. */
  pollMode?: boolean;
}

const hex4 = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;
const hex2 = (n: number) => n.toString(16).padStart(2, "0");
const flag = (value: number, bit: number) => (value & bit ? "+" : "-");

export class PciehpController {
  state: SlotState = SlotState.Off;
  readonly counters: HotplugCounters = newHotplugCounters();
  /** Slot Capabilities as read at probe (ctrl->slot_cap). */
  slotCap = 0;
  /** The Physical Slot Number: the slot's name in the log. */
  slotName = "";
  /** The port reports DL Link Active (pdev->link_active_reporting). */
  linkActiveReporting = false;
  /** The Slot Control value last written (ctrl->slot_ctrl). */
  slotCtrl = 0;
  /** A command was written and its Command Completed has not been seen (ctrl->cmd_busy). */
  cmdBusy = false;
  private cmdStarted = 0;
  /** Events for the interrupt thread (ctrl->pending_events). */
  private pendingEvents = 0;
  private powerFaultDetected = false;
  /** The pending push-button work (ctrl->button_work): cancels its timer, or null when none is pending. */
  private buttonWork: (() => void) | null = null;
  private readonly commandLock = new Lock(); // ctrl->ctrl_lock
  private readonly commandWaiters: (() => void)[] = []; // ctrl->queue
  private isrRunning = false;
  private isrAgain = false;
  private istRunning = false;
  private istAgain = false;
  private released = false;
  private readonly pollMode: boolean;
  /** How the port is named in the log, as Linux's driver core names it. */
  readonly device: string;

  constructor(private readonly os: OperatingSystem, readonly port: PciFunction, private readonly express: number, options: PciehpOptions = {}) {
    this.pollMode = options.pollMode ?? false;
    this.device = `pcieport 0000:${hex2(port.bus)}:${hex2(port.device)}.${port.fn}`;
  }

  // ---- logging (ctrl_info / ctrl_err, pci_info) ---------------------------------------------

  private info(text: string): void {
    this.os.log(`${this.device}: pciehp: ${text}`);
  }

  private pciInfo(text: string): void {
    this.os.log(`${this.device}: ${text}`);
  }

  // ---- the port's registers (pcie_capability_read_word and friends) --------------------------

  private *readWord(register: Exp): Task<number> {
    return yield* this.os.readConfig(this.port, this.express + register, 2);
  }

  private *readDword(register: Exp): Task<number> {
    return yield* this.os.readConfig(this.port, this.express + register, 4);
  }

  private *writeWord(register: Exp, value: number): Task<void> {
    yield* this.os.writeConfig(this.port, this.express + register, 2, value);
  }

  private *sleep(ms: number): Task<void> {
    yield* wait(this.os.rc.delay(ms * MS));
  }

  private get noCommandCompleted(): boolean {
    return (this.slotCap & SltCap.NoCommandCompleted) !== 0; // NO_CMD_CMPL(ctrl)
  }

  private get attentionButton(): boolean {
    return (this.slotCap & SltCap.AttentionButton) !== 0; // ATTN_BUTTN(ctrl)
  }

  private get powerIndicator(): boolean {
    return (this.slotCap & SltCap.PowerIndicator) !== 0; // PWR_LED(ctrl)
  }

  private get attentionIndicator(): boolean {
    return (this.slotCap & SltCap.AttentionIndicator) !== 0; // ATTN_LED(ctrl)
  }

  // ---- probe (pciehp_core.c) ----------------------------------------------------------------

  /** pciehp_probe: pcie_init, pcie_init_notification, pciehp_check_presence. */
  *probe(): Task<boolean> {
    yield* this.init();
    if (!(yield* this.initNotification())) {
      this.info("Notification initialization failed");
      return false;
    }
    yield* this.checkPresence();
    return true;
  }

  /** pcie_init (pciehp_hpc.c): read the slot's capabilities, take the state from what the OS enumerated, clear stale events. */
  private *init(): Task<void> {
    this.slotCap = yield* this.readDword(Exp.SltCap);
    this.slotName = String(this.slotCap >>> 19); // PSN(ctrl): Physical Slot Number
    // The PCI core reads this when it sets the port up (pdev->link_active_reporting).
    this.linkActiveReporting = ((yield* this.readDword(Exp.LnkCap)) & LnkCap.DlActiveReporting) !== 0;
    const range = this.port.bridge!;
    // ctrl->state = list_empty(&subordinate->devices) ? OFF_STATE : ON_STATE
    this.state = this.os.functions.some((f) => f.bus === range.secondary) ? SlotState.On : SlotState.Off;
    const slotCap2 = yield* this.readDword(Exp.SltCap2);
    if (slotCap2 & SLTCAP2_IBPD) yield* this.writeCommand(SLTCTL_IBPD_DISABLE, SLTCTL_IBPD_DISABLE, false);
    // Clear all remaining event bits in Slot Status: they may be stale (pciehp_check_presence decides instead).
    yield* this.writeWord(Exp.SltSta, SltSta.AttentionButtonPressed | SltSta.PowerFaultDetected | SltSta.MrlSensorChanged |
      SltSta.CommandCompleted | SltSta.DlStateChanged | SltSta.PresenceDetectChanged);
    const c = this.slotCap;
    this.info(`Slot #${this.slotName} AttnBtn${flag(c, SltCap.AttentionButton)} PwrCtrl${flag(c, SltCap.PowerController)} ` +
      `MRL${flag(c, SltCap.MrlSensor)} AttnInd${flag(c, SltCap.AttentionIndicator)} PwrInd${flag(c, SltCap.PowerIndicator)} ` +
      `HotPlug${flag(c, SltCap.HotPlugCapable)} Surprise${flag(c, SltCap.HotPlugSurprise)} Interlock${flag(c, SltCap.Interlock)} ` +
      `NoCompl${flag(c, SltCap.NoCommandCompleted)} IbPresDis${flag(slotCap2, SLTCAP2_IBPD)} LLActRep${this.linkActiveReporting ? "+" : "-"}`);
    // A power controller would be switched off here for an empty slot; these slots have none.
  }

  /** pcie_init_notification: pciehp_request_irq, then pcie_enable_notification. */
  private *initNotification(): Task<boolean> {
    if (this.pollMode) {
      spawn(this.poll(), (result) => result instanceof Error && this.info(`poll thread stopped: ${result.message}`));
    } else {
      if (this.port.msiVector === null) {
        this.info("Cannot get irq for the hotplug controller"); // no MSI, and the model has no INTx
        return false;
      }
      this.os.requestIrq(this.port.msiVector, () => this.interrupt());
    }
    yield* this.enableNotification();
    return true;
  }

  /**
   * pcie_enable_notification: Data Link Layer State Changed always (link up and down are
   * treated as insertion and removal); Attention Button Pressed when the slot has an
   * Attention Button, else Presence Detect Changed — with a button Linux does not ask for
   * presence events at all, and a surprise removal or an insertion still reaches it through
   * DL State Changed (Presence Detect Changed, when set too, is read with it from Slot
   * Status); Hot-Plug Interrupt and Command Completed Interrupt unless polling (and CC only
   * when the port completes commands). Power Fault stays off, as in Linux.
   *
   * Linux issues this with pcie_write_cmd_nowait and waits for its Command Completed only
   * before its next command (an indicator, at the first insertion, removal or button press).
   * This model waits here (pcie_write_cmd): the same register traffic, and a port that never
   * completes a command is reported at probe rather than at its next command.
   */
  private *enableNotification(): Task<void> {
    let cmd = SltCtl.DlStateChangedEnable;
    cmd |= this.slotCap & SltCap.AttentionButton ? SltCtl.AttentionButtonEnable : SltCtl.PresenceDetectEnable;
    if (!this.pollMode) cmd |= SltCtl.HotPlugInterruptEnable;
    if (!this.pollMode && !this.noCommandCompleted) cmd |= SltCtl.CommandCompletedEnable;
    const mask = SltCtl.PresenceDetectEnable | SltCtl.AttentionButtonEnable | SltCtl.PowerFaultEnable |
      SltCtl.HotPlugInterruptEnable | SltCtl.CommandCompletedEnable | SltCtl.DlStateChangedEnable;
    yield* this.writeCommand(cmd, mask, true);
  }

  /**
   * pciehp_check_presence: Slot Status events from before probe were cleared, so bring up an
   * occupied slot the OS has nothing below, or take down an empty one it has.
   */
  private *checkPresence(): Task<void> {
    const occupied = yield* this.cardPresentOrLinkActive();
    if ((occupied > 0 && this.state === SlotState.Off) || (occupied === 0 && this.state === SlotState.On)) this.request(SltSta.PresenceDetectChanged);
  }

  /** pciehp_remove, as far as the OS needs it when the port itself goes away: no interrupts, no polling, no push-button work (pciehp_release_ctrl). */
  release(): void {
    this.released = true;
    this.cancelButtonWork();
    if (this.port.msiVector !== null) this.os.freeIrq(this.port.msiVector);
  }

  // ---- Slot Control commands (pciehp_hpc.c) ---------------------------------------------------

  /**
   * pcie_do_write_cmd: wait for the previous command, read-modify-write Slot Control, mark
   * the command busy, and optionally wait for it (pcie_write_cmd) or not (pcie_write_cmd_nowait).
   */
  private *writeCommand(cmd: number, mask: number, waitForCompletion: boolean): Task<void> {
    yield* wait(this.commandLock.acquire());
    try {
      yield* this.waitCommand(); // always wait for any previous command that might still be in progress
      let slotCtrl = yield* this.readWord(Exp.SltCtl);
      if (slotCtrl === 0xffff) {
        this.info("pcie_do_write_cmd: no response from device");
        return;
      }
      slotCtrl = (slotCtrl & ~mask) | (cmd & mask);
      this.cmdBusy = true;
      this.slotCtrl = slotCtrl;
      yield* this.writeWord(Exp.SltCtl, slotCtrl);
      this.cmdStarted = this.os.rc.now;
      this.counters.commands++;
      if (waitForCompletion) yield* this.waitCommand();
    } finally {
      this.commandLock.release();
    }
  }

  /**
   * pcie_wait_cmd: wait for Command Completed of the command in progress until 1 s after it
   * was issued — by interrupt when Hot-Plug and Command Completed interrupts are enabled,
   * else by polling Slot Status (pcie_poll_cmd). A command that already timed out is still
   * polled once, so that a late Command Completed is cleared.
   */
  private *waitCommand(): Task<void> {
    if (this.noCommandCompleted || !this.cmdBusy) return;
    const deadline = this.cmdStarted + (this.pollMode ? COMMAND_TIMEOUT_POLL_MODE_MS : COMMAND_TIMEOUT_MS) * MS;
    const now = this.os.rc.now;
    const timeoutNs = deadline <= now ? MS : deadline - now; // one jiffy when already late
    const interrupts = (this.slotCtrl & SltCtl.HotPlugInterruptEnable) !== 0 && (this.slotCtrl & SltCtl.CommandCompletedEnable) !== 0;
    const completed = interrupts ? yield* wait(this.commandCompleted(timeoutNs)) : yield* this.pollCommand(timeoutNs / MS);
    if (!completed) {
      this.counters.commandTimeouts++;
      this.info(`Timeout on hotplug command ${hex4(this.slotCtrl)} (issued ${Math.floor((this.os.rc.now - this.cmdStarted) / MS)} msec ago)`);
    }
  }

  /** wait_event_timeout(ctrl->queue, !ctrl->cmd_busy, timeout): true when the interrupt handler saw Command Completed in time. */
  private commandCompleted(timeoutNs: number): Op<boolean> {
    return {
      start: (resume) => {
        if (!this.cmdBusy) {
          resume(true);
          return;
        }
        let cancel = () => {};
        const wake = () => {
          cancel();
          resume(true);
        };
        this.commandWaiters.push(wake);
        cancel = this.os.rc.timer(timeoutNs, () => {
          this.commandWaiters.splice(this.commandWaiters.indexOf(wake), 1);
          resume(!this.cmdBusy);
        });
      },
    };
  }

  /** pcie_poll_cmd: read Slot Status every 10 ms until Command Completed, which it clears. */
  private *pollCommand(timeoutMs: number): Task<boolean> {
    let left = timeoutMs;
    do {
      const status = yield* this.readWord(Exp.SltSta);
      if (status === 0xffff) {
        this.info("pcie_poll_cmd: no response from device");
        return false;
      }
      if (status & SltSta.CommandCompleted) {
        yield* this.writeWord(Exp.SltSta, SltSta.CommandCompleted);
        this.cmdBusy = false;
        return true;
      }
      yield* this.sleep(COMMAND_POLL_MS);
      left -= COMMAND_POLL_MS;
    } while (left >= 0);
    return false;
  }

  /**
   * pciehp_set_indicators: one Slot Control command for the Power Indicator and the Attention
   * Indicator, each only if the slot has it and it is not INDICATOR_NOOP; nothing when neither
   * applies. Issued with pcie_write_cmd_nowait: its Command Completed is waited for before
   * the next command, not here.
   */
  private *setIndicators(pwr: number, attn: number): Task<void> {
    let cmd = 0;
    let mask = 0;
    if (this.powerIndicator && pwr !== INDICATOR_NOOP) {
      cmd |= pwr & SltCtl.PowerIndicator;
      mask |= SltCtl.PowerIndicator;
    }
    if (this.attentionIndicator && attn !== INDICATOR_NOOP) {
      cmd |= attn & SltCtl.AttentionIndicator;
      mask |= SltCtl.AttentionIndicator;
    }
    if (cmd) yield* this.writeCommand(cmd, mask, false);
  }

  // ---- slot state (pciehp_hpc.c) --------------------------------------------------------------

  /** pciehp_card_present: Presence Detect State; ENODEV when the port does not answer. */
  private *cardPresent(): Task<number> {
    const status = yield* this.readWord(Exp.SltSta);
    if (status === 0xffff) return ENODEV;
    return status & SltSta.PresenceDetectState ? 1 : 0;
  }

  /** pciehp_check_link_active: Data Link Layer Link Active; ENODEV when the port does not answer. */
  private *checkLinkActive(): Task<number> {
    const status = yield* this.readWord(Exp.LnkSta);
    if (status === 0xffff) return ENODEV;
    return status & LnkSta.DlActive ? 1 : 0;
  }

  /** pciehp_card_present_or_link_active. */
  private *cardPresentOrLinkActive(): Task<number> {
    const present = yield* this.cardPresent();
    if (present) return present;
    return yield* this.checkLinkActive();
  }

  // ---- interrupts (pciehp_hpc.c) ----------------------------------------------------------------

  /**
   * The port's MSI. An edge-triggered interrupt that comes while the handler runs makes it
   * run again afterwards, as the kernel replays an edge interrupt that was pending.
   */
  private interrupt(): void {
    if (this.released) return;
    this.counters.interrupts++;
    if (this.isrRunning) {
      this.isrAgain = true;
      return;
    }
    this.isrRunning = true;
    spawn(this.runIsr(), (result) => result instanceof Error && this.info(`interrupt handler failed: ${result.message}`));
  }

  private *runIsr(): Task<void> {
    try {
      do {
        this.isrAgain = false;
        if ((yield* this.isr()) === IrqReturn.WakeThread) this.wakeThread();
      } while (this.isrAgain);
    } finally {
      this.isrRunning = false;
    }
  }

  /**
   * pciehp_isr: read Slot Status, keep the event bits, write them back to clear them, and —
   * because with MSI a new message is sent only when no enabled event is left set
   * (PCIe r5.0 6.7.3.4) — read again until no event is left, so none that came between read
   * and write is lost. Command Completed wakes the command waiter here, not in the thread
   * (which may be the one waiting); the other events go to the interrupt thread.
   */
  private *isr(): Task<IrqReturn> {
    if (!(this.slotCtrl & SltCtl.HotPlugInterruptEnable) && !this.pollMode) return IrqReturn.None;
    let events = 0;
    for (;;) {
      let status = yield* this.readWord(Exp.SltSta);
      if (status === 0xffff) {
        this.info("pciehp_isr: no response from device");
        return IrqReturn.None;
      }
      status &= EVENT_BITS;
      // A power fault is reported once until something has been done about it.
      if (this.powerFaultDetected) status &= ~SltSta.PowerFaultDetected;
      else if (status & SltSta.PowerFaultDetected) this.powerFaultDetected = true;
      events |= status;
      if (!events) return IrqReturn.None;
      if (!status) break;
      yield* this.writeWord(Exp.SltSta, status);
      if (this.pollMode || this.port.msiVector === null) break; // only MSI needs the re-read
    }
    if (events & SltSta.CommandCompleted) {
      this.cmdBusy = false;
      for (const wake of this.commandWaiters.splice(0)) wake();
      if (events === SltSta.CommandCompleted) return IrqReturn.Handled;
      events &= ~SltSta.CommandCompleted;
    }
    this.pendingEvents |= events;
    return IrqReturn.WakeThread;
  }

  /** irq_wake_thread: run the interrupt thread, or have it run again when it is running. */
  private wakeThread(): void {
    if (this.istRunning) {
      this.istAgain = true;
      return;
    }
    this.istRunning = true;
    spawn(this.runIst(), (result) => result instanceof Error && this.info(`interrupt thread failed: ${result.message}`));
  }

  private *runIst(): Task<void> {
    try {
      do {
        this.istAgain = false;
        yield* this.ist();
      } while (this.istAgain && !this.released);
    } finally {
      this.istRunning = false;
    }
  }

  /** pciehp_request: hand the interrupt thread an event of our own making (probe, sysfs, the push-button work). */
  private request(action: number): void {
    this.pendingEvents |= action;
    if (!this.pollMode) this.wakeThread();
  }

  /**
   * pciehp_poll (poll mode): from 10 s after probe, every 2 s, run the interrupt handler on
   * Slot Status and the thread for what it finds.
   */
  private *poll(): Task<void> {
    yield* this.sleep(POLL_MODE_START_MS);
    while (!this.released) {
      while (!this.released && ((yield* this.isr()) === IrqReturn.WakeThread || this.pendingEvents)) yield* this.ist();
      yield* this.sleep(POLL_MODE_INTERVAL_MS);
    }
  }

  /**
   * pciehp_ist: take the pending events and act on them: an Attention Button press first,
   * then a power fault (which these slots, without a power controller, never report), then a
   * disable request (sysfs, or the push-button work after a press) before presence and link
   * changes.
   */
  private *ist(): Task<IrqReturn> {
    const events = this.pendingEvents;
    this.pendingEvents = 0; // atomic_xchg(&ctrl->pending_events, 0)
    if (!events) return IrqReturn.None;
    if (events & SltSta.AttentionButtonPressed) {
      this.info(`Slot(${this.slotName}): Attention button pressed`);
      yield* this.handleButtonPress();
    }
    if (events & SltSta.PowerFaultDetected) {
      this.info(`Slot(${this.slotName}): Power fault`);
      yield* this.setIndicators(PwrInd.Off, AttnInd.On);
    }
    if (events & DISABLE_SLOT) yield* this.handleDisableRequest();
    else if (events & (SltSta.PresenceDetectChanged | SltSta.DlStateChanged)) yield* this.handlePresenceOrLinkChange(events);
    return IrqReturn.Handled;
  }

  // ---- slot state machine (pciehp_ctrl.c) ------------------------------------------------------

  /** schedule_delayed_work(&ctrl->button_work, 5 * HZ): nothing if the work is already pending. */
  private scheduleButtonWork(): void {
    if (this.buttonWork) return;
    this.buttonWork = this.os.rc.timer(BUTTON_DELAY_MS * MS, () => {
      this.buttonWork = null;
      this.queuePushbuttonWork();
    });
  }

  /** cancel_delayed_work(&ctrl->button_work). */
  private cancelButtonWork(): void {
    this.buttonWork?.();
    this.buttonWork = null;
  }

  /**
   * pciehp_queue_pushbutton_work: 5 s after a press, a slot still blinking off is handed to the
   * thread as a disable request (a safe removal), one still blinking on as a presence change.
   */
  private queuePushbuttonWork(): void {
    if (this.released) return;
    if (this.state === SlotState.BlinkingOff) this.request(DISABLE_SLOT);
    else if (this.state === SlotState.BlinkingOn) this.request(SltSta.PresenceDetectChanged);
  }

  /**
   * pciehp_handle_button_press: a press on a slot that is on (off) starts the 5 s in which it
   * blinks before it is turned off (on): Power Indicator Blink, Attention Indicator Off, the
   * push-button work scheduled. A press while blinking cancels: the work is cancelled, the
   * slot goes back to ON (Power Indicator On) or OFF (Power Indicator Off). A press while
   * powering on or off is ignored. Linux 6.5's messages.
   */
  private *handleButtonPress(): Task<void> {
    this.counters.buttonPresses++;
    switch (this.state) {
      case SlotState.Off:
      case SlotState.On:
        if (this.state === SlotState.On) {
          this.state = SlotState.BlinkingOff;
          this.info(`Slot(${this.slotName}): Button press: will power off in ${BUTTON_DELAY_MS / 1000} sec`);
        } else {
          this.state = SlotState.BlinkingOn;
          this.info(`Slot(${this.slotName}): Button press: will power on in ${BUTTON_DELAY_MS / 1000} sec`);
        }
        yield* this.setIndicators(PwrInd.Blink, AttnInd.Off); // blink power indicator and turn off attention
        this.scheduleButtonWork();
        break;
      case SlotState.BlinkingOff:
      case SlotState.BlinkingOn:
        // A second press within the 5 s cancels the pending removal or insertion.
        this.cancelButtonWork();
        if (this.state === SlotState.BlinkingOff) {
          this.state = SlotState.On;
          yield* this.setIndicators(PwrInd.On, AttnInd.Off);
          this.info(`Slot(${this.slotName}): Button press: canceling request to power off`);
        } else {
          this.state = SlotState.Off;
          yield* this.setIndicators(PwrInd.Off, AttnInd.Off);
          this.info(`Slot(${this.slotName}): Button press: canceling request to power on`);
        }
        break;
      default:
        this.info(`Slot(${this.slotName}): Button press: ignoring invalid state 0x${STATE_NUMBER[this.state].toString(16)}`);
    }
  }

  /**
   * pciehp_handle_presence_or_link_change: a slot that is on (or blinking off: its pending
   * removal is cancelled) is turned off whatever the change — even if it is occupied again,
   * it may not be the same card — as a surprise removal. Then, if a card is present or its
   * link is up, a slot that is off (or blinking on: its pending insertion is cancelled) is
   * turned on; if neither, a slot blinking on goes back off ("Card not present"), and any
   * other state is left as it is: a link down on a slot that is already OFF — the card
   * closing the slot after an orderly removal — does nothing.
   */
  private *handlePresenceOrLinkChange(events: number): Task<void> {
    if (this.state === SlotState.BlinkingOff || this.state === SlotState.On) {
      if (this.state === SlotState.BlinkingOff) this.cancelButtonWork();
      this.state = SlotState.PowerOff;
      if (events & SltSta.DlStateChanged) this.info(`Slot(${this.slotName}): Link Down`);
      if (events & SltSta.PresenceDetectChanged) this.info(`Slot(${this.slotName}): Card not present`);
      yield* this.disableSlot("surprise");
    }
    const present = yield* this.cardPresent();
    const linkActive = yield* this.checkLinkActive();
    if (present <= 0 && linkActive <= 0) {
      if (this.state === SlotState.BlinkingOn) {
        this.state = SlotState.Off;
        this.cancelButtonWork();
        yield* this.setIndicators(PwrInd.Off, INDICATOR_NOOP);
        this.info(`Slot(${this.slotName}): Card not present`);
      }
      return;
    }
    if (this.state === SlotState.BlinkingOn || this.state === SlotState.Off) {
      if (this.state === SlotState.BlinkingOn) this.cancelButtonWork();
      this.state = SlotState.PowerOn;
      if (present > 0) this.info(`Slot(${this.slotName}): Card present`);
      if (linkActive > 0) this.info(`Slot(${this.slotName}): Link Up`);
      yield* this.enableSlot();
    }
  }

  /** pciehp_handle_disable_request: a safe removal, asked for through sysfs or by the push-button work; pending push-button work is cancelled. */
  private *handleDisableRequest(): Task<void> {
    if (this.state === SlotState.BlinkingOn || this.state === SlotState.BlinkingOff) this.cancelButtonWork();
    this.state = SlotState.PowerOff;
    yield* this.disableSlot("safe");
  }

  /** pciehp_sysfs_disable_slot without the wait: ask the thread to take an enabled (or blinking off) slot down safely. */
  requestDisable(): boolean {
    if (this.state !== SlotState.On && this.state !== SlotState.BlinkingOff) {
      this.info(`Slot(${this.slotName}): Already ${this.state === SlotState.PowerOff ? "in powering off state" : "disabled"}`);
      return false;
    }
    this.request(DISABLE_SLOT);
    return true;
  }

  /** pciehp_sysfs_enable_slot without the wait: ask the thread to bring a disabled (or blinking on) slot up. */
  requestEnable(): boolean {
    if (this.state !== SlotState.Off && this.state !== SlotState.BlinkingOn) {
      this.info(`Slot(${this.slotName}): Already ${this.state === SlotState.PowerOn ? "in powering on state" : "enabled"}`);
      return false;
    }
    this.request(SltSta.PresenceDetectChanged);
    return true;
  }

  /**
   * pciehp_enable_slot → __pciehp_enable_slot → board_added; the slot ends ON or, on failure,
   * OFF — with the Power Indicator Off when the slot has a button (it may be blinking).
   */
  private *enableSlot(): Task<number> {
    const result = yield* this.boardAdded();
    if (result && this.attentionButton) yield* this.setIndicators(PwrInd.Off, INDICATOR_NOOP); // may be blinking
    this.state = result ? SlotState.Off : SlotState.On;
    if (result) this.counters.failedInsertions++;
    else this.counters.insertions++;
    this.os.notify({ kind: "hotplug", port: this.port, slot: Number(this.slotName), change: result ? "insertionFailed" : "insertion" });
    return result;
  }

  /** pciehp_disable_slot → __pciehp_disable_slot → remove_board; the slot ends OFF. */
  private *disableSlot(how: "surprise" | "safe"): Task<void> {
    yield* this.removeBoard(how);
    this.state = SlotState.Off;
    this.counters.removals++;
    if (how === "safe") this.counters.orderlyRemovals++;
    else this.counters.surpriseRemovals++;
    this.os.notify({ kind: "hotplug", port: this.port, slot: Number(this.slotName), change: "removal" });
  }

  /**
   * remove_board: unconfigure the device (safely or as a surprise), then — no power to switch
   * off — turn the Power Indicator off. After a button press this write is the last thing
   * the slot sees of the removal: the host card takes it as the removal being complete.
   */
  private *removeBoard(how: "surprise" | "safe"): Task<void> {
    yield* this.unconfigureDevice(how);
    yield* this.setIndicators(PwrInd.Off, INDICATOR_NOOP);
  }

  /**
   * board_added: no power to switch on; Power Indicator Blink; check the link and the device
   * behind it, then configure it; Power Indicator On, Attention Indicator Off. A failure
   * turns the slot off (set_slot_off).
   */
  private *boardAdded(): Task<number> {
    yield* this.setIndicators(PwrInd.Blink, INDICATOR_NOOP);
    let result = yield* this.checkLinkStatus();
    if (result === 0 && (this.powerFaultDetected || ((yield* this.readWord(Exp.SltSta)) & SltSta.PowerFaultDetected))) {
      this.info(`Slot(${this.slotName}): Power fault`);
      result = -5; // EIO
    }
    if (result === 0) {
      result = yield* this.configureDevice();
      if (result === EEXIST) result = 0;
      else if (result !== 0) this.info(`Cannot add device at 0000:${hex2(this.port.bridge!.secondary)}:00`);
    }
    if (result !== 0) {
      yield* this.setSlotOff();
      return result;
    }
    yield* this.setIndicators(PwrInd.On, AttnInd.Off);
    return 0;
  }

  /** set_slot_off: no power to switch off; Power Indicator Off, Attention Indicator On. */
  private *setSlotOff(): Task<void> {
    yield* this.setIndicators(PwrInd.Off, AttnInd.On);
  }

  /**
   * pciehp_check_link_status: wait for the link (pcie_wait_for_link, which includes the
   * 100 ms before configuration requests), poll the Vendor ID of device 0
   * (pci_bus_check_dev), forget the link and presence events up to here when a device
   * answered (they were its own arrival), and check that the link trained.
   */
  private *checkLinkStatus(): Task<number> {
    if (!(yield* this.waitForLink(true))) {
      this.info(`Slot(${this.slotName}): No link`);
      return -1;
    }
    const found = yield* this.busCheckDev();
    if (found) this.pendingEvents &= ~(SltSta.DlStateChanged | SltSta.PresenceDetectChanged);
    const linkStatus = yield* this.readWord(Exp.LnkSta);
    if (linkStatus & LnkSta.Training || !(linkStatus & LnkSta.Width)) {
      this.info(`Slot(${this.slotName}): Cannot train link: status ${hex4(linkStatus)}`);
      return -1;
    }
    if (!found) {
      this.info(`Slot(${this.slotName}): No device found`);
      return -1;
    }
    return 0;
  }

  /**
   * pcie_wait_for_link_delay(pdev, active, 100) (drivers/pci/pci.c): without DL Link Active
   * reporting wait 1000 + 100 ms and hope; with it, give the link 20 ms to start training,
   * poll DL Link Active every 10 ms for up to 1000 ms, and once it is active wait the 100 ms
   * software owes a device before its first configuration request. (Linux 6.5 and later
   * poll every 1 ms through pcie_wait_for_link_status; the 10 ms of earlier kernels is kept.)
   */
  private *waitForLink(active: boolean): Task<boolean> {
    if (!this.linkActiveReporting) {
      yield* this.sleep(LINK_TIMEOUT_MS + CONFIG_READY_MS);
      return true;
    }
    if (active) yield* this.sleep(LINK_DETECT_MS);
    let timeout = LINK_TIMEOUT_MS;
    let up: boolean;
    for (;;) {
      up = ((yield* this.readWord(Exp.LnkSta)) & LnkSta.DlActive) !== 0;
      if (up === active || timeout <= 0) break;
      yield* this.sleep(LINK_POLL_MS);
      timeout -= LINK_POLL_MS;
    }
    if (active && up) yield* this.sleep(CONFIG_READY_MS);
    else if (up !== active) this.pciInfo(`Data Link Layer Link Active not ${active ? "set" : "cleared"} in ${LINK_TIMEOUT_MS} msec`);
    return up === active;
  }

  /**
   * pci_bus_check_dev: read the Vendor ID of device 0 below the port every 20 ms for up to
   * 1 s (pci_bus_read_dev_vendor_id); a failed request (Unsupported Request: all ones) or an
   * ID of 0 means nothing is there yet.
   */
  private *busCheckDev(): Task<boolean> {
    let left = VENDOR_ID_TIMEOUT_MS;
    do {
      if ((yield* this.os.readVendorId(this.port.bridge!.secondary, 0, 0)) !== null) return true;
      yield* this.sleep(VENDOR_ID_POLL_MS);
      left -= VENDOR_ID_POLL_MS;
    } while (left > 0);
    return false;
  }

  // ---- the OS side (pciehp_pci.c) ----------------------------------------------------------------

  /**
   * pciehp_configure_device: unless the OS already has device 0 below the port, scan it
   * (pci_scan_slot), assign its BARs inside the port's windows
   * (pci_assign_unassigned_bridge_resources) and add it, which binds its driver
   * (pci_bus_add_devices).
   */
  private *configureDevice(): Task<number> {
    const bus = this.port.bridge!.secondary;
    if (this.os.functionAt(bus, 0, 0)) return EEXIST; // configured at boot or by an earlier hot-add
    const found = yield* this.os.scanSlot(this.port);
    if (found.length === 0) {
      this.info("No new device found");
      return ENODEV;
    }
    yield* this.os.addDevices(found);
    return 0;
  }

  /**
   * pciehp_unconfigure_device: on a surprise removal every function below is marked
   * disconnected before anything else, so that drivers stop touching it; then each one's
   * driver is removed and the function goes away (OperatingSystem.removeBelow).
   */
  private *unconfigureDevice(how: "surprise" | "safe"): Task<void> {
    yield* this.os.removeBelow(this.port, how);
  }
}
