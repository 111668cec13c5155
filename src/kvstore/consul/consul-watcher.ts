/**
 * One consul watch: blocking queries on a prefix (`GET /v1/kv/<prefix>?recurse&index=N&wait=`),
 * each answer diffed against the previous one into put and delete events.
 *
 * Consul keeps no change log, only current state with indexes, so this is how every Consul
 * watcher works (Cilium's consul backend, libkv). Consequences:
 * - Changes that land between two answers are coalesced: a key written twice shows as one put of
 *   the later value; a key created and deleted in between shows nothing. The state a consumer
 *   builds from the events still converges to Consul's. (The store makes its own writes wait for
 *   its own watchers, so a single writer's sequential writes are each seen; see ConsulKvStore.)
 * - A delete's own index is not visible (only the prefix index, which tombstones move), so delete
 *   events carry the index of the answer that showed them gone: at or after the real delete.
 * - Events are delivered sorted by revision: puts by ModifyIndex, then that answer's deletes.
 *
 * Starting point: events must be exactly those after `fromRevision`, which needs the prefix's
 * state at `fromRevision` as a baseline. The store supplies one when it has it (revision 0, or a
 * recent `list` valid at that revision); otherwise the first answer serves if the prefix has not
 * changed since `fromRevision`. If it has, deletes since then cannot be known, and the watch asks
 * for a resync instead of guessing.
 *
 * Errors: an unreachable Consul is retried with backoff (100 ms doubling to 5 s, like Cilium's
 * 5 s); when it answers again, the diff against the last state delivers everything that changed
 * meanwhile (coalesced), so no resync is needed. An index that goes backwards (cluster restored
 * from a snapshot, tombstones reaped) does need one: revisions are no longer comparable.
 */
import type { Logger } from '../../util/log.js';
import type { KvPair, WatchEvent, WatchHandlers, Watcher } from '../kvstore.js';

/** A prefix's keys and index, from one (possibly blocking) query. */
export interface PrefixState {
  /** `X-Consul-Index` of the answer. */
  index: bigint;
  /** Every key under the prefix, sorted. */
  pairs: KvPair[];
}

/**
 * Reads a prefix. Without `index`, at once; with it, a blocking query answering when the
 * prefix's index passes `index` or the wait ends.
 */
export type PrefixReader = (prefix: string, index: bigint | undefined, signal: AbortSignal) => Promise<PrefixState>;

/** Options of {@link ConsulWatcher}. */
export interface ConsulWatcherOptions {
  prefix: string;
  fromRevision: bigint;
  /** The prefix's keys and mod revisions at `fromRevision`, when the store knows them. */
  baseline: Map<string, bigint> | undefined;
  handlers: WatchHandlers;
  read: PrefixReader;
  logger: Logger;
  onClose(watcher: ConsulWatcher): void;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

/** A running watch; created and started by ConsulKvStore.watch. */
export class ConsulWatcher implements Watcher {
  /** Key -> mod revision, as of `index`. */
  private known = new Map<string, bigint>();
  /** Index of the last answer applied; 0 before the first. */
  private index = 0n;
  private closed = false;
  private readonly abort = new AbortController();
  private readonly progressListeners = new Set<() => void>();
  private cancelBackoff: (() => void) | undefined;

  constructor(private readonly options: ConsulWatcherOptions) {}

  /** Starts the query loop (events are delivered from it, never synchronously). */
  start(): void {
    void this.run();
  }

  /** Whether changes to `key` are this watch's business. */
  covers(key: string): boolean {
    return key.startsWith(this.options.prefix);
  }

  /** True once the watch has applied an answer at or after `revision`. */
  hasSeenRevision(revision: bigint): boolean {
    return this.index >= revision;
  }

  /** True unless the watch still holds `key` at `modRevision` or earlier (it has not seen it deleted). */
  hasSeenDelete(key: string, modRevision: bigint): boolean {
    const known = this.known.get(key);
    return known === undefined || known > modRevision;
  }

