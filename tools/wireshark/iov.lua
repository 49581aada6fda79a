-- Wireshark dissector for the IOV tunnel protocol (EtherType 0x88B5): the tunnel header, the
-- TLP records of DATA frames with every TLP decoded (PCI Express Base Specification, chapter 2),
-- ACK and KEEPALIVE bodies, and CONTROL messages (link training, pairing, paths, management).
-- docs/wire-format.md and docs/management.md define the bytes; docs/traces.md says how to load
-- this file:
--
--   tshark -X lua_script:tools/wireshark/iov.lua -r capture.pcap -V
--   tshark -X lua_script:tools/wireshark/iov.lua -r capture.pcap -Y 'iov.tlp.type == "MRd"'
--
-- or copy it into Wireshark's personal Lua plugins folder (Help > About Wireshark > Folders).
-- Within a session, DATA, ACK and KEEPALIVE frames travel inside MACsec: `iov pcap decrypt`
-- turns a capture's MACsec frames back into the frames this file reads.
--
-- Written for the Lua of Wireshark 4.0 and later (Lua 5.2 to 5.4): no bitwise operators, so
-- bit fields are taken with arithmetic (`bits`) or with a field's mask.

local iov = Proto("iov", "IOV PCIe tunnel")

local ETHERTYPE = 0x88B5
local HEADER = 16

local function bits(value, high, low)
  return math.floor(value / 2 ^ low) % 2 ^ (high - low + 1)
end

local function hex(value, digits)
  return string.format("0x%0" .. digits .. "x", value)
end

-- A bus/device/function ID as lspci writes it.
local function bdf(id)
  return string.format("%02x:%02x.%d", bits(id, 15, 8), bits(id, 7, 3), bits(id, 2, 0))
end

local kinds = { [1] = "DATA", [2] = "ACK", [3] = "KEEPALIVE", [0x10] = "CONTROL" }

local control_types = {
  [1] = "DISCOVER", [2] = "OFFER", [3] = "ACCEPT", [4] = "AUTH", [5] = "READY", [6] = "REJECT",
  [7] = "CLOSE", [8] = "RELEASE", [9] = "MANAGE_REQUEST", [10] = "MANAGE_REPLY", [11] = "JOIN",
}
local roles = { [0] = "host card", [1] = "chassis card", [2] = "management station" }
local reasons = {
  [1] = "Busy", [2] = "NoCommonVersion", [3] = "NoCommonAckPolicy", [4] = "PayloadUnfit",
  [5] = "AuthFailed", [6] = "ConfigureFailed", [7] = "Timeout", [8] = "GraceExpired",
  [9] = "PeerRebooted", [10] = "PeerLost", [11] = "PeerClosed", [12] = "Reassigned",
  [13] = "Released", [14] = "NoCommonCipher",
}
local manage_ops = { [1] = "Discover", [2] = "Status", [3] = "SetGroup" }
local manage_statuses = { [0] = "Ok", [1] = "Busy", [2] = "BadGroup", [3] = "FlashFailed" }
local link_states = {
  [0] = "Disabled", [1] = "Discover", [2] = "Negotiate", [3] = "Authenticate", [4] = "Configure",
  [5] = "Active", [6] = "Recovery", [7] = "Down",
}
local reply_counters = {
  "LinkUps", "LinkDowns", "Recoveries", "AuthFailures", "HotplugEvents", "ManageRequests",
  "ManageAuthFailures", "ManageReplays",
}
local macsec_drops = { "bad ICV", "late", "unknown AN", "unknown SCI", "in clear", "bad SecTAG" }
local path_figures = { "RTT (ns)", "frames sent", "frames received", "frames resent" }

local fmts = {
  [0] = "3DW, no data", [1] = "4DW, no data", [2] = "3DW, with data", [3] = "4DW, with data",
  [4] = "TLP prefix",
}
local cpl_statuses = {
  [0] = "Successful Completion", [1] = "Unsupported Request",
  [2] = "Configuration Request Retry Status", [4] = "Completer Abort",
}
local msg_routings = {
  [0] = "routed to the root complex", [1] = "routed by address", [2] = "routed by ID",
  [3] = "broadcast from the root complex", [4] = "local, terminate at receiver",
  [5] = "gathered and routed to the root complex",
}
local msg_codes = {
  [0x00] = "Unlock", [0x10] = "LTR", [0x12] = "OBFF", [0x14] = "PM_Active_State_Nak",
  [0x18] = "PM_PME", [0x19] = "PME_Turn_Off", [0x1b] = "PME_TO_Ack",
  [0x20] = "Assert_INTA", [0x21] = "Assert_INTB", [0x22] = "Assert_INTC", [0x23] = "Assert_INTD",
  [0x24] = "Deassert_INTA", [0x25] = "Deassert_INTB", [0x26] = "Deassert_INTC",
  [0x27] = "Deassert_INTD", [0x30] = "ERR_COR", [0x31] = "ERR_NONFATAL", [0x33] = "ERR_FATAL",
  [0x50] = "Set_Slot_Power_Limit", [0x52] = "PTM Request", [0x53] = "PTM Response",
  [0x7e] = "Vendor_Defined Type 0", [0x7f] = "Vendor_Defined Type 1",
}

-- The x86 MSI address window: a memory write of one DW into it is a message signalled interrupt.
local MSI_LOW, MSI_HIGH = 0xfee00000, 0xfeefffff

