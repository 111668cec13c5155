/**
 * The consul KvStore backend, on Consul's HTTP API through a small fetch client.
 *
 * Revisions are Consul raft indexes as bigint: a key's `modRevision` is its `ModifyIndex`, its
 * `createRevision` its `CreateIndex`, and a list's revision comes from `X-Consul-Index`.
 *
 * Writes go through `/v1/txn` (consul-writer.ts says why, and how keys are bound to the session);
 * reads (get, list) and watches use the KV endpoint (`?recurse`, blocking `?index=&wait=`;
 * consul-kv-api.ts).
 *
 * Leases: one Consul session per store (ConsulSession: `Behavior=delete`, TTL, renewed at TTL/3),
 * created on the first leased write; a leased write binds its key to it. If the session is lost,
 * a new one is created at once and `onReconnect` callbacks run so the owner re-asserts its keys.
 *
 * Watch: blocking queries diffed into events (ConsulWatcher). Consul has no change log, so to
 * start exactly after `fromRevision` a watch needs the prefix's state at that revision: revision
 * 0 (empty), or a recent `list` of a covering prefix still valid at `fromRevision` (the store keeps
 * the last few lists' key revisions for this, which serves the list-then-watch pattern).
 * Otherwise the watch asks for a resync if the prefix changed since. Consul coalesces changes
 * between two answers of a blocking query; so that a caller's own sequence of writes is observed
 * write by write, every write resolves only once this store's watchers covering the key have
 * seen it (or 2 s passed). Writes by other clients can still be coalesced.
 *
 * A list's revision is the higher of its `X-Consul-Index` (the prefix index: highest ModifyIndex
 * or tombstone under the prefix) and the highest index this store had seen before sending it:
 * the list is the prefix's state at every index in that range, and the latter makes "a write
 * after a list is newer than the list" and "a list covers earlier writes" hold store-wide.
 */
import { ConfigError, KvUnavailableError } from '../../util/errors.js';
import { log, type Logger } from '../../util/log.js';
import type {
  CasResult,
  KvPair,
  KvStatus,
  KvStore,
  ListResult,
  PutOptions,
  TxnCondition,
  TxnOperation,
  TxnRequest,
  TxnResult,
  WatchHandlers,
  Watcher,
} from '../kvstore.js';
import { assertBatchShape, assertTransactionShape } from '../transaction-shape.js';
import { ConsulHttpClient } from './consul-client.js';
import { assertConsulKey, assertConsulPrefix } from './consul-keys.js';
import { ConsulKvApi } from './consul-kv-api.js';
import {
  CONSUL_SESSION_TTL_MAX_MS,
  formatGoDuration,
  normalizeConsulAddress,
  type ConsulStoreOptions,
} from './consul-options.js';
import { ConsulSession } from './consul-session.js';
import { ConsulWatcher } from './consul-watcher.js';
import { ConsulWriter, type DeletedKey } from './consul-writer.js';

/** Re-exported so callers configure the backend from one module. */
export { consulOptionsFromKvstoreOpts, type ConsulStoreOptions } from './consul-options.js';

/** Why {@link ConsulKvStore.onReconnect} callbacks run. */
export type ConsulReconnectReason =
  /** Consul answered again after calls had failed to reach it. */
  | 'reconnected'
  /** The store's session was lost (its leased keys deleted) and a new one was created. */
  | 'session-replaced';

const DEFAULT_LEASE_TTL_MS = 15 * 60 * 1000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_WATCH_WAIT_MS = 60_000;
/** Smallest TTL this client asks for; the agent may still require more (session_ttl_min). */
const MIN_LEASE_TTL_MS = 1_000;
/** Longest a write waits for this store's own watchers to see it. */
const WATCH_SETTLE_MS = 2_000;
/** How many recent lists are kept as watch baselines. */
const SNAPSHOT_LIMIT = 16;

