// Completions shared by every completer model: configuration accesses answered from a
// ConfigSpace, and error completions for requests that cannot be served.

import type { ConfigSpace } from "./config-space.ts";
import { CplStatus, DEFAULT_COMMON, readCompletionFields, type ConfigRequest, type MemoryRequest, type Tlp } from "./tlp.ts";

/** Read Completion Boundary: a completion that is not the last ends on a multiple of it. */
export const RCB_BYTES = 64;

/** True for requests that expect a completion. */
export function isNonPosted(tlp: Tlp): boolean {
  return !(tlp.kind === "MWr" || tlp.kind === "Msg" || tlp.kind === "MsgD" || tlp.kind.startsWith("Cpl"));
}

/** The completion without data for a non-posted request that ends with `status`: an error, or Configuration Request Retry Status. */
export function errorCompletion(tlp: Tlp, completer: number, status: Exclude<CplStatus, CplStatus.SuccessfulCompletion>): Tlp {
  const request = tlp as Extract<Tlp, { requester: number; tag: number }>;
  return {
    kind: tlp.kind === "MRdLk" ? "CplLk" : "Cpl", ...DEFAULT_COMMON, tc: tlp.tc, attr: tlp.attr, completer, status, bcm: false,
    byteCount: 4, requester: request.requester, tag: request.tag, lowerAddress: 0,
  };
}

/** Carries out a configuration read or write on `config` and returns its completion. */
export function configCompletion(config: ConfigSpace, tlp: ConfigRequest, completer: number): Tlp {
  const base = { ...DEFAULT_COMMON, completer, bcm: false, byteCount: 4, requester: tlp.requester, tag: tlp.tag, lowerAddress: 0 };
  if (tlp.kind === "CfgRd0" || tlp.kind === "CfgRd1") {
    const result = config.readDword(tlp.register, tlp.firstBe);
    if (!result.ok) return errorCompletion(tlp, completer, result.status);
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, result.value >>> 0, true);
    return { kind: "CplD", ...base, status: CplStatus.SuccessfulCompletion, data };
  }
  const value = new DataView(tlp.data!.buffer, tlp.data!.byteOffset, 4).getUint32(0, true);
  const result = config.writeDword(tlp.register, value, tlp.firstBe);
  if (!result.ok) return errorCompletion(tlp, completer, result.status);
  return { kind: "Cpl", ...base, status: CplStatus.SuccessfulCompletion };
}

/**
 * The successful completions for a memory read of `data` (4 × readDw bytes), split at
 * `maxPayload` with each piece but the last ending on a Read Completion Boundary, with the
 * Byte Count and Lower Address the specification requires (Table 2-39 for the first).
 */
export function readCompletions(tlp: MemoryRequest, data: Uint8Array, completer: number, maxPayload: number): Tlp[] {
  const { byteCount, lowerAddress } = readCompletionFields({ address: tlp.address, firstBe: tlp.firstBe, lastBe: tlp.lastBe, readDw: tlp.readDw ?? 1 });
  const out: Tlp[] = [];
  let remaining = byteCount === 0 ? 4096 : byteCount;
  let address = tlp.address;
  for (let sent = 0; sent < data.length; ) {
    const chunk = Math.min(data.length - sent, maxPayload - (address % RCB_BYTES));
    out.push({
      kind: "CplD", ...DEFAULT_COMMON, tc: tlp.tc, attr: tlp.attr, completer, status: CplStatus.SuccessfulCompletion, bcm: false,
      byteCount: remaining & 0xfff, requester: tlp.requester, tag: tlp.tag, lowerAddress: sent === 0 ? lowerAddress : address & 0x7f,
      data: data.subarray(sent, sent + chunk),
    });
    remaining -= sent === 0 ? chunk - (lowerAddress - (tlp.address & 0x7f)) : chunk;
    sent += chunk;
    address += chunk;
  }
  return out;
}