local F = {
  version = ProtoField.uint8("iov.version", "Version", base.DEC),
  kind = ProtoField.uint8("iov.kind", "Kind", base.HEX, kinds),
  length = ProtoField.uint16("iov.length", "Length", base.DEC),
  session = ProtoField.uint32("iov.session", "Session", base.HEX),
  seq = ProtoField.uint32("iov.seq", "Sequence number", base.DEC),
  ack = ProtoField.uint32("iov.ack", "Acknowledgement number", base.DEC),

  record = ProtoField.bytes("iov.record", "TLP record"),
  record_slot = ProtoField.uint16("iov.record.slot", "Slot", base.DEC, nil, 0xe000),
  record_size = ProtoField.uint16("iov.record.size", "Size", base.DEC, nil, 0x1fff),
  records = ProtoField.uint16("iov.records", "TLP records", base.DEC),

  tlp_fmt = ProtoField.uint8("iov.tlp.fmt", "Fmt", base.DEC, fmts, 0xe0),
  tlp_typefield = ProtoField.uint8("iov.tlp.typefield", "Type field", base.HEX, nil, 0x1f),
  tlp_type = ProtoField.string("iov.tlp.type", "TLP type"),
  tlp_tc = ProtoField.uint8("iov.tlp.tc", "Traffic class", base.DEC, nil, 0x70),
  tlp_th = ProtoField.bool("iov.tlp.th", "Processing hints (TH)", 8, nil, 0x01),
  tlp_td = ProtoField.bool("iov.tlp.td", "Digest present (TD)", 8, nil, 0x80),
  tlp_ep = ProtoField.bool("iov.tlp.ep", "Poisoned (EP)", 8, nil, 0x40),
  tlp_ro = ProtoField.bool("iov.tlp.attr.ro", "Relaxed ordering", 8, nil, 0x20),
  tlp_ns = ProtoField.bool("iov.tlp.attr.ns", "No snoop", 8, nil, 0x10),
  tlp_ido = ProtoField.bool("iov.tlp.attr.ido", "ID-based ordering", 8, nil, 0x04),
  tlp_at = ProtoField.uint8("iov.tlp.at", "Address type", base.DEC, nil, 0x0c),
  tlp_length = ProtoField.uint16("iov.tlp.length", "Length (DW)", base.DEC),
  tlp_requester = ProtoField.uint16("iov.tlp.requester", "Requester ID", base.HEX),
  tlp_completer = ProtoField.uint16("iov.tlp.completer", "Completer ID", base.HEX),
  tlp_tag = ProtoField.uint16("iov.tlp.tag", "Tag", base.DEC),
  tlp_last_be = ProtoField.uint8("iov.tlp.last_be", "Last DW byte enables", base.HEX, nil, 0xf0),
  tlp_first_be = ProtoField.uint8("iov.tlp.first_be", "First DW byte enables", base.HEX, nil, 0x0f),
  tlp_addr = ProtoField.uint64("iov.tlp.addr", "Address", base.HEX),
  tlp_target = ProtoField.uint16("iov.tlp.target", "Target (bus:device.function)", base.HEX),
  tlp_register = ProtoField.uint16("iov.tlp.register", "Register", base.HEX),
  tlp_status = ProtoField.uint8("iov.tlp.status", "Completion status", base.DEC, cpl_statuses, 0xe0),
  tlp_bcm = ProtoField.bool("iov.tlp.bcm", "Byte count modified", 8, nil, 0x10),
  tlp_byte_count = ProtoField.uint16("iov.tlp.byte_count", "Byte count", base.DEC),
  tlp_lower_addr = ProtoField.uint8("iov.tlp.lower_addr", "Lower address", base.HEX, nil, 0x7f),
  tlp_msg_routing = ProtoField.uint8("iov.tlp.msg.routing", "Message routing", base.DEC, msg_routings, 0x07),
  tlp_msg_code = ProtoField.uint8("iov.tlp.msg.code", "Message code", base.HEX, msg_codes),
  tlp_msg_fields = ProtoField.bytes("iov.tlp.msg.fields", "Message fields"),
  tlp_data = ProtoField.bytes("iov.tlp.data", "Data"),
  tlp_ecrc = ProtoField.uint32("iov.tlp.ecrc", "ECRC", base.HEX),
  tlp_msi = ProtoField.bool("iov.tlp.msi", "MSI"),
  tlp_msi_data = ProtoField.uint16("iov.tlp.msi.data", "MSI data", base.HEX),
  tlp_msi_dest = ProtoField.uint8("iov.tlp.msi.dest", "MSI destination ID", base.DEC),

  credit = {
    ProtoField.uint16("iov.credit.ph", "Posted header credit limit", base.DEC),
    ProtoField.uint16("iov.credit.pd", "Posted data credit limit", base.DEC),
    ProtoField.uint16("iov.credit.nph", "Non-posted header credit limit", base.DEC),
    ProtoField.uint16("iov.credit.npd", "Non-posted data credit limit", base.DEC),
    ProtoField.uint16("iov.credit.cplh", "Completion header credit limit", base.DEC),
    ProtoField.uint16("iov.credit.cpld", "Completion data credit limit", base.DEC),
  },
  sack_blocks = ProtoField.uint8("iov.sack.blocks", "SACK blocks", base.DEC),
  keys = ProtoField.uint8("iov.keys", "Keys", base.HEX),
  keys_valid = ProtoField.bool("iov.keys.valid", "Newest receive SA named", 8, nil, 0x80),
  keys_an = ProtoField.uint8("iov.keys.an", "Newest receive SA's AN", base.DEC, nil, 0x03),
  echo = ProtoField.uint8("iov.echo", "Congestion marks echoed (mod 32)", base.DEC, nil, 0x7c),
  sack = ProtoField.bytes("iov.sack", "SACK block"),
  sack_first = ProtoField.uint32("iov.sack.first", "First", base.DEC),
  sack_end = ProtoField.uint32("iov.sack.end", "End (exclusive)", base.DEC),

  ctl_type = ProtoField.uint8("iov.ctl.type", "Message", base.DEC, control_types),
  ctl_version = ProtoField.uint8("iov.ctl.version", "Link protocol version", base.DEC),
  ctl_role = ProtoField.uint8("iov.ctl.role", "Role", base.DEC, roles),
  ctl_group = ProtoField.uint16("iov.ctl.group", "Group", base.DEC),
  ctl_serial = ProtoField.uint32("iov.ctl.serial", "Serial", base.HEX),
  ctl_boot_id = ProtoField.uint32("iov.ctl.boot_id", "Boot ID", base.HEX),
  ctl_reserved = ProtoField.bytes("iov.ctl.reserved", "Reserved"),
  ctl_version_min = ProtoField.uint8("iov.ctl.version_min", "Lowest version", base.DEC),
  ctl_version_max = ProtoField.uint8("iov.ctl.version_max", "Highest version", base.DEC),
  ctl_flags = ProtoField.uint8("iov.ctl.flags", "Flags", base.HEX),
  ctl_unpaired = ProtoField.bool("iov.ctl.flags.unpaired", "Unpaired", 8, nil, 0x01),
  ctl_solicit = ProtoField.bool("iov.ctl.flags.solicit", "Solicit", 8, nil, 0x02),
  ctl_reply = ProtoField.bool("iov.ctl.flags.reply", "Reply", 8, nil, 0x01),
  ctl_slots = ProtoField.uint8("iov.ctl.slots", "Slots", base.DEC),
  ctl_number = ProtoField.uint32("iov.ctl.number", "DISCOVER number in this boot", base.DEC),
  ctl_nonce = ProtoField.bytes("iov.ctl.nonce", "Nonce"),
  ctl_tag = ProtoField.bytes("iov.ctl.tag", "HMAC-SHA-256 tag"),
  ctl_reason = ProtoField.uint8("iov.ctl.reason", "Reason", base.DEC, reasons),
  ctl_port = ProtoField.uint8("iov.ctl.port", "Ethernet port", base.DEC),
  ctl_discovers = ProtoField.uint32("iov.ctl.discovers", "DISCOVERs sent in this boot", base.DEC),

  prop = ProtoField.bytes("iov.proposal", "Proposal"),
  prop_ack_policies = ProtoField.uint8("iov.proposal.ack_policies", "Acknowledgement policies", base.HEX),
  prop_selective = ProtoField.bool("iov.proposal.selective", "Selective repeat", 8, nil, 0x01),
  prop_gobackn = ProtoField.bool("iov.proposal.gobackn", "Go-back-N", 8, nil, 0x02),
  prop_ack_frames = ProtoField.uint8("iov.proposal.ack_frames", "Acknowledge after (frames)", base.DEC),
  prop_mtu = ProtoField.uint16("iov.proposal.mtu", "MTU", base.DEC),
  prop_max_payload = ProtoField.uint16("iov.proposal.max_payload", "Max payload", base.DEC),
  prop_reorder = ProtoField.uint16("iov.proposal.reorder_kib", "Reorder buffer (KiB)", base.DEC),
  prop_slots_present = ProtoField.uint8("iov.proposal.slots_present", "Slots holding a device", base.HEX),
  prop_credit = ProtoField.uint16("iov.proposal.credit", "Credits"),
  prop_keepalive = ProtoField.uint32("iov.proposal.keepalive_ns", "Keepalive (ns)", base.DEC),
  prop_silence = ProtoField.uint32("iov.proposal.silence_ns", "Silence (ns)", base.DEC),
  prop_grace = ProtoField.uint32("iov.proposal.grace_ns", "Grace (ns)", base.DEC),
  prop_ack_delay = ProtoField.uint32("iov.proposal.ack_delay_ns", "Acknowledgement delay (ns)", base.DEC),
  prop_ciphers = ProtoField.uint8("iov.proposal.ciphers", "Data path protection", base.HEX),
  prop_clear = ProtoField.bool("iov.proposal.ciphers.clear", "In clear", 8, nil, 0x01),
  prop_xpn128 = ProtoField.bool("iov.proposal.ciphers.xpn128", "GCM-AES-XPN-128", 8, nil, 0x02),
  prop_xpn256 = ProtoField.bool("iov.proposal.ciphers.xpn256", "GCM-AES-XPN-256", 8, nil, 0x04),

  mg_op = ProtoField.uint8("iov.manage.op", "Operation", base.DEC, manage_ops),
  mg_new_group = ProtoField.uint16("iov.manage.new_group", "New group", base.DEC),
  mg_target = ProtoField.uint32("iov.manage.target", "Target serial", base.HEX),
  mg_boot_id = ProtoField.uint32("iov.manage.boot_id", "Target boot ID", base.HEX),
  mg_counter = ProtoField.uint64("iov.manage.counter", "Request counter", base.DEC),
  mg_status = ProtoField.uint8("iov.manage.status", "Status", base.DEC, manage_statuses),
  mg_group = ProtoField.uint16("iov.manage.group", "Group", base.DEC),
  mg_firmware = ProtoField.string("iov.manage.firmware", "Firmware"),
  mg_slots = ProtoField.uint8("iov.manage.slots", "Slots or downstream ports", base.DEC),
  mg_boot_slot = ProtoField.uint8("iov.manage.boot_slot", "Boot slot", base.DEC),
  mg_trial = ProtoField.bool("iov.manage.trial", "Image on trial", 8, nil, 0x01),
  mg_slots_present = ProtoField.uint8("iov.manage.slots_present", "Slots holding a device", base.HEX),
  mg_ports = ProtoField.uint8("iov.manage.ports", "Link ports", base.DEC),
  mg_port = ProtoField.bytes("iov.manage.port", "Link port"),
  mg_link_state = ProtoField.uint8("iov.manage.link_state", "Link state", base.DEC, link_states),
  mg_peer = ProtoField.uint32("iov.manage.peer", "Peer serial", base.HEX),
  mg_paths = ProtoField.uint8("iov.manage.paths", "Paths", base.HEX),
  mg_figure = ProtoField.uint32("iov.manage.figure", "Figure", base.DEC),
  mg_counter_value = ProtoField.uint32("iov.manage.card_counter", "Card counter", base.DEC),
  mg_macsec_drops = ProtoField.uint32("iov.manage.macsec_drops", "MACsec frames dropped", base.DEC),

  extra = ProtoField.bytes("iov.extra", "Bytes beyond the message"),
}

