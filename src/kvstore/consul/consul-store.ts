/**
 * The consul KvStore backend, on Consul's HTTP API through a small fetch client.
 *
 * Revisions are Consul raft indexes as bigint: a key's `modRevision` is its `ModifyIndex`, its
 * `createRevision` its `CreateIndex`, and a list's revision comes from `X-Consul-Index`.
 *
 * Writes go through `/v1/txn` rather than `PUT`/`DELETE /v1/kv/<key>`, because the KV endpoint
 * cannot express this contract (checked against Consul's `agent/kvs_endpoint.go` and state store):
 * - a KV PUT answers only `true`/`false`, never the new ModifyIndex, so `put`/`create` could not
 *   return their revision without a racy read-back; a transaction returns the written entry;
 * - `?cas`, `?acquire` and `?release` cannot be combined in one PUT (400 "Conflicting flags"), so
 *   a leased create-only or leased compare-and-swap write is impossible; in a transaction it is
 *   `check-not-exists`/`check-index` followed by `lock`, atomically;
 * - `DELETE ?cas=N` answers `true` for a key that does not exist, so `atomicDelete` could not
 *   report a missing key; `check-index` + `delete` fails for it.
 * Reads (get, list) and watches use the KV endpoint (`?recurse`, blocking `?index=&wait=`).
 *
 * Leases: one Consul session per store (ConsulSession: `Behavior=delete`, TTL, renewed at TTL/3),
 * created on the first leased write. A leased write is a `lock` with that session: Consul ignores
 * a session on a plain write, and only `acquire`/`lock` binds a key, so that the key is deleted
 * when the session is invalidated. An unleased write to a key this store holds releases it
 * (`unlock`), matching the other backends where a put without `leased` detaches the key. A leased
 * write to a key another session holds (say this daemon's previous run, whose session has not yet
 * expired) deletes and re-creates the key under this store's session in one transaction, since
 * only the holder may release a key: its createRevision changes. If the session is lost, a new one
 * is created at once and `onReconnect` callbacks run so the owner re-asserts its keys.
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
import { assertConsulKey, assertConsulPrefix, kvPath } from './consul-keys.js';
import { CONSUL_SESSION_TTL_MAX_MS, formatGoDuration, normalizeConsulAddress, type ConsulStoreOptions } from './consul-options.js';
import { ConsulSession } from './consul-session.js';
import { ConsulWatcher, type PrefixState } from './consul-watcher.js';
import { parseConsulJson, stringifyConsulJson, type KVPair, type TxnError, type TxnOp, type TxnResponse } from './consul-wire.js';

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
/** Attempts of a leased write whose session is lost or whose key another session holds. */
const LEASED_WRITE_ATTEMPTS = 4;
/**
 * Attempts of a transaction: besides the leased-write causes, a value condition (read, then
 * `check-index`) whose key was rewritten with the same value between the read and the commit.
 */
const TRANSACTION_ATTEMPTS = 8;

/** A list's key revisions, the prefix's state at every index in [validFrom, validTo]. */
interface Snapshot {
  prefix: string;
  revisions: Map<string, bigint>;
  validFrom: bigint;
  validTo: bigint;
}

/** Outcome of one `/v1/txn` call. */
type TxnOutcome = { ok: true; results: KVPair[] } | { ok: false; errors: TxnError[] };

/** Outcome of a conditional write before the current pair is looked up. */
type WriteOutcome = { ok: true; revision: bigint } | { ok: false };

/** The consul KvStore. Create with {@link ConsulKvStore.open}. */
export class ConsulKvStore implements KvStore {
  private readonly client: ConsulHttpClient;
  private readonly session: ConsulSession;
  private readonly address: string;
  private readonly leaseTtlMs: number;
  private readonly requestTimeoutMs: number;
  private readonly watchWaitMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<ConsulWatcher>();
  private readonly snapshots: Snapshot[] = [];
  /** Keys this store bound with `lock`, and the session they were bound to. */
  private readonly boundKeys = new Map<string, string>();
  private readonly reconnectCallbacks = new Set<(reason: ConsulReconnectReason) => void>();
  /** Highest raft index seen in any KV answer: every index up to it is committed. */
  private knownIndex = 0n;
  private reachable = true;
  private lastError: string | undefined;
  private closed = false;

