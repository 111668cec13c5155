/**
 * The etcd v3 KvStore backend, over the `etcd3` client's raw KV, Lease, Watch and Maintenance RPCs.
 *
 * Semantics (Cilium `pkg/kvstore/etcd.go`): create-only and compare-and-swap are transactions on
 * the key's create revision (0 = absent) or mod revision; a failed compare reads the current pair
 * in the same transaction. Lists read one consistent revision (paginated at that revision). Watches
 * start at `fromRevision + 1` and resume losslessly after a broken stream (see etcd-watcher.ts).
 *
 * Revisions and lease ids are int64 on the wire; the client library hands them over as decimal
 * strings (`longs: String`), which go straight to BigInt and back with `toString()`, never
 * through a JavaScript number.
 *
 * Lease: one per store (etcd-lease.ts), granted on the first leased write and kept alive. When
 * it is lost the store reports `lease-lost` to {@link EtcdKvStore.onReconnect} listeners and the
 * next leased write grants a new one; the callers re-assert their leased keys, which is what
 * Cilium's lease-expiry observers do (and what it lacked in issue #42596, where an agent kept
 * writing with an expired lease for 16 h).
 *
 * Availability: every call is bounded by `requestTimeoutMs`; connection failures, timeouts and
 * etcd errors reject with KvUnavailableError naming the endpoints. A call that times out may still
 * have been applied (etcd cannot say); CAS callers re-read before retrying. After a failure the
 * first successful call, watch stream or keepalive reports `reconnected`.
 *
 * Parts: etcd-client.ts (the client's settings, failure classes), etcd-keyspace.ts (keys under
 * the namespace, ranges, compares and Txn requests), etcd-lease.ts, etcd-watcher.ts,
 * etcd-options.ts (`--kvstore-opt etcd.*`).
 */
import { GRPCOutOfRangeError, type Etcd3, type IRequestOp } from 'etcd3';
import { CiliumDockerError, KvUnavailableError } from '../../util/errors.js';
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
import { CallTimeoutError, createEtcdClient, describeError, isConnectivityError } from './etcd-client.js';
import { EtcdKeyspace } from './etcd-keyspace.js';
import { EtcdLease } from './etcd-lease.js';
import type { EtcdStoreOptions } from './etcd-options.js';
import { EtcdWatcher } from './etcd-watcher.js';

export { etcdOptionsFromKvstoreOpts, ETCD_OPTION_NAMES } from './etcd-options.js';
export type { EtcdAuthOptions, EtcdStoreOptions, EtcdTlsOptions } from './etcd-options.js';

/**
 * What {@link EtcdKvStore.onReconnect} listeners hear.
 * - `lease-lost`: the store's lease is gone and with it every key written `{ leased: true }`;
 *   re-assert them (the next leased write grants a new lease).
 * - `reconnected`: etcd answered again after at least one failure; events were not lost (watches
 *   resume or ask for a resync), but keys may have changed or expired meanwhile, so re-assert and
 *   re-list as after any outage.
 */
export type EtcdConnectionEvent =
  | { kind: 'lease-lost'; lease: string; reason: string }
  | { kind: 'reconnected'; downMs: number };

const DEFAULT_LEASE_TTL_MS = 15 * 60 * 1000;
const DEFAULT_DIAL_TIMEOUT_MS = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** Keys per range request when listing: bounded responses, all read at one revision. */
const LIST_PAGE_SIZE = 1_000;
/** How often a list restarts when compaction overtakes its revision between pages. */
const LIST_ATTEMPTS = 3;

/** gRPC call options (a deadline) as the etcd3 RPC methods take them. */
type CallOptions = NonNullable<Parameters<Etcd3['kv']['range']>[1]>;

/** The etcd KvStore. Create with {@link EtcdKvStore.open}. */
export class EtcdKvStore implements KvStore {
  private readonly client: Etcd3;
  private readonly endpoints: readonly string[];
  private readonly keyspace: EtcdKeyspace;
  private readonly lease: EtcdLease;
  private readonly leaseTtlSeconds: number;
  private readonly requestTimeoutMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<EtcdWatcher>();
  private readonly listeners = new Set<(event: EtcdConnectionEvent) => void>();
  /** When the current run of failures started; undefined while etcd answers. */
  private failingSince: number | undefined;
  private lastError: string | undefined;
  private closed = false;