local fields = {}
for _, field in pairs(F) do
  if type(field) == "table" then
    for _, f in ipairs(field) do fields[#fields + 1] = f end
  else
    fields[#fields + 1] = field
  end
end
iov.fields = fields

local E = {
  truncated = ProtoExpert.new("iov.truncated", "Frame shorter than its tunnel header or length",
    expert.group.MALFORMED, expert.severity.ERROR),
  unknown_kind = ProtoExpert.new("iov.unknown_kind", "Unknown frame kind: a receiver drops the frame",
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_version = ProtoExpert.new("iov.bad_version", "Unknown tunnel header version",
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_record = ProtoExpert.new("iov.bad_record", "Bad TLP record: the receiver drops the whole frame (RxMalformed)",
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_tlp = ProtoExpert.new("iov.bad_tlp", "TLP the tunnel does not carry (malformed TLP)",
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_ack = ProtoExpert.new("iov.bad_ack", "ACK body does not match its SACK block count (RxMalformed)",
    expert.group.MALFORMED, expert.severity.ERROR),
  bad_control = ProtoExpert.new("iov.bad_control", "CONTROL message a card drops (ControlMalformed)",
    expert.group.MALFORMED, expert.severity.ERROR),
}
iov.experts = { E.truncated, E.unknown_kind, E.bad_version, E.bad_record, E.bad_tlp, E.bad_ack, E.bad_control }

-- ---- TLPs --------------------------------------------------------------------------------------

-- The TLP's name from Fmt and Type, or nil for an encoding the tunnel does not carry (the same
-- set as tlpClass in board/pcie/tlp.ts: prefixes, reserved types, 4DW I/O, configuration and
-- completions, 3DW messages).
local function tlp_name(fmt, typ)
  if fmt > 3 then return nil end
  local data, four = fmt >= 2, fmt % 2 == 1
  if typ >= 0x10 and typ <= 0x15 then
    if not four then return nil end
    return data and "MsgD" or "Msg"
  end
  if typ == 0 then return data and "MWr" or "MRd" end
  if typ == 1 then return (not data) and "MRdLk" or nil end
  if four then return nil end
  if typ == 2 then return data and "IOWr" or "IORd" end
  if typ == 4 then return data and "CfgWr0" or "CfgRd0" end
  if typ == 5 then return data and "CfgWr1" or "CfgRd1" end
  if typ == 10 then return data and "CplD" or "Cpl" end
  if typ == 11 then return data and "CplDLk" or "CplLk" end
  return nil
end

local function add_id(tree, field, range)
  tree:add(field, range):append_text(" (" .. bdf(range:uint()) .. ")")
end

-- Decodes one TLP into `tree`; returns a one-line summary for the Info column, and whether the
-- TLP is one the tunnel carries with the size its header implies.
local function dissect_tlp(tvb, pinfo, tree)
  local size = tvb:len()
  if size < 12 then
    tree:add_proto_expert_info(E.bad_tlp, string.format("%d bytes: shorter than a TLP header", size))
    return "short TLP", false
  end
  local b0, b1, b2 = tvb(0, 1):uint(), tvb(1, 1):uint(), tvb(2, 1):uint()
  local fmt, typ = bits(b0, 7, 5), bits(b0, 4, 0)
  local name = tlp_name(fmt, typ)
  local four = fmt % 2 == 1
  local header = four and 16 or 12
  local has_data = fmt == 2 or fmt == 3
  -- Length counts the data, or the DWs a read asks for; 0 means 1024 there, and is reserved
  -- (0) in completions and messages without data.
  local dw = bits(b2, 1, 0) * 256 + tvb(3, 1):uint()
  if dw == 0 and (has_data or typ <= 5) then dw = 1024 end
  local data = has_data and 4 * dw or 0
  local td = bits(b2, 7, 7) == 1
  local expected = header + data + (td and 4 or 0)

  tree:add(F.tlp_type, tvb(0, 1), name or string.format("reserved (Fmt %d, Type 0x%02x)", fmt, typ))
  tree:add(F.tlp_fmt, tvb(0, 1))
  tree:add(F.tlp_typefield, tvb(0, 1))
  tree:add(F.tlp_tc, tvb(1, 1))
  tree:add(F.tlp_th, tvb(1, 1))
  tree:add(F.tlp_ido, tvb(1, 1))
  tree:add(F.tlp_td, tvb(2, 1))
  tree:add(F.tlp_ep, tvb(2, 1))
  tree:add(F.tlp_ro, tvb(2, 1))
  tree:add(F.tlp_ns, tvb(2, 1))
  tree:add(F.tlp_at, tvb(2, 1))
  tree:add(F.tlp_length, tvb(2, 2), dw)

  if not name then
    tree:add_proto_expert_info(E.bad_tlp, string.format("Fmt %d Type 0x%02x is reserved or not carried by the tunnel", fmt, typ))
    return string.format("TLP Fmt %d Type 0x%02x", fmt, typ), false
  end
  if size < header then
    tree:add_proto_expert_info(E.bad_tlp, string.format("%d bytes: shorter than its %d-byte header", size, header))
    return name .. " (short)", false
  end

  -- Ten-bit tags: T9 and T8 in byte 1 above the tag byte.
  local function tag(at)
    return bits(b1, 7, 7) * 512 + bits(b1, 3, 3) * 256 + tvb(at, 1):uint()
  end
  local summary
  if name:sub(1, 3) == "Cpl" then
    add_id(tree, F.tlp_completer, tvb(4, 2))
    tree:add(F.tlp_status, tvb(6, 1))
    tree:add(F.tlp_bcm, tvb(6, 1))
    local count = bits(tvb(6, 1):uint(), 3, 0) * 256 + tvb(7, 1):uint()
    if count == 0 then count = 4096 end
    tree:add(F.tlp_byte_count, tvb(6, 2), count)
    add_id(tree, F.tlp_requester, tvb(8, 2))
    tree:add(F.tlp_tag, tvb(10, 1), tag(10))
    tree:add(F.tlp_lower_addr, tvb(11, 1))
    local status = bits(tvb(6, 1):uint(), 7, 5)
    summary = string.format("%s %s to %s tag %d, %d bytes", name, cpl_statuses[status] and (status == 0 and "SC" or cpl_statuses[status]) or ("status " .. status),
      bdf(tvb(8, 2):uint()), tag(10), count)
  else
    add_id(tree, F.tlp_requester, tvb(4, 2))
    tree:add(F.tlp_tag, tvb(6, 1), tag(6))
    if name:sub(1, 3) == "Msg" then
      tree:add(F.tlp_msg_routing, tvb(0, 1))
      tree:add(F.tlp_msg_code, tvb(7, 1))
      tree:add(F.tlp_msg_fields, tvb(8, 8))
      local code = tvb(7, 1):uint()
      summary = string.format("%s %s", name, msg_codes[code] or hex(code, 2))
    elseif name:sub(1, 3) == "Cfg" then
      tree:add(F.tlp_first_be, tvb(7, 1))
      add_id(tree, F.tlp_target, tvb(8, 2))
      local register = bits(tvb(10, 1):uint(), 3, 0) * 256 + tvb(11, 1):uint() - tvb(11, 1):uint() % 4
      tree:add(F.tlp_register, tvb(10, 2), register)
      summary = string.format("%s %s register 0x%03x", name, bdf(tvb(8, 2):uint()), register)
    else
      tree:add(F.tlp_last_be, tvb(7, 1))
      tree:add(F.tlp_first_be, tvb(7, 1))
      local high = four and tvb(8, 4):uint() or 0
      local low = tvb(header - 4, 4):uint()
      low = low - low % 4
      local address = UInt64.new(low, high)
      tree:add(F.tlp_addr, tvb(8, header - 8), address)
      summary = string.format("%s 0x%s %d DW", name, (address:tohex():gsub("^0+(%x)", "%1")), dw)
      if name == "MWr" and dw == 1 and high == 0 and low >= MSI_LOW and low <= MSI_HIGH and size >= header + 4 then
        local msi = tree:add(F.tlp_msi, tvb(header, 4), true)
        msi:add_le(F.tlp_msi_data, tvb(header, 2))
        msi:add(F.tlp_msi_dest, tvb(8 + (four and 4 or 0) + 1, 2), bits(low, 19, 12))
        summary = string.format("MSI data 0x%04x to %d", tvb(header, 2):le_uint(), bits(low, 19, 12))
      end
    end
  end

  local present = math.min(size - header, data)
  if present > 0 then tree:add(F.tlp_data, tvb(header, present)) end
  if td and size >= expected then tree:add(F.tlp_ecrc, tvb(expected - 4, 4)) end
  if size ~= expected then
    tree:add_proto_expert_info(E.bad_tlp, string.format("%d bytes, its header implies %d", size, expected))
    return summary, false
  end
  return summary, true
end

-- ---- Tunnel bodies -----------------------------------------------------------------------------

local function dissect_data(tvb, pinfo, tree)
  local offset, count, summaries = 0, 0, {}
  local size = tvb:len()
  while offset < size do
    if size - offset < 2 then
      tree:add_proto_expert_info(E.bad_record, string.format("%d byte(s) after the last record: no room for a record header", size - offset))
      break
    end
    local word = tvb(offset, 2):uint()
    local length = word % 8192
    local slot = math.floor(word / 8192)
    local available = math.min(length, size - offset - 2)
    local item = tree:add(F.record, tvb(offset, 2 + available))
    item:set_text(string.format("TLP record: slot %d, %d bytes", slot, length))
    item:add(F.record_slot, tvb(offset, 2))
    item:add(F.record_size, tvb(offset, 2))
    count = count + 1
    if length == 0 then
      item:add_proto_expert_info(E.bad_record, "record of 0 bytes")
      break
    end
    if length > size - offset - 2 then
      item:add_proto_expert_info(E.bad_record, string.format("record of %d bytes runs past the body's end (%d left)", length, size - offset - 2))
      if available > 0 then dissect_tlp(tvb(offset + 2, available):tvb(), pinfo, item) end
      break
    end
    local summary, good = dissect_tlp(tvb(offset + 2, length):tvb(), pinfo, item)
    item:append_text(": " .. summary)
    if not good then item:add_proto_expert_info(E.bad_record, "the record's TLP is malformed") end
    summaries[#summaries + 1] = summary
    offset = offset + 2 + length
  end
  tree:add(F.records, count):set_generated()
  return table.concat(summaries, "; ")
end

local function dissect_ack(tvb, pinfo, tree)
  local size = tvb:len()
  if size < 14 then
    tree:add_proto_expert_info(E.bad_ack, string.format("%d bytes: shorter than the 14 an ACK needs", size))
    return ""
  end
  for i = 1, 6 do tree:add(F.credit[i], tvb(2 * (i - 1), 2)) end
  local blocks = tvb(12, 1):uint()
  tree:add(F.sack_blocks, tvb(12, 1))
  local keys = tree:add(F.keys, tvb(13, 1))
  keys:add(F.keys_valid, tvb(13, 1))
  keys:add(F.keys_an, tvb(13, 1))
  keys:add(F.echo, tvb(13, 1))
  if blocks > 4 or size ~= 14 + 8 * blocks then
    tree:add_proto_expert_info(E.bad_ack, string.format("%d SACK block(s) need %d bytes, the body has %d", blocks, 14 + 8 * blocks, size))
  end
  local sacks = {}
  for i = 0, blocks - 1 do
    local at = 14 + 8 * i
    if at + 8 > size then break end
    local item = tree:add(F.sack, tvb(at, 8))
    item:set_text(string.format("SACK block: %d to %d", tvb(at, 4):uint(), tvb(at + 4, 4):uint()))
    item:add(F.sack_first, tvb(at, 4))
    item:add(F.sack_end, tvb(at + 4, 4))
    if tvb(at, 4):uint() == tvb(at + 4, 4):uint() then
      item:add_proto_expert_info(E.bad_ack, "empty SACK block")
    end
    sacks[#sacks + 1] = string.format("%d-%d", tvb(at, 4):uint(), tvb(at + 4, 4):uint())
  end
  return #sacks > 0 and ("SACK " .. table.concat(sacks, ",")) or ""
end

-- ---- CONTROL messages --------------------------------------------------------------------------

local PROPOSAL_SIZES = { 24, 40, 44 }

local function dissect_proposal(tvb, tree, version)
  local need = PROPOSAL_SIZES[math.min(math.max(version, 1), 3)]
  local item = tree:add(F.prop, tvb(0, math.min(need, tvb:len())))
  item:set_text(string.format("Proposal (version %d, %d bytes)", version, need))
  if tvb:len() < need then
    item:add_proto_expert_info(E.bad_control, string.format("a version %d proposal needs %d bytes, %d here", version, need, tvb:len()))
    return false
  end
  item:add(F.ctl_version_min, tvb(0, 1))
  item:add(F.ctl_version_max, tvb(1, 1))
  local policies = item:add(F.prop_ack_policies, tvb(2, 1))
  policies:add(F.prop_selective, tvb(2, 1))
  policies:add(F.prop_gobackn, tvb(2, 1))
  item:add(F.prop_ack_frames, tvb(3, 1))
  item:add(F.prop_mtu, tvb(4, 2))
  item:add(F.prop_max_payload, tvb(6, 2))
  item:add(F.prop_reorder, tvb(8, 2))
  item:add(F.ctl_slots, tvb(10, 1))
  item:add(F.prop_slots_present, tvb(11, 1))
  local names = { "PH", "PD", "NPH", "NPD", "CPLH", "CPLD" }
  for i = 1, 6 do
    item:add(F.prop_credit, tvb(10 + 2 * i, 2)):prepend_text(names[i] .. " ")
  end
  if need >= 40 then
    item:add(F.prop_keepalive, tvb(24, 4))
    item:add(F.prop_silence, tvb(28, 4))
    item:add(F.prop_grace, tvb(32, 4))
    item:add(F.prop_ack_delay, tvb(36, 4))
  end
  if need >= 44 then
    local ciphers = item:add(F.prop_ciphers, tvb(40, 1))
    ciphers:add(F.prop_clear, tvb(40, 1))
    ciphers:add(F.prop_xpn128, tvb(40, 1))
    ciphers:add(F.prop_xpn256, tvb(40, 1))
  end
  if tvb:len() >= need + 4 then tree:add(F.ctl_discovers, tvb(need, 4)) end
  return true
end

local function dissect_manage_reply(tvb, tree)
  local size = tvb:len()
  tree:add(F.mg_op, tvb(0, 1))
  tree:add(F.mg_status, tvb(1, 1))
  tree:add(F.mg_group, tvb(2, 2))
  tree:add(F.mg_counter, tvb(4, 8))
  tree:add(F.mg_firmware, tvb(12, 3), string.format("%d.%d.%d", tvb(12, 1):uint(), tvb(13, 1):uint(), tvb(14, 1):uint()))
  tree:add(F.mg_slots, tvb(15, 1))
  tree:add(F.mg_boot_slot, tvb(16, 1))
  tree:add(F.mg_trial, tvb(17, 1))
  tree:add(F.mg_slots_present, tvb(18, 1))
  tree:add(F.mg_ports, tvb(19, 1))
  local ports = math.min(tvb(19, 1):uint(), 8)
  -- Older firmware ends the body early (docs/management.md): the tag follows what it reports.
  local has_drops, has_paths, has_health = size >= 148, size >= 156, size >= 412
  for p = 0, ports - 1 do
    local port = tree:add(F.mg_port, tvb(20 + p, 1))
    port:set_text(string.format("Link port %d: %s, peer %s", p, link_states[tvb(20 + p, 1):uint()] or "?", hex(tvb(28 + 4 * p, 4):uint(), 8)))
    port:add(F.mg_link_state, tvb(20 + p, 1))
    port:add(F.mg_peer, tvb(28 + 4 * p, 4))
    if has_paths then port:add(F.mg_paths, tvb(116 + p, 1)) end
    if has_health then
      for e = 0, 1 do
        for k = 1, 4 do
          local at = 124 + 32 * p + 16 * e + 4 * (k - 1)
          port:add(F.mg_figure, tvb(at, 4)):prepend_text(string.format("eth%d %s: ", e, path_figures[k]))
        end
      end
    end
  end
  for i = 1, 8 do
    tree:add(F.mg_counter_value, tvb(60 + 4 * (i - 1), 4)):prepend_text(reply_counters[i] .. " ")
  end
  if has_drops then
    for i = 1, 6 do
      tree:add(F.mg_macsec_drops, tvb(92 + 4 * (i - 1), 4)):append_text(" (" .. macsec_drops[i] .. ")")
    end
  end
  local tag_at = has_health and 380 or has_paths and 124 or has_drops and 116 or 92
  tree:add(F.ctl_tag, tvb(tag_at, 32))
  return tag_at + 32
end

-- Each body: its size (or a function of the message version), and what to show.
local function dissect_control(tvb, pinfo, tree)
  local size = tvb:len()
  if size < 16 then
    tree:add_proto_expert_info(E.bad_control, string.format("%d bytes: shorter than the 16-byte CONTROL header", size))
    return "CONTROL (short)"
  end
  local typ, version = tvb(0, 1):uint(), tvb(1, 1):uint()
  local name = control_types[typ]
  tree:add(F.ctl_type, tvb(0, 1))
  tree:add(F.ctl_version, tvb(1, 1))
  tree:add(F.ctl_role, tvb(2, 1))
  tree:add(F.ctl_group, tvb(4, 2))
  tree:add(F.ctl_serial, tvb(8, 4))
  tree:add(F.ctl_boot_id, tvb(12, 4))
  if tvb(3, 1):uint() ~= 0 or tvb(6, 2):uint() ~= 0 then
    tree:add(F.ctl_reserved, tvb(3, 1))
    tree:add(F.ctl_reserved, tvb(6, 2))
    tree:add_proto_expert_info(E.bad_control, "reserved header fields are not 0")
  end
  if not roles[tvb(2, 1):uint()] then tree:add_proto_expert_info(E.bad_control, "unknown role") end
  local summary = string.format("%s from %s %s", name or ("type " .. typ), roles[tvb(2, 1):uint()] or "?", hex(tvb(8, 4):uint(), 8))
  if not name then
    tree:add_proto_expert_info(E.bad_control, "unknown message type")
    return summary
  end
  local n = size - 16
  local handshake = 16 + PROPOSAL_SIZES[math.min(math.max(version, 1), 3)]
  local need = ({ [1] = 4, [2] = handshake, [3] = handshake, [4] = 32, [5] = 4, [6] = 4, [7] = 4, [8] = 4,
    [9] = 52, [10] = 124, [11] = 36 })[typ]
  if n < need then
    tree:add_proto_expert_info(E.bad_control, string.format("%s needs a body of %d bytes, %d here", name, need, n))
    return summary
  end
  local body = tvb(16):tvb()
  local used = need
  if typ == 1 then
    tree:add(F.ctl_version_min, body(0, 1))
    tree:add(F.ctl_version_max, body(1, 1))
    local flags = tree:add(F.ctl_flags, body(2, 1))
    flags:add(F.ctl_unpaired, body(2, 1))
    flags:add(F.ctl_solicit, body(2, 1))
    tree:add(F.ctl_slots, body(3, 1))
    if n >= 8 then
      tree:add(F.ctl_number, body(4, 4))
      used = 8
      summary = summary .. string.format(" #%d", body(4, 4):uint())
    end
  elseif typ == 2 or typ == 3 then
    tree:add(F.ctl_nonce, body(0, 16))
    dissect_proposal(body(16):tvb(), tree, version)
    if n >= need + 4 then used = need + 4 end
  elseif typ == 4 then
    tree:add(F.ctl_tag, body(0, 32))
  elseif typ == 5 then
    local flags = tree:add(F.ctl_flags, body(0, 1))
    flags:add(F.ctl_reply, body(0, 1))
    if bits(body(0, 1):uint(), 0, 0) == 1 then summary = summary .. " (reply)" end
  elseif typ >= 6 and typ <= 8 then
    tree:add(F.ctl_reason, body(0, 1))
    summary = summary .. ": " .. (reasons[body(0, 1):uint()] or ("reason " .. body(0, 1):uint()))
  elseif typ == 9 then
    tree:add(F.mg_op, body(0, 1))
    tree:add(F.mg_new_group, body(2, 2))
    tree:add(F.mg_target, body(4, 4))
    tree:add(F.mg_boot_id, body(8, 4))
    tree:add(F.mg_counter, body(12, 8))
    tree:add(F.ctl_tag, body(20, 32))
    summary = summary .. string.format(" %s to %s", manage_ops[body(0, 1):uint()] or "?", hex(body(4, 4):uint(), 8))
  elseif typ == 10 then
    used = dissect_manage_reply(body, tree)
    summary = summary .. string.format(" %s %s", manage_ops[body(0, 1):uint()] or "?", manage_statuses[body(1, 1):uint()] or "?")
  elseif typ == 11 then
    local flags = tree:add(F.ctl_flags, body(0, 1))
    flags:add(F.ctl_reply, body(0, 1))
    tree:add(F.ctl_port, body(1, 1))
    tree:add(F.ctl_tag, body(4, 32))
    summary = summary .. string.format(" port %d%s", body(1, 1):uint(), bits(body(0, 1):uint(), 0, 0) == 1 and " (reply)" or "")
  end
  -- A later version may extend a message: a receiver ignores what it does not know.
  if n > used then tree:add(F.extra, body(used, n - used)) end
  return summary
end

-- ---- The frame -----------------------------------------------------------------------------------

function iov.dissector(tvb, pinfo, root)
  pinfo.cols.protocol = "IOV"
  local size = tvb:len()
  local tree = root:add(iov, tvb(0, math.min(size, HEADER)))
  if size < HEADER then
    tree:add_proto_expert_info(E.truncated, string.format("%d bytes: shorter than the 16-byte tunnel header", size))
    pinfo.cols.info = "IOV (truncated)"
    return size
  end
  local version, kind, length = tvb(0, 1):uint(), tvb(1, 1):uint(), tvb(2, 2):uint()
  tree:add(F.version, tvb(0, 1))
  if version ~= 1 then tree:add_proto_expert_info(E.bad_version, string.format("version %d, a receiver knows 1", version)) end
  tree:add(F.kind, tvb(1, 1))
  tree:add(F.length, tvb(2, 2))
  tree:add(F.session, tvb(4, 4))
  tree:add(F.seq, tvb(8, 4))
  tree:add(F.ack, tvb(12, 4))
  local name = kinds[kind] or string.format("kind 0x%02x", kind)
  tree:append_text(string.format(", %s, session %s, seq %d, ack %d", name, hex(tvb(4, 4):uint(), 8), tvb(8, 4):uint(), tvb(12, 4):uint()))

  local body_size = length
  if HEADER + length > size then
    tree:add_proto_expert_info(E.truncated, string.format("length %d, but %d byte(s) follow the header", length, size - HEADER))
    body_size = size - HEADER
  end
  tree:set_len(HEADER + body_size)
  local info
  if not kinds[kind] then
    tree:add_proto_expert_info(E.unknown_kind, string.format("kind 0x%02x", kind))
    info = name
  elseif kind == 1 and body_size == 0 then
    tree:add_proto_expert_info(E.bad_record, "a DATA frame without a record")
    info = name
  elseif body_size > 0 then
    local body = tvb(HEADER, body_size):tvb()
    if kind == 1 then
      info = string.format("DATA seq=%d ack=%d %s", tvb(8, 4):uint(), tvb(12, 4):uint(), dissect_data(body, pinfo, tree))
    elseif kind == 0x10 then
      info = dissect_control(body, pinfo, tree)
    else
      local sacks = dissect_ack(body, pinfo, tree)
      info = string.format("%s ack=%d%s", name, tvb(12, 4):uint(), sacks ~= "" and (" " .. sacks) or "")
    end
  else
    info = name
    if kind ~= 0x10 then tree:add_proto_expert_info(E.bad_ack, "an ACK or KEEPALIVE needs a 14-byte body") end
  end
  pinfo.cols.info = info
  -- Padding to the 64-byte minimum stays for Ethernet to show as its trailer.
  return HEADER + body_size
end

DissectorTable.get("ethertype"):add(ETHERTYPE, iov)
