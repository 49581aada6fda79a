// The console line editor: the line each key sequence leaves, and the exact bytes echoed.
// Echo is compared in a readable form: {ESC} {CR} {LF} {BS} {BEL} for those control bytes,
// {hh} for any other byte outside printable ASCII.

import * as editor from "../../assembly/console/editor";
import * as uart from "../../assembly/console/uart";
import { Text } from "../../assembly/text";
import { firmwareText } from "./helpers";

const NAMES: StaticArray<Text> = [firmwareText("status"), firmwareText("stats"), firmwareText("slots"), firmwareText("link"), firmwareText("log"), firmwareText("reboot")];

const UP = "\x1b[A";
const DOWN = "\x1b[B";
const RIGHT = "\x1b[C";
const LEFT = "\x1b[D";
const HOME = "\x1b[H";
const END = "\x1b[F";
const DELETE = "\x1b[3~";

/** Feeds each character code of `s` as one byte; returns how many lines Enter finished. */
function keys(s: string): i32 {
  let finished = 0;
  for (let i = 0; i < s.length; i++) {
    if (editor.feed(s.charCodeAt(i))) finished++;
  }
  return finished;
}

/** What the editor wrote since the last call, readable; the buffer is emptied. */
function echo(): string {
  let out = "";
  for (let i = 0; i < uart.pending(); i++) {
    const c = load<u8>(uart.pendingAt() + i) as i32;
    if (c == 0x1b) out += "{ESC}";
    else if (c == 0x0d) out += "{CR}";
    else if (c == 0x0a) out += "{LF}";
    else if (c == 0x08) out += "{BS}";
    else if (c == 0x07) out += "{BEL}";
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += "{" + c.toString(16) + "}";
  }
  uart.discard();
  return out;
}

/** The finished line as a string. */
function finished(): string {
  let out = "";
  for (let i = 0; i < editor.lineLength(); i++) out += String.fromCharCode(load<u8>(editor.lineAt() + i));
  return out;
}

/** Types `s`, presses Enter and returns the finished line; the echo is dropped. */
function enter(s: string): string {
  expect(keys(s + "\r")).toBe(1, "one line finished by " + s);
  uart.discard();
  editor.prompt();
  uart.discard();
  return finished();
}

function repeat(s: string, n: i32): string {
  let out = "";
  for (let i = 0; i < n; i++) out += s;
  return out;
}

beforeEach(() => {
  editor.reset();
  editor.setCompletions(NAMES);
  editor.prompt();
  uart.discard();
});

describe("typing and Enter", () => {
  it("echoes printable characters and finishes the line on CR with CR LF", () => {
    expect(keys("help me")).toBe(0);
    expect(echo()).toBe("help me");
    expect(keys("\r")).toBe(1);
    expect(echo()).toBe("{CR}{LF}");
    expect(finished()).toBe("help me");
    expect(editor.overflowed()).toBe(false);
  });

  it("finishes a line on LF alone", () => {
    expect(keys("ab\n")).toBe(1);
    expect(echo()).toBe("ab{CR}{LF}");
    expect(finished()).toBe("ab");
  });

  it("takes CR LF as one Enter, even in separate feeds, but CR CR as two", () => {
    expect(keys("ab\r")).toBe(1);
    expect(editor.feed(0x0a)).toBe(false, "the LF after a CR");
    expect(echo()).toBe("ab{CR}{LF}");
    expect(finished()).toBe("ab");
    editor.prompt();
    uart.discard();
    expect(keys("\r\r")).toBe(2);
    expect(finished()).toBe("");
  });

  it("does not swallow an LF that follows another byte after the CR", () => {
    expect(keys("\rx\n")).toBe(2);
    expect(finished()).toBe("x");
  });

  it("moves to the end of the line before the CR LF", () => {
    keys("abc\x02\x02");
    echo();
    expect(keys("\r")).toBe(1);
    expect(echo()).toBe("{ESC}[2C{CR}{LF}");
    expect(finished()).toBe("abc");
  });

  it("starts the next line empty", () => {
    enter("first");
    expect(keys("x\r")).toBe(1);
    expect(finished()).toBe("x");
  });
});

