// Small charts for the benchmark report, written as SVG 1.1 text: line charts (with step and
// dashed reference series), horizontal bar charts and timelines of stacked lanes. No
// dependencies, no scripts, no CSS or fonts to fetch; a white background so they read on
// GitHub's markdown preview. Deterministic: the same spec gives the same bytes (every number
// written is rounded to 2 decimals). Bad input (no points, one point, equal values, values a
// log axis cannot show, NaN) draws what it can and says what it left out in a note; it never
// throws and never writes NaN.

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  label: string;
  points: Point[];
  /** "line" (default): straight segments and a marker per point; "step": a step function (CDFs, rates per bucket); "ref": a dashed reference line, no markers. */
  style?: "line" | "step" | "ref";
}

export interface Axis {
  label: string;
  min?: number;
  max?: number;
  log?: boolean;
}

export interface LineChartSpec {
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
  width?: number;
  height?: number;
}

export interface Bar {
  label: string;
  value: number;
  note?: string;
}

export interface BarChartSpec {
  title: string;
  unit: string;
  bars: Bar[];
  log?: boolean;
  width?: number;
}

export interface Lane {
  label: string;
  /** "states": intervals coloured and labelled by state; "events": tick marks with short labels; "series": a small step-line plot of values (own y scale, label its max). */
  kind: "states" | "events" | "series";
  states?: { from: number; to: number; state: string }[];
  events?: { at: number; label: string }[];
  series?: Point[];
  unit?: string; // for "series"
}

export interface TimelineSpec {
  title: string;
  xLabel: string;
  from: number;
  to: number;
  lanes: Lane[];
  width?: number;
  markers?: { at: number; label: string }[];
}

/** Okabe-Ito, colour-blind safe; yellow last (it is faint on white). */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
const INK = "#222222";
const MUTED = "#555555";
const GRID = "#e3e3e3";
const MINOR_GRID = "#f2f2f2";
const FRAME = "#999999";
/** Line series with more points than this get no markers (they would hide the line). */
const MAX_MARKERS = 200;
/** Pixel coordinates are clamped to this, so a value far outside a fixed axis range stays a plain number. */
const FAR = 100_000;

// ---------------------------------------------------------------------------------------------
// Text and numbers.

/** A number as written into the SVG: rounded to 2 decimals, no "-0", never NaN or Infinity. */
function num(v: number): string {
  if (!Number.isFinite(v)) return "0";
  const r = Math.round(Math.min(FAR, Math.max(-FAR, v)) * 100) / 100;
  return String(r === 0 ? 0 : r);
}

/** Text for an XML text node or attribute value. Characters XML 1.0 forbids are dropped. */
function esc(text: string): string {
  return String(text)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** Estimated width of `text` in sans-serif at `size` px (no font metrics here: average glyph width). */
function textWidth(text: string, size: number): number {
  return [...text].length * size * 0.6;
}

/** `text` cut with an ellipsis to fit about `width` px at `size`. */
function fit(text: string, width: number, size: number): string {
  const chars = [...text];
  const max = Math.max(1, Math.floor(width / (size * 0.6)));
  return chars.length <= max ? text : chars.slice(0, Math.max(0, max - 1)).join("") + "…";
}

/**
 * Digits grouped by three with spaces, SI style: "2351116.5" → "2 351 116.5", when the whole
 * part has at least `minDigits` digits (4 here: "1 000" on an axis; a table may start at 5).
 */
export function groupDigits(fixed: string, minDigits = 4): string {
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(fixed);
  if (!match) return fixed;
  const [, sign, int, frac = ""] = match;
  const grouped = int.length >= minDigits ? int.replace(/\B(?=(\d{3})+(?!\d))/g, " ") : int;
  return sign + grouped + frac;
}

/** A mantissa-exponent form for numbers too large or small to write out: "1.5e-7". */
function exponential(v: number): string {
  return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
}

/** A measured value: integers as they are, others to about 4 significant digits; grouped. */
function formatValue(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e15 || abs < 1e-6) return exponential(v);
  if (Number.isInteger(v)) return groupDigits(String(v));
  const decimals = abs >= 1000 ? 0 : Math.min(9, 3 - Math.floor(Math.log10(abs)));
  let fixed = v.toFixed(decimals);
  if (fixed.includes(".")) fixed = fixed.replace(/0+$/, "").replace(/\.$/, "");
  return groupDigits(fixed === "-0" ? "0" : fixed);
}

/** A tick label on a linear axis with ticks `step` apart. */
function tickLabel(v: number, step: number): string {
  if (v === 0) return "0";
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(v) >= 1e15 || decimals > 6) return exponential(v);
  return groupDigits(v.toFixed(decimals));
}