/** A list's key revisions, the prefix's state at every index in [validFrom, validTo]. */
interface Snapshot {
  prefix: string;
  revisions: Map<string, bigint>;
  validFrom: bigint;
  validTo: bigint;
}

/** The consul KvStore. Create with {@link ConsulKvStore.open}. */
export class ConsulKvStore implements KvStore {
  private readonly api: ConsulKvApi;
  private readonly writer: ConsulWriter;
  private readonly session: ConsulSession;
  private readonly address: string;
  private readonly leaseTtlMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<ConsulWatcher>();
  private readonly snapshots: Snapshot[] = [];
  private readonly reconnectCallbacks = new Set<(reason: ConsulReconnectReason) => void>();
  private reachable = true;
  private lastError: string | undefined;
  private closed = false;

  private constructor(options: ConsulStoreOptions) {
    this.address = normalizeConsulAddress(options.address, 'consul address');
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logger = log.child({ component: 'kvstore', backend: 'consul', address: this.address });
    const client = new ConsulHttpClient({
      address: this.address,
      requestTimeoutMs,
      ...(options.token !== undefined && { token: options.token }),
      observer: {
        onAnswer: () => this.markReachable(),
        onUnreachable: (err) => this.markUnreachable(err),
      },
    });
    this.api = new ConsulKvApi({
      client,
      address: this.address,
      requestTimeoutMs,
      watchWaitMs: options.watchWaitMs ?? DEFAULT_WATCH_WAIT_MS,
    });
    this.session = new ConsulSession({
      client,
      ttlMs: this.leaseTtlMs,
      name: options.sessionName ?? 'cilium-docker',
      logger: this.logger,
      onReplaced: () => {
        this.writer.forgetBindings();
        this.fireReconnect('session-replaced');
      },
    });
    this.writer = new ConsulWriter({
      api: this.api,
      session: this.session,
      address: this.address,
      logger: this.logger,
      get: (key) => this.get(key),
      settleWrite: (key, revision) => this.settleWrite(key, revision),
      settleDeletes: (deleted) => this.settleDeletes(deleted),
    });
  }

