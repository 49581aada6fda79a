// Console line editor: turns the bytes a terminal sends (ASCII, VT100 and xterm keys) into
// lines, echoing and redrawing through uart.ts the way a readline-style shell does: cursor
// keys, kills, history and Tab completion of the command name.
//
// Screen model: the prompt and the line are cells 0, 1, ... laid out on an 80-column
// terminal. The editor breaks a line longer than that itself (CR LF after the 80th column),
// so it always knows the row and column of the terminal's cursor, whatever the terminal's
// width, and moves it with relative escape sequences only. Everything is static: fixed
// buffers for the line and the history, no allocation.

import * as uart from "./uart";
import { Text, textByte, textLength } from "../text";

/** Characters in a line. */
export const LINE_MAX: i32 = 80;
/** Lines the history remembers. */
export const HISTORY: i32 = 8;

const PROMPT = "iov> ";
const PROMPT_CELLS: i32 = 5; // PROMPT.length
const COLUMNS: i32 = 80;

const BEL = 0x07;
const BS = 0x08;
const LF = 0x0a;
const CR = 0x0d;
const ESC = 0x1b;
const SPACE = 0x20;
const DEL = 0x7f;

/** What a key does. Home..KillWord move the cursor to, or delete up to, a target. */
namespace Key {
  export const Ignore: u8 = 0;
  export const Bell: u8 = 1;
  export const Home: u8 = 2; // moves
  export const End: u8 = 3;
  export const Left: u8 = 4;
  export const Right: u8 = 5;
  export const KillEnd: u8 = 6; // deletions
  export const KillStart: u8 = 7;
  export const Backspace: u8 = 8;
  export const Delete: u8 = 9;
  export const KillWord: u8 = 10;
  export const Enter: u8 = 11;
  export const Cancel: u8 = 12;
  export const Clear: u8 = 13;
  export const Up: u8 = 14;
  export const Down: u8 = 15;
  export const Tab: u8 = 16;
}

/** The keys that do nothing, silently, when there is nothing to do. */
const QUIET: i32 = (1 << Key.Home) | (1 << Key.End) | (1 << Key.KillEnd) | (1 << Key.KillStart);

/** The key of each control character 0x00-0x1f (ESC never gets here). */
const controls = memory.data<u8>([
  Key.Bell, Key.Home, Key.Left, Key.Cancel, Key.Delete, Key.End, Key.Right, Key.Bell, // ^@-^G
  Key.Backspace, Key.Tab, Key.Enter, Key.KillEnd, Key.Clear, Key.Enter, Key.Down, Key.Bell, // ^H-^O
  Key.Up, Key.Bell, Key.Bell, Key.Bell, Key.Bell, Key.KillStart, Key.Bell, Key.KillWord, // ^P-^W
  Key.Bell, Key.Bell, Key.Bell, Key.Bell, Key.Bell, Key.Bell, Key.Bell, Key.Bell, // ^X-^_
]);

/** Keys of escape sequences: ESC [ or ESC O and 'A'-'H' (0-7), then ESC [ n ~ for n = 0-8. */
const finals = memory.data<u8>([
  Key.Up, Key.Down, Key.Right, Key.Left, Key.Ignore, Key.End, Key.Ignore, Key.Home,
  Key.Ignore, Key.Home, Key.Ignore, Key.Delete, Key.End, Key.Ignore, Key.Ignore, Key.Home, Key.End,
]);

/** Where the escape-sequence parser is. */
const enum Escape {
  Idle,
  Start, //  after ESC
  Params, // after ESC [ or ESC O: parameters up to a final byte
  Skip, //   until a final byte 0x30-0x7e (ESC and intermediates, ESC [ [ of the Linux console)
}

const line = memory.data(LINE_MAX);
let length: i32 = 0;
let cursor: i32 = 0;
let shown: i32 = 0; // the cell the terminal's cursor is on
let refused = false; // characters of this line were refused for length