describe("deleting characters", () => {
  it("rings the bell for Backspace, DEL and Ctrl-H at the start of the line", () => {
    keys("\x7f\x08");
    expect(echo()).toBe("{BEL}{BEL}");
    keys("\r");
    expect(finished()).toBe("");
  });

  it("erases the character before the cursor at the end of the line", () => {
    keys("abc");
    echo();
    keys("\x7f");
    expect(echo()).toBe("{BS}{ESC}[J");
    keys("\x08");
    expect(echo()).toBe("{BS}{ESC}[J");
    keys("\r");
    expect(finished()).toBe("a");
  });

  it("closes the gap when deleting before the cursor in the middle", () => {
    keys("abXcd" + LEFT + LEFT);
    echo();
    keys("\x7f");
    expect(echo()).toBe("{BS}cd{ESC}[J{ESC}[2D");
    keys("\r");
    expect(finished()).toBe("abcd");
  });

  it("deletes the character at the cursor with Delete and Ctrl-D", () => {
    keys("abcd\x01");
    echo();
    keys(DELETE);
    expect(echo()).toBe("bcd{ESC}[J{ESC}[3D");
    keys("\x04");
    expect(echo()).toBe("cd{ESC}[J{ESC}[2D");
    keys("\r");
    expect(finished()).toBe("cd");
  });

  it("rings the bell for Delete and Ctrl-D at the end of the line", () => {
    keys("ab");
    echo();
    keys(DELETE + "\x04");
    expect(echo()).toBe("{BEL}{BEL}");
    keys("\r");
    expect(finished()).toBe("ab");
  });
});

describe("inserting", () => {
  it("inserts in the middle, rewriting only the rest of the line", () => {
    keys("ad\x02");
    expect(echo()).toBe("ad{BS}");
    keys("b");
    expect(echo()).toBe("bd{BS}");
    keys("c");
    expect(echo()).toBe("cd{BS}");
    keys("\r");
    expect(finished()).toBe("abcd");
  });

  it("inserts at the start", () => {
    keys("bc" + HOME);
    echo();
    keys("a");
    expect(echo()).toBe("abc{ESC}[2D");
    keys("\r");
    expect(finished()).toBe("abc");
  });
});

describe("cursor keys", () => {
  it("moves with the arrows, Home and End, with the shortest sequences", () => {
    keys("abcd");
    echo();
    keys(LEFT);
    expect(echo()).toBe("{BS}");
    keys(HOME);
    expect(echo()).toBe("{ESC}[3D");
    keys(RIGHT);
    expect(echo()).toBe("{ESC}[C");
    keys(END);
    expect(echo()).toBe("{ESC}[3C");
  });

  it("knows every form of Home", () => {
    const forms: string[] = ["\x01", "\x1b[H", "\x1b[1~", "\x1bOH", "\x1b[7~"];
    for (let i = 0; i < forms.length; i++) {
      expect(enter("bc" + forms[i] + "a")).toBe("abc", "Home form " + i.toString());
    }
  });

  it("knows every form of End", () => {
    const forms: string[] = ["\x05", "\x1b[F", "\x1b[4~", "\x1bOF", "\x1b[8~"];
    for (let i = 0; i < forms.length; i++) {
      expect(enter("ab\x01" + forms[i] + "c")).toBe("abc", "End form " + i.toString());
    }
  });

  it("knows every form of Left", () => {
    const forms: string[] = ["\x02", "\x1b[D", "\x1bOD"];
    for (let i = 0; i < forms.length; i++) {
      expect(enter("ac" + forms[i] + "b")).toBe("abc", "Left form " + i.toString());
    }
  });

  it("knows every form of Right", () => {
    const forms: string[] = ["\x06", "\x1b[C", "\x1bOC"];
    for (let i = 0; i < forms.length; i++) {
      expect(enter("ac\x01" + forms[i] + "b")).toBe("abc", "Right form " + i.toString());
    }
  });

  it("rings the bell for Left at the start and Right at the end", () => {
    keys("a");
    echo();
    keys(RIGHT + "\x06");
    expect(echo()).toBe("{BEL}{BEL}");
    keys(HOME);
    echo();
    keys(LEFT + "\x02");
    expect(echo()).toBe("{BEL}{BEL}");
  });

  it("stays silent for Home at the start and End at the end", () => {
    keys("\x01\x05" + HOME + END);
    expect(echo()).toBe("");
    keys("ab" + END + "\x05");
    expect(echo()).toBe("ab");
  });
});

