// Who this card is (from BOOT) and how its link is configured (from CONFIG, the flash
// configuration record). Both arrive once per boot; the link state machine reads them.

import { ConfigBody, CardRole, MacsecSetting } from "../../board/map/mailbox";
import { PAIRING_KEY_SIZE, ADMIN_KEY_SIZE, LinkCipher } from "../../board/map/link";
import { PORTS, PORT_ADDRESS_BYTE } from "../../board/map/registers";

export let role: i32 = CardRole.Host;
export let serial: u32 = 0;
/** Ports the state machine runs: the host card's downstream ports, or 1 on a chassis card. */
export let ports: i32 = 0;
/** Chassis slots (chassis card) or downstream ports (host card), from BOOT. */
export let slots: i32 = 0;
/** Chassis card: which slots hold a device (CardReg.SlotsPresent, read at boot); all of them until the fabric answers. */
export let slotsPresent: u32 = 0;
/** The address of each Ethernet port, 8 bytes apart: port 0's from BOOT, port p's with p added to byte PORT_ADDRESS_BYTE. */
export const mac = memory.data(8 * PORTS);

/** The address of Ethernet port `port`. */
export function address(port: i32): usize {
  return mac + 8 * port;
}

export let configured = false;
export let group: u32 = 0;
export let protocolMax: i32 = 0;
export let ackPolicies: i32 = 0;
export let mtu: i32 = 0;
export let maxPayload: i32 = 0;
export let keepaliveNs: u32 = 0;
export let silenceNs: u32 = 0;
export let graceNs: u32 = 0;
export let managementVlan: u32 = 0;
/** ConfigBody.Macsec (MacsecSetting): the cipher suites this card accepts for its data path. */
export let macsec: i32 = 0;
export const pairingKey = memory.data(PAIRING_KEY_SIZE);
export const adminKey = memory.data(ADMIN_KEY_SIZE);
/** The CONFIG body as it came from flash, with the group changes since: what a new configuration record holds. */
export const record = memory.data(ConfigBody.Size);

export function reset(): void {
  role = CardRole.Host;
  serial = 0;
  ports = 0;
  slots = 0;
  slotsPresent = 0;
  memory.fill(mac, 0, 8 * PORTS);
  configured = false;
  group = 0;
  protocolMax = 0;
  ackPolicies = 0;
  mtu = 0;
  maxPayload = 0;
  keepaliveNs = 0;
  silenceNs = 0;
  graceNs = 0;
  managementVlan = 0;
  macsec = 0;
  memory.fill(pairingKey, 0, PAIRING_KEY_SIZE);
  memory.fill(adminKey, 0, ADMIN_KEY_SIZE);
  memory.fill(record, 0, ConfigBody.Size);
}

export function setIdentity(newRole: i32, newSerial: u32, newSlots: i32, address: usize): void {
  role = newRole;
  serial = newSerial;
  slots = newSlots;
  slotsPresent = newRole == CardRole.Chassis ? (1 << newSlots) - 1 : 0;
  ports = newRole == CardRole.Host ? newSlots : 1;
  for (let p = 0; p < PORTS; p++) {
    memory.copy(mac + 8 * p, address, 6);
    store<u8>(mac + 8 * p + PORT_ADDRESS_BYTE, load<u8>(address + PORT_ADDRESS_BYTE) + p);
  }
}

/** The fabric's answer to the boot-time read of CardReg.SlotsPresent (chassis cards). */
export function setSlotsPresent(bits: u32): void {
  if (role == CardRole.Chassis) slotsPresent = bits & (((1 << slots) - 1) as u32);
}

/** Takes a CONFIG body the dispatcher has validated. */
export function apply(body: usize): void {
  group = load<u16>(body, ConfigBody.Group) as u32;
  protocolMax = load<u8>(body, ConfigBody.ProtocolMax) as i32;
  ackPolicies = load<u8>(body, ConfigBody.AckPolicies) as i32;
  mtu = load<u16>(body, ConfigBody.Mtu) as i32;
  maxPayload = load<u16>(body, ConfigBody.MaxPayload) as i32;
  keepaliveNs = load<u32>(body, ConfigBody.KeepaliveNs);
  silenceNs = load<u32>(body, ConfigBody.SilenceNs);
  graceNs = load<u32>(body, ConfigBody.GraceNs);
  managementVlan = load<u16>(body, ConfigBody.ManagementVlan) as u32;
  macsec = load<u8>(body, ConfigBody.Macsec) as i32;
  memory.copy(pairingKey, body + ConfigBody.PairingKey, PAIRING_KEY_SIZE);
  memory.copy(adminKey, body + ConfigBody.AdminKey, ADMIN_KEY_SIZE);
  memory.copy(record, body, ConfigBody.Size);
  configured = true;
}

/** The LinkCipher bits this card proposes: what MacsecSetting accepts. */
export function ciphers(): u32 {
  if (macsec == MacsecSetting.Off) return LinkCipher.Clear;
  if (macsec == MacsecSetting.Xpn256) return LinkCipher.Xpn256;
  return LinkCipher.Xpn128 | LinkCipher.Xpn256;
}

/** The card moves to `newGroup` (already in its flash configuration). */
export function setGroup(newGroup: u32): void {
  group = newGroup;
  store<u16>(record, newGroup as u16, ConfigBody.Group);
}