// The finished line, from Enter on; during a history walk, the line that was being typed.
// The two never overlap: Enter ends a walk, and a walk starts with a later key.
const spare = memory.data(LINE_MAX);
let spareLength: i32 = 0;
let finishedRefused = false;

const history = memory.data(HISTORY * LINE_MAX); // newest first
const lengths = memory.data(HISTORY);
let stored: i32 = 0;
let recalled: i32 = -1; // the history entry on show, -1 for the typed line

let escape: i32 = Escape.Idle;
let param: i32 = 0;
let unusual = false; // the parameters are something else than one plain number
let afterCr = false;
let tabbed = false; // the previous byte was a Tab that found several names

let names: StaticArray<Text> | null = null;

/** An empty line, an empty history, the escape parser idle. The completion names stay. */
export function reset(): void {
  length = 0;
  cursor = 0;
  shown = 0;
  refused = false;
  spareLength = 0;
  finishedRefused = false;
  stored = 0;
  recalled = -1;
  escape = Escape.Idle;
  afterCr = false;
  tabbed = false;
}

/** The command names Tab completes the first word against (ASCII). */
export function setCompletions(list: StaticArray<Text>): void {
  names = list;
}

/**
 * One byte from the UART. Echo and redraw go to uart.ts. True when Enter finished a line:
 * read it with lineAt()/lineLength()/overflowed(), then call prompt() for the next one.
 */
export function feed(c: i32): bool {
  const swallow = afterCr && c == LF;
  const again = tabbed;
  afterCr = c == CR;
  tabbed = false;
  if (swallow) return false;
  if (escape != Escape.Idle && c >= SPACE && c < DEL) return act(sequence(c), false);
  escape = Escape.Idle; // a control character or a non-ASCII byte ends a sequence
  if (c >= SPACE && c < DEL) {
    insert(c);
    return false;
  }
  if (c == ESC) {
    escape = Escape.Start;
    return false;
  }
  return act(c == DEL ? Key.Backspace : (c as u32) < 0x20 ? load<u8>(controls + c) : Key.Bell, again);
}

/** The finished line's bytes (valid until the next feed). */
export function lineAt(): usize {
  return spare;
}

/** The finished line's length in bytes, at most LINE_MAX. */
export function lineLength(): i32 {
  return spareLength;
}

/** The finished line had characters refused for length. */
export function overflowed(): bool {
  return finishedRefused;
}

/**
 * Writes the prompt and the line being edited, and puts the cursor back where it was. The
 * terminal's cursor must be at the start of a row: after a finished line and what its
 * command printed, or after hide() and the text printed in between.
 */
export function prompt(): void {
  uart.text(PROMPT);
  shown = PROMPT_CELLS;
  draw(0, length);
  goTo(PROMPT_CELLS + cursor);
}

/**
 * Erases the prompt and the line (back to the prompt's first column, then ESC [ J, as the
 * line may take two rows) so that other text can be printed; call prompt() after it.
 */
export function hide(): void {
  goTo(0);
  csi(0, 0x4a); // J
}

/** A printable byte inside an escape sequence: the key it completes, or Key.Ignore. */
function sequence(c: i32): u8 {
  const state = escape;
  escape = Escape.Idle;
  if (state == Escape.Start) {
    if (c == 0x5b || c == 0x4f) { // [ O
      escape = Escape.Params;
      param = 0;
      unusual = false;
    } else if (c < 0x30) {
      escape = Escape.Skip;
    }
    return Key.Ignore; // ESC and a character: an Alt key
  }
  if (state == Escape.Skip) {
    if (c < 0x30) escape = Escape.Skip;
    return Key.Ignore;
  }
  if (c == 0x5b) {
    escape = Escape.Skip;
    return Key.Ignore;
  }
  if (c < 0x40) {
    escape = Escape.Params;
    if (c <= 0x39 && c >= 0x30) param = min(param * 10 + c - 0x30, 1000);
    else unusual = true;
    return Key.Ignore;
  }
  if (unusual) return Key.Ignore;
  if (c == 0x7e) return param <= 8 ? load<u8>(finals + 8 + param) : Key.Ignore; // ~
  return c >= 0x41 && c <= 0x48 ? load<u8>(finals + c - 0x41) : Key.Ignore; // A-H
}

