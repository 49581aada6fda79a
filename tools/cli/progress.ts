// A progress bar for a long operation, on stderr by default. On a terminal it is one line
// redrawn in place (at most every `intervalMs`):
//   sending [#####-----]  45%  11.0/24.3 KiB  10.9 KiB/s
// Into a file or a pipe it prints one such line at 25 %, 50 %, 75 % and 100 %.

/** Where the bar is drawn: process.stderr, or anything with write() and an isTTY flag. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** Printed before the bar. */
  label?: string;
  /** "bytes" (the default) shows sizes in B, KiB or MiB; any other word is a count of things, e.g. "runs". */
  unit?: string;
  stream?: ProgressStream;
  /** Shortest time between two redraws on a terminal (default 100 ms). */
  intervalMs?: number;
  /** The clock, in milliseconds. */
  now?: () => number;
}

const BAR_CELLS = 10;

export class Progress {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private current = 0;
  private drawnAt = -Infinity;
  private quarters = 0;
  private finished = false;

  constructor(readonly total: number, private readonly o: ProgressOptions = {}) {
    this.stream = o.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.now = o.now ?? Date.now;
    this.started = this.now();
  }

  /** `done` of `total` are finished. */
  update(done: number): void {
    if (this.finished) return;
    this.current = Math.min(Math.max(done, 0), this.total);
    const complete = this.current === this.total;
    if (this.tty) {
      if (!complete && this.now() - this.drawnAt < (this.o.intervalMs ?? 100)) return;
      this.drawnAt = this.now();
      this.stream.write(`\r${this.line()}\x1b[K`);
      return;
    }
    const quarters = Math.floor(this.fraction() * 4);
    if (quarters > this.quarters) {
      this.quarters = quarters;
      this.stream.write(`${this.line()}\n`);
    }
  }

  /** Ends the bar: on a terminal the last state and `message` on its line, elsewhere `message` on its own line. */
  done(message = ""): void {
    if (this.finished) return;
    this.finished = true;
    if (this.tty) this.stream.write(`\r${this.line()}${message ? `  ${message}` : ""}\x1b[K\n`);
    else if (message) this.stream.write(`${message}\n`);
  }

  /** The bar as text, without line control: `[#####-----]  45%  11.0/24.3 KiB  10.9 KiB/s`. */
  line(): string {
    const fraction = this.fraction();
    const filled = Math.round(fraction * BAR_CELLS);
    const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_CELLS - filled)}]`;
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    const seconds = (this.now() - this.started) / 1000;
    const unit = this.o.unit ?? "bytes";
    const amounts = unit === "bytes" ? sizes(this.current, this.total) : `${this.current}/${this.total} ${unit}`;
    let rate = "";
    if (seconds > 0 && this.current > 0) {
      const perSecond = this.current / seconds;
      rate = unit === "bytes" ? `  ${formatSize(perSecond)}/s` : `  ${perSecond.toFixed(1)} ${unit}/s`;
    }
    return `${this.o.label ? `${this.o.label} ` : ""}${bar} ${percent}  ${amounts}${rate}`;
  }

  private fraction(): number {
    return this.total > 0 ? this.current / this.total : 1;
  }
}

const KIB = 1024;
const MIB = 1024 * 1024;

/** "11.0/24.3 KiB": both numbers in the unit that suits the total. */
function sizes(done: number, total: number): string {
  if (total < KIB) return `${done}/${total} B`;
  const [scale, name] = total < MIB ? [KIB, "KiB"] : [MIB, "MiB"];
  return `${(done / scale).toFixed(1)}/${(total / scale).toFixed(1)} ${name}`;
}

/** "512 B", "10.9 KiB", "3.2 MiB". */
export function formatSize(bytes: number): string {
  if (bytes < KIB) return `${Math.round(bytes)} B`;
  if (bytes < MIB) return `${(bytes / KIB).toFixed(1)} KiB`;
  return `${(bytes / MIB).toFixed(1)} MiB`;
}
