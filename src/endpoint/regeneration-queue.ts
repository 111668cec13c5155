/**
 * The policy engine's one work queue: CIDR identity syncs, repository changes and endpoint
 * regenerations run in it one after another, in the order queued, never two at once (a
 * regeneration always compiles against a settled selector cache). `cilium policy wait` waits on
 * it: waiters are checked after each batch of regenerations and every 200 ms (an endpoint a
 * repository change does not affect records the new revision outside the queue).
 */
import type { Logger } from '../util/log.js';

/** How often a waiter checks its condition between notifications. */
const WAIT_POLL_MS = 200;

/** Serial work for the policy engine, and those waiting for it. */
export class RegenerationQueue {
  private tail: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<() => void>();

  /**
   * @param regenerate brings one endpoint (by endpoint id) to the current policy
   * @param log where a failed regeneration is logged
   */
  constructor(
    private readonly regenerate: (endpointId: string) => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** Runs `task` after everything queued so far. */
  enqueue(task: () => Promise<void>): void {
    this.tail = this.tail.then(task);
  }

  /** Queues the regeneration of these endpoints (each once); a failure is logged, not thrown. */
  schedule(endpointIds: string[]): void {
    if (endpointIds.length === 0) return;
    const ids = [...new Set(endpointIds)];
    this.enqueue(async () => {
      for (const id of ids) {
        try {
          await this.regenerate(id);
        } catch (err) {
          this.log.error({ endpoint: id, err }, 'endpoint regeneration failed');
        }
      }
      this.notifyWaiters();
    });
  }

  /** Resolves once the work queued so far is done. */
  async settled(): Promise<void> {
    await this.tail;
  }

  /** Checks every waiter's condition now. */
  notifyWaiters(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves with `done()`'s value once it is not false (checked now, on every notification and
   * every {@link WAIT_POLL_MS}); rejects with `timedOut()` after `timeoutMs`.
   */
  waitFor<T>(done: () => T | false, timeoutMs: number, timedOut: () => Error): Promise<T> {
    const now = done();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const r = done();
        if (!r) return;
        cleanup();
        resolve(r);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(timedOut());
      }, timeoutMs);
      const poll = setInterval(check, WAIT_POLL_MS);
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }
}