describe("kill commands", () => {
  it("Ctrl-K kills from the cursor to the end", () => {
    keys("hello world" + HOME + "\x06\x06\x06\x06\x06");
    echo();
    keys("\x0b");
    expect(echo()).toBe("{ESC}[J");
    keys("\x0b");
    expect(echo()).toBe("", "nothing left to kill");
    keys("\r");
    expect(finished()).toBe("hello");
  });

  it("Ctrl-U kills from the start to the cursor", () => {
    keys("hello world" + repeat(LEFT, 5));
    echo();
    keys("\x15");
    expect(echo()).toBe("{ESC}[6Dworld{ESC}[J{ESC}[5D");
    keys("\x15");
    expect(echo()).toBe("", "nothing left to kill");
    keys("\r");
    expect(finished()).toBe("world");
  });

  it("Ctrl-W deletes the word before the cursor and the spaces after it", () => {
    keys("set  foo   ");
    echo();
    keys("\x17");
    expect(echo()).toBe("{ESC}[6D{ESC}[J");
    keys("\x17");
    expect(echo()).toBe("{ESC}[5D{ESC}[J");
    keys("\x17");
    expect(echo()).toBe("{BEL}", "nothing before the cursor");
  });

  it("Ctrl-W in the middle keeps what follows the cursor", () => {
    keys("one two three" + repeat(LEFT, 6));
    echo();
    keys("\x17");
    expect(echo()).toBe("{ESC}[3D three{ESC}[J{ESC}[6D");
    keys("\r");
    expect(finished()).toBe("one  three");
  });
});

describe("Ctrl-C, Ctrl-L and other control keys", () => {
  it("Ctrl-C abandons the line: ^C at its end, a new line, the prompt", () => {
    keys("abc\x02");
    echo();
    expect(keys("\x03")).toBe(0);
    expect(echo()).toBe("{ESC}[C^C{CR}{LF}iov> ");
    expect(keys("x\r")).toBe(1);
    expect(finished()).toBe("x");
    echo();
    editor.prompt();
    keys(UP + UP);
    expect(echo()).toBe("iov> x{ESC}[J{BEL}", "the abandoned line is not in the history");
  });

  it("Ctrl-L clears the screen and redraws the prompt and the line, cursor in place", () => {
    keys("ab\x02");
    echo();
    keys("\x0c");
    expect(echo()).toBe("{ESC}[H{ESC}[2Jiov> ab{BS}");
    keys("X\r");
    expect(finished()).toBe("aXb");
  });

  it("rings the bell for control characters without a meaning", () => {
    keys("a\x00\x07\x0f\x11\x12\x13\x14\x16\x18\x19\x1a\x1c\x1d\x1e\x1fb");
    expect(echo()).toBe("a" + repeat("{BEL}", 15) + "b");
    keys("\r");
    expect(finished()).toBe("ab");
  });

  it("rings the bell for every byte from 0x80 up and inserts nothing", () => {
    keys("a\x80\xc3\xa9\xffb");
    expect(echo()).toBe("a{BEL}{BEL}{BEL}{BEL}b");
    expect(editor.feed(-1)).toBe(false);
    expect(editor.feed(0x161)).toBe(false);
    expect(echo()).toBe("{BEL}{BEL}", "values outside a byte");
    keys("\r");
    expect(finished()).toBe("ab");
  });
});

describe("escape sequences", () => {
  it("consumes unknown sequences silently", () => {
    keys("a\x1b[5~\x1b[2~\x1b[Z\x1b[1;5C\x1b[?25h\x1b[E\x1bOP\x1b[99~b");
    expect(echo()).toBe("ab");
    keys("\r");
    expect(finished()).toBe("ab");
  });

  it("consumes an over-long sequence to its final byte", () => {
    keys("a\x1b[" + repeat("12;", 200) + "Db");
    expect(echo()).toBe("ab");
    keys("\r");
    expect(finished()).toBe("ab");
  });

  it("consumes a huge parameter without acting on it", () => {
    keys("a\x1b[" + repeat("9", 30) + "~b");
    expect(echo()).toBe("ab");
  });

  it("consumes ESC and a character (Alt keys) and ESC sequences with intermediates", () => {
    keys("a\x1bx\x1b(B\x1b #8\x1b[[Ab");
    expect(echo()).toBe("ab");
    keys("\r");
    expect(finished()).toBe("ab");
  });

  it("ends a sequence at a control character, which then acts", () => {
    keys("ab\x1b[1\x01X");
    expect(echo()).toBe("ab{ESC}[2DXab{ESC}[2D");
    keys("\r");
    expect(finished()).toBe("Xab");
  });

  it("ends a sequence at a byte from 0x80 up, which rings the bell", () => {
    keys("a\x1b\x80\x1b[\xffD");
    expect(echo()).toBe("a{BEL}{BEL}D");
  });

  it("starts over at a second ESC", () => {
    keys("ab\x1b\x1b[D\x1b[1\x1b[D");
    expect(echo()).toBe("ab{BS}{BS}");
  });

  it("never prints the bytes of a sequence split across feeds", () => {
    keys("a\x1b");
    keys("[");
    keys("D");
    expect(echo()).toBe("a{BS}");
  });
});

