import { test } from "node:test";
import assert from "node:assert/strict";
import { barChart, cdf, lineChart, logTicks, niceTicks, timelineChart, type LineChartSpec, type TimelineSpec } from "../../bench/svg.ts";

/**
 * A small well-formedness check: one root element, tags balanced and properly nested, every
 * attribute `name="value"` (unique in its tag), no raw `<` or `&` in text or attribute values
 * (only the five predefined entities and character references).
 */
function checkXml(svg: string): void {
  const entity = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  const checkText = (text: string, where: number) => {
    assert.doesNotMatch(text, /[<>]/, `raw < or > in text at ${where}`);
    assert.doesNotMatch(text, entity, `raw & in text at ${where}`);
  };
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  while (i < svg.length) {
    const lt = svg.indexOf("<", i);
    const chunk = svg.slice(i, lt < 0 ? svg.length : lt);
    checkText(chunk, i);
    if (stack.length === 0) assert.match(chunk, /^\s*$/, `text outside the root element at ${i}`);
    if (lt < 0) break;
    const gt = svg.indexOf(">", lt);
    assert.ok(gt > lt, `unterminated tag at ${lt}`);
    const tag = svg.slice(lt + 1, gt);
    const m = /^(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*="[^"<]*")*)\s*(\/?)$/.exec(tag);
    assert.ok(m, `malformed tag <${tag}>`);
    const [, closing, name, attrs, selfClosing] = m;
    const names = [...attrs.matchAll(/([A-Za-z_][\w.:-]*)="([^"]*)"/g)].map(([, n, value]) => {
      assert.doesNotMatch(value, entity, `raw & in attribute ${n} of <${name}>`);
      return n;
    });
    assert.equal(new Set(names).size, names.length, `repeated attribute in <${tag}>`);
    if (closing) {
      assert.ok(!attrs && !selfClosing, `malformed end tag <${tag}>`);
      assert.equal(stack.pop(), name, `</${name}> does not close the open element`);
    } else {
      if (stack.length === 0) roots++;
      if (!selfClosing) stack.push(name);
    }
    i = gt + 1;
  }
  assert.deepEqual(stack, [], "unclosed elements");
  assert.equal(roots, 1, "exactly one root element");
}