/** A tick label on a log axis (decades): "0.01", "1", "1 000", "1e9". */
function decadeLabel(v: number): string {
  const e = Math.round(Math.log10(v));
  if (e < -3 || e > 9) return `1e${e}`;
  return groupDigits(v.toFixed(Math.max(0, -e)));
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** FNV-1a of `text`, for ids that differ between charts but not between runs. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** A requested size: a finite number at least `least`, else `fallback`. */
function size(requested: number | undefined, fallback: number, least: number): number {
  return requested !== undefined && Number.isFinite(requested) ? Math.max(least, Math.round(requested)) : fallback;
}

// ---------------------------------------------------------------------------------------------
// Ticks and scales.

/**
 * "Nice" ticks covering [min, max]: about `count` steps of 1, 2 or 5 × 10^k (the one nearest
 * (max - min) / count), from the last multiple of the step at or below `min` to the first at or
 * above `max` (0..9.3, 5 → 0 2 4 6 8 10).
 * min == max gets a range around it; non-finite input gives [].
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= d;
    max += d;
  }
  const steps = Number.isFinite(count) ? Math.min(100, Math.max(1, Math.round(count))) : 5;
  const raw = (max - min) / steps;
  if (!Number.isFinite(raw) || raw <= 0) return [min, max];
  const e = Math.floor(Math.log10(raw));
  const mag = 10 ** e;
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const decimals = Math.min(100, Math.max(0, -e));
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) {
    const v = Number((i * step).toFixed(decimals));
    ticks.push(v === 0 ? 0 : v);
  }
  return ticks;
}

/**
 * Decades covering [min, max] on a log axis (5..500 → 1 10 100 1000); at most about 11 of them
 * (every 2nd, 3rd... decade over a wide range). Non-positive or non-finite input gives [].
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min > max) [min, max] = [max, min];
  const lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi <= lo) hi = lo + 1;
  const stride = Math.max(1, Math.ceil((hi - lo) / 10));
  hi = lo + stride * Math.ceil((hi - lo) / stride);
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e += stride) ticks.push(Number(`1e${e}`));
  return ticks;
}

interface Scale {
  lo: number;
  hi: number;
  log: boolean;
  /** Labelled ticks inside [lo, hi]. */
  ticks: { value: number; label: string }[];
  /** Unlabelled grid lines (2..9 × each decade on a log axis). */
  minor: number[];
  /** Where `v` falls, 0 at lo and 1 at hi. */
  at(v: number): number;
}

function makeScale(lo: number, hi: number, log: boolean, ticks: { value: number; label: string }[], minor: number[] = []): Scale {
  const a = log ? Math.log10(lo) : lo;
  const b = log ? Math.log10(hi) : hi;
  const span = b - a;
  const inside = (v: number) => v >= Math.min(lo, hi) - Math.abs(hi - lo) * 1e-9 && v <= Math.max(lo, hi) + Math.abs(hi - lo) * 1e-9;
  return {
    lo, hi, log,
    ticks: ticks.filter((t) => inside(t.value)),
    minor: minor.filter(inside),
    at: (v) => (span > 0 && Number.isFinite(span) ? ((log ? Math.log10(v) : v) - a) / span : 0.5),
  };
}

/** A fixed bound of an axis, if it is one the axis can use. */
function bound(v: number | undefined, log: boolean): number | undefined {
  return v !== undefined && Number.isFinite(v) && (!log || v > 0) ? v : undefined;
}

/**
 * The scale of an axis over `values` (already filtered: finite, and positive on a log axis),
 * with about `count` ticks. Fixed min/max are kept as given; free ends go out to a tick.
 */
