// The console's output as the lines a terminal would show. The card edits its line in
// place (carriage return, backspace, ANSI cursor moves and erases), so the text of a row
// is what is left on it when the line feed comes: "iov> \r\x1b[Jupdate: …\r\n" reads as
// "update: …".

const ESC = 0x1b;
const BS = 0x08;
const CR = 0x0d;
const LF = 0x0a;

/** The console's prompt, which is not followed by a line end. */
export const PROMPT = "iov> ";

export class ConsoleLines {
  private row: string[] = [];
  private column = 0;
  private escape: "none" | "start" | "csi" = "none";
  private params = "";

  /** `onLine` gets each finished row, without its line end. */
  constructor(private readonly onLine: (line: string) => void) {}

  push(bytes: Uint8Array): void {
    for (const b of bytes) this.feed(b);
  }

  /** One byte from the card. */
  feed(b: number): void {
    if (this.escape === "start") {
      this.escape = b === 0x5b ? "csi" : "none";
      this.params = "";
      return;
    }
    if (this.escape === "csi") {
      if (b >= 0x40 && b <= 0x7e) {
        this.escape = "none";
        this.control(b, this.params === "" ? 1 : Number.parseInt(this.params, 10) || 0);
      } else {
        this.params += String.fromCharCode(b);
      }
      return;
    }
    if (b === ESC) this.escape = "start";
    else if (b === CR) this.column = 0;
    else if (b === BS) this.column = Math.max(0, this.column - 1);
    else if (b === LF) this.finish();
    else if (b >= 0x20 && b < 0x7f) this.put(String.fromCharCode(b));
    else if (b >= 0x80) this.put("?");
  }

  /** The row being written (no line feed yet): the prompt, or a prompt and typing. */
  get partial(): string {
    return this.row.join("");
  }

  private put(c: string): void {
    while (this.row.length < this.column) this.row.push(" ");
    this.row[this.column++] = c;
  }

  /** ESC [ n final: cursor moves along the row and erases; moves between rows are left out. */
  private control(final: number, n: number): void {
    const erase = this.params === "" ? 0 : n;
    switch (String.fromCharCode(final)) {
      case "C": this.column += n; break;
      case "D": this.column = Math.max(0, this.column - n); break;
      case "G": this.column = Math.max(0, n - 1); break;
      case "J":
      case "K":
        if (erase === 0) this.row.length = Math.min(this.row.length, this.column);
        else if (erase === 2) this.row = [];
        break;
    }
  }

  private finish(): void {
    const line = this.partial.trimEnd();
    this.row = [];
    this.column = 0;
    this.onLine(line);
  }
}
