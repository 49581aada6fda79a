// The fabric's hash engine (docs/mailbox.md, "Hash engine"): SHA-256 and HMAC-SHA-256 for the
// pairing, management requests, configuration records and update images. Hashing in software
// would cost the soft-core about 1.3 ms a 64-byte block (docs/softcore.md); the engine takes a
// quarter of a microsecond, and its digest comes back as HASH_DONE in a later batch.
//
// Each user owns fixed contexts (Context). A Finish carries a tag this module picks and keeps as
// the context's expected one, so a HASH_DONE from a hash its owner has since started again is
// recognised as stale and dropped.

import { HashOp, HashStatus, HASH_CONTEXTS, HASH_UPDATE_MAX } from "../board/map/mailbox";
import { MAX_TUNNELS } from "../board/map/registers";
import * as tx from "./abi/tx";

/** Who owns which context; the link has LINK_CONTEXTS contexts per port. */
export enum Context {
  Update = 0, //  the update image's payload
  Store = 1, //   configuration records
  Manage = 2, //  management requests and replies
  Link = 3, //    Link + LINK_CONTEXTS * port + n: the pairing transcript's tags (n < LINK_TAGS), then the session's keys (link/keys.ts)
}

/** The transcript's tags: host, chassis, session ID, session key (link/auth.ts). */
export const LINK_TAGS: i32 = 4;
/** Contexts per link port: the tags during the handshake, then the key derivations (KeyContext). */
export const LINK_CONTEXTS: i32 = 5;

// The contexts the map provides must cover every owner.
assert(Context.Link + LINK_CONTEXTS * MAX_TUNNELS <= HASH_CONTEXTS);
assert(LINK_TAGS <= LINK_CONTEXTS);

const expected = memory.data(2 * HASH_CONTEXTS);
let nextTag: u32 = 0;

export function reset(): void {
  memory.fill(expected, 0, 2 * HASH_CONTEXTS);
  nextTag = 0;
}

/** Begins SHA-256 on `context`. */
export function start(context: i32): void {
  tx.hash(context, HashOp.Start, 0, 0, 0);
}

/** Begins HMAC-SHA-256 under the `length`-byte key at `key` (1..HASH_KEY_MAX) on `context`. */
export function startHmac(context: i32, key: usize, length: i32): void {
  tx.hash(context, HashOp.StartHmac, 0, key, length);
}

/** Feeds `length` bytes at `data` to `context`, in as many HASH Updates as they need. */
export function update(context: i32, data: usize, length: i32): void {
  while (length > 0) {
    const part = min(length, HASH_UPDATE_MAX);
    tx.hash(context, HashOp.Update, 0, data, part);
    data += part;
    length -= part;
  }
}

/** Ends the hash on `context`; its digest comes with a HASH_DONE that current() accepts. */
export function finish(context: i32): void {
  nextTag = (nextTag + 1) & 0xffff;
  store<u16>(expected + 2 * context, nextTag as u16);
  tx.hash(context, HashOp.Finish, nextTag, 0, 0);
}

/** Whether a HASH_DONE answers the last Finish on its context (and not an earlier, abandoned hash). */
export function current(context: i32, tag: u32, status: i32): bool {
  return status == HashStatus.Ok && (load<u16>(expected + 2 * context) as u32) == tag;
}

/** Whether two 32-byte values (digests, MACs) are equal, in time independent of where they differ. */
export function equal32(a: usize, b: usize): bool {
  let diff: u32 = 0;
  for (let i = 0; i < 32; i += 4) diff |= load<u32>(a + i) ^ load<u32>(b + i);
  return diff == 0;
}
