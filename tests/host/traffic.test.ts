import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { TlpStream, DeliveryChecker, streamIndex } from "../../tools/sim/traffic.ts";
import { TlpClass, tlpClass, tlpBytes, decodeTlp, isMalformed } from "../../board/pcie/tlp.ts";

function generate(count: number, mix = { posted: 2, nonPosted: 1, completion: 1 }): [TlpStream, Uint8Array[]] {
  const stream = new TlpStream(xoroshiro128plus(5), mix, 32);
  return [stream, Array.from({ length: count }, () => stream.next())];
}

test("every generated TLP is well formed and carries its stream index", () => {
  for (const payload of [32, 256, 4096]) {
    const stream = new TlpStream(xoroshiro128plus(5), { posted: 2, nonPosted: 1, completion: 1 }, payload);
    for (let i = 0; i < 300; i++) {
      const tlp = stream.next();
      assert.equal(streamIndex(tlp), i);
      assert.equal(tlpClass(tlp), stream.classes[i]);
      assert.equal(tlp.length, tlpBytes(tlp));
      const decoded = decodeTlp(tlp);
      assert.ok(!isMalformed(decoded), `TLP ${i} of ${payload}-byte payloads: ${JSON.stringify(decoded)}`);
    }
    assert.ok(new Set(stream.classes).size === 3, "all three classes");
  }
  // Far into a long stream the address still carries the index.
  const stream = new TlpStream(xoroshiro128plus(5), { posted: 0, nonPosted: 1, completion: 0 }, 64);
  for (let i = 0; i < 3_000_000; i++) stream.next();
  assert.equal(streamIndex(stream.next()), 3_000_000);
});

/** Delivers `order` (stream indices) of `tlps` to a new checker. */
function check(stream: TlpStream, tlps: Uint8Array[], order: number[]): DeliveryChecker {
  const checker = new DeliveryChecker(stream);
  for (const i of order) checker.deliver(tlps[i]);
  return checker;
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i);
const counts = (c: DeliveryChecker, inFlight: Uint8Array[] = []) => ({ lost: c.lost(inFlight), duplicated: c.duplicates, reordered: c.misordered, aborted: c.abortedByRemoval() });

test("the checker counts each planted fault once and by kind", () => {
  const [stream, tlps] = generate(200);
  assert.deepEqual(counts(check(stream, tlps, all(200))), { lost: 0, duplicated: 0, reordered: 0, aborted: 0 }, "in order");
  assert.ok(check(stream, tlps, all(200)).complete());

  // One posted write lost, with reads and completions after it: one loss, nothing out of order.
  const posted = all(200).find((i) => i > 10 && stream.classes[i] === TlpClass.Posted)!;
  assert.deepEqual(counts(check(stream, tlps, all(200).filter((i) => i !== posted))), { lost: 1, duplicated: 0, reordered: 0, aborted: 0 }, "drop one");

  // One delivered twice, later on.
  assert.deepEqual(counts(check(stream, tlps, [...all(100), 42, ...all(200).slice(100)])), { lost: 0, duplicated: 1, reordered: 0, aborted: 0 }, "duplicate one");

  // Two of one class swapped: one reordering.
  const next = all(200).find((i) => i > posted && stream.classes[i] === TlpClass.Posted)!;
  const swapped = all(200);
  [swapped[posted], swapped[next]] = [swapped[next], swapped[posted]];
  assert.deepEqual(counts(check(stream, tlps, swapped)), { lost: 0, duplicated: 0, reordered: 1, aborted: 0 }, "swap two");

  // A read that passes the posted write just before it: the write comes late, one reordering.
  const write = all(199).find((i) => stream.classes[i] === TlpClass.Posted && stream.classes[i + 1] === TlpClass.NonPosted)!;
  const passing = all(200);
  [passing[write], passing[write + 1]] = [passing[write + 1], passing[write]];
  const pass = check(stream, tlps, passing);
  assert.deepEqual(counts(pass), { lost: 0, duplicated: 0, reordered: 1, aborted: 0 }, "a read passing a write");
  assert.ok(pass.errors.some((e) => e.includes(`TLP ${write} (Posted) came after TLP ${write + 1}`)), pass.errors.join("; "));

  // The last 30 flushed at a removal: aborted, not lost; 10 more still on their way: neither.
  const removed = check(stream, tlps, all(160));
  for (const i of all(200).slice(170)) removed.abort(tlps[i]);
  assert.deepEqual(counts(removed, tlps.slice(160, 170)), { lost: 0, duplicated: 0, reordered: 0, aborted: 30 }, "flushed at a removal");
  assert.deepEqual(counts(removed), { lost: 10, duplicated: 0, reordered: 0, aborted: 30 }, "the 10 not on their way are lost");

  // A TLP reported discarded that arrives all the same (the other end had it): delivered, not aborted.
  const late = check(stream, tlps, all(200));
  late.abort(tlps[5]);
  assert.equal(late.abortedByRemoval(), 0);
});