function act(key: u8, again: bool): bool {
  if (key == Key.Bell) bell();
  else if (key >= Key.Home && key <= Key.KillWord) edit(key);
  else if (key == Key.Enter) return enter();
  else if (key == Key.Cancel) cancel();
  else if (key == Key.Clear) {
    csi(0, 0x48); // H
    csi(2, 0x4a); // J
    prompt();
  } else if (key == Key.Tab) complete(again);
  else if (key != Key.Ignore) walk(key == Key.Up ? 1 : -1);
  return false;
}

function edit(key: u8): void {
  const target = key == Key.Home || key == Key.KillStart ? 0
    : key == Key.End || key == Key.KillEnd ? length
    : key == Key.Left || key == Key.Backspace ? cursor - 1
    : key == Key.Right || key == Key.Delete ? cursor + 1
    : wordStart();
  if (target < 0 || target > length || target == cursor) {
    if (((QUIET >> key) & 1) == 0) bell();
  } else if (key <= Key.Right) {
    cursor = target;
    goTo(PROMPT_CELLS + target);
  } else {
    erase(min(cursor, target), max(cursor, target));
  }
}

/** The start of the word before the cursor, after the spaces that end it. */
function wordStart(): i32 {
  let at = cursor;
  while (at > 0 && load<u8>(line + at - 1) == SPACE) at--;
  while (at > 0 && load<u8>(line + at - 1) != SPACE) at--;
  return at;
}

function insert(c: i32): void {
  if (length == LINE_MAX) {
    refused = true;
    bell();
    return;
  }
  memory.copy(line + cursor + 1, line + cursor, length - cursor);
  store<u8>(line + cursor, c);
  length++;
  draw(cursor, length);
  goTo(PROMPT_CELLS + ++cursor);
}

function erase(from: i32, to: i32): void {
  memory.copy(line + from, line + to, length - to);
  length -= to - from;
  cursor = from;
  redrawFrom(from);
  goTo(PROMPT_CELLS + from);
}

/** Replaces the line with `n` bytes at `from`, the cursor at its end. */
function replace(from: usize, n: i32): void {
  memory.copy(line, from, n);
  length = n;
  cursor = n;
  redrawFrom(0);
}

/** Rewrites the line from index `from` and erases what is left after its end. */
function redrawFrom(from: i32): void {
  goTo(PROMPT_CELLS + from);
  draw(from, length);
  csi(0, 0x4a); // J
}

/** Writes line[from, to) from the cell of `from`, breaking rows after column 80. */
function draw(from: i32, to: i32): void {
  for (let i = from; i < to; i++) {
    uart.put(load<u8>(line + i));
    if ((PROMPT_CELLS + i + 1) % COLUMNS == 0) uart.newline();
  }
  shown = PROMPT_CELLS + to;
}

/** Moves the terminal's cursor to `cell`, with relative moves only. */
function goTo(cell: i32): void {
  const rows = cell / COLUMNS - shown / COLUMNS;
  const column = cell % COLUMNS;
  const columns = column - shown % COLUMNS;
  if (rows < 0) csi(-rows, 0x41); // A
  else if (rows > 0) csi(rows, 0x42); // B
  if (columns > 0) csi(columns, 0x43); // C
  else if (columns < 0) {
    if (column == 0) uart.put(CR);
    else if (columns == -1) uart.put(BS);
    else csi(-columns, 0x44); // D
  }
  shown = cell;
}

