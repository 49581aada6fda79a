// PCI and PCI Express register and packet layouts, shared by the firmware (AssemblyScript:
// the virtual switch's configuration space and its slow path for TLPs) and the board model
// (TypeScript: board/pcie/). Offsets are in bytes, bit masks as the specification draws
// them. docs/config-space.md and docs/tlp.md describe every field.

// ---- configuration space header (PCI Local Bus 3.0 chapter 6, PCI-to-PCI Bridge 1.2 chapter 3)

/** Offsets common to both header types. */
export enum Hdr {
  VendorId = 0x00,
  DeviceId = 0x02,
  Command = 0x04,
  Status = 0x06,
  RevisionId = 0x08,
  ClassCode = 0x09,
  CacheLineSize = 0x0c,
  LatencyTimer = 0x0d,
  HeaderType = 0x0e,
  Bist = 0x0f,
  Bar0 = 0x10,
  CapabilitiesPointer = 0x34,
  InterruptLine = 0x3c,
  InterruptPin = 0x3d,
}

/** Type 1 only. */
export enum Hdr1 {
  PrimaryBus = 0x18,
  SecondaryBus = 0x19,
  SubordinateBus = 0x1a,
  SecondaryLatencyTimer = 0x1b,
  IoBase = 0x1c,
  IoLimit = 0x1d,
  SecondaryStatus = 0x1e,
  MemoryBase = 0x20,
  MemoryLimit = 0x22,
  PrefetchableBase = 0x24,
  PrefetchableLimit = 0x26,
  PrefetchableBaseUpper = 0x28,
  PrefetchableLimitUpper = 0x2c,
  IoBaseUpper = 0x30,
  IoLimitUpper = 0x32,
  ExpansionRom = 0x38,
  BridgeControl = 0x3e,
}

export enum Command {
  Io = 1 << 0,
  Memory = 1 << 1,
  BusMaster = 1 << 2,
  SpecialCycles = 1 << 3,
  MemoryWriteInvalidate = 1 << 4,
  VgaPaletteSnoop = 1 << 5,
  ParityErrorResponse = 1 << 6,
  IdselStepping = 1 << 7,
  Serr = 1 << 8,
  FastBackToBack = 1 << 9,
  InterruptDisable = 1 << 10,
}

/** Status (and, with bit 14 read as Received System Error, Secondary Status). */
export enum Status {
  InterruptStatus = 1 << 3,
  CapabilitiesList = 1 << 4,
  Capable66MHz = 1 << 5,
  FastBackToBack = 1 << 7,
  MasterDataParityError = 1 << 8,
  DevselMask = 3 << 9,
  SignaledTargetAbort = 1 << 11,
  ReceivedTargetAbort = 1 << 12,
  ReceivedMasterAbort = 1 << 13,
  SignaledSystemError = 1 << 14,
  DetectedParityError = 1 << 15,
}

export enum BridgeControl {
  ParityErrorResponse = 1 << 0,
  Serr = 1 << 1,
  Isa = 1 << 2,
  Vga = 1 << 3,
  Vga16 = 1 << 4,
  MasterAbortMode = 1 << 5,
  SecondaryBusReset = 1 << 6,
  FastBackToBack = 1 << 7,
  PrimaryDiscardTimeout = 1 << 8,
  SecondaryDiscardTimeout = 1 << 9,
  DiscardTimerStatus = 1 << 10,
  DiscardTimerSerr = 1 << 11,
}

// ---- capabilities

export enum CapabilityId {
  PowerManagement = 0x01,
  Msi = 0x05,
  VendorSpecific = 0x09,
  Express = 0x10,
  MsiX = 0x11,
}

export enum MsiCtrl {
  Enable = 0x0001,
  MultipleMessageCapable = 0x000e,
  MultipleMessageEnable = 0x0070,
  Address64 = 0x0080,
  PerVectorMasking = 0x0100,
}

/** Device/Port Type (PCI Express Capabilities register bits 7:4). */
export enum PortType {
  Endpoint = 0b0000,
  LegacyEndpoint = 0b0001,
  RootPort = 0b0100,
  UpstreamPort = 0b0101,
  DownstreamPort = 0b0110,
}

