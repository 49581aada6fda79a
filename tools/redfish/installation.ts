// The management station's running view of the installation, for the Redfish service: it asks
// every card for its report (a Discover to all of them) once per poll, keeps each card's last
// report and whether it answered the last poll, and tells its listeners what changed
// (tools/redfish/changes.ts). Assignments go through the same client, and their reply updates
// the card's view at once.

import type { ManageReply } from "../../board/manage-codec.ts";
import type { Clock, ManageClient } from "../manage/client.ts";

/** What the installation needs of the management station: ManageClient's discover and setGroup. */
export type Station = Pick<ManageClient, "discover" | "setGroup">;
import { changes, type Change } from "./changes.ts";
import type { CardView, InstallationView } from "./resources.ts";

export interface PollOptions {
  /** Between the end of one poll and the start of the next. */
  intervalMs: number;
  /** How long a poll collects replies. */
  answerMs: number;
}

export const DEFAULT_POLL: PollOptions = { intervalMs: 1000, answerMs: 250 };

export class Installation {
  private readonly cards = new Map<number, CardView>();
  private readonly listeners = new Set<(changes: Change[]) => void>();
  private cancel: (() => void) | null = null;
  private running = false;
  /** Polls that failed (the transport refused to send); the next poll goes ahead all the same. */
  failedPolls = 0;

  constructor(
    private readonly client: Station,
    readonly fabric: string,
    private readonly clock: Clock,
    private readonly options: PollOptions = DEFAULT_POLL,
  ) {}

  /** The cards as last heard, in serial order. */
  view(): InstallationView {
    return { fabric: this.fabric, cards: [...this.cards.values()].sort((a, b) => a.report.sender.serial - b.report.sender.serial) };
  }

  card(serial: number): CardView | undefined {
    return this.cards.get(serial);
  }

  /** Calls `listener` with the changes of each poll or assignment that changed anything; returns what unsubscribes it. */
  onChange(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One poll: every card's report; a card heard before that does not answer is unreachable. */
  async poll(): Promise<void> {
    const replies = await this.client.discover(this.options.answerMs);
    const heard = new Set<number>();
    const found: Change[] = [];
    for (const reply of replies) {
      heard.add(reply.sender.serial);
      found.push(...this.update({ report: reply, reachable: true }));
    }
    for (const [serial, card] of this.cards) {
      if (!heard.has(serial) && card.reachable) found.push(...this.update({ report: card.report, reachable: false }));
    }
    this.emit(found);
  }

  /** Polls now, then every `intervalMs` after each poll ends, until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      this.cancel = null;
      void this.poll().catch(() => this.failedPolls++).finally(() => {
        if (this.running) this.cancel = this.clock.after(this.options.intervalMs, loop);
      });
    };
    loop();
  }

  stop(): void {
    this.running = false;
    this.cancel?.();
    this.cancel = null;
  }

  /**
   * Moves card `serial` to `group` (ManageClient.setGroup: throws ManageError on a refusal or no
   * answer). The card confirms at once, but goes on reporting its old group until its old host card
   * has released it: the view changes with the report that shows the new group.
   */
  assign(serial: number, group: number): Promise<ManageReply> {
    return this.client.setGroup(serial, group);
  }

  private update(card: CardView): Change[] {
    const serial = card.report.sender.serial;
    const before = this.cards.get(serial);
    this.cards.set(serial, card);
    return changes(this.view(), before, card);
  }

  private emit(found: Change[]): void {
    if (found.length === 0) return;
    for (const listener of this.listeners) listener(found);
  }
}
