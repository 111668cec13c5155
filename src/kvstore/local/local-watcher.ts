/**
 * Watches of the embedded store (local-store.ts): SQLite has no change feed, so the store keeps
 * an in-memory history of its own recent events ({@link EventHistory}) and hands every commit's
 * events to its watchers ({@link LocalWatcher}).
 */
import type { Logger } from '../../util/log.js';
import type { WatchEvent, WatchHandlers, Watcher } from '../kvstore.js';

/**
 * The store's recent events, oldest first, at most `limit` of them (whole revisions: every event
 * with a revision above {@link compactedThrough} is kept). A watch may start from any revision
 * the history still covers, like etcd watching from a past revision before compaction.
 */
export class EventHistory {
  private readonly events: WatchEvent[] = [];

  /**
   * `compacted`: the revision the history starts after (at open, the store's revision: nothing before it is in memory).
   */
  constructor(
    private readonly limit: number,
    private compacted: bigint,
  ) {}

  /** Every event after this revision is kept; a watch from an older revision needs a resync. */
  get compactedThrough(): bigint {
    return this.compacted;
  }

  /** Appends one commit's events, dropping the oldest revisions beyond the limit. */
  append(events: readonly WatchEvent[]): void {
    this.events.push(...events);
    if (this.events.length > this.limit) {
      // Drop whole revisions only, so "everything after compactedThrough is kept" stays true.
      let cut = this.events.length - this.limit;
      while (cut < this.events.length && this.events[cut]!.modRevision === this.events[cut - 1]!.modRevision) cut++;
      this.compacted = this.events[cut - 1]!.modRevision;
      this.events.splice(0, cut);
    }
  }

  /** The kept events strictly after `revision`, oldest first. */
  since(revision: bigint): WatchEvent[] {
    return this.events.filter((event) => event.modRevision > revision);
  }
}

/**
 * One watch: a queue drained in a microtask, so handlers never run inside the write that caused
 * the event, and events reach each handler in revision order.
 */
export class LocalWatcher implements Watcher {
  private queue: WatchEvent[] = [];
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly prefix: string,
    private readonly handlers: WatchHandlers,
    private readonly logger: Logger,
    private readonly onClose: (watcher: LocalWatcher) => void,
  ) {}

  enqueue(events: readonly WatchEvent[]): void {
    for (const event of events) if (event.key.startsWith(this.prefix)) this.queue.push(event);
    if (!this.scheduled && this.queue.length > 0) {
      this.scheduled = true;
      queueMicrotask(() => this.drain());
    }
  }

  /** Ends the watch and tells the caller to re-list, in a later microtask like any event. */
  resync(reason: string): void {
    queueMicrotask(() => {
      if (this.closed) return;
      this.close();
      if (this.handlers.onResyncNeeded) this.handlers.onResyncNeeded(reason);
      else this.logger.warn({ prefix: this.prefix, reason }, 'watch needs a resync but has no onResyncNeeded handler');
    });
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.onClose(this);
  }

  private drain(): void {
    this.scheduled = false;
    // A handler may write (enqueuing to a fresh queue and scheduling another drain) or close.
    const batch = this.queue;
    this.queue = [];
    for (const event of batch) {
      if (this.closed) return;
      try {
        this.handlers.onEvent(event);
      } catch (err) {
        this.logger.error({ err, prefix: this.prefix, key: event.key }, 'watch handler threw');
      }
    }
  }
}
