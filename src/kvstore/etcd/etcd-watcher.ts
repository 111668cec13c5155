/**
 * One KvStore watch over one etcd gRPC watch stream.
 *
 * Why not etcd3's WatchBuilder: it converts the start revision with `Number()` and, on reconnect,
 * resumes after the *header* revision of the last response; during catch-up etcd sends the
 * current store revision in that header, not the revision of the events in the batch, so a
 * stream that breaks mid catch-up would skip events. This watcher resumes strictly after the last
 * event it delivered (or the last progress notification, which etcd only sends to caught-up
 * watchers), keeping revisions as decimal strings on the wire and bigint in memory.
 *
 * Lifecycle: connect -> `created` -> events ... ; on a stream error or end, reconnect with backoff
 * from the next undelivered revision (lossless, so no resync). `onResyncNeeded` is called, once,
 * and the watch ends, when etcd says the history was compacted past that revision, cancels the
 * watch, or answers from a different cluster or an older revision (restored from a backup).
 */
import type { IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3';
import type { Logger } from '../../util/log.js';
import type { WatchEvent, WatchHandlers, Watcher } from '../kvstore.js';

/** What a watcher needs from its store. */
export interface EtcdWatchContext {
  /** Opens a new watch stream (rejects when etcd cannot be reached). */
  openStream(): Promise<IDuplexStream<IWatchRequest, IWatchResponse>>;
  /** Wire key range of the prefix, namespace included. */
  range: { key: Buffer; rangeEnd: Buffer };
  /** Wire key -> caller's key (strips the namespace). */
  decodeKey(key: Buffer): string;
  /** How long a `created` answer may take before the stream is treated as dead. */
  createTimeoutMs: number;
  /** Called when a stream is established (the store uses it to notice reconnects). */
  onConnected(): void;
  /** Called when a stream fails (the store uses it to notice outages). */
  onDisconnected(err: unknown): void;
  /** Removes the watcher from the store's set. */
  onClose(watcher: EtcdWatcher): void;
  logger: Logger;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

/** A running watch; see the module comment. Created by {@link EtcdKvStore.watch}. */
export class EtcdWatcher implements Watcher {
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  /** The revision the next (re)connect starts at: one past the last revision delivered. */
  private nextRevision: bigint;
  /** Highest store revision etcd has shown this watch; a reconnect answering below it means a restore. */
  private observedRevision = 0n;
  private clusterId: string | undefined;
  private failures = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private createTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly prefix: string,
    fromRevision: bigint,
    private readonly handlers: WatchHandlers,
    private readonly context: EtcdWatchContext,
  ) {
    this.nextRevision = fromRevision + 1n;
    void this.connect();
  }

  /** Stops delivery at once (also between events of one batch) and cancels the stream. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.createTimer);
    this.dropStream();
    this.context.onClose(this);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let stream: IDuplexStream<IWatchRequest, IWatchResponse>;
    try {
      stream = await this.context.openStream();
    } catch (err) {
      this.failed(err);
      return;
    }
    if (this.closed) {
      stream.on('error', () => undefined);
      stream.cancel();
      return;
    }
    this.stream = stream;
    stream
      .on('data', (response) => {
        if (this.stream === stream) this.onResponse(response);
      })
      .on('error', (err) => {
        if (this.stream === stream) this.failed(err);
      })
      .on('end', () => {
        if (this.stream === stream) this.failed(new Error('etcd ended the watch stream'));
      });
    this.createTimer = setTimeout(() => {
      if (this.stream === stream) {
        this.failed(new Error(`etcd did not confirm the watch within ${this.context.createTimeoutMs} ms`));
      }
    }, this.context.createTimeoutMs);
    stream.write({
      create_request: {
        key: this.context.range.key,
        range_end: this.context.range.rangeEnd,
        start_revision: this.nextRevision.toString(),
        progress_notify: true,
      },
    });
  }

  private onResponse(response: IWatchResponse): void {
    const compacted = BigInt(response.compact_revision || '0');
    if (compacted > 0n) {
      this.resync(
        `etcd compacted its history through revision ${compacted}; ` +
          `events of ${this.prefix} from revision ${this.nextRevision} are gone, re-list`,
      );
      return;
    }
    if (response.canceled) {
      this.resync(`etcd canceled the watch on ${this.prefix}: ${response.cancel_reason || 'no reason given'}; re-list`);
      return;
    }
    const headerRevision = BigInt(response.header.revision);
    if (response.created) {
      clearTimeout(this.createTimer);
      const clusterId = response.header.cluster_id;
      if (this.clusterId !== undefined && clusterId !== this.clusterId) {
        this.resync(
          `etcd cluster changed (id ${this.clusterId} -> ${clusterId}) ` +
            `while the watch on ${this.prefix} reconnected; re-list`,
        );
        return;
      }
      if (headerRevision < this.observedRevision) {
        this.resync(
          `etcd is at revision ${headerRevision}, ` +
            `behind revision ${this.observedRevision} seen before (restored from a backup?); re-list ${this.prefix}`,
        );
        return;
      }
      this.clusterId = clusterId;
      if (this.failures > 0)
        this.context.logger.info({ prefix: this.prefix, from: String(this.nextRevision) }, 'watch resumed');
      this.failures = 0;
      this.context.onConnected();
    }
    this.observedRevision = bigMax(this.observedRevision, headerRevision);
    if (response.events.length === 0) {
      // A progress notification: etcd sends it only to watchers that have caught up, so every
      // event up to the header revision has been delivered.
      if (!response.created) this.nextRevision = bigMax(this.nextRevision, headerRevision + 1n);
      return;
    }
    for (const raw of response.events) {
      if (this.closed) return;
      const modRevision = BigInt(raw.kv.mod_revision);
      if (modRevision < this.nextRevision) continue; // replayed after a reconnect
      const key = this.context.decodeKey(raw.kv.key);
      const event: WatchEvent =
        raw.type === 'Delete'
          ? { type: 'delete', key, modRevision }
          : {
              type: 'put',
              key,
              value: raw.kv.value.toString('utf8'),
              modRevision,
              createRevision: BigInt(raw.kv.create_revision),
            };
      try {
        this.handlers.onEvent(event);
      } catch (err) {
        this.context.logger.error({ err, prefix: this.prefix, key }, 'watch handler threw');
      }
    }
    // Whole revisions arrive in one response (fragmentation is off), so resuming after the
    // batch's last revision neither skips nor repeats one.
    const last = BigInt(response.events.at(-1)!.kv.mod_revision);
    this.nextRevision = bigMax(this.nextRevision, last + 1n);
  }

  /** The stream broke: note it and reconnect after a backoff. */
  private failed(err: unknown): void {
    if (this.closed) return;
    this.dropStream();
    clearTimeout(this.createTimer);
    this.failures++;
    this.context.onDisconnected(err);
    const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 10));
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    if (this.failures === 1) {
      this.context.logger.warn(
        { prefix: this.prefix, from: String(this.nextRevision), err },
        'watch stream lost; reconnecting',
      );
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
    this.reconnectTimer.unref();
  }

  /** Ends the watch and tells the caller to re-list. */
  private resync(reason: string): void {
    if (this.closed) return;
    this.close();
    if (this.handlers.onResyncNeeded) this.handlers.onResyncNeeded(reason);
    else
      this.context.logger.warn(
        { prefix: this.prefix, reason },
        'watch needs a resync but has no onResyncNeeded handler',
      );
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (stream === undefined) return;
    // Cancelling makes grpc emit a CANCELLED error; the listener above ignores it (stream replaced).
    stream.cancel();
  }
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