describe("history", () => {
  it("walks back and forth, returning to the line being typed", () => {
    enter("one");
    enter("two");
    keys("th");
    echo();
    keys(UP);
    expect(echo()).toBe("{ESC}[2Dtwo{ESC}[J");
    keys(UP);
    expect(echo()).toBe("{ESC}[3Done{ESC}[J");
    keys(UP);
    expect(echo()).toBe("{BEL}", "no older entry");
    keys(DOWN);
    expect(echo()).toBe("{ESC}[3Dtwo{ESC}[J");
    keys(DOWN);
    expect(echo()).toBe("{ESC}[3Dth{ESC}[J");
    keys(DOWN);
    expect(echo()).toBe("{BEL}", "nothing newer than the typed line");
    keys("e\r");
    expect(finished()).toBe("the");
  });

  it("knows every form of Up and Down", () => {
    enter("one");
    enter("two");
    const ups: string[] = ["\x1b[A", "\x1bOA", "\x10"];
    const downs: string[] = ["\x1b[B", "\x1bOB", "\x0e"];
    for (let i = 0; i < ups.length; i++) {
      expect(enter(ups[i])).toBe("two", "Up form " + i.toString());
      expect(enter(ups[i] + ups[i] + downs[i])).toBe("two", "Down form " + i.toString());
    }
  });

  it("finishes a recalled line, edited, and stores it as the newest", () => {
    enter("one");
    expect(enter(UP + "\x7fe")).toBe("one");
    expect(enter(UP + "!")).toBe("one!");
    expect(enter(UP)).toBe("one!");
    expect(enter(UP + UP)).toBe("one");
  });

  it("does not store empty lines or a repeat of the newest entry", () => {
    enter("a");
    enter("a");
    enter("");
    enter("b");
    enter("a");
    keys(UP);
    keys(UP);
    keys(UP);
    echo();
    keys(UP);
    expect(echo()).toBe("{BEL}", "three entries: a, b, a");
    expect(enter("")).toBe("a");
    expect(enter(UP + UP)).toBe("b");
  });

  it("keeps the newest HISTORY lines", () => {
    for (let i = 0; i <= editor.HISTORY; i++) enter("line" + i.toString());
    keys(repeat(UP, editor.HISTORY));
    echo();
    keys(UP);
    expect(echo()).toBe("{BEL}");
    keys("\r");
    expect(finished()).toBe("line1");
  });

  it("recalls a long entry over two rows and a short one back", () => {
    enter(repeat("y", 78));
    keys("ab");
    echo();
    keys(UP);
    expect(echo()).toBe("{ESC}[2D" + repeat("y", 75) + "{CR}{LF}yyy{ESC}[J");
    keys(DOWN);
    expect(echo()).toBe("{ESC}[A{ESC}[2Cab{ESC}[J");
  });
});

describe("long lines", () => {
  it("refuses characters past LINE_MAX with the bell and reports the overflow", () => {
    keys(repeat("x", editor.LINE_MAX + 3));
    expect(echo()).toBe(repeat("x", 75) + "{CR}{LF}" + repeat("x", 5) + "{BEL}{BEL}{BEL}");
    expect(keys("\r")).toBe(1);
    expect(finished()).toBe(repeat("x", editor.LINE_MAX));
    expect(editor.overflowed()).toBe(true);
    enter("ok");
    expect(editor.overflowed()).toBe(false, "the next line starts afresh");
  });

  it("refuses an insertion into a full line and leaves it unchanged", () => {
    keys(repeat("x", editor.LINE_MAX) + HOME);
    echo();
    keys("a");
    expect(echo()).toBe("{BEL}");
    keys("\r");
    expect(finished()).toBe(repeat("x", editor.LINE_MAX));
    expect(editor.overflowed()).toBe(true);
  });

  it("ends a line that fills the first row with a single CR LF", () => {
    keys(repeat("x", 75) + "\r");
    expect(echo()).toBe(repeat("x", 75) + "{CR}{LF}");
    expect(finished()).toBe(repeat("x", 75));
  });

  it("moves across the row break with relative moves", () => {
    keys(repeat("x", 78));
    echo();
    keys(HOME);
    expect(echo()).toBe("{ESC}[A{ESC}[2C");
    keys(END);
    expect(echo()).toBe("{ESC}[B{ESC}[2D");
  });

  it("backspaces over the row break", () => {
    keys(repeat("x", 76));
    echo();
    keys("\x7f");
    expect(echo()).toBe("{CR}{ESC}[J");
    keys("\x7f");
    expect(echo()).toBe("{ESC}[A{ESC}[79C{ESC}[J");
    keys("\r");
    expect(finished()).toBe(repeat("x", 74));
  });

  it("inserts near the start of a two-row line, rewriting both rows", () => {
    keys(repeat("x", 76) + HOME);
    echo();
    keys("a");
    expect(echo()).toBe("a" + repeat("x", 74) + "{CR}{LF}xx{ESC}[A{ESC}[4C");
  });
});