/** ESC [ n final, the number left out when it is 0 or 1 (the default of every use here). */
function csi(n: i32, final: i32): void {
  uart.put(ESC);
  uart.put(0x5b);
  if (n > 1) uart.dec(n);
  uart.put(final);
}

function bell(): void {
  uart.put(BEL);
}

/** Moves past the end of the line and to the start of the next row. */
function leaveLine(): void {
  goTo(PROMPT_CELLS + length);
  if (shown % COLUMNS != 0) uart.newline();
}

function enter(): bool {
  leaveLine();
  memory.copy(spare, line, length);
  spareLength = length;
  finishedRefused = refused;
  remember();
  startLine();
  return true;
}

function cancel(): void {
  goTo(PROMPT_CELLS + length);
  uart.text("^C");
  uart.newline();
  startLine();
  prompt();
}

function startLine(): void {
  length = 0;
  cursor = 0;
  shown = 0;
  refused = false;
  recalled = -1;
}

/** Stores the line as the newest history entry, unless it is empty or repeats the newest. */
function remember(): void {
  if (length == 0) return;
  if (stored > 0 && load<u8>(lengths) == length && memory.compare(history, line, length) == 0) return;
  memory.copy(history + LINE_MAX, history, (HISTORY - 1) * LINE_MAX);
  memory.copy(lengths + 1, lengths, HISTORY - 1);
  memory.copy(history, line, length);
  store<u8>(lengths, length);
  if (stored < HISTORY) stored++;
}

/** Up (+1, older) or down (-1) the history; below the newest entry is the typed line. */
function walk(step: i32): void {
  const to = recalled + step;
  if (to < -1 || to >= stored) {
    bell();
    return;
  }
  if (recalled < 0) {
    memory.copy(spare, line, length);
    spareLength = length;
  }
  recalled = to;
  if (to < 0) replace(spare, spareLength);
  else replace(history + to * LINE_MAX, load<u8>(lengths + to));
}

/**
 * Tab: completes the first word, up to the cursor, against the names. One match: the rest
 * of the name and a space. Several: their common part and the bell, and on a second Tab in
 * a row the list of them and the prompt again. None, or the cursor past the first word:
 * the bell.
 */
function complete(again: bool): void {
  let start = 0;
  while (start < cursor && load<u8>(line + start) == SPACE) start++;
  for (let i = start; i < cursor; i++) {
    if (load<u8>(line + i) == SPACE) {
      bell();
      return;
    }
  }
  const typed = cursor - start;
  const list = names;
  let found = 0;
  let first: Text = 0;
  let common = 0;
  if (list !== null) {
    for (let i = 0; i < list.length; i++) {
      const name = unchecked(list[i]);
      if (!startsLine(name, start, typed)) continue;
      if (found++ == 0) first = name;
      common = found == 1 ? textLength(name) : min(common, shared(first, name));
    }
  }
  if (found == 0) {
    bell();
    return;
  }
  for (let i = typed; i < common; i++) insert(textByte(first, i));
  if (found == 1) {
    insert(SPACE);
    return;
  }
  tabbed = true;
  if (!again) {
    bell();
    return;
  }
  leaveLine();
  let listed = 0;
  for (let i = 0; i < list!.length; i++) {
    const name = unchecked(list![i]);
    if (!startsLine(name, start, typed)) continue;
    if (listed++ > 0) uart.text("  ");
    uart.text(name);
  }
  uart.newline();
  prompt();
}

/** `name` starts with the `n` bytes of the line from `start`. */
function startsLine(name: Text, start: i32, n: i32): bool {
  if (textLength(name) < n) return false;
  for (let i = 0; i < n; i++) {
    if (textByte(name, i) != load<u8>(line + start + i)) return false;
  }
  return true;
}

/** The length of the common beginning of `a` and `b`. */
function shared(a: Text, b: Text): i32 {
  let i = 0;
  while (i < textLength(a) && i < textLength(b) && textByte(a, i) == textByte(b, i)) i++;
  return i;
}
