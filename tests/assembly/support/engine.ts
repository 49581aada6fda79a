// The specs' stand-in for the fabric's hash engine (board/hash-engine.ts, docs/mailbox.md) and
// random number generator: it runs the HASH commands and EntropyRequest writes the firmware has
// buffered, in order, and answers each Finish with the HASH_DONE event the engine would post and
// each request with ENTROPY. Each context gathers its key and data, and a Finish hashes them at
// once with support/sha256.ts and support/hmac.ts.

import * as tx from "../../../assembly/abi/tx";
import {
  HEADER_SIZE, Header, Command, Event, HashBody, HashOp, HashDoneBody, HashStatus, HASH_CONTEXTS, RegWriteBody,
} from "../../../board/map/mailbox";
import { CardReg } from "../../../board/map/registers";
import { sha256 } from "./sha256";
import { hmac } from "./hmac";

class Context {
  active: bool = false;
  keyed: bool = false;
  key: u8[] = [];
  data: u8[] = [];
}

const contexts = new Array<Context>(HASH_CONTEXTS);
for (let i = 0; i < HASH_CONTEXTS; i++) contexts[i] = new Context();
const digest = memory.data(32);

function doneEvent(context: i32, status: i32, tag: i32, withDigest: bool): u8[] {
  const event = new Array<u8>(HEADER_SIZE + HashDoneBody.Size);
  event[Header.BodyLength] = HashDoneBody.Size as u8;
  event[Header.Type] = Event.HashDone as u8;
  const body = HEADER_SIZE;
  event[body + HashDoneBody.Context] = context as u8;
  event[body + HashDoneBody.Status] = status as u8;
  event[body + HashDoneBody.Tag] = tag as u8;
  event[body + HashDoneBody.Tag + 1] = (tag >> 8) as u8;
  if (withDigest) for (let i = 0; i < 32; i++) event[body + HashDoneBody.Digest + i] = load<u8>(digest + i);
  return event;
}

let randomByte: u8 = 0;

/** ENTROPY of `length` bytes, each the next of a counter (the specs need different bytes, not random ones). */
function entropyAnswer(length: i32): u8[] {
  const event = new Array<u8>(HEADER_SIZE + length);
  event[Header.BodyLength] = length as u8;
  event[Header.Type] = Event.Entropy as u8;
  for (let i = 0; i < length; i++) event[HEADER_SIZE + i] = randomByte++;
  return event;
}

/** Runs the HASH commands and EntropyRequests tx holds from byte `from` on; returns the events they cause, in order. */
export function boardAnswers(from: i32): u8[] {
  const out = new Array<u8>();
  const end = tx.bufferedLength();
  let at = from;
  while (at + HEADER_SIZE <= end) {
    const head = tx.buffered() + at;
    const length = load<u16>(head, Header.BodyLength) as i32;
    at += HEADER_SIZE + length;
    const body = head + HEADER_SIZE;
    const type = load<u8>(head, Header.Type) as i32;
    if (type == Command.RegWrite && load<u32>(body, RegWriteBody.Address) == CardReg.EntropyRequest) {
      const random = entropyAnswer(load<u32>(body, RegWriteBody.Value) as i32);
      for (let i = 0; i < random.length; i++) out.push(random[i]);
    }
    if (type != Command.Hash) continue;
    const c = contexts[load<u8>(body, HashBody.Context)];
    const op = load<u8>(body, HashBody.Op) as i32;
    const size = length - HashBody.Data;
    if (op == HashOp.Start || op == HashOp.StartHmac) {
      c.active = true;
      c.keyed = op == HashOp.StartHmac;
      c.key = [];
      c.data = [];
      for (let i = 0; i < size; i++) c.key.push(load<u8>(body + HashBody.Data + i));
    } else if (!c.active) {
      const done = doneEvent(load<u8>(body, HashBody.Context), HashStatus.Idle, op == HashOp.Finish ? load<u16>(body, HashBody.Tag) : 0, false);
      for (let i = 0; i < done.length; i++) out.push(done[i]);
    } else if (op == HashOp.Update) {
      for (let i = 0; i < size; i++) c.data.push(load<u8>(body + HashBody.Data + i));
    } else {
      if (c.keyed) hmac(c.key.dataStart, c.key.length, c.data.dataStart, c.data.length, digest);
      else sha256(c.data.dataStart, c.data.length, digest);
      c.active = false;
      const done = doneEvent(load<u8>(body, HashBody.Context), HashStatus.Ok, load<u16>(body, HashBody.Tag), true);
      for (let i = 0; i < done.length; i++) out.push(done[i]);
    }
  }
  return out;
}
