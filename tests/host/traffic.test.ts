import { test } from "node:test";
import assert from "node:assert/strict";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { TlpStream, DeliveryChecker, streamIndex } from "../../tools/sim/traffic.ts";
import { TlpClass, tlpClass, tlpBytes } from "../../board/pcie/tlp.ts";

function generate(count: number, mix = { posted: 2, nonPosted: 1, completion: 1 }): [TlpStream, Uint8Array[]] {
  const stream = new TlpStream(xoroshiro128plus(5), mix, 32);
  return [stream, Array.from({ length: count }, () => stream.next())];
}

test("every generated TLP is well formed and carries its stream index", () => {
  const [stream, tlps] = generate(300);
  tlps.forEach((tlp, i) => {
    assert.equal(streamIndex(tlp), i);
    assert.equal(tlpClass(tlp), stream.classes[i]);
    assert.equal(tlp.length, tlpBytes(tlp));
  });
  assert.ok(new Set(stream.classes).size === 3, "all three classes");
});

test("the checker accepts the stream in order and flags duplicates, reordering and posted-passing", () => {
  const [stream, tlps] = generate(40);
  const ok = new DeliveryChecker(stream);
  for (const tlp of tlps) ok.deliver(tlp);
  assert.ok(ok.complete());

  const dup = new DeliveryChecker(stream);
  for (const tlp of [...tlps.slice(0, 10), tlps[3], ...tlps.slice(10)]) dup.deliver(tlp);
  assert.equal(dup.duplicates, 1);
  assert.ok(!dup.complete());

  const posted = tlps.findIndex((_, i) => stream.classes[i] === TlpClass.Posted);
  const samePosted = tlps.findIndex((_, i) => i > posted && stream.classes[i] === TlpClass.Posted);
  const swapped = [...tlps];
  [swapped[posted], swapped[samePosted]] = [swapped[samePosted], swapped[posted]];
  const reorder = new DeliveryChecker(stream);
  for (const tlp of swapped) reorder.deliver(tlp);
  assert.ok(reorder.misordered > 0);

  const read = tlps.findIndex((_, i) => i > posted && stream.classes[i] === TlpClass.NonPosted && stream.postedBefore[i] > 0);
  const passing = [tlps[read], ...tlps.filter((_, i) => i !== read)];
  const pass = new DeliveryChecker(stream);
  for (const tlp of passing) pass.deliver(tlp);
  assert.ok(pass.errors.some((e) => e.includes("passed a posted write")), pass.errors.join("; "));
});