/** Register offsets inside the PCI Express capability (version 2: 0x3c bytes). */
export enum Exp {
  Flags = 0x02,
  DevCap = 0x04,
  DevCtl = 0x08,
  DevSta = 0x0a,
  LnkCap = 0x0c,
  LnkCtl = 0x10,
  LnkSta = 0x12,
  SltCap = 0x14,
  SltCtl = 0x18,
  SltSta = 0x1a,
  RootCtl = 0x1c,
  RootCap = 0x1e,
  RootSta = 0x20,
  DevCap2 = 0x24,
  DevCtl2 = 0x28,
  DevSta2 = 0x2a,
  LnkCap2 = 0x2c,
  LnkCtl2 = 0x30,
  LnkSta2 = 0x32,
  SltCap2 = 0x34,
  SltCtl2 = 0x38,
  SltSta2 = 0x3a,
  Size = 0x3c,
}

export enum ExpFlags {
  Version = 0x000f,
  Type = 0x00f0,
  SlotImplemented = 0x0100,
  InterruptMessage = 0x3e00,
}

export enum DevCap {
  MaxPayload = 0x00000007,
  PhantomFunctions = 0x00000018,
  ExtendedTag = 0x00000020,
  L0sLatency = 0x000001c0,
  L1Latency = 0x00000e00,
  RoleBasedErrors = 0x00008000,
  SlotPowerValue = 0x03fc0000,
  SlotPowerScale = 0x0c000000,
  Flr = 0x10000000,
}

export enum DevCtl {
  CorrectableErrorReporting = 0x0001,
  NonFatalErrorReporting = 0x0002,
  FatalErrorReporting = 0x0004,
  UnsupportedRequestReporting = 0x0008,
  RelaxedOrdering = 0x0010,
  MaxPayload = 0x00e0,
  ExtendedTag = 0x0100,
  PhantomFunctions = 0x0200,
  AuxPower = 0x0400,
  NoSnoop = 0x0800,
  MaxReadRequest = 0x7000,
  /** Initiate Function Level Reset (Endpoints with FLR; always reads 0). */
  InitiateFlr = 0x8000,
}

export enum DevSta {
  CorrectableError = 0x0001,
  NonFatalError = 0x0002,
  FatalError = 0x0004,
  UnsupportedRequest = 0x0008,
  AuxPower = 0x0010,
  TransactionsPending = 0x0020,
}

export enum LnkCap {
  MaxSpeed = 0x0000000f,
  MaxWidth = 0x000003f0,
  Aspm = 0x00000c00,
  L0sExit = 0x00007000,
  L1Exit = 0x00038000,
  ClockPm = 0x00040000,
  SurpriseDown = 0x00080000,
  DlActiveReporting = 0x00100000,
  BandwidthNotification = 0x00200000,
  AspmOptionality = 0x00400000,
  PortNumber = 0xff000000,
}

export enum LnkCtl {
  Aspm = 0x0003,
  Rcb = 0x0008,
  LinkDisable = 0x0010,
  /** Downstream and Root Ports; always reads 0 (a hook sees the write). */
  RetrainLink = 0x0020,
  CommonClock = 0x0040,
  ExtendedSynch = 0x0080,
  ClockPm = 0x0100,
  HwAutonomousWidthDisable = 0x0200,
  BandwidthManagementInterrupt = 0x0400,
  AutonomousBandwidthInterrupt = 0x0800,
}

export enum LnkSta {
  Speed = 0x000f,
  Width = 0x03f0,
  Training = 0x0800,
  SlotClock = 0x1000,
  DlActive = 0x2000,
  BandwidthManagement = 0x4000,
  AutonomousBandwidth = 0x8000,
}

export enum SltCap {
  AttentionButton = 0x00000001,
  PowerController = 0x00000002,
  MrlSensor = 0x00000004,
  AttentionIndicator = 0x00000008,
  PowerIndicator = 0x00000010,
  HotPlugSurprise = 0x00000020,
  HotPlugCapable = 0x00000040,
  PowerLimitValue = 0x00007f80,
  PowerLimitScale = 0x00018000,
  Interlock = 0x00020000,
  NoCommandCompleted = 0x00040000,
  PhysicalSlot = 0xfff80000,
}