function axisScale(values: number[], axis: { min?: number; max?: number; log?: boolean }, count: number): Scale {
  const log = axis.log === true;
  let fixedLo = bound(axis.min, log);
  let fixedHi = bound(axis.max, log);
  if (fixedLo !== undefined && fixedHi !== undefined && fixedLo > fixedHi) [fixedLo, fixedHi] = [fixedHi, fixedLo];
  if (fixedLo !== undefined && fixedLo === fixedHi) fixedLo = fixedHi = undefined; // an empty range: ignore both
  let dataLo = Infinity;
  let dataHi = -Infinity;
  for (const v of values) {
    if (v < dataLo) dataLo = v;
    if (v > dataHi) dataHi = v;
  }
  const any = values.length > 0;
  let lo = fixedLo ?? (any ? dataLo : undefined);
  let hi = fixedHi ?? (any ? dataHi : undefined);
  // The data may lie wholly outside a fixed end: then the free end follows the fixed one.
  if (lo !== undefined && hi !== undefined && lo > hi) {
    if (fixedLo !== undefined) hi = undefined;
    else lo = undefined;
  }
  if (log) {
    if (lo === undefined && hi === undefined) [lo, hi] = [1, 10];
    else if (lo === undefined) lo = hi! / 10;
    else if (hi === undefined) hi = lo * 10;
    const decades = logTicks(lo, hi!);
    const a = fixedLo ?? decades[0];
    const b = fixedHi ?? decades[decades.length - 1];
    const minor: number[] = [];
    const first = Math.floor(Math.log10(a));
    const last = Math.ceil(Math.log10(b));
    if (last - first <= 8) for (let e = first; e < last; e++) for (let m = 2; m <= 9; m++) minor.push(m * Number(`1e${e}`));
    return makeScale(a, b, true, decades.map((v) => ({ value: v, label: decadeLabel(v) })), minor);
  }
  if (lo === undefined && hi === undefined) [lo, hi] = [0, 1];
  else if (lo === undefined) lo = hi! > 0 ? 0 : hi! - 1;
  else if (hi === undefined) hi = lo < 0 ? 0 : lo + 1;
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi! += d;
  }
  const ticks = niceTicks(lo!, hi!, count);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  const a = fixedLo ?? ticks[0];
  const b = fixedHi ?? ticks[ticks.length - 1];
  return makeScale(a, b, false, ticks.map((v) => ({ value: v, label: tickLabel(v, step) })));
}

// ---------------------------------------------------------------------------------------------
// SVG pieces.

function svgOpen(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${num(width)}" height="${num(height)}" viewBox="0 0 ${num(width)} ${num(height)}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${num(width)}" height="${num(height)}" fill="#ffffff"/>`,
    `<text x="${num(width / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold" fill="${INK}">${esc(fit(title, width - 24, 15 * 1.05))}</text>`,
  ];
}

function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${num(x)}" y="${num(y)}"${attrs}>${esc(content)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${num(x1)}" y1="${num(y1)}" x2="${num(x2)}" y2="${num(y2)}" ${attrs}/>`;
}

function clip(id: string, x: number, y: number, width: number, height: number): string {
  return `<defs><clipPath id="${id}"><rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(height)}"/></clipPath></defs>`;
}

/**
 * "x,y x,y ..." without the points that add nothing visible: those within half a pixel of the
 * last one kept (except the last point), and with `straight`, the middle of three points on one
 * horizontal or vertical line. Keeps a CDF of thousands of samples small.
 */
function polylinePoints(points: [number, number][], straight: boolean): string {
  const out: [string, string][] = [];
  let kept: [number, number] | undefined;
  points.forEach(([x, y], i) => {
    if (kept && i < points.length - 1 && Math.abs(x - kept[0]) < 0.5 && Math.abs(y - kept[1]) < 0.5) return;
    kept = [x, y];
    const p: [string, string] = [num(x), num(y)];
    const prev = out[out.length - 1];
    if (prev && prev[0] === p[0] && prev[1] === p[1]) return;
    const before = out[out.length - 2];
    if (straight && prev && before && ((before[0] === prev[0] && prev[0] === p[0]) || (before[1] === prev[1] && prev[1] === p[1]))) out[out.length - 1] = p;
    else out.push(p);
  });
  return out.map(([x, y]) => `${x},${y}`).join(" ");
}

/** A step function through `points` (sorted by x): each value holds until the next x. */
function stepPoints(points: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  points.forEach(([x, y], i) => {
    if (i > 0) out.push([x, points[i - 1][1]]);
    out.push([x, y]);
  });
  return out;
}

/** Lays out legend-like items in rows within `width`; returns each item's row and x offset. */
function flow(widths: number[], width: number, gap: number): { row: number; x: number }[] {
  let row = 0;
  let x = 0;
  return widths.map((w) => {
    if (x > 0 && x + w > width) {
      row++;
      x = 0;
    }
    const at = { row, x };
    x += w + gap;
    return at;
  });
}

// ---------------------------------------------------------------------------------------------
// Line chart.