  private constructor(client: Etcd3, options: EtcdStoreOptions) {
    this.client = client;
    this.endpoints = [...options.endpoints];
    this.keyspace = new EtcdKeyspace(options.namespace ?? '');
    this.leaseTtlSeconds = Math.max(1, Math.ceil((options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS) / 1000));
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logger = log.child({ component: 'kvstore', backend: 'etcd', endpoints: this.endpoints.join(',') });
    this.lease = new EtcdLease({
      client,
      ttlSeconds: this.leaseTtlSeconds,
      logger: this.logger,
      call: (what, op) => this.call(what, () => op()),
      assertOpen: (what) => this.assertOpen(what),
      isClosed: () => this.closed,
      onKeepaliveSucceeded: () => this.noteSuccess(),
      onKeepaliveFailed: (err) => {
        if (isConnectivityError(err)) this.noteFailure(err);
      },
      onLost: (lease, reason) => this.emit({ kind: 'lease-lost', lease, reason }),
    });
  }

  /**
   * Connects to etcd and checks that it answers within `dialTimeoutMs`. Rejects with
   * KvUnavailableError (naming the endpoints) when it does not, or when the TLS files cannot be read.
   */
  static async open(options: EtcdStoreOptions): Promise<EtcdKvStore> {
    if (options.endpoints.length === 0) throw new KvUnavailableError('etcd kvstore: no endpoints given');
    const client = createEtcdClient(options, options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    const store = new EtcdKvStore(client, options);
    try {
      const status = await store.call('connect', (callOptions) => client.maintenance.status(callOptions), {
        timeoutMs: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      });
      store.logger.info({ version: status.version, revision: status.header.revision }, 'etcd kvstore connected');
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** The value of one key, or undefined. */
  async get(key: string): Promise<KvPair | undefined> {
    const response = await this.call('get', (callOptions) =>
      this.client.kv.range({ key: this.keyspace.encodeKey(key) }, callOptions),
    );
    return response.kvs[0] && this.keyspace.toPair(response.kvs[0]);
  }

  /** Every key under `prefix`, in byte order, read at one revision (which is returned). */
  async list(prefix: string): Promise<ListResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listOnce(prefix);
      } catch (err) {
        // Compaction overtook the revision the first page was read at; start over at a new one.
        if (
          !(err instanceof KvUnavailableError && err.cause instanceof GRPCOutOfRangeError) ||
          attempt >= LIST_ATTEMPTS
        )
          throw err;
      }
    }
  }

  /** Unconditional write; returns the new mod revision. */
  async put(key: string, value: string, options?: PutOptions): Promise<bigint> {
    return this.lease.write('put', options?.leased, async (lease) => {
      const response = await this.call('put', (callOptions) =>
        this.client.kv.put(
          { key: this.keyspace.encodeKey(key), value: Buffer.from(value, 'utf8'), lease },
          callOptions,
        ),
      );
      return BigInt(response.header.revision);
    });
  }

  /** Create-only write: a transaction that writes only if the key's create revision is 0 (absent). */
  async create(key: string, value: string, options?: PutOptions): Promise<CasResult> {
    return this.conditionalPut('create', key, value, 'absent', options);
  }

  /**
   * Writes only if the key's mod revision is `prevRevision` (or it is absent, for `'absent'`); on
   * a failed compare the same transaction reads the current pair.
   */
  async atomicPut(
    key: string,
    value: string,
    prevRevision: bigint | 'absent',
    options?: PutOptions,
  ): Promise<CasResult> {
    return this.conditionalPut('atomicPut', key, value, prevRevision, options);
  }

  /** Unconditional delete; true if a key was removed. */
  async delete(key: string): Promise<boolean> {
    const response = await this.call('delete', (callOptions) =>
      this.client.kv.deleteRange({ key: this.keyspace.encodeKey(key) }, callOptions),
    );
    return BigInt(response.deleted) > 0n;
  }