export enum SltCtl {
  AttentionButtonEnable = 0x0001,
  PowerFaultEnable = 0x0002,
  MrlSensorEnable = 0x0004,
  PresenceDetectEnable = 0x0008,
  CommandCompletedEnable = 0x0010,
  HotPlugInterruptEnable = 0x0020,
  AttentionIndicator = 0x00c0,
  PowerIndicator = 0x0300,
  PowerControl = 0x0400,
  /** Electromechanical Interlock Control: writing 1 toggles the interlock; reads 0. */
  InterlockControl = 0x0800,
  DlStateChangedEnable = 0x1000,
}

export enum SltSta {
  AttentionButtonPressed = 0x0001,
  PowerFaultDetected = 0x0002,
  MrlSensorChanged = 0x0004,
  PresenceDetectChanged = 0x0008,
  CommandCompleted = 0x0010,
  MrlSensorState = 0x0020,
  PresenceDetectState = 0x0040,
  InterlockStatus = 0x0080,
  DlStateChanged = 0x0100,
}

// ---- transaction layer packets (PCI Express Base chapter 2)

/** Fmt field (byte 0, bits 7-5). */
export enum Fmt {
  NoData3DW = 0b000,
  NoData4DW = 0b001,
  Data3DW = 0b010,
  Data4DW = 0b011,
  Prefix = 0b100,
}

/** Type field (byte 0, bits 4-0); messages are 0b10rrr with the routing in rrr. */
export enum TlpType {
  Mem = 0b00000,
  MemLocked = 0b00001,
  Io = 0b00010,
  Cfg0 = 0b00100,
  Cfg1 = 0b00101,
  Cpl = 0b01010,
  CplLocked = 0b01011,
  Msg = 0b10000,
}

/** Completion Status (Table 2-34). */
export enum CplStatus {
  SuccessfulCompletion = 0b000,
  UnsupportedRequest = 0b001,
  ConfigRequestRetry = 0b010,
  CompleterAbort = 0b100,
}

/** Byte offsets in a TLP header (all fields big-endian; docs/tlp.md). */
export enum TlpHeader {
  FmtType = 0, //        Fmt (7:5), Type (4:0)
  Flags = 1, //          T9, TC, T8, Attr[2], LN, TH
  LengthHigh = 2, //     TD (7), EP (6), Attr[1:0] (5:4), AT (3:2), Length[9:8] (1:0)
  LengthLow = 3, //      Length[7:0]
  RequesterId = 4, //    requests: u16
  Tag = 6, //            requests: u8
  ByteEnables = 7, //    requests: Last DW BE (7:4), First DW BE (3:0)
  CompleterId = 4, //    completions: u16
  StatusBcm = 6, //      completions: Status (7:5), BCM (4), Byte Count[11:8] (3:0)
  ByteCountLow = 7, //   completions: Byte Count[7:0]
  CplRequesterId = 8, // completions: u16
  CplTag = 10, //        completions: u8
  LowerAddress = 11, //  completions: Lower Address[6:0]
  Bus = 8, //            configuration requests: target bus
  DevFn = 9, //          configuration requests: device (7:3), function (2:0)
  ExtRegister = 10, //   configuration requests: Extended Register Number (3:0)
  Register = 11, //      configuration requests: Register Number (7:2)
  Address32 = 8, //      3DW memory requests: Address[31:2]
  Address64 = 8, //      4DW memory requests: Address[63:32], then Address[31:2] at 12
  Short = 12, //         3DW header size
  Long = 16, //          4DW header size
}

// ---- the host card's virtual switch (docs/config-space.md, "Virtual switch") ----------------

/** Downstream ports the host card presents, whatever is paired: the hot-plug slots the server sees. */
export const SWITCH_DOWNSTREAM_PORTS = 8;
/** Switch ports: the upstream port (0) and the downstream ports (1..SWITCH_DOWNSTREAM_PORTS). */
export const SWITCH_PORTS = 9;
export const SWITCH_VENDOR_ID = 0x1fff;
export const SWITCH_UPSTREAM_DEVICE_ID = 0x0001;
export const SWITCH_DOWNSTREAM_DEVICE_ID = 0x0002;
export const SWITCH_REVISION = 0x01;
/** Class code PCI-to-PCI bridge, normal decode. */
export const BRIDGE_CLASS = 0x060400;
/** Capability offsets in every virtual port's configuration space. */
export enum SwitchCapability {
  Express = 0x40, // PCI Express capability, version 2 (0x3c bytes)
  Msi = 0x80, //     MSI, 64-bit address, one vector (0x0e bytes)
}
