// The fabric's hash engine (docs/mailbox.md, "Hash engine"), the executable specification of
// its RTL: HASH_CONTEXTS contexts share one SHA-256 core, which takes the firmware's HASH
// commands in arrival order and answers each Finish with HASH_DONE.
//
// A context holds one hash at a time, SHA-256 or HMAC-SHA-256. The arithmetic is node:crypto's;
// what this model specifies is the engine's behaviour and its timing: which 64-byte blocks each
// command makes the core compress, and when the answer is due.
//
//   Start      begins SHA-256 (drops what the context held)                 0 blocks
//   StartHmac  begins HMAC-SHA-256 under the key in Data, 1..HASH_KEY_MAX   1 block: the key XOR ipad
//   Update     feeds Data, 1..HASH_UPDATE_MAX bytes                         each block it fills
//   Finish     ends the hash; HASH_DONE carries the digest                  padding: 1 block, or 2 when
//                                                                           more than 55 bytes wait;
//                                                                           HMAC adds the outer hash's
//                                                                           2 (key XOR opad, inner digest)
//
// A key of at most one block (64 bytes) is used as it is, so HMAC never hashes its key first.
// Update or Finish on an idle context (no Start, or ended by a Finish) is answered with
// HASH_DONE status Idle and a zero digest (an Update's with tag 0). The core is busy until it
// has compressed every block given to it; an answer is due when the core has worked through
// every command before it, so HASH_DONEs come in command order. Bytes reach the core's block
// buffer while it compresses the previous block: the compression is the only cost. A card
// reset stops the core and forgets every context and every answer not yet given.

import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { HashOp, HashStatus, HASH_CONTEXTS, HASH_DIGEST_SIZE } from "./map/mailbox.ts";
import type { Scheduler } from "./scheduler.ts";

/** The fabric clock, which the core runs at: the PCIe block's user clock on the card's FPGA. */
export const FABRIC_CLOCK_MHZ = 250;
/**
 * Core cycles per 64-byte block: an iterative SHA-256 core computes one of the 64 rounds per
 * cycle (TI's hash engine, SLAU723A "SHA/MD5 Performance", lists 65 cycles per SHA-256 block).
 */
export const HASH_CYCLES_PER_BLOCK = 64;
/** 256 ns at 250 MHz: 250 MB/s, against the soft-core's 1.3 ms per block in software. */
export const HASH_BLOCK_NS = (HASH_CYCLES_PER_BLOCK * 1000) / FABRIC_CLOCK_MHZ;

const BLOCK_SIZE = 64;
/** Padding's 0x80 byte and the 64-bit message length. */
const PADDING_MIN = 1 + 8;
/** HMAC's outer hash: the block of the key XOR opad, then the inner digest with its padding. */
const HMAC_OUTER_BLOCKS = 2;

/** A HASH command, its fields checked by the codec (board/mailbox-codec.ts). */
export interface HashCommand {
  context: number;
  op: HashOp;
  tag: number;
  data: Uint8Array;
}

/** What HASH_DONE carries. */
export interface HashDone {
  context: number;
  status: HashStatus;
  tag: number;
  digest: Uint8Array;
}

/** Since the card was built (a reset keeps them). */
export interface HashEngineStats {
  commands: number;
  /** 64-byte blocks the core compressed. */
  blocks: number;
  /** Update or Finish on an idle context. */
  idleErrors: number;
  /** HASH_DONEs with status Ok. */
  digests: number;
}

interface Context {
  /** The running hash, SHA-256 or HMAC-SHA-256. */
  hash: Hash | Hmac;
  hmac: boolean;
  /** Bytes in the core's block buffer for this context: fed, not yet compressed (0..63). */
  buffered: number;
}

export class HashEngine {
  private readonly contexts: (Context | null)[] = new Array(HASH_CONTEXTS).fill(null);
  /** The core has compressed every block given to it by then. */
  private busyUntil = 0;
  /** Scheduler handles of the HASH_DONEs not yet given. */
  private readonly answers = new Set<number>();
  readonly stats: HashEngineStats = { commands: 0, blocks: 0, idleErrors: 0, digests: 0 };

  constructor(
    private readonly scheduler: Scheduler,
    private readonly done: (result: HashDone) => void,
  ) {}

  command(c: HashCommand): void {
    this.stats.commands++;
    const context = this.contexts[c.context];
    switch (c.op) {
      case HashOp.Start:
        this.contexts[c.context] = { hash: createHash("sha256"), hmac: false, buffered: 0 };
        return;
      case HashOp.StartHmac:
        this.contexts[c.context] = { hash: createHmac("sha256", c.data), hmac: true, buffered: 0 };
        this.compress(1);
        return;
      case HashOp.Update: {
        if (!context) return this.idle(c.context, 0);
        context.hash.update(c.data);
        const fed = context.buffered + c.data.length;
        context.buffered = fed % BLOCK_SIZE;
        this.compress(Math.floor(fed / BLOCK_SIZE));
        return;
      }
      case HashOp.Finish: {
        if (!context) return this.idle(c.context, c.tag);
        this.contexts[c.context] = null;
        const padding = context.buffered + PADDING_MIN <= BLOCK_SIZE ? 1 : 2;
        this.compress(padding + (context.hmac ? HMAC_OUTER_BLOCKS : 0));
        this.stats.digests++;
        this.answer({ context: c.context, status: HashStatus.Ok, tag: c.tag, digest: new Uint8Array(context.hash.digest()) });
        return;
      }
    }
  }

  /** Reset of the card: the core stops, every context is idle, answers not yet given are lost. */
  reset(): void {
    for (const handle of this.answers) this.scheduler.cancel(handle);
    this.answers.clear();
    this.contexts.fill(null);
    this.busyUntil = 0;
  }

  private idle(context: number, tag: number): void {
    this.stats.idleErrors++;
    this.answer({ context, status: HashStatus.Idle, tag, digest: new Uint8Array(HASH_DIGEST_SIZE) });
  }

  /** Queues `blocks` for the core after the ones it already has. */
  private compress(blocks: number): void {
    this.stats.blocks += blocks;
    this.busyUntil = Math.max(this.busyUntil, this.scheduler.now) + blocks * HASH_BLOCK_NS;
  }

  /** HASH_DONE once the core has worked through everything before it. */
  private answer(result: HashDone): void {
    const handle = this.scheduler.at(Math.max(this.busyUntil, this.scheduler.now), () => {
      this.answers.delete(handle);
      this.done(result);
    });
    this.answers.add(handle);
  }
}
