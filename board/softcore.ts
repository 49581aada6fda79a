// The card's soft-core as the board model drives it: a running firmware.wasm behind the
// mailbox FIFOs. tools/engines/ provides it in-process (V8) or in a child process
// (Node's WASI, wasm3).

/**
 * The host cannot run the engine that stands in for the soft-core: its interpreter binary is
 * missing, cannot be started, or crashed. Nothing the firmware did, and nothing a card could
 * meet, so the board does not turn it into a firmware fault: the simulation stops with it.
 */
export class EngineFailure extends Error {}

export interface FirmwareSession {
  /** Which engine runs it ("node", "node-wasi", "wasm3"). */
  readonly engine: string;
  /**
   * Writes one batch of events, which must end with SYNC `seq`, and resolves with every
   * command byte the firmware wrote up to and including its SYNC_ACK for `seq`.
   */
  exchange(events: Uint8Array, seq: number): Promise<Uint8Array>;
  /** Ends the session (closes fd 0); resolves with whatever the firmware wrote after the last batch. */
  close(): Promise<Uint8Array>;
}