describe("Tab completion", () => {
  it("completes a unique prefix and adds a space", () => {
    keys("li\t");
    expect(echo()).toBe("link ");
    keys("\r");
    expect(finished()).toBe("link ");
  });

  it("adds the space to a complete unique name", () => {
    keys("reboot\t");
    expect(echo()).toBe("reboot ");
  });

  it("rings the bell when nothing matches", () => {
    keys("x\t\t");
    expect(echo()).toBe("x{BEL}{BEL}");
  });

  it("completes the common part of several names, rings, and lists them on a second Tab", () => {
    keys("st\t");
    expect(echo()).toBe("stat{BEL}");
    keys("\t");
    expect(echo()).toBe("{CR}{LF}status  stats{CR}{LF}iov> stat");
    keys("s\r");
    expect(finished()).toBe("stats");
  });

  it("rings without inserting when the names share no more than what is typed", () => {
    keys("s\t");
    expect(echo()).toBe("s{BEL}");
    keys("\t");
    expect(echo()).toBe("{CR}{LF}status  stats  slots{CR}{LF}iov> s");
  });

  it("lists every name after two Tabs on an empty line", () => {
    keys("\t\t");
    expect(echo()).toBe("{BEL}{CR}{LF}status  stats  slots  link  log  reboot{CR}{LF}iov> ");
  });

  it("needs the two Tabs in a row to list", () => {
    keys("l\t" + "o" + "\x7f" + "\t");
    expect(echo()).toBe("l{BEL}o{BS}{ESC}[J{BEL}");
  });

  it("completes the word up to the cursor and keeps the rest of the line", () => {
    keys("re 1" + LEFT + LEFT);
    echo();
    keys("\t");
    expect(echo()).toBe("b 1{ESC}[2Do 1{ESC}[2Do 1{ESC}[2Dt 1{ESC}[2D  1{ESC}[2D");
    keys("\r");
    expect(finished()).toBe("reboot  1");
  });

  it("skips leading spaces", () => {
    keys("  lo\t");
    expect(echo()).toBe("  log ");
  });

  it("rings the bell past the first word", () => {
    keys("link st\t");
    expect(echo()).toBe("link st{BEL}");
  });

  it("rings the bell with no names set", () => {
    editor.setCompletions([]);
    keys("s\t");
    expect(echo()).toBe("s{BEL}");
  });
});

describe("prompt() and hide()", () => {
  it("prompt() writes the prompt and the line and puts the cursor back", () => {
    keys("abc\x02\x02");
    echo();
    editor.prompt();
    expect(echo()).toBe("iov> abc{ESC}[2D");
  });

  it("hide() erases the prompt line, and prompt() brings it back for more editing", () => {
    keys("abc\x02");
    echo();
    editor.hide();
    expect(echo()).toBe("{CR}{ESC}[J");
    editor.prompt();
    expect(echo()).toBe("iov> abc{BS}");
    keys("X\r");
    expect(finished()).toBe("abXc");
  });

  it("hide() goes up to the prompt's row on a two-row line", () => {
    keys(repeat("x", 78));
    echo();
    editor.hide();
    expect(echo()).toBe("{ESC}[A{CR}{ESC}[J");
    editor.prompt();
    expect(echo()).toBe("iov> " + repeat("x", 75) + "{CR}{LF}xxx");
  });
});

describe("reset()", () => {
  it("empties the line and the history and idles the escape parser", () => {
    enter("old");
    keys("ab\x1b[");
    editor.reset();
    editor.prompt();
    echo();
    keys("D");
    expect(echo()).toBe("D", "not the end of a sequence");
    keys(UP);
    expect(echo()).toBe("{BEL}", "no history");
    keys("\r");
    expect(finished()).toBe("D");
  });
});
