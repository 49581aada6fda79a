// PCIe flow-control credits carried across the tunnel (PCIe Base Specification 2.6,
// adapted): per class a header counter and a data counter (16-byte units). The receiver
// advertises cumulative limits (mod 2^16); the sender counts what it has consumed and may
// send a TLP only if its credits fit under the limit. Counts never go negative: a TLP that
// does not fit waits, and posted writes have their own credits, so they never wait behind
// non-posted requests or completions.

import { TlpClass } from "../pcie/tlp.ts";

export const CLASSES = 3;
export const FIELD_MASK = 0xffff;

/** Index in the six-field credit vectors: header then data, per class (PH PD NPH NPD CPLH CPLD). */
export const headerField = (cls: TlpClass) => 2 * cls;
export const dataField = (cls: TlpClass) => 2 * cls + 1;

/** True if `need` more credits fit between `consumed` and `limit` (mod 2^16). */
export function fits(limit: number, consumed: number, need: number): boolean {
  return ((limit - consumed - need) & FIELD_MASK) < 0x8000;
}

/** Sender side: what the peer allows and what has been used. */
export class CreditGate {
  readonly limit = [0, 0, 0, 0, 0, 0];
  readonly consumed = [0, 0, 0, 0, 0, 0];
  /** Limits have been received at least once. */
  known = false;

  canSend(cls: TlpClass, data: number): boolean {
    return this.known && fits(this.limit[headerField(cls)], this.consumed[headerField(cls)], 1) &&
      fits(this.limit[dataField(cls)], this.consumed[dataField(cls)], data);
  }

  consume(cls: TlpClass, data: number): void {
    this.consumed[headerField(cls)] = (this.consumed[headerField(cls)] + 1) & FIELD_MASK;
    this.consumed[dataField(cls)] = (this.consumed[dataField(cls)] + data) & FIELD_MASK;
  }

  /** Takes newer limits from an ACK or KEEPALIVE (limits only grow, mod 2^16). */
  update(limits: number[]): void {
    for (let i = 0; i < 6; i++) {
      if (!this.known || ((limits[i] - this.limit[i]) & FIELD_MASK) < 0x8000) this.limit[i] = limits[i];
    }
    this.known = true;
  }

  reset(): void {
    this.limit.fill(0);
    this.consumed.fill(0);
    this.known = false;
  }
}

/** Receiver side: the buffer offered to the peer, and what its consumer has given back. */
export class CreditPool {
  /** Cumulative limits advertised: capacity plus everything released so far (mod 2^16). */
  readonly limit = [0, 0, 0, 0, 0, 0];
  /** Credits held by TLPs received and not yet released by the consumer. */
  readonly held = [0, 0, 0, 0, 0, 0];

  reset(capacity: number[]): void {
    for (let i = 0; i < 6; i++) {
      this.limit[i] = capacity[i] & FIELD_MASK;
      this.held[i] = 0;
    }
  }

  take(cls: TlpClass, data: number): void {
    this.held[headerField(cls)] += 1;
    this.held[dataField(cls)] += data;
  }

  release(cls: TlpClass, data: number): void {
    this.held[headerField(cls)] -= 1;
    this.held[dataField(cls)] -= data;
    this.limit[headerField(cls)] = (this.limit[headerField(cls)] + 1) & FIELD_MASK;
    this.limit[dataField(cls)] = (this.limit[dataField(cls)] + data) & FIELD_MASK;
  }
}
