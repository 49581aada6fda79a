// What a board component needs from the world it runs in: virtual time in nanoseconds
// and one-shot callbacks. The simulator's discrete-event core implements it.

export type Action = () => void | Promise<void>;

export interface Scheduler {
  /** Current virtual time in nanoseconds. */
  readonly now: number;
  /** Runs `action` at virtual time `time` (not before now); returns a handle for cancel(). */
  at(time: number, action: Action): number;
  cancel(handle: number): void;
}