  private constructor(options: ConsulStoreOptions) {
    this.address = normalizeConsulAddress(options.address, 'consul address');
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.watchWaitMs = options.watchWaitMs ?? DEFAULT_WATCH_WAIT_MS;
    this.logger = log.child({ component: 'kvstore', backend: 'consul', address: this.address });
    this.client = new ConsulHttpClient({
      address: this.address,
      requestTimeoutMs: this.requestTimeoutMs,
      ...(options.token !== undefined && { token: options.token }),
      observer: {
        onAnswer: () => this.markReachable(),
        onUnreachable: (err) => this.markUnreachable(err),
      },
    });
    this.session = new ConsulSession({
      client: this.client,
      ttlMs: this.leaseTtlMs,
      name: options.sessionName ?? 'cilium-docker',
      logger: this.logger,
      onReplaced: () => {
        this.boundKeys.clear();
        this.fireReconnect('session-replaced');
      },
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
      throw new ConfigError(`consul lease TTL ${ttl} ms: consul session TTLs must be between 1s (given a low session_ttl_min) and 24h`);
    }
    const store = new ConsulKvStore(options);
    const leader = await store.leader();
    if (leader === '') {
      throw new KvUnavailableError(`consul ${store.address}: the cluster has no leader; it cannot serve the kvstore until one is elected`);
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
    const reply = await this.client.request({ method: 'GET', path: kvPath(key), accept: [200, 404], what: `get ${key}` });
    if (reply.index !== undefined) this.observeIndex(reply.index);
    if (reply.status === 404) return undefined;
    const [entry] = parseConsulJson(reply.body) as KVPair[];
    return entry === undefined ? undefined : toPair(entry);
  }

  /** Every key under `prefix`, sorted, with a revision the list is consistent with (see the module comment). */
  async list(prefix: string): Promise<ListResult> {
    this.assertOpen('list');
    assertConsulPrefix(prefix);
    const knownBefore = this.knownIndex;
    const { index, pairs } = await this.readPrefix(prefix, undefined);
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
    const outcome = options?.leased
      ? await this.writeLeased('put', key, value, undefined)
      : await this.writeUnleased('put', key, value, undefined);
    if (!outcome.ok) throw new KvUnavailableError(`consul ${this.address}: put ${key} failed unexpectedly`);
    await this.settleWrite(key, outcome.revision);
    return outcome.revision;
  }

  /** Create-only write (`cas` with index 0, or `check-not-exists` + `lock` when leased). */
  async create(key: string, value: string, options?: PutOptions): Promise<CasResult> {
    this.assertOpen('create');
    assertConsulKey(key);
    const outcome = options?.leased
      ? await this.writeLeased('create', key, value, 'absent')
      : await this.writeUnleased('create', key, value, 0n);
    return this.casResult(key, outcome);
  }

  /** Writes only if the key's ModifyIndex is `prevRevision` (or it is absent, for `'absent'`). */
  async atomicPut(key: string, value: string, prevRevision: bigint | 'absent', options?: PutOptions): Promise<CasResult> {
    if (prevRevision === 'absent') return this.create(key, value, options);
    this.assertOpen('atomicPut');
    assertConsulKey(key);
    // Consul reads index 0 as "create-only"; no existing key has revision 0, so it cannot match.
    if (prevRevision <= 0n) return { ok: false, current: await this.get(key) };
    const outcome = options?.leased
      ? await this.writeLeased('atomicPut', key, value, prevRevision)
      : await this.writeUnleased('atomicPut', key, value, prevRevision);
    return this.casResult(key, outcome);
  }

  /** Unconditional delete; true if a key was removed. */
  async delete(key: string): Promise<boolean> {
    this.assertOpen('delete');
    assertConsulKey(key);
    const outcome = await this.txn(`delete ${key}`, [{ KV: { Verb: 'get', Key: key } }, { KV: { Verb: 'delete', Key: key } }]);
    if (!outcome.ok) {
      if (outcome.errors.every((error) => error.OpIndex === 0)) return false; // "key doesn't exist"
      throw this.txnFailure(`delete ${key}`, outcome.errors);
    }
    this.boundKeys.delete(key);
    await this.settleDeletes([{ key, modRevision: outcome.results[0]!.ModifyIndex }]);
    return true;
  }

  /** Deletes only if the key's ModifyIndex is `prevRevision`; true if removed. */
  async atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    this.assertOpen('atomicDelete');
    assertConsulKey(key);
    if (prevRevision <= 0n) return false;
    const outcome = await this.txn(`atomicDelete ${key}`, [
      { KV: { Verb: 'check-index', Key: key, Index: prevRevision } },
      { KV: { Verb: 'delete', Key: key } },
    ]);
    if (!outcome.ok) {
      if (outcome.errors.every((error) => error.OpIndex === 0)) return false;
      throw this.txnFailure(`atomicDelete ${key}`, outcome.errors);
    }
    this.boundKeys.delete(key);
    await this.settleDeletes([{ key, modRevision: prevRevision }]);
    return true;
  }

  /** Deletes every key under `prefix` in one transaction; returns how many were removed. */
  async deletePrefix(prefix: string): Promise<number> {
    this.assertOpen('deletePrefix');
    assertConsulPrefix(prefix);
    const outcome = await this.txn(`deletePrefix ${prefix}`, [
      { KV: { Verb: 'get-tree', Key: prefix } },
      { KV: { Verb: 'delete-tree', Key: prefix } },
    ]);
    if (!outcome.ok) throw this.txnFailure(`deletePrefix ${prefix}`, outcome.errors);
    for (const entry of outcome.results) this.boundKeys.delete(entry.Key);
    await this.settleDeletes(outcome.results.map((entry) => ({ key: entry.Key, modRevision: entry.ModifyIndex })));
    return outcome.results.length;
  }

  /**
   * One `/v1/txn`: conditions as `check-not-exists` / `check-index` (Consul cannot compare values:
   * a value condition reads the key first and checks the ModifyIndex it read, retried when the key
   * was rewritten meanwhile), then the operations: leased puts as `lock` with this store's session
   * (a key another session holds is taken over by `delete-cas` + `lock`, as in a single leased
   * write), unleased puts as `set` (`unlock` for a key this store holds), deletes as
   * `get-or-empty` + `delete` (the read tells the revision this store's watchers must see deleted).
   */
  async transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    this.assertOpen('transaction');
    assertTransactionShape(conditions, operations);
    for (const { key } of [...conditions, ...operations]) assertConsulKey(key);
    const what = `transaction on ${[...conditions, ...operations].map((x) => x.key).join(', ')}`;
    /** Keys held by another session and the ModifyIndex to take them over at. */
    const takeOver = new Map<string, bigint>();
    let lastError = '';
    for (let attempt = 1; attempt <= TRANSACTION_ATTEMPTS; attempt++) {
      const ops: TxnOp[] = [];
      /** What each op stands for: a condition index, or an operation index. */
      const origin: ({ condition: number } | { operation: number })[] = [];
      for (const [i, condition] of conditions.entries()) {
        if ('absent' in condition) ops.push({ KV: { Verb: 'check-not-exists', Key: condition.key } });
        else if ('modRevision' in condition) ops.push({ KV: { Verb: 'check-index', Key: condition.key, Index: condition.modRevision } });
        else {
          const pair = await this.get(condition.key);
          if (pair?.value !== condition.value) return this.failedTransaction(conditions);
          ops.push({ KV: { Verb: 'check-index', Key: condition.key, Index: pair.modRevision } });
        }
        origin.push({ condition: i });
      }
      const session = operations.some((o) => o.op === 'put' && o.leased === true) ? await this.session.ensure() : this.session.current;
      for (const [i, operation] of operations.entries()) {
        const key = operation.key;
        if (operation.op === 'delete') {
          ops.push({ KV: { Verb: 'get-or-empty', Key: key } }, { KV: { Verb: 'delete', Key: key } });
          origin.push({ operation: i }, { operation: i });
          continue;
        }
        const encoded = Buffer.from(operation.value, 'utf8').toString('base64');
        const base = takeOver.get(key);
        if (operation.leased === true && base !== undefined) {
          ops.push({ KV: { Verb: 'delete-cas', Key: key, Index: base } });
          origin.push({ operation: i });
        }
        if (operation.leased === true) ops.push({ KV: { Verb: 'lock', Key: key, Value: encoded, Session: session! } });
        else if (session !== undefined && this.boundKeys.get(key) === session) ops.push({ KV: { Verb: 'unlock', Key: key, Value: encoded, Session: session } });
        else ops.push({ KV: { Verb: 'set', Key: key, Value: encoded } });
        origin.push({ operation: i });
      }

      const outcome = await this.txn(what, ops);
      if (outcome.ok) return this.committedTransaction(ops, outcome.results, operations, session);

      let retry = false;
      for (const error of outcome.errors) {
        const from = origin[error.OpIndex];
        if (from === undefined) throw this.txnFailure(what, outcome.errors);
        if ('condition' in from) {
          // A value condition's key changed after it was read: read it again.
          if ('value' in conditions[from.condition]!) {
            retry = true;
            continue;
          }
          return this.failedTransaction(conditions);
        }
        const operation = operations[from.operation]!;
        const verb = ops[error.OpIndex]!.KV.Verb;
        lastError = error.What;
        if (/invalid session/i.test(error.What) && session !== undefined) this.session.lost(session, `consul refused session ${session} in ${what}: ${error.What}`);
        else if (verb === 'unlock') this.boundKeys.delete(operation.key); // no longer ours: a plain set next time
        else if (verb === 'delete-cas') takeOver.delete(operation.key); // changed again: look again
        else if (verb === 'lock' && /already held/i.test(error.What)) {
          const current = (await this.get(operation.key))?.modRevision;
          if (current !== undefined) takeOver.set(operation.key, current);
        } else if (verb === 'lock' && /lock delay/i.test(error.What)) {
          throw new KvUnavailableError(`consul ${this.address}: ${what}: ${operation.key} is in its lock-delay after the session that held it ended; retry shortly`);
        } else throw this.txnFailure(what, outcome.errors);
        retry = true;
      }
      if (!retry) throw this.txnFailure(what, outcome.errors);
    }
    throw new KvUnavailableError(`consul ${this.address}: ${what} failed ${TRANSACTION_ATTEMPTS} times; last error: ${lastError || 'a value condition kept changing'}`);
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

  /** The not-applied result: every condition key as it is now. */
  private async failedTransaction(conditions: readonly TxnCondition[]): Promise<TxnResult> {
    const current = new Map<string, KvPair | undefined>();
    for (const { key } of conditions) if (!current.has(key)) current.set(key, await this.get(key));
    return { ok: false, current };
  }

  /** Records bindings of a committed transaction and waits for this store's watchers to see it. */
  private async committedTransaction(
    ops: readonly TxnOp[],
    results: readonly KVPair[],
    operations: readonly TxnOperation[],
    session: string | undefined,
  ): Promise<TxnResult> {
    // Results come in op order from every verb but check-not-exists, delete and delete-cas.
    const byOp = new Map<number, KVPair>();
    let next = 0;
    ops.forEach((op, i) => {
      if (!['check-not-exists', 'delete', 'delete-cas'].includes(op.KV.Verb)) byOp.set(i, results[next++]!);
    });
    let revision = 0n;
    const written: { key: string; revision: bigint }[] = [];
    const deleted: { key: string; modRevision: bigint }[] = [];
    ops.forEach((op, i) => {
      const entry = byOp.get(i);
      const { Verb: verb, Key: key } = op.KV;
      if (entry !== undefined && ['lock', 'unlock', 'set'].includes(verb)) {
        written.push({ key, revision: entry.ModifyIndex });
        if (entry.ModifyIndex > revision) revision = entry.ModifyIndex;
      }
      if (verb === 'get-or-empty' && entry !== undefined && entry.ModifyIndex > 0n) deleted.push({ key, modRevision: entry.ModifyIndex });
    });
    for (const operation of operations) {
      if (operation.op === 'put' && operation.leased === true && session !== undefined) this.boundKeys.set(operation.key, session);
      else this.boundKeys.delete(operation.key);
    }
    await Promise.all([...written.map((w) => this.settleWrite(w.key, w.revision)), this.settleDeletes(deleted)]);
    // A transaction that only deleted (or did nothing) leaves no index in its answer.
    return { ok: true, revision: revision > 0n ? revision : this.knownIndex };
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
      read: (p, index, signal) => this.readPrefix(p, index, signal),
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
      const leader = await this.leader();
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

  // ---------------------------------------------------------------- writes

  /**
   * A write without a lease: `set`, or `cas` when `prevRevision` is given (0 = create-only). A key
   * this store holds is released (`unlock`) by the same write instead.
   */
  private async writeUnleased(what: string, key: string, value: string, prevRevision: bigint | undefined): Promise<WriteOutcome> {
    const encoded = Buffer.from(value, 'utf8').toString('base64');
    const session = this.session.current;
    if (session !== undefined && this.boundKeys.get(key) === session && prevRevision !== 0n) {
      const ops: TxnOp[] = [];
      if (prevRevision !== undefined) ops.push({ KV: { Verb: 'check-index', Key: key, Index: prevRevision } });
      ops.push({ KV: { Verb: 'unlock', Key: key, Value: encoded, Session: session } });
      const released = await this.txn(`${what} ${key}`, ops);
      if (released.ok) {
        this.boundKeys.delete(key);
        return { ok: true, revision: released.results.at(-1)!.ModifyIndex };
      }
      if (prevRevision !== undefined && released.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      // No longer ours (deleted, or re-bound by another session): an ordinary write below.
      this.boundKeys.delete(key);
    }
    const op: TxnOp =
      prevRevision === undefined
        ? { KV: { Verb: 'set', Key: key, Value: encoded } }
        : { KV: { Verb: 'cas', Key: key, Value: encoded, Index: prevRevision } };
    const outcome = await this.txn(`${what} ${key}`, [op]);
    if (outcome.ok) return { ok: true, revision: outcome.results.at(-1)!.ModifyIndex };
    if (prevRevision !== undefined) return { ok: false };
    throw this.txnFailure(`${what} ${key}`, outcome.errors);
  }

  /**
   * A write bound to this store's session: `lock`, after `check-not-exists` (`'absent'`) or
   * `check-index` (a revision) when conditional. Replaces a lost session, and takes over a key
   * another session holds by deleting and re-creating it in one transaction.
   */
  private async writeLeased(
    what: string,
    key: string,
    value: string,
    condition: 'absent' | bigint | undefined,
  ): Promise<WriteOutcome> {
    const encoded = Buffer.from(value, 'utf8').toString('base64');
    let lastError = '';
    for (let attempt = 1; attempt <= LEASED_WRITE_ATTEMPTS; attempt++) {
      const session = await this.session.ensure();
      const lock: TxnOp = { KV: { Verb: 'lock', Key: key, Value: encoded, Session: session } };
      const ops: TxnOp[] = [];
      if (condition === 'absent') ops.push({ KV: { Verb: 'check-not-exists', Key: key } });
      else if (condition !== undefined) ops.push({ KV: { Verb: 'check-index', Key: key, Index: condition } });
      ops.push(lock);
      const outcome = await this.txn(`${what} ${key}`, ops);
      if (outcome.ok) {
        this.boundKeys.set(key, session);
        return { ok: true, revision: outcome.results.at(-1)!.ModifyIndex };
      }
      if (condition !== undefined && outcome.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      lastError = outcome.errors.map((error) => error.What).join('; ');

      if (/invalid session/i.test(lastError)) {
        this.session.lost(session, `consul refused session ${session} writing ${key}: ${lastError}`);
        continue;
      }
      if (/lock delay/i.test(lastError)) {
        throw new KvUnavailableError(
          `consul ${this.address}: ${what} ${key}: the key is in its lock-delay after the session that held it ended; retry shortly`,
        );
      }
      if (!/already held/i.test(lastError)) throw this.txnFailure(`${what} ${key}`, outcome.errors);

      // Another session holds the key. Only the holder may release it, so take it over by
      // deleting and re-creating it, conditional on the revision we expect, in one transaction.
      const base = typeof condition === 'bigint' ? condition : (await this.get(key))?.modRevision;
      if (base === undefined) continue; // gone meanwhile: a plain lock will do
      const rebind = await this.txn(`${what} ${key} (take over from another session)`, [
        { KV: { Verb: 'delete-cas', Key: key, Index: base } },
        lock,
      ]);
      if (rebind.ok) {
        this.boundKeys.set(key, session);
        this.logger.info({ key, session }, 'took over a key held by another consul session');
        return { ok: true, revision: rebind.results.at(-1)!.ModifyIndex };
      }
      if (typeof condition === 'bigint' && rebind.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      lastError = rebind.errors.map((error) => error.What).join('; ');
      if (/invalid session/i.test(lastError)) this.session.lost(session, `consul refused session ${session} writing ${key}: ${lastError}`);
    }
    throw new KvUnavailableError(
      `consul ${this.address}: ${what} ${key} with this store's session failed ${LEASED_WRITE_ATTEMPTS} times; last error: ${lastError}`,
    );
  }

  private async casResult(key: string, outcome: WriteOutcome): Promise<CasResult> {
    if (!outcome.ok) return { ok: false, current: await this.get(key) };
    await this.settleWrite(key, outcome.revision);
    return { ok: true, revision: outcome.revision };
  }

  private async txn(what: string, ops: TxnOp[]): Promise<TxnOutcome> {
    const reply = await this.client.request({
      method: 'PUT',
      path: '/v1/txn',
      body: stringifyConsulJson(ops),
      accept: [200, 409],
      what,
    });
    const response = parseConsulJson(reply.body) as TxnResponse;
    if (reply.status === 409) return { ok: false, errors: response.Errors ?? [] };
    const results = (response.Results ?? []).flatMap((result) => (result.KV !== undefined ? [result.KV] : []));
    for (const entry of results) this.observeIndex(entry.ModifyIndex);
    return { ok: true, results };
  }

  private txnFailure(what: string, errors: TxnError[]): KvUnavailableError {
    return new KvUnavailableError(
      `consul ${this.address}: ${what} failed: ${errors.map((error) => `operation ${error.OpIndex}: ${error.What}`).join('; ')}`,
    );
  }

  // ---------------------------------------------------------------- reads and watches

  private async readPrefix(prefix: string, index: bigint | undefined, signal?: AbortSignal): Promise<PrefixState> {
    const blocking = index !== undefined;
    const query = blocking ? `?recurse&index=${index}&wait=${formatGoDuration(this.watchWaitMs)}` : '?recurse';
    const reply = await this.client.request({
      method: 'GET',
      path: kvPath(prefix) + query,
      accept: [200, 404],
      what: blocking ? `watch ${prefix}` : `list ${prefix}`,
      // Consul adds up to wait/16 of jitter to a blocking query's wait.
      ...(blocking && { timeoutMs: Math.ceil(this.watchWaitMs * (17 / 16)) + this.requestTimeoutMs }),
      ...(signal !== undefined && { signal }),
    });
    if (reply.index === undefined) {
      throw new KvUnavailableError(`consul ${this.address}: ${blocking ? 'watch' : 'list'} ${prefix}: the answer has no X-Consul-Index`);
    }
    this.observeIndex(reply.index);
    const entries = reply.status === 200 ? (parseConsulJson(reply.body) as KVPair[]) : [];
    const pairs = entries.map(toPair).sort((a, b) => compareUtf8(a.key, b.key));
    return { index: reply.index, pairs };
  }

  /** The prefix's key revisions at `fromRevision`, if a recent list (or revision 0) tells them. */
  private baselineFor(prefix: string, fromRevision: bigint): Map<string, bigint> | undefined {
    if (fromRevision === 0n) return new Map();
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const snapshot = this.snapshots[i]!;
      if (!prefix.startsWith(snapshot.prefix) || fromRevision < snapshot.validFrom || fromRevision > snapshot.validTo) continue;
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
  private async settleDeletes(deleted: { key: string; modRevision: bigint }[]): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const watcher of this.watchers) {
      const relevant = deleted.filter(({ key }) => watcher.covers(key));
      if (relevant.length === 0) continue;
      waits.push(
        watcher.waitFor(() => relevant.every(({ key, modRevision }) => watcher.hasSeenDelete(key, modRevision)), WATCH_SETTLE_MS),
      );
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  // ---------------------------------------------------------------- health

  private async leader(): Promise<string> {
    const reply = await this.client.request({ method: 'GET', path: '/v1/status/leader', accept: [200], what: 'read the raft leader' });
    const leader = JSON.parse(reply.body) as unknown;
    return typeof leader === 'string' ? leader : '';
  }

  private observeIndex(index: bigint): void {
    if (index > this.knownIndex) this.knownIndex = index;
  }

  private markReachable(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.logger.info({ lastError: this.lastError }, 'consul is reachable again');
    this.lastError = undefined;
    this.fireReconnect('reconnected');
  }

  private markUnreachable(err: KvUnavailableError): void {
    if (this.reachable) this.logger.warn({ err: err.message }, 'consul is unreachable');
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

function toPair(entry: KVPair): KvPair {
  return {
    key: entry.Key,
    value: entry.Value === null ? '' : Buffer.from(entry.Value, 'base64').toString('utf8'),
    createRevision: entry.CreateIndex,
    modRevision: entry.ModifyIndex,
    ...(entry.Session !== undefined && entry.Session !== '' && { lease: entry.Session }),
  };
}

/** UTF-8 byte order (Consul's radix-tree order; also code point order). */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