  /**
   * Resolves once `predicate` holds (checked now and after each answer is delivered), the watch
   * closes, or `timeoutMs` passes; never rejects. Cuts a retry backoff short, since the caller
   * just reached Consul.
   */
  waitFor(predicate: () => boolean, timeoutMs: number): Promise<void> {
    if (this.closed || predicate()) return Promise.resolve();
    this.cancelBackoff?.();
    return new Promise((resolve) => {
      const check = () => {
        if (this.closed || predicate()) finish();
      };
      const finish = () => {
        clearTimeout(timer);
        this.progressListeners.delete(check);
        resolve();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.progressListeners.add(check);
    });
  }

  /** Stops the watch; nothing is delivered after this returns, even from a batch in progress. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.cancelBackoff?.();
    this.notifyProgress();
    this.options.onClose(this);
  }

  private async run(): Promise<void> {
    const { prefix, logger } = this.options;
    let backoffMs = 0;
    let first = true;
    while (!this.closed) {
      let state: PrefixState;
      try {
        state = await this.options.read(prefix, first ? undefined : this.index, this.abort.signal);
      } catch (err) {
        if (this.closed) return;
        if (backoffMs === 0) {
          logger.warn(
            { err, prefix },
            'consul watch cannot reach consul; retrying (changes meanwhile arrive once it answers)',
          );
        }
        backoffMs = Math.min(Math.max(backoffMs * 2, MIN_BACKOFF_MS), MAX_BACKOFF_MS);
        await this.sleep(backoffMs);
        continue;
      }
      if (this.closed) return;
      if (backoffMs !== 0) {
        logger.info({ prefix }, 'consul watch reached consul again');
        backoffMs = 0;
      }
      if (first) {
        first = false;
        if (!this.applyFirst(state)) return;
      } else if (state.index < this.index) {
        this.resync(
          `consul's index for ${prefix} went backwards (${this.index} -> ${state.index}): ` +
            `the cluster was restored or reset; re-list ${prefix}`,
        );
        return;
      } else if (state.index > this.index) {
        this.apply(state);
      }
      this.notifyProgress();
    }
  }

  /** Establishes the baseline from the first answer; false if the watch had to ask for a resync. */
  private applyFirst(state: PrefixState): boolean {
    const { baseline, fromRevision, prefix } = this.options;
    if (baseline !== undefined) {
      this.known = new Map(baseline);
      this.apply(state);
      return !this.closed;
    }
    if (state.index <= fromRevision) {
      // Nothing under the prefix changed after fromRevision, so this state is the one at fromRevision.
      this.known = new Map(state.pairs.map((pair) => [pair.key, pair.modRevision]));
      this.index = state.index;
      return true;
    }
    this.resync(
      `keys under ${prefix} changed after revision ${fromRevision} (consul index now ${state.index}) ` +
        'and consul keeps no change history, so deletes since then cannot be known; ' +
        `re-list ${prefix} and watch from the list's revision`,
    );
    return false;
  }

  /** Diffs `state` against the known state, delivers the events, and makes `state` the known one. */
  private apply(state: PrefixState): void {
    const { fromRevision } = this.options;
    const puts: WatchEvent[] = [];
    const next = new Map<string, bigint>();
    for (const pair of state.pairs) {
      next.set(pair.key, pair.modRevision);
      if (this.known.get(pair.key) !== pair.modRevision && pair.modRevision > fromRevision) {
        puts.push({
          type: 'put',
          key: pair.key,
          value: pair.value,
          modRevision: pair.modRevision,
          createRevision: pair.createRevision,
        });
      }
    }
    puts.sort((a, b) => (a.modRevision < b.modRevision ? -1 : a.modRevision > b.modRevision ? 1 : 0));
    const deletes: WatchEvent[] = [];
    for (const key of this.known.keys()) {
      if (!next.has(key)) deletes.push({ type: 'delete', key, modRevision: state.index });
    }
    this.known = next;
    this.index = state.index;
    this.deliver([...puts, ...deletes]);
  }

  private deliver(events: WatchEvent[]): void {
    for (const event of events) {
      if (this.closed) return;
      try {
        this.options.handlers.onEvent(event);
      } catch (err) {
        this.options.logger.error({ err, prefix: this.options.prefix, key: event.key }, 'watch handler threw');
      }
    }
  }

  private resync(reason: string): void {
    if (this.closed) return;
    this.close();
    if (this.options.handlers.onResyncNeeded) this.options.handlers.onResyncNeeded(reason);
    else
      this.options.logger.warn(
        { prefix: this.options.prefix, reason },
        'watch needs a resync but has no onResyncNeeded handler',
      );
  }

  private notifyProgress(): void {
    for (const listener of [...this.progressListeners]) listener();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.cancelBackoff = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cancelBackoff = done;
    });
  }
}