/** The checks every chart must pass. */
function checkSvg(svg: string): void {
  checkXml(svg);
  const root = /^<svg [^>]*>/.exec(svg)?.[0] ?? "";
  assert.match(root, / xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(root, / viewBox="0 0 \d+(?:\.\d+)? \d+(?:\.\d+)?"/);
  assert.match(root, / font-family="sans-serif"/);
  assert.match(svg, /<rect x="0" y="0" width="[\d.]+" height="[\d.]+" fill="#ffffff"\/>/, "a white background");
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
  assert.doesNotMatch(svg, /<script|<style|@import|url\((?!#)/i, "nothing external, no scripts");
  for (const [, name, value] of svg.matchAll(/ ([\w-]+)="([^"]*)"/g)) {
    if (/^(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height|points|viewBox)$/.test(name)) assert.doesNotMatch(value, /\d\.\d{3}/, `${name}="${value}" has more than 2 decimals`);
  }
}

const attr = (tag: string, name: string) => Number(new RegExp(` ${name}="([^"]*)"`).exec(tag)![1]);
const polyline = (svg: string, cls: string) => {
  const tag = new RegExp(`<polyline class="${cls}" [^>]*>`).exec(svg)?.[0];
  assert.ok(tag, `no polyline ${cls}`);
  return / points="([^"]*)"/.exec(tag)![1].split(" ").map((p) => p.split(",").map(Number) as [number, number]);
};
const plotArea = (svg: string) => {
  const tag = /<rect class="plot-area" [^>]*>/.exec(svg)![0];
  return { x: attr(tag, "x"), y: attr(tag, "y"), width: attr(tag, "width"), height: attr(tag, "height") };
};
/** The texts of the chart, unescaped, with their positions. */
const texts = (svg: string) =>
  [...svg.matchAll(/<text x="([^"]*)" y="([^"]*)"([^>]*)>([^<]*)<\/text>/g)].map(([, x, y, attrs, t]) => ({
    x: Number(x), y: Number(y), attrs,
    text: t.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&"),
  }));

test("the well-formedness check itself rejects broken XML", () => {
  checkXml(`<svg a="1"><g><text>a &amp; b</text></g><rect/></svg>`);
  for (const bad of [
    `<svg><g></svg>`, // unbalanced
    `<svg><g></text></g></svg>`, // wrongly nested
    `<svg a=1></svg>`, // unquoted attribute
    `<svg a="1" a="2"></svg>`, // repeated attribute
    `<svg><text>a & b</text></svg>`, // raw &
    `<svg><text>a < b</text></svg>`, // raw <
    `<svg a="x & y"></svg>`, // raw & in an attribute
    `<svg></svg><svg></svg>`, // two roots
    `<svg></svg>text`, // text after the root
  ]) assert.throws(() => checkXml(bad), assert.AssertionError, bad);
});

const lineSpecs: LineChartSpec[] = [
  { title: "ordinary", x: { label: "x" }, y: { label: "y" }, series: [{ label: "a", points: [{ x: 0, y: 1 }, { x: 3, y: 4 }, { x: 9.3, y: 2 }] }, { label: "r", style: "ref", points: [{ x: 0, y: 2 }, { x: 9.3, y: 2 }] }] },
  { title: "no series", x: { label: "x" }, y: { label: "y" }, series: [] },
  { title: "empty series", x: { label: "x", log: true }, y: { label: "y", log: true }, series: [{ label: "none", points: [] }, { label: "step", style: "step", points: [] }] },
  { title: "one point", x: { label: "x" }, y: { label: "y" }, series: [{ label: "a", points: [{ x: 5, y: 5 }] }, { label: "s", style: "step", points: [{ x: 1, y: 1 }] }, { label: "r", style: "ref", points: [{ x: 2, y: 3 }] }] },
  { title: "all equal", x: { label: "x" }, y: { label: "y" }, series: [{ label: "a", points: [{ x: 2, y: 7 }, { x: 2, y: 7 }, { x: 2, y: 7 }] }] },
  { title: "zeros", x: { label: "x" }, y: { label: "y" }, series: [{ label: "a", points: [{ x: 0, y: 0 }, { x: 0, y: 0 }] }] },
  { title: "min == max", x: { label: "x", min: 3, max: 3 }, y: { label: "y", min: 1, max: 1, log: true }, series: [{ label: "a", points: [{ x: 1, y: 1 }, { x: 5, y: 2 }] }] },
  { title: "all dropped", x: { label: "x", log: true }, y: { label: "y", log: true }, series: [{ label: "a", points: [{ x: 0, y: 1 }, { x: -1, y: 1 }, { x: 1, y: 0 }] }] },
  { title: "bad numbers", x: { label: "x", min: NaN, max: Infinity }, y: { label: "y" }, series: [{ label: "a", points: [{ x: NaN, y: 1 }, { x: 1, y: Infinity }, { x: 2, y: 3 }, { x: 1e300, y: -1e300 }] }] },
  { title: "outside fixed range", x: { label: "x", min: 10, max: 20 }, y: { label: "y", min: 0, max: 1 }, series: [{ label: "a", points: [{ x: 0, y: 5 }, { x: 1e9, y: -7 }, { x: 1e308, y: 0.5 }, { x: 0.5, y: -1e308 }] }] },
  { title: "tiny", width: 10, height: 10, x: { label: "x" }, y: { label: "y" }, series: [{ label: "a", points: [{ x: 1e-9, y: 1e-9 }, { x: 2e-9, y: 3e-9 }] }] },
  { title: "huge", x: { label: "x", log: true }, y: { label: "y" }, series: [{ label: "a", style: "step", points: cdf([1e-30, 5, 1e30]) }] },
  { title: "many", x: { label: "x" }, y: { label: "y" }, series: Array.from({ length: 12 }, (_, i) => ({ label: `series number ${i} with a long label`, points: [{ x: i, y: i * i }, { x: i + 1, y: i }] })) },
];

test("every chart is well-formed SVG with the namespace, a viewBox and no NaN or Infinity, whatever the input", () => {
  for (const spec of lineSpecs) checkSvg(lineChart(spec));
  for (const log of [false, true]) {
    checkSvg(barChart({ title: "bars", unit: "events/s", log, bars: [{ label: "a", value: 2351116 }, { label: "b", value: 12.5, note: "est." }, { label: "c", value: 0 }, { label: "d", value: -3 }, { label: "e", value: NaN }] }));
    checkSvg(barChart({ title: "no bars", unit: "", log, bars: [] }));
    checkSvg(barChart({ title: "equal", unit: "x", log, bars: [{ label: "a", value: 1 }, { label: "b", value: 1 }] }));
    checkSvg(barChart({ title: "zeros", unit: "x", log, bars: [{ label: "a", value: 0 }], width: 5 }));
  }
  const timelines: TimelineSpec[] = [
    {
      title: "cable pull", xLabel: "ms", from: 40, to: 290, markers: [{ at: 50, label: "cable pulled" }, { at: 51, label: "again" }, { at: 150, label: "plugged back" }, { at: 999, label: "outside" }],
      lanes: [
        { label: "link", kind: "states", states: [{ from: 40, to: 50, state: "up" }, { from: 50, to: 60, state: "recovery" }, { from: 60, to: 150, state: "down" }, { from: 150, to: 300, state: "up" }, { from: NaN, to: 1, state: "x" }] },
        { label: "pciehp", kind: "events", events: [{ at: 60.1, label: "slot 1 removal" }, { at: 60.2, label: "slot 2 removal" }, { at: 60.3, label: "slot 3 removal" }, { at: 60.4, label: "slot 4 removal" }, { at: 289, label: "late" }, { at: 5, label: "early" }] },
        { label: "NVMe", kind: "series", unit: "Gb/s", series: [{ x: 40, y: 2.5 }, { x: 41, y: 2.6 }, { x: 50, y: 0 }, { x: 151, y: 2.4 }, { x: NaN, y: 1 }] },
      ],
    },
    { title: "empty", xLabel: "t", from: 0, to: 0, lanes: [] },
    { title: "empty lanes", xLabel: "t", from: 5, to: 1, lanes: [{ label: "s", kind: "states" }, { label: "e", kind: "events", events: [] }, { label: "v", kind: "series", series: [] }] },
    { title: "one point", xLabel: "t", from: NaN, to: Infinity, width: 1, lanes: [{ label: "v", kind: "series", series: [{ x: 0.5, y: 0 }] }, { label: "flat", kind: "series", series: [{ x: 0, y: 3 }, { x: 1, y: 3 }] }] },
  ];
  for (const spec of timelines) checkSvg(timelineChart(spec));
});

test("a series maps to the plot area's pixels through the axes", () => {
  const svg = lineChart({
    title: "mapping", width: 600, height: 300,
    x: { label: "x", min: 0, max: 10 }, y: { label: "y", min: 0, max: 100 },
    series: [{ label: "a", points: [{ x: 0, y: 0 }, { x: 2.5, y: 50 }, { x: 10, y: 100 }, { x: 7, y: 20 }] }],
  });
  const area = plotArea(svg);
  assert.ok(area.width > 300 && area.height > 100, "a plot area of a sensible size");
  const expected = [[0, 0], [2.5, 50], [10, 100], [7, 20]].map(([x, y]) => [area.x + (x / 10) * area.width, area.y + area.height - (y / 100) * area.height]);
  const points = polyline(svg, "series-0");
  assert.equal(points.length, expected.length);
  points.forEach(([x, y], i) => {
    assert.ok(Math.abs(x - expected[i][0]) <= 0.01, `point ${i}: x ${x}, expected ${expected[i][0]}`);
    assert.ok(Math.abs(y - expected[i][1]) <= 0.01, `point ${i}: y ${y}, expected ${expected[i][1]}`);
  });
  // One marker per point of a "line" series, at the same places.
  const markers = [...svg.matchAll(/<circle cx="([^"]*)" cy="([^"]*)" r="3"\/>/g)].map(([, x, y]) => [Number(x), Number(y)]);
  assert.deepEqual(markers, points);
  // The y ticks 0, 20, ..., 100 sit on the same mapping.
  const yTicks = texts(svg).filter((t) => t.x < area.x && t.attrs.includes(`text-anchor="end"`));
  assert.deepEqual(yTicks.map((t) => t.text), ["0", "20", "40", "60", "80", "100"]);
  for (const t of yTicks) assert.ok(Math.abs(t.y - (area.y + area.height - (Number(t.text) / 100) * area.height)) <= 0.01, `tick ${t.text}`);

  // A step series holds each value until the next x; a ref series is dashed and has no markers.
  const step = lineChart({
    title: "step", width: 600, height: 300,
    x: { label: "x", min: 0, max: 10 }, y: { label: "y", min: 0, max: 1 },
    series: [{ label: "cdf", style: "step", points: cdf([4, 2, 8]) }, { label: "ref", style: "ref", points: [{ x: 0, y: 0.5 }, { x: 10, y: 0.5 }] }],
  });
  const a = plotArea(step);
  const X = (x: number) => Math.round((a.x + (x / 10) * a.width) * 100) / 100;
  const Y = (y: number) => Math.round((a.y + a.height - y * a.height) * 100) / 100;
  assert.deepEqual(polyline(step, "series-0"), [[X(2), Y(1 / 3)], [X(4), Y(1 / 3)], [X(4), Y(2 / 3)], [X(8), Y(2 / 3)], [X(8), Y(1)]]);
  assert.match(step, /<polyline class="series-1" [^>]*stroke-dasharray="6 4"/);
  assert.doesNotMatch(step, /<circle /);
});

test("ticks: 1-2-5 steps covering the range", () => {
  assert.deepEqual(niceTicks(0, 9.3, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.1, 0.3, 2), [0.1, 0.2, 0.3]);
  assert.deepEqual(niceTicks(-3, 47, 5), [-10, 0, 10, 20, 30, 40, 50]);
  assert.deepEqual(niceTicks(9.3, 0, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0, 100, 4), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(0, 100, 2), [0, 50, 100]);
  assert.deepEqual(niceTicks(0, 25, 5), [0, 5, 10, 15, 20, 25]);
  assert.deepEqual(niceTicks(1000, 1000.5, 5), [1000, 1000.1, 1000.2, 1000.3, 1000.4, 1000.5]);
  assert.deepEqual(niceTicks(5, 5, 5), [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6], "min == max gets a range around it");
  assert.deepEqual(niceTicks(0, 0, 5), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(niceTicks(NaN, 1, 5), []);
  for (const [lo, hi] of [[0, 9.3], [-0.37, 0.021], [123456, 123999], [1e-7, 3e-7]]) {
    const ticks = niceTicks(lo, hi, 5);
    const step = ticks[1] - ticks[0];
    const m = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
    assert.ok([1, 2, 5].some((n) => Math.abs(m - n) < 1e-6), `step ${step} of ${lo}..${hi} is 1, 2 or 5 × 10^k`);
    assert.ok(ticks[0] <= lo && ticks.at(-1)! >= hi && ticks.length >= 3 && ticks.length <= 11, `${ticks} covers ${lo}..${hi}`);
  }
});

test("log axes: ticks at decades; values ≤ 0 dropped and the chart says so", () => {
  assert.deepEqual(logTicks(5, 500), [1, 10, 100, 1000]);
  assert.deepEqual(logTicks(0.002, 0.5), [0.001, 0.01, 0.1, 1]);
  assert.deepEqual(logTicks(100, 100), [100, 1000]);
  assert.deepEqual(logTicks(0, 10), []);
  const wide = logTicks(1e-3, 1e30);
  assert.ok(wide.length <= 12 && wide[0] === 1e-3 && wide.at(-1)! >= 1e30);

  const svg = lineChart({
    title: "log", width: 600, height: 300,
    x: { label: "x" }, y: { label: "y", log: true },
    series: [{ label: "a", points: [{ x: 1, y: 0 }, { x: 2, y: 5 }, { x: 3, y: -1 }, { x: 4, y: 50 }, { x: 5, y: 500 }] }],
  });
  checkSvg(svg);
  const area = plotArea(svg);
  const yTicks = texts(svg).filter((t) => t.x < area.x && t.attrs.includes(`text-anchor="end"`));
  assert.deepEqual(yTicks.map((t) => t.text), ["1", "10", "100", "1 000"]);
  const gaps = yTicks.slice(1).map((t, i) => yTicks[i].y - t.y);
  for (const gap of gaps) assert.ok(Math.abs(gap - area.height / 3) <= 0.02, "decades equally spaced");
  const points = polyline(svg, "series-0");
  assert.equal(points.length, 3, "only the three positive points are drawn");
  assert.ok(Math.abs(points[1][1] - (area.y + area.height - (Math.log10(50) / 3) * area.height)) <= 0.01, "50 sits at log10(50) / 3 of the height");
  const note = texts(svg).find((t) => /not shown/.test(t.text));
  assert.equal(note?.text, "2 points with y ≤ 0 not shown (log scale)");
  assert.doesNotMatch(lineChart({ title: "log", x: { label: "x" }, y: { label: "y", log: true }, series: [{ label: "a", points: [{ x: 1, y: 1 }] }] }), /not shown/, "no note when nothing is dropped");

  const bars = barChart({ title: "bars", unit: "events/s", log: true, bars: [{ label: "a", value: 2351116 }, { label: "b", value: 0 }, { label: "c", value: 120 }] });
  checkSvg(bars);
  assert.equal([...bars.matchAll(/<rect class="bar" /g)].length, 2);
  assert.ok(texts(bars).some((t) => t.text === "1 bar with a value ≤ 0 not drawn (log scale)"));
  assert.ok(texts(bars).some((t) => t.text === "0 events/s"), "its value is still printed");
});

test("bar charts: lengths proportional to the values, values printed grouped at the bar ends", () => {
  const svg = barChart({ title: "bars", unit: "events/s", bars: [{ label: "in-process", value: 2351116 }, { label: "child", value: 1175558, note: "Node WASI" }, { label: "wasm3", value: 12.25 }] });
  checkSvg(svg);
  const bars = [...svg.matchAll(/<rect class="bar" [^>]*>/g)].map(([tag]) => ({ x: attr(tag, "x"), width: attr(tag, "width") }));
  assert.equal(bars.length, 3);
  assert.ok(Math.abs(bars[0].width / bars[1].width - 2) < 0.001, "twice the value, twice the length");
  const values = texts(svg).filter((t) => / events\/s/.test(t.text));
  assert.deepEqual(values.map((t) => t.text), ["2 351 116 events/s", "1 175 558 events/s (Node WASI)", "12.25 events/s"]);
  values.forEach((t, i) => assert.ok(Math.abs(t.x - (bars[i].x + bars[i].width + 5)) <= 0.01, "the value sits at its bar's end"));
});

test("timelines: states labelled, events ticked, series with their max, markers across all lanes", () => {
  const svg = timelineChart({
    title: "cable pull", xLabel: "simulated time (ms)", from: 0, to: 100,
    markers: [{ at: 20, label: "cable pulled" }],
    lanes: [
      { label: "link", kind: "states", states: [{ from: 0, to: 20, state: "up" }, { from: 20, to: 100, state: "down" }] },
      { label: "pciehp", kind: "events", events: [{ at: 30, label: "slot 1 removal" }] },
      { label: "NVMe", kind: "series", unit: "Gb/s", series: [{ x: 0, y: 2.5 }, { x: 10, y: 2.75 }, { x: 20, y: 0 }] },
    ],
  });
  checkSvg(svg);
  const all = texts(svg).map((t) => t.text);
  for (const label of ["link", "pciehp", "NVMe", "up", "down", "slot 1 removal", "cable pulled", "max 2.75 Gb/s", "simulated time (ms)"]) assert.ok(all.includes(label), label);
  const marker = /<line [^>]*class="marker"[^>]*>/.exec(svg)![0];
  const lanes = [...svg.matchAll(/<rect x="[^"]*" y="([^"]*)" width="[^"]*" height="([^"]*)" fill="#fafafa"/g)].map(([, y, h]) => [Number(y), Number(h)]);
  assert.equal(lanes.length, 3);
  assert.ok(attr(marker, "y1") <= lanes[0][0] && attr(marker, "y2") >= lanes[2][0] + lanes[2][1], "the marker spans all lanes");
  assert.equal(attr(marker, "x1"), attr(marker, "x2"));
  assert.match(marker, /stroke-dasharray/);
});

test("the same input gives the same bytes; text is escaped", () => {
  const spec = (): LineChartSpec => ({
    title: `a <b> & "c" 'd'`, x: { label: "x <&>" }, y: { label: "y" },
    series: [{ label: "<script>alert(1)</script> & co", points: [{ x: 1 / 3, y: Math.PI }, { x: 2, y: 1e-5 }] }],
  });
  assert.equal(lineChart(spec()), lineChart(spec()));
  const timeline = (): TimelineSpec => ({ title: "t", xLabel: "x", from: 0, to: 1, lanes: [{ label: "l<&>", kind: "events", events: [{ at: 0.5, label: "e<&>" }] }], markers: [{ at: 0.2, label: "m<&>" }] });
  assert.equal(timelineChart(timeline()), timelineChart(timeline()));
  assert.equal(barChart({ title: "b", unit: "u", bars: [{ label: "x", value: 1 / 7 }] }), barChart({ title: "b", unit: "u", bars: [{ label: "x", value: 1 / 7 }] }));

  const svg = lineChart(spec());
  checkSvg(svg);
  assert.match(svg, /<title>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;<\/title>/);
  assert.ok(svg.includes("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
  assert.ok(svg.includes("x &lt;&amp;&gt;"));
  assert.doesNotMatch(svg, /<script/);
  const bars = barChart({ title: "b", unit: "<u>", bars: [{ label: "a&b", value: 1, note: "<n>" }] });
  checkSvg(bars);
  assert.ok(bars.includes("a&amp;b") && bars.includes("1 &lt;u&gt; (&lt;n&gt;)"));
  const t = timelineChart(timeline());
  checkSvg(t);
  for (const s of ["l&lt;&amp;&gt;", "e&lt;&amp;&gt;", "m&lt;&amp;&gt;"]) assert.ok(t.includes(s), s);
});

test("cdf: sorted values, y from 1/n to 1", () => {
  assert.deepEqual(cdf([3, 1, 2]), [{ x: 1, y: 1 / 3 }, { x: 2, y: 2 / 3 }, { x: 3, y: 1 }]);
  assert.deepEqual(cdf([]), []);
  assert.deepEqual(cdf([10, 2, 100]).map((p) => p.x), [2, 10, 100], "numeric order, not string order");
  assert.deepEqual(cdf([5, NaN, 5]), [{ x: 5, y: 0.5 }, { x: 5, y: 1 }]);
});
