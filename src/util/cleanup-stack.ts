/**
 * Undo steps of a multi-step start-up, run in reverse order when a later step fails (the
 * clean-up path of libbpf-bootstrap's `main`: destroy in reverse, only what was created).
 * Each step registers its undo right when it has (or may have partly) done something.
 */
import type { Logger } from './log.js';

interface UndoStep {
  what: string;
  undo: () => Promise<void> | void;
}

/** A stack of undo steps; `unwind` runs them newest first. */
export class CleanupStack {
  private readonly steps: UndoStep[] = [];

  /** Registers the undo of the step just taken (or about to be taken, when it can fail half-way). */
  push(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo });
  }

  /** How many undo steps are registered. */
  get size(): number {
    return this.steps.length;
  }

  /**
   * Runs every undo, newest first, and empties the stack. An undo that throws is logged and the
   * rest still run (a half-undone host is worse than one failed step). Resolves with the steps
   * that failed.
   */
  async unwind(logger: Pick<Logger, 'info' | 'warn'>): Promise<string[]> {
    const failed: string[] = [];
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.undo();
        logger.info({ step: step.what }, 'start-up step undone');
      } catch (err) {
        failed.push(step.what);
        logger.warn({ step: step.what, err }, 'undoing a start-up step failed; the rest is still undone');
      }
    }
    return failed;
  }
}