  /** Deletes only if the key's mod revision is `prevRevision` (one transaction); true if removed. */
  async atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    if (prevRevision <= 0n) return false;
    const wireKey = this.keyspace.encodeKey(key);
    const response = await this.call('atomicDelete', (callOptions) =>
      this.client.kv.txn(
        {
          compare: [this.keyspace.revisionCompare(wireKey, prevRevision)],
          success: [{ request_delete_range: { key: wireKey } }],
        },
        callOptions,
      ),
    );
    return response.succeeded && BigInt(response.responses[0]?.response_delete_range.deleted ?? '0') > 0n;
  }

  /** Deletes every key under `prefix` in one revision; returns how many were removed. */
  async deletePrefix(prefix: string): Promise<number> {
    const { key, rangeEnd } = this.keyspace.prefixRange(prefix);
    const response = await this.call('deletePrefix', (callOptions) =>
      this.client.kv.deleteRange({ key, range_end: rangeEnd }, callOptions),
    );
    return Number(response.deleted);
  }

  /**
   * One etcd Txn: the conditions as compares (create revision 0, mod revision, or value), the
   * operations as the success branch (leased puts with this store's lease), and a range of every
   * condition's key as the failure branch, so a failed transaction costs no second round trip.
   */
  async transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    assertTransactionShape(conditions, operations);
    const leased = operations.some((o) => o.op === 'put' && o.leased === true);
    return this.lease.write('transaction', leased, async (lease) => {
      const txn = this.keyspace.txnRequest(conditions, operations, lease);
      const response = await this.call('transaction', (callOptions) => this.client.kv.txn(txn, callOptions));
      return this.keyspace.txnResult(conditions, response.succeeded, response.responses, response.header.revision);
    });
  }

  /**
   * The batch as one etcd Txn without compares whose success branch holds every transaction as a
   * nested Txn (etcd >= 3.3): each nested one evaluates its own compares, all share one revision.
   */
  async transactions(requests: readonly TxnRequest[]): Promise<TxnResult[]> {
    assertBatchShape(requests);
    if (requests.length === 0) return [];
    const leased = requests.some((r) => r.operations.some((o) => o.op === 'put' && o.leased === true));
    return this.lease.write('transactions', leased, async (lease) => {
      const success: IRequestOp[] = requests.map((r) => ({
        request_txn: this.keyspace.txnRequest(r.conditions, r.operations, lease),
      }));
      const response = await this.call('transactions', (callOptions) =>
        this.client.kv.txn({ compare: [], success, failure: [] }, callOptions),
      );
      return requests.map((r, i) => {
        const nested = response.responses[i]?.response_txn;
        if (nested === undefined)
          throw new KvUnavailableError(
            `etcd ${this.endpoints.join(', ')}: transactions: no answer for transaction ${i}`,
          );
        return this.keyspace.txnResult(r.conditions, nested.succeeded, nested.responses, response.header.revision);
      });
    });
  }

  /**
   * Watches changes under `prefix` strictly after `fromRevision` (etcd `start_revision =
   * fromRevision + 1`). A broken stream is resumed where it stopped; `onResyncNeeded` is called
   * when etcd compacted the history past that point or the cluster was replaced.
   */
  watch(prefix: string, fromRevision: bigint, handlers: WatchHandlers): Watcher {
    this.assertOpen('watch');
    const watcher = new EtcdWatcher(prefix, fromRevision, handlers, {
      openStream: () => this.client.watchClient.watch(),
      range: this.keyspace.prefixRange(prefix),
      decodeKey: (key) => this.keyspace.decodeKey(key),
      createTimeoutMs: this.requestTimeoutMs,
      onConnected: () => this.noteSuccess(),
      onDisconnected: (err) => this.noteFailure(err),
      onClose: (w) => this.watchers.delete(w),
      logger: this.logger,
    });
    this.watchers.add(watcher);
    return watcher;
  }

  /**
   * Backend `etcd`, healthy if a member answers a status request within the request timeout;
   * detail names the endpoints, the etcd version and revision (or the error); the lease once one
   * exists. Never rejects.
   */
  async status(): Promise<KvStatus> {
    const leaseId = this.lease.id;
    const lease = leaseId !== undefined && { lease: { id: leaseId, ttlSeconds: this.leaseTtlSeconds } };
    const endpoints = this.endpoints.join(', ');
    if (this.closed) return { backend: 'etcd', healthy: false, detail: `${endpoints} (closed)` };
    try {
      const status = await this.call('status', (callOptions) => this.client.maintenance.status(callOptions));
      const leaseText = leaseId !== undefined ? `, lease ${leaseId} (TTL ${this.leaseTtlSeconds}s)` : '';
      return {
        backend: 'etcd',
        healthy: true,
        detail: `${endpoints}: etcd ${status.version}, revision ${status.header.revision}${leaseText}`,
        ...lease,
      };
    } catch (err) {
      return { backend: 'etcd', healthy: false, detail: (err as Error).message, ...lease };
    }
  }

  /**
   * Subscribes to lease loss and reconnects (see {@link EtcdConnectionEvent}); returns the
   * unsubscribe function. Listeners run synchronously; one that throws is logged and skipped.
   */
  onReconnect(listener: (event: EtcdConnectionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Stops watches and the lease keepalive and closes the connections. The lease is not revoked:
   * leased keys live out their TTL, so a daemon restarting within it keeps them. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of [...this.watchers]) watcher.close();
    // Release before closing the client, or the keepalive loop retries on a closed client.
    this.lease.release();
    this.listeners.clear();
    this.client.close();
    this.logger.info('etcd kvstore closed');
  }

  /** One page-by-page read of `prefix`, every page at the first page's revision. */
  private async listOnce(prefix: string): Promise<ListResult> {
    const { key, rangeEnd } = this.keyspace.prefixRange(prefix);
    const pairs: KvPair[] = [];
    let revision: string | undefined;
    let from = key;
    for (;;) {
      const response = await this.call('list', (callOptions) =>
        this.client.kv.range(
          { key: from, range_end: rangeEnd, limit: LIST_PAGE_SIZE, revision: revision ?? '0' },
          callOptions,
        ),
      );
      revision ??= response.header.revision;
      for (const kv of response.kvs) pairs.push(this.keyspace.toPair(kv));
      if (!response.more || response.kvs.length === 0) break;
      // The smallest key after the last one read.
      from = Buffer.concat([response.kvs.at(-1)!.key, Buffer.from([0])]);
    }
    return { pairs, revision: BigInt(revision) };
  }

  /** The CAS transaction behind create and atomicPut. */
  private async conditionalPut(
    what: string,
    key: string,
    value: string,
    prevRevision: bigint | 'absent',
    options: PutOptions | undefined,
  ): Promise<CasResult> {
    if (prevRevision !== 'absent' && prevRevision <= 0n) {
      // etcd reads a missing key's mod revision as 0; no existing key has that revision.
      return { ok: false, current: await this.get(key) };
    }
    return this.lease.write(what, options?.leased, async (lease) => {
      const txn = this.keyspace.casRequest(key, value, prevRevision, lease);
      const response = await this.call(what, (callOptions) => this.client.kv.txn(txn, callOptions));
      if (response.succeeded) return { ok: true, revision: BigInt(response.header.revision) };
      const current = response.responses[0]?.response_range.kvs[0];
      return { ok: false, current: current && this.keyspace.toPair(current) };
    });
  }

  /**
   * Runs one etcd call with a deadline (the gRPC deadline plus a timer of our own, since the
   * client's retries and auth exchange could otherwise outlast it) and maps every failure to
   * KvUnavailableError naming the endpoints, with the client's error as `cause`.
   */
  private async call<T>(
    what: string,
    op: (callOptions: CallOptions) => Promise<T>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    this.assertOpen(what);
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CallTimeoutError(timeoutMs)), timeoutMs);
    });
    try {
      const result = await Promise.race([op({ deadline: Date.now() + timeoutMs }), timedOut]);
      this.noteSuccess();
      return result;
    } catch (err) {
      if (err instanceof CiliumDockerError) throw err;
      if (isConnectivityError(err)) this.noteFailure(err);
      throw this.unavailable(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private unavailable(what: string, err: unknown): KvUnavailableError {
    const endpoints = this.endpoints.join(', ');
    if (this.closed)
      return new KvUnavailableError(`etcd kvstore ${endpoints} is closed; cannot ${what}`, { cause: err });
    const reason = err instanceof CallTimeoutError ? err.message : describeError(err);
    return new KvUnavailableError(
      `etcd ${endpoints}: ${what} failed: ${reason}; ` +
        'check that etcd is running and reachable (--kvstore-opt etcd.address / etcd.config)',
      { cause: err },
    );
  }

  private noteSuccess(): void {
    if (this.failingSince === undefined || this.closed) return;
    const downMs = Date.now() - this.failingSince;
    this.failingSince = undefined;
    this.logger.info({ downMs, lastError: this.lastError }, 'etcd reachable again');
    this.emit({ kind: 'reconnected', downMs });
  }

  private noteFailure(err: unknown): void {
    if (this.closed) return;
    this.lastError = describeError(err);
    if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      this.logger.warn({ err }, 'etcd unreachable');
    }
  }

  private emit(event: EtcdConnectionEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.logger.error({ err, event: event.kind }, 'onReconnect listener threw');
      }
    }
  }

  private assertOpen(what: string): void {
    if (this.closed)
      throw new KvUnavailableError(`etcd kvstore ${this.endpoints.join(', ')} is closed; cannot ${what}`);
  }
}
