// The readable timeline of a run: one line per board note or firmware log line,
//   0.000250000  chassis  fw     I boot: firmware 0.1.0, ...
// stamped with virtual time in seconds. Printing is optional; entries are always kept
// in memory for the run summary and tests.

export type Level = "info" | "warn" | "error";

export interface TimelineEntry {
  timeNs: number;
  card: string;
  source: "board" | "fw" | "mailbox" | "os" | "manage" | "net";
  text: string;
  level: Level;
}

export function formatTime(ns: number): string {
  const s = Math.floor(ns / 1e9);
  return `${String(s).padStart(4)}.${String(ns - s * 1e9).padStart(9, "0")}`;
}

/** Column titles matching the lines add() prints. */
export const TIMELINE_HEADER = `${"time (s)".padStart(14)}  ${"card".padEnd(8)} ${"source".padEnd(7)} event`;

export class Timeline {
  readonly entries: TimelineEntry[] = [];

  constructor(private readonly write: ((line: string) => void) | null) {}

  add(entry: TimelineEntry): void {
    this.entries.push(entry);
    if (!this.write) return;
    const marker = entry.level === "error" ? "!! " : entry.level === "warn" ? "! " : "";
    this.write(`${formatTime(entry.timeNs)}  ${entry.card.padEnd(8)} ${entry.source.padEnd(7)} ${marker}${entry.text}`);
  }
}