  /**
   * Opens a store on the agent at `options.address` after checking that it answers and the
   * cluster has a leader. Rejects with ConfigError for a malformed address or TTL, and with
   * KvUnavailableError (naming the address) when Consul cannot be reached or has no leader.
   */
  static async open(options: ConsulStoreOptions): Promise<ConsulKvStore> {
    const ttl = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < MIN_LEASE_TTL_MS || ttl > CONSUL_SESSION_TTL_MAX_MS) {
      throw new ConfigError(
        `consul lease TTL ${ttl} ms: consul session TTLs must be between 1s (given a low session_ttl_min) and 24h`,
      );
    }
    const store = new ConsulKvStore(options);
    const leader = await store.api.leader();
    if (leader === '') {
      throw new KvUnavailableError(
        `consul ${store.address}: the cluster has no leader; it cannot serve the kvstore until one is elected`,
      );
    }
    store.logger.info({ leader, leaseTtl: formatGoDuration(store.leaseTtlMs) }, 'consul kvstore opened');
    return store;
  }

  /**
   * Registers `callback` to run after Consul answers again following failed calls, and after a
   * lost session was replaced (its leased keys are gone then). Callers re-assert their keys from
   * it. Returns a function that unregisters the callback.
   */
  onReconnect(callback: (reason: ConsulReconnectReason) => void): () => void {
    this.reconnectCallbacks.add(callback);
    return () => this.reconnectCallbacks.delete(callback);
  }

  /** The value of one key, or undefined. */
  async get(key: string): Promise<KvPair | undefined> {
    this.assertOpen('get');
    assertConsulKey(key);
    return this.api.get(key);
  }

  /** Every key under `prefix`, sorted, with a revision the list is consistent with (see the module comment). */
  async list(prefix: string): Promise<ListResult> {
    this.assertOpen('list');
    assertConsulPrefix(prefix);
    const knownBefore = this.api.knownIndex;
    const { index, pairs } = await this.api.readPrefix(prefix, undefined);
    // biome-ignore lint/complexity/useMathMinMax: bigint indexes; Math.max takes numbers only
    const revision = index > knownBefore ? index : knownBefore;
    this.rememberSnapshot({
      prefix,
      revisions: new Map(pairs.map((pair) => [pair.key, pair.modRevision])),
      validFrom: index,
      validTo: revision,
    });
    return { pairs, revision };
  }

  /** Unconditional write; returns the key's new ModifyIndex (unchanged if the value and binding were already so). */
  async put(key: string, value: string, options?: PutOptions): Promise<bigint> {
    this.assertOpen('put');
    assertConsulKey(key);
    return this.writer.put(key, value, options?.leased);
  }

  /** Create-only write (`cas` with index 0, or `check-not-exists` + `lock` when leased). */
  async create(key: string, value: string, options?: PutOptions): Promise<CasResult> {
    this.assertOpen('create');
    assertConsulKey(key);
    return this.writer.conditionalPut('create', key, value, 'absent', options?.leased);
  }

  /** Writes only if the key's ModifyIndex is `prevRevision` (or it is absent, for `'absent'`). */
  async atomicPut(
    key: string,
    value: string,
    prevRevision: bigint | 'absent',
    options?: PutOptions,
  ): Promise<CasResult> {
    if (prevRevision === 'absent') return this.create(key, value, options);
    this.assertOpen('atomicPut');
    assertConsulKey(key);
    // Consul reads index 0 as "create-only"; no existing key has revision 0, so it cannot match.
    if (prevRevision <= 0n) return { ok: false, current: await this.get(key) };
    return this.writer.conditionalPut('atomicPut', key, value, prevRevision, options?.leased);
  }

  /** Unconditional delete; true if a key was removed. */
  async delete(key: string): Promise<boolean> {
    this.assertOpen('delete');
    assertConsulKey(key);
    return this.writer.delete(key);
  }

  /** Deletes only if the key's ModifyIndex is `prevRevision`; true if removed. */
  async atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    this.assertOpen('atomicDelete');
    assertConsulKey(key);
    if (prevRevision <= 0n) return false;
    return this.writer.atomicDelete(key, prevRevision);
  }

  /** Deletes every key under `prefix` in one transaction; returns how many were removed. */
  async deletePrefix(prefix: string): Promise<number> {
    this.assertOpen('deletePrefix');
    assertConsulPrefix(prefix);
    return this.writer.deletePrefix(prefix);
  }

  /**
   * One `/v1/txn`; a value condition is read first, as Consul cannot compare values (see
   * {@link ConsulWriter.transaction}).
   */
  async transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    this.assertOpen('transaction');
    assertTransactionShape(conditions, operations);
    for (const { key } of [...conditions, ...operations]) assertConsulKey(key);
    return this.writer.transaction(conditions, operations);
  }

  /**
   * The batch as one `/v1/txn` per transaction, sent together: Consul has no nested
   * transactions, and one `/v1/txn` is all or nothing. One after another, in request order, like
   * the embedded store.
   */
  async transactions(requests: readonly TxnRequest[]): Promise<TxnResult[]> {
    this.assertOpen('transactions');
    assertBatchShape(requests);
    const results: TxnResult[] = [];
    for (const r of requests) results.push(await this.transaction(r.conditions, r.operations));
    return results;
  }

  /**
   * Watches changes under `prefix` after `fromRevision` through blocking queries. Calls
   * `onResyncNeeded` (asynchronously) when the state at `fromRevision` cannot be known — the
   * prefix changed since and no baseline is at hand — or when Consul's index goes backwards.
   */
  watch(prefix: string, fromRevision: bigint, handlers: WatchHandlers): Watcher {
    this.assertOpen('watch');
    assertConsulPrefix(prefix);
    const watcher = new ConsulWatcher({
      prefix,
      fromRevision,
      baseline: this.baselineFor(prefix, fromRevision),
      handlers,
      read: (p, index, signal) => this.api.readPrefix(p, index, signal),
      logger: this.logger,
      onClose: (closed) => this.watchers.delete(closed),
    });
    this.watchers.add(watcher);
    watcher.start();
    return watcher;
  }

  /** Backend `consul`, the address and raft leader (or the last error), and the session once there is one. */
  async status(): Promise<KvStatus> {
    const session = this.session.current;
    const lease = session !== undefined ? { lease: { id: session, ttlSeconds: this.leaseTtlMs / 1000 } } : {};
    if (this.closed) return { backend: 'consul', healthy: false, detail: `${this.address} (closed)` };
    try {
      const leader = await this.api.leader();
      return {
        backend: 'consul',
        healthy: leader !== '',
        detail: leader !== '' ? `${this.address}, leader ${leader}` : `${this.address}: the cluster has no leader`,
        ...lease,
      };
    } catch (err) {
      return { backend: 'consul', healthy: false, detail: (err as Error).message, ...lease };
    }
  }

  /** Stops watches and session renewal. The session is not destroyed: leased keys live out its TTL. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.session.close();
    for (const watcher of [...this.watchers]) watcher.close();
    this.reconnectCallbacks.clear();
    this.logger.info('consul kvstore closed');
  }

  // ---------------------------------------------------------------- watch baselines and settling

  /** The prefix's key revisions at `fromRevision`, if a recent list (or revision 0) tells them. */
  private baselineFor(prefix: string, fromRevision: bigint): Map<string, bigint> | undefined {
    if (fromRevision === 0n) return new Map();
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const snapshot = this.snapshots[i]!;
      if (!prefix.startsWith(snapshot.prefix) || fromRevision < snapshot.validFrom || fromRevision > snapshot.validTo)
        continue;
      const baseline = new Map<string, bigint>();
      for (const [key, revision] of snapshot.revisions) if (key.startsWith(prefix)) baseline.set(key, revision);
      return baseline;
    }
    return undefined;
  }

  private rememberSnapshot(snapshot: Snapshot): void {
    this.snapshots.push(snapshot);
    if (this.snapshots.length > SNAPSHOT_LIMIT) this.snapshots.shift();
  }

  /** Waits (bounded) until this store's watchers covering `key` have seen revision `revision`. */
  private async settleWrite(key: string, revision: bigint): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const watcher of this.watchers) {
      if (watcher.covers(key)) waits.push(watcher.waitFor(() => watcher.hasSeenRevision(revision), WATCH_SETTLE_MS));
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  /** Waits (bounded) until this store's watchers covering each key have seen it deleted. */
  private async settleDeletes(deleted: DeletedKey[]): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const watcher of this.watchers) {
      const relevant = deleted.filter(({ key }) => watcher.covers(key));
      if (relevant.length === 0) continue;
      waits.push(
        watcher.waitFor(
          () => relevant.every(({ key, modRevision }) => watcher.hasSeenDelete(key, modRevision)),
          WATCH_SETTLE_MS,
        ),
      );
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  // ---------------------------------------------------------------- health

  private markReachable(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.logger.info({ lastError: this.lastError }, 'consul is reachable again');
    this.lastError = undefined;
    this.fireReconnect('reconnected');
  }

  private markUnreachable(err: KvUnavailableError): void {
    if (this.reachable) this.logger.warn({ err }, 'consul is unreachable');
    this.reachable = false;
    this.lastError = err.message;
  }

  private fireReconnect(reason: ConsulReconnectReason): void {
    if (this.closed) return;
    for (const callback of [...this.reconnectCallbacks]) {
      queueMicrotask(() => {
        try {
          callback(reason);
        } catch (err) {
          this.logger.error({ err, reason }, 'onReconnect callback threw');
        }
      });
    }
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new KvUnavailableError(`consul kvstore ${this.address} is closed; cannot ${what}`);
  }
}