/** A line chart: axes with "nice" ticks (1-2-5 steps; decades on a log axis), grid lines, a legend, one colour per series (a fixed palette, colour-blind safe, e.g. Okabe-Ito), titles. */
export function lineChart(spec: LineChartSpec): string {
  let width = size(spec.width, 720, 240);
  const xLog = spec.x?.log === true;
  const yLog = spec.y?.log === true;
  let nonFinite = 0;
  let droppedX = 0;
  let droppedY = 0;
  const series = (spec.series ?? []).map((s, i) => {
    const points: Point[] = [];
    for (const p of s.points ?? []) {
      if (!p || !Number.isFinite(p.x) || !Number.isFinite(p.y)) nonFinite++;
      else if (xLog && p.x <= 0) droppedX++;
      else if (yLog && p.y <= 0) droppedY++;
      else points.push(p);
    }
    const style = s.style === "step" || s.style === "ref" ? s.style : "line";
    if (style === "step") points.sort((a, b) => a.x - b.x);
    return { label: String(s.label ?? ""), style, colour: PALETTE[i % PALETTE.length], points };
  });

  const notes: string[] = [];
  if (droppedX + droppedY > 0) {
    const axes = droppedX && droppedY ? "x or y" : droppedX ? "x" : "y";
    notes.push(`${plural(droppedX + droppedY, "point")} with ${axes} ≤ 0 not shown (log scale)`);
  }
  if (nonFinite > 0) notes.push(`${plural(nonFinite, "point")} without a finite value not shown`);
  if (series.every((s) => s.points.length === 0)) notes.push("no data");

  // Vertical layout first (the y ticks depend on the plot's height, the left margin on their labels).
  const legendSize = 12;
  const items = series.map((s) => `${s.label}${s.points.length === 0 ? " (no data)" : ""}`);
  const itemWidths = items.map((label) => 28 + Math.min(textWidth(label, legendSize), width - 60));
  const placed = flow(itemWidths, width - 32, 18);
  const legendRows = placed.length ? placed[placed.length - 1].row + 1 : 0;
  const noteHeight = notes.length ? 16 : 0;
  const top = 40;
  const below = 22 + 20 + legendRows * 18 + (legendRows ? 6 : 0) + noteHeight + 8;
  let height = size(spec.height, 400, 120);
  let plotH = height - top - below;
  if (plotH < 80) {
    plotH = 80;
    height = top + plotH + below;
  }
  const yScale = axisScale(series.flatMap((s) => s.points.map((p) => p.y)), spec.y ?? {}, Math.max(2, Math.floor(plotH / 45)));
  const labelWidth = Math.max(0, ...yScale.ticks.map((t) => textWidth(t.label, 11)));
  const left = 16 + 18 + labelWidth + 8;
  const xValues = series.flatMap((s) => s.points.map((p) => p.x));
  // The last x tick label is centred on the plot's right edge: leave it room.
  let right = 20;
  let plotW = 0;
  let xScale: Scale | undefined;
  for (let pass = 0; pass < 2; pass++) {
    plotW = width - left - right;
    if (plotW < 120) {
      plotW = 120;
      width = left + plotW + right;
    }
    xScale = axisScale(xValues, spec.x ?? {}, Math.max(2, Math.floor(plotW / 90)));
    const last = xScale.ticks[xScale.ticks.length - 1];
    const need = last && xScale.at(last.value) > 0.999 ? textWidth(last.label, 11) / 2 + 6 : 0;
    if (need <= right) break;
    right = need;
  }
  const xs = xScale!;
  const px = (x: number) => left + xs.at(x) * plotW;
  const py = (y: number) => top + plotH - yScale.at(y) * plotH;
  const bottom = top + plotH;

  const title = String(spec.title ?? "");
  const clipId = `plot-${hash(`line|${title}|${width}|${height}`)}`;
  const out = svgOpen(width, height, title);
  out.push(clip(clipId, left - 4, top - 4, plotW + 8, plotH + 8)); // markers on the frame stay whole
  // Grid, frame, ticks.
  out.push(`<g stroke="${MINOR_GRID}" stroke-width="1">`);
  for (const v of xs.minor) out.push(line(px(v), top, px(v), bottom, ""));
  for (const v of yScale.minor) out.push(line(left, py(v), left + plotW, py(v), ""));
  out.push("</g>", `<g stroke="${GRID}" stroke-width="1">`);
  for (const t of xs.ticks) out.push(line(px(t.value), top, px(t.value), bottom, ""));
  for (const t of yScale.ticks) out.push(line(left, py(t.value), left + plotW, py(t.value), ""));
  out.push("</g>");
  out.push(`<rect class="plot-area" x="${num(left)}" y="${num(top)}" width="${num(plotW)}" height="${num(plotH)}" fill="none" stroke="${FRAME}" stroke-width="1"/>`);
  out.push(`<g font-size="11" fill="${INK}">`);
  for (const t of xs.ticks) out.push(text(px(t.value), bottom + 16, t.label, ` text-anchor="middle"`));
  for (const t of yScale.ticks) out.push(text(left - 6, py(t.value), t.label, ` text-anchor="end" dy="0.35em"`));
  out.push("</g>");
  out.push(text(left + plotW / 2, bottom + 36, fit(String(spec.x?.label ?? ""), plotW, 12), ` text-anchor="middle" fill="${INK}"`));
  const yTitleX = 18;
  const yTitleY = top + plotH / 2;
  out.push(text(yTitleX, yTitleY, fit(String(spec.y?.label ?? ""), plotH, 12), ` text-anchor="middle" fill="${INK}" transform="rotate(-90 ${num(yTitleX)} ${num(yTitleY)})"`));

  // Series.
  out.push(`<g clip-path="url(#${clipId})" fill="none">`);
  series.forEach((s, i) => {
    const pixels = s.points.map((p): [number, number] => [px(p.x), py(p.y)]);
    if (pixels.length >= 2) {
      const path = s.style === "step" ? polylinePoints(stepPoints(pixels), true) : polylinePoints(pixels, false);
      const dash = s.style === "ref" ? ` stroke-dasharray="6 4"` : "";
      out.push(`<polyline class="series-${i}" points="${path}" stroke="${s.colour}" stroke-width="${s.style === "ref" ? 1.5 : 2}"${dash} stroke-linejoin="round"/>`);
    }
    const markers = s.style === "line" ? (pixels.length <= MAX_MARKERS ? pixels : []) : pixels.length === 1 ? pixels : [];
    if (markers.length) {
      out.push(`<g class="markers-${i}" fill="${s.colour}">`);
      for (const [x, y] of markers) out.push(`<circle cx="${num(x)}" cy="${num(y)}" r="3"/>`);
      out.push("</g>");
    }
  });
  out.push("</g>");

  // Legend and note.
  const legendTop = bottom + 42 + 14;
  out.push(`<g font-size="${legendSize}" fill="${INK}">`);
  series.forEach((s, i) => {
    const x = 16 + placed[i].x;
    const y = legendTop + placed[i].row * 18;
    const dash = s.style === "ref" ? ` stroke-dasharray="6 4"` : "";
    out.push(line(x, y - 4, x + 22, y - 4, `stroke="${s.colour}" stroke-width="2"${dash}`));
    if (s.style === "line") out.push(`<circle cx="${num(x + 11)}" cy="${num(y - 4)}" r="3" fill="${s.colour}"/>`);
    out.push(text(x + 28, y, fit(items[i], width - 60, legendSize)));
  });
  out.push("</g>");
  if (notes.length) out.push(text(width - 12, height - 10, notes.join("; "), ` class="note" text-anchor="end" font-size="10" font-style="italic" fill="${MUTED}"`));
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Bar chart.

/** Horizontal bars, value printed at the end of each bar (with SI-style grouping, e.g. "2 351 116"), optional log scale. */
export function barChart(spec: BarChartSpec): string {
  let width = size(spec.width, 720, 240);
  const log = spec.log === true;
  const unit = String(spec.unit ?? "");
  const bars = (spec.bars ?? []).map((b) => ({
    label: String(b?.label ?? ""),
    value: typeof b?.value === "number" ? b.value : NaN,
    note: b?.note === undefined ? "" : String(b.note),
  }));
  const drawn = (v: number) => Number.isFinite(v) && (!log || v > 0);
  const notes: string[] = [];
  const nonPositive = bars.filter((b) => log && Number.isFinite(b.value) && b.value <= 0).length;
  const nonFinite = bars.filter((b) => !Number.isFinite(b.value)).length;
  if (nonPositive) notes.push(`${plural(nonPositive, "bar")} with a value ≤ 0 not drawn (log scale)`);
  if (nonFinite) notes.push(`${plural(nonFinite, "bar")} without a finite value not drawn`);
  if (bars.length === 0) notes.push("no data");

  const labelSize = 12;
  const valueSize = 11;
  const labelWidth = Math.min(Math.max(0, ...bars.map((b) => textWidth(b.label, labelSize))), width * 0.4);
  const valueTexts = bars.map((b) => `${formatValue(b.value)}${unit ? ` ${unit}` : ""}${b.note ? ` (${b.note})` : ""}`);
  const valueWidth = Math.min(Math.max(0, ...valueTexts.map((t) => textWidth(t, valueSize))), width * 0.35);
  const left = 16 + labelWidth + 10;
  let plotW = width - left - valueWidth - 6 - 16;
  if (plotW < 100) {
    plotW = 100;
    width = left + plotW + valueWidth + 6 + 16;
  }
  const values = bars.map((b) => b.value).filter(drawn);
  let scale: Scale;
  if (log) {
    // One decade below a smallest value that is itself a decade, so that bar has a length.
    const min = values.length ? Math.min(...values) * 0.999 : 1;
    const max = values.length ? Math.max(...values) : 10;
    const decades = logTicks(min, Math.max(min, max));
    scale = makeScale(decades[0], decades[decades.length - 1], true, decades.map((v) => ({ value: v, label: decadeLabel(v) })));
  } else {
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    scale = axisScale([lo, hi === lo ? 1 : hi], {}, Math.max(2, Math.floor(plotW / 90)));
  }
  const px = (v: number) => left + Math.min(1, Math.max(0, scale.at(v))) * plotW;
  const origin = log ? left : px(0);

  const rowH = 24;
  const barH = 15;
  const top = 42;
  const plotH = Math.max(1, bars.length) * rowH;
  const bottom = top + plotH;
  const height = bottom + 18 + 22 + (notes.length ? 16 : 0) + 8;
  const title = String(spec.title ?? "");
  const out = svgOpen(width, height, title);
  out.push(`<g stroke="${GRID}" stroke-width="1">`);
  for (const t of scale.ticks) out.push(line(px(t.value), top, px(t.value), bottom, ""));
  out.push("</g>");
  out.push(line(origin, top, origin, bottom, `stroke="${FRAME}" stroke-width="1"`));
  bars.forEach((b, i) => {
    const mid = top + i * rowH + rowH / 2;
    out.push(text(left - 8, mid, fit(b.label, labelWidth, labelSize), ` text-anchor="end" dy="0.35em" fill="${INK}"`));
    let end = origin;
    if (drawn(b.value)) {
      const x = px(b.value);
      const from = Math.min(origin, x);
      end = Math.max(origin, x);
      out.push(`<rect class="bar" x="${num(from)}" y="${num(mid - barH / 2)}" width="${num(end - from)}" height="${num(barH)}" fill="${PALETTE[0]}"/>`);
    }
    out.push(text(end + 5, mid, fit(valueTexts[i], valueWidth + 2, valueSize), ` class="value" dy="0.35em" font-size="${valueSize}" fill="${INK}"`));
  });
  out.push(`<g font-size="11" fill="${INK}">`);
  for (const t of scale.ticks) out.push(text(px(t.value), bottom + 15, t.label, ` text-anchor="middle"`));
  out.push("</g>");
  out.push(text(left + plotW / 2, bottom + 34, `${unit}${log ? " (log scale)" : ""}`, ` text-anchor="middle" fill="${INK}"`));
  if (notes.length) out.push(text(width - 12, height - 10, notes.join("; "), ` class="note" text-anchor="end" font-size="10" font-style="italic" fill="${MUTED}"`));
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Timeline.

/**
 * Places labels of width `w` starting at `x` in the first of `rows` rows where they do not
 * overlap the previous one (or the least full row); returns the row.
 */
function placeInRows(ends: number[], x: number, w: number): number {
  let row = ends.findIndex((end) => x >= end + 4);
  if (row < 0) row = ends.indexOf(Math.min(...ends));
  ends[row] = x + w;
  return row;
}

/** Stacked lanes sharing one time axis (e.g. link state, hot-plug events, NVMe throughput around a cable pull); vertical dashed markers across all lanes (e.g. "cable pulled"). */
export function timelineChart(spec: TimelineSpec): string {
  let width = size(spec.width, 900, 300);
  let from = Number.isFinite(spec.from) ? spec.from : 0;
  let to = Number.isFinite(spec.to) ? spec.to : from + 1;
  if (from > to) [from, to] = [to, from];
  if (from === to) to = from + 1;
  const within = (t: number) => Number.isFinite(t) && t >= from && t <= to;
  const lanes = (spec.lanes ?? []).map((lane) => ({
    label: String(lane?.label ?? ""),
    kind: lane?.kind === "events" || lane?.kind === "series" ? lane.kind : ("states" as const),
    states: lane?.states ?? [],
    events: lane?.events ?? [],
    series: lane?.series ?? [],
    unit: lane?.unit === undefined ? "" : String(lane.unit),
  }));
  const markers = (spec.markers ?? []).filter((m) => within(m?.at));
  let outside = (spec.markers ?? []).length - markers.length;
  const notes: string[] = [];
  if (lanes.length === 0) notes.push("no lanes");

  const labelSize = 12;
  const labelWidth = Math.min(Math.max(40, ...lanes.map((l) => Math.max(textWidth(l.label, labelSize), l.kind === "series" ? textWidth(`max 0000.00 ${l.unit}`, 10) : 0))), width * 0.25);
  const left = 16 + labelWidth + 10;
  const right = 20;
  let plotW = width - left - right;
  if (plotW < 160) {
    plotW = 160;
    width = left + plotW + right;
  }
  const scale = axisScale([], { min: from, max: to }, Math.max(2, Math.floor(plotW / 90)));
  const px = (t: number) => left + scale.at(t) * plotW;

  // Marker labels above the lanes, in up to two rows.
  const markerSize = 11;
  const markerEnds = [-Infinity, -Infinity];
  const markerPlaced = [...markers]
    .map((m, i) => ({ at: m.at, label: String(m.label ?? ""), i }))
    .sort((a, b) => a.at - b.at || a.i - b.i)
    .map((m) => {
      const w = textWidth(m.label, markerSize);
      const x = Math.min(Math.max(px(m.at) - w / 2, 4), width - 4 - w);
      return { ...m, x, row: placeInRows(markerEnds, x, w) };
    });
  const markerRows = markerPlaced.length ? Math.max(...markerPlaced.map((m) => m.row)) + 1 : 0;
  const lanesTop = 42 + markerRows * 14 + (markerRows ? 4 : 0);

  // States get colours in order of first appearance.
  const stateColour = new Map<string, string>();
  for (const lane of lanes) {
    if (lane.kind !== "states") continue;
    for (const s of lane.states) {
      const name = String(s?.state ?? "");
      if (!stateColour.has(name)) stateColour.set(name, PALETTE[stateColour.size % PALETTE.length]);
    }
  }

  const laneHeight = { states: 26, events: 46, series: 64 } as const;
  const gap = 8;
  const lanesBottom = lanesTop + lanes.reduce((h, l) => h + laneHeight[l.kind] + gap, 0) - (lanes.length ? gap : 0) + (lanes.length ? 0 : 30);
  const legendNames = [...stateColour.keys()];
  const legendPlaced = flow(legendNames.map((n) => 18 + textWidth(n, 11)), width - 32, 16);
  const legendRows = legendPlaced.length ? legendPlaced[legendPlaced.length - 1].row + 1 : 0;

  const title = String(spec.title ?? "");
  const clipId = `lanes-${hash(`timeline|${title}|${width}`)}`;
  const backgrounds: string[] = [];
  const body: string[] = [];
  let y = lanesTop;
  let eventsOutside = 0;
  let nonFinite = 0;
  for (const lane of lanes) {
    const h = laneHeight[lane.kind];
    const mid = y + h / 2;
    backgrounds.push(`<rect x="${num(left)}" y="${num(y)}" width="${num(plotW)}" height="${num(h)}" fill="#fafafa" stroke="${GRID}" stroke-width="1"/>`);
    const labelAt = lane.kind === "series" ? mid - 6 : mid;
    body.push(text(left - 8, labelAt, fit(lane.label, labelWidth, labelSize), ` text-anchor="end" dy="0.35em" fill="${INK}"`));
    if (lane.kind === "states") {
      for (const s of lane.states) {
        if (!s || !Number.isFinite(s.from) || !Number.isFinite(s.to)) {
          nonFinite++;
          continue;
        }
        const a = Math.max(Math.min(s.from, s.to), from);
        const b = Math.min(Math.max(s.from, s.to), to);
        if (b <= a) continue;
        const name = String(s.state ?? "");
        const colour = stateColour.get(name)!;
        const x0 = px(a);
        const x1 = px(b);
        body.push(`<rect x="${num(x0)}" y="${num(y + 3)}" width="${num(x1 - x0)}" height="${num(h - 6)}" fill="${colour}" fill-opacity="0.35" stroke="${colour}" stroke-width="1"/>`);
        if (textWidth(name, 11) + 6 <= x1 - x0) body.push(text((x0 + x1) / 2, mid, name, ` text-anchor="middle" dy="0.35em" font-size="11" fill="${INK}"`));
      }
    } else if (lane.kind === "events") {
      const ends = [-Infinity, -Infinity, -Infinity];
      const events = lane.events
        .map((e, i) => ({ at: e?.at, label: String(e?.label ?? ""), i }))
        .filter((e) => {
          if (within(e.at)) return true;
          if (Number.isFinite(e.at)) eventsOutside++;
          else nonFinite++;
          return false;
        })
        .sort((p, q) => p.at - q.at || p.i - q.i);
      for (const e of events) {
        const x = px(e.at);
        const w = textWidth(e.label, 10);
        const start = x + 3 + w <= left + plotW ? x + 3 : x - 3 - w;
        const row = placeInRows(ends, start, w);
        body.push(line(x, y, x, y + h, `stroke="${INK}" stroke-width="1"`));
        body.push(text(start === x + 3 ? x + 3 : x - 3, y + 12 + row * 12, e.label, `${start === x + 3 ? "" : ` text-anchor="end"`} font-size="10" fill="${INK}"`));
      }
    } else {
      const points = lane.series.filter((p) => {
        const ok = p && Number.isFinite(p.x) && Number.isFinite(p.y);
        if (!ok) nonFinite++;
        return ok;
      });
      points.sort((p, q) => p.x - q.x);
      const shown = points.filter((p) => within(p.x));
      const ys = (shown.length ? shown : points).map((p) => p.y);
      const max = ys.length ? Math.max(...ys) : 0;
      const lo = ys.length ? Math.min(0, ...ys) : 0;
      const hi = max > lo ? max : lo + 1;
      const inner = (v: number) => y + h - 3 - ((v - lo) / (hi - lo)) * (h - 10);
      if (points.length) {
        body.push(line(left, inner(hi), left + plotW, inner(hi), `stroke="${GRID}" stroke-width="1" stroke-dasharray="2 2"`));
        const pixels = stepPoints(points.map((p): [number, number] => [px(p.x), inner(p.y)]));
        if (points.length === 1) body.push(`<circle clip-path="url(#${clipId})" cx="${num(pixels[0][0])}" cy="${num(pixels[0][1])}" r="2.5" fill="${PALETTE[0]}"/>`);
        else body.push(`<polyline clip-path="url(#${clipId})" points="${polylinePoints(pixels, true)}" fill="none" stroke="${PALETTE[0]}" stroke-width="1.5" stroke-linejoin="round"/>`);
        body.push(text(left - 8, mid + 9, `max ${formatValue(max)}${lane.unit ? ` ${lane.unit}` : ""}`, ` class="max" text-anchor="end" dy="0.35em" font-size="10" fill="${MUTED}"`));
      } else {
        body.push(text(left + plotW / 2, mid, "no data", ` text-anchor="middle" dy="0.35em" font-size="10" font-style="italic" fill="${MUTED}"`));
      }
    }
    y += h + gap;
  }
  outside += eventsOutside;
  if (outside) notes.push(`${plural(outside, "event or marker", "events or markers")} outside the time range not shown`);
  if (nonFinite) notes.push(`${plural(nonFinite, "item")} without a finite time or value not shown`);

  const axisTop = lanesBottom;
  const legendTop = axisTop + 16 + 22 + 16;
  const height = legendTop + legendRows * 18 - (legendRows ? 0 : 16) + (notes.length ? 16 : 0) + 8;
  const out = svgOpen(width, height, title);
  out.push(clip(clipId, left, lanesTop, plotW, Math.max(1, lanesBottom - lanesTop)));
  out.push(...backgrounds);
  out.push(`<g stroke="${GRID}" stroke-width="1">`);
  for (const t of scale.ticks) out.push(line(px(t.value), lanesTop, px(t.value), lanesBottom + 4, ""));
  out.push("</g>");
  out.push(...body);
  out.push(`<g font-size="11" fill="${INK}">`);
  for (const t of scale.ticks) out.push(text(px(t.value), axisTop + 16, t.label, ` text-anchor="middle"`));
  out.push("</g>");
  out.push(text(left + plotW / 2, axisTop + 36, fit(String(spec.xLabel ?? ""), plotW, 12), ` text-anchor="middle" fill="${INK}"`));
  for (const m of markerPlaced) {
    const x = px(m.at);
    out.push(line(x, lanesTop - 2, x, lanesBottom, `class="marker" stroke="${INK}" stroke-width="1.25" stroke-dasharray="5 4"`));
    out.push(text(m.x, lanesTop - 6 - (markerRows - 1 - m.row) * 14, m.label, ` font-size="${markerSize}" font-weight="bold" fill="${INK}"`));
  }
  out.push(`<g font-size="11" fill="${INK}">`);
  legendNames.forEach((name, i) => {
    const x = 16 + legendPlaced[i].x;
    const ly = legendTop + legendPlaced[i].row * 18;
    const colour = stateColour.get(name)!;
    out.push(`<rect x="${num(x)}" y="${num(ly - 10)}" width="12" height="12" fill="${colour}" fill-opacity="0.35" stroke="${colour}" stroke-width="1"/>`);
    out.push(text(x + 18, ly, name));
  });
  out.push("</g>");
  if (notes.length) out.push(text(width - 12, height - 10, notes.join("; "), ` class="note" text-anchor="end" font-size="10" font-style="italic" fill="${MUTED}"`));
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------

/** Empirical CDF points of `values` (sorted x, y from 1/n to 1), for a "step" series. Non-finite values are left out. */
export function cdf(values: number[]): Point[] {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.map((x, i) => ({ x, y: (i + 1) / sorted.length }));
}
