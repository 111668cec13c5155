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
 * Lease: one per store, granted on the first leased write with the configured TTL and kept alive
 * by etcd3's Lease (a keepalive every TTL/3). When it is lost (etcd says it expired, or no
 * keepalive got through for 2 TTLs) the store forgets it, reports `lease-lost` to
 * {@link EtcdKvStore.onReconnect} listeners, and the next leased write grants a new one; the
 * callers re-assert their leased keys, which is what Cilium's lease-expiry observers do (and what
 * it lacked in issue #42596, where an agent kept writing with an expired lease for 16 h). A leased
 * write that etcd rejects with "lease not found" does the same and is retried once.
 *
 * Availability: every call is bounded by `requestTimeoutMs`; connection failures, timeouts and
 * etcd errors reject with KvUnavailableError naming the endpoints. A call that times out may still
 * have been applied (etcd cannot say); CAS callers re-read before retrying. After a failure the
 * first successful call, watch stream or keepalive reports `reconnected`.
 */
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCOutOfRangeError,
  isRecoverableError,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IResponseOp,
  type IOptions,
  type Lease,
} from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen } from 'cockatiel';
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
import type { EtcdStoreOptions } from './etcd-options.js';
import { EtcdWatcher } from './etcd-watcher.js';

/** How long etcd3's circuit for a host stays open after 3 failed calls before one is tried. */
const HOST_RETRY_MS = 1_000;
/** Longest wait between attempts to re-open a watch stream. */
const WATCH_BACKOFF_MAX_MS = 2_000;
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

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

/** The lease this store writes leased keys with. */
interface ActiveLease {
  id: string;
  handle: Lease;
}

/** The etcd KvStore. Create with {@link EtcdKvStore.open}. */
export class EtcdKvStore implements KvStore {
  private readonly client: Etcd3;
  private readonly endpoints: readonly string[];
  private readonly namespace: Buffer;
  private readonly leaseTtlSeconds: number;
  private readonly requestTimeoutMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<EtcdWatcher>();
  private readonly listeners = new Set<(event: EtcdConnectionEvent) => void>();
  /** The granted lease, or the grant in flight (shared by concurrent first leased writes). */
  private lease: Promise<ActiveLease> | undefined;
  private activeLease: ActiveLease | undefined;
  /** When the current run of failures started; undefined while etcd answers. */
  private failingSince: number | undefined;
  private lastError: string | undefined;
  private closed = false;

  private constructor(client: Etcd3, options: EtcdStoreOptions) {
    this.client = client;
    this.endpoints = [...options.endpoints];
    this.namespace = Buffer.from(options.namespace ?? '', 'utf8');
    this.leaseTtlSeconds = Math.max(1, Math.ceil((options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS) / 1000));
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.logger = log.child({ component: 'kvstore', backend: 'etcd', endpoints: this.endpoints.join(',') });
  }

  /**
   * Connects to etcd and checks that it answers within `dialTimeoutMs`. Rejects with
   * KvUnavailableError (naming the endpoints) when it does not, or when the TLS files cannot be read.
   */
  static async open(options: EtcdStoreOptions): Promise<EtcdKvStore> {
    if (options.endpoints.length === 0) throw new KvUnavailableError('etcd kvstore: no endpoints given');
    const endpoints = options.endpoints.join(', ');
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let credentials: IOptions['credentials'];
    if (options.tls !== undefined) {
      try {
        const { caFile, certFile, keyFile } = options.tls;
        credentials = {
          // grpc-js reads a null root certificate as "use the system CAs".
          rootCertificate: (caFile !== undefined ? readFileSync(caFile) : null) as Buffer,
          ...(keyFile !== undefined && { privateKey: readFileSync(keyFile) }),
          ...(certFile !== undefined && { certChain: readFileSync(certFile) }),
        };
      } catch (err) {
        throw new KvUnavailableError(`etcd ${endpoints}: cannot read TLS files: ${(err as Error).message}`, { cause: err });
      }
    }
    let client: Etcd3;
    try {
      client = new Etcd3({
        hosts: [...options.endpoints],
        ...(credentials !== undefined && { credentials }),
        ...(options.auth !== undefined && { auth: { username: options.auth.username, password: options.auth.password } }),
        // After an outage, etcd should be tried again soon: etcd3's defaults keep a host's circuit
        // open for 5 s after 3 failed calls and back a watch off to 30 s, which delayed
        // convergence after etcd returned by up to that much (measured 8–9 s with a 2 s resync).
        faultHandling: {
          host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: HOST_RETRY_MS, breaker: new ConsecutiveBreaker(3) }),
          // etcd3 types this as an IBackoff but uses it as the factory its own default is.
          watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: WATCH_BACKOFF_MAX_MS }) as unknown as WatchBackoff,
        },
        // A deadline on every unary call (the auth token exchange included); streams have none.
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
        grpcOptions: {
          // Notice a dead connection (a host gone without a reset) under a quiet watch or lease
          // keepalive stream. etcd answers pings more often than every 5 s, or pings without an
          // open stream, with GOAWAY (--grpc-keepalive-min-time, PermitWithoutStream false).
          'grpc.keepalive_time_ms': 10_000,
          'grpc.keepalive_timeout_ms': 5_000,
        },
      });
    } catch (err) {
      throw new KvUnavailableError(`etcd ${endpoints}: invalid client settings: ${(err as Error).message}`, { cause: err });
    }
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
    const response = await this.call('get', (callOptions) => this.client.kv.range({ key: this.encodeKey(key) }, callOptions));
    return response.kvs[0] && this.toPair(response.kvs[0]);
  }

  /** Every key under `prefix`, in byte order, read at one revision (which is returned). */
  async list(prefix: string): Promise<ListResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listOnce(prefix);
      } catch (err) {
        // Compaction overtook the revision the first page was read at; start over at a new one.
        if (!(err instanceof KvUnavailableError && err.cause instanceof GRPCOutOfRangeError) || attempt >= LIST_ATTEMPTS) throw err;
      }
    }
  }

  /** Unconditional write; returns the new mod revision. */
  async put(key: string, value: string, options?: PutOptions): Promise<bigint> {
    return this.leasedWrite('put', options, async (lease) => {
      const response = await this.call('put', (callOptions) =>
        this.client.kv.put({ key: this.encodeKey(key), value: Buffer.from(value, 'utf8'), lease }, callOptions),
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
  async atomicPut(key: string, value: string, prevRevision: bigint | 'absent', options?: PutOptions): Promise<CasResult> {
    return this.conditionalPut('atomicPut', key, value, prevRevision, options);
  }

  /** Unconditional delete; true if a key was removed. */
  async delete(key: string): Promise<boolean> {
    const response = await this.call('delete', (callOptions) =>
      this.client.kv.deleteRange({ key: this.encodeKey(key) }, callOptions),
    );
    return BigInt(response.deleted) > 0n;
  }

  /** Deletes only if the key's mod revision is `prevRevision` (one transaction); true if removed. */
  async atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    if (prevRevision <= 0n) return false;
    const wireKey = this.encodeKey(key);
    const response = await this.call('atomicDelete', (callOptions) =>
      this.client.kv.txn(
        { compare: [this.revisionCompare(wireKey, prevRevision)], success: [{ request_delete_range: { key: wireKey } }] },
        callOptions,
      ),
    );
    return response.succeeded && BigInt(response.responses[0]?.response_delete_range.deleted ?? '0') > 0n;
  }

  /** Deletes every key under `prefix` in one revision; returns how many were removed. */
  async deletePrefix(prefix: string): Promise<number> {
    const { key, rangeEnd } = this.prefixRange(prefix);
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
    return this.leasedWrite('transaction', { leased }, async (lease) => {
      const txn = this.txnRequest(conditions, operations, lease);
      const response = await this.call('transaction', (callOptions) => this.client.kv.txn(txn, callOptions));
      return this.txnResult(conditions, response.succeeded, response.responses, response.header.revision);
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
    return this.leasedWrite('transactions', { leased }, async (lease) => {
      const success: IRequestOp[] = requests.map((r) => ({ request_txn: this.txnRequest(r.conditions, r.operations, lease) }));
      const response = await this.call('transactions', (callOptions) => this.client.kv.txn({ compare: [], success, failure: [] }, callOptions));
      return requests.map((r, i) => {
        const nested = response.responses[i]?.response_txn;
        if (nested === undefined) throw new KvUnavailableError(`etcd ${this.endpoints.join(', ')}: transactions: no answer for transaction ${i}`);
        return this.txnResult(r.conditions, nested.succeeded, nested.responses, response.header.revision);
      });
    });
  }

  private txnRequest(conditions: readonly TxnCondition[], operations: readonly TxnOperation[], lease: string) {
    const compare: ICompare[] = conditions.map((c) => {
      const key = this.encodeKey(c.key);
      if ('absent' in c) return this.revisionCompare(key, 'absent');
      if ('modRevision' in c) return this.revisionCompare(key, c.modRevision);
      return { key, target: 'Value', result: 'Equal', value: Buffer.from(c.value, 'utf8') };
    });
    const success: IRequestOp[] = operations.map((o) =>
      o.op === 'put'
        ? { request_put: { key: this.encodeKey(o.key), value: Buffer.from(o.value, 'utf8'), lease: o.leased === true ? lease : '0' } }
        : { request_delete_range: { key: this.encodeKey(o.key) } },
    );
    const failure: IRequestOp[] = conditions.map((c) => ({ request_range: { key: this.encodeKey(c.key) } }));
    return { compare, success, failure };
  }

  private txnResult(conditions: readonly TxnCondition[], succeeded: boolean, responses: readonly IResponseOp[], revision: string): TxnResult {
    if (succeeded) return { ok: true, revision: BigInt(revision) };
    const current = new Map<string, KvPair | undefined>();
    conditions.forEach((c, i) => {
      const kv = responses[i]?.response_range.kvs[0];
      current.set(c.key, kv && this.toPair(kv));
    });
    return { ok: false, current };
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
      range: this.prefixRange(prefix),
      decodeKey: (key) => this.decodeKey(key),
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
    const lease = this.activeLease && { lease: { id: this.activeLease.id, ttlSeconds: this.leaseTtlSeconds } };
    const endpoints = this.endpoints.join(', ');
    if (this.closed) return { backend: 'etcd', healthy: false, detail: `${endpoints} (closed)` };
    try {
      const status = await this.call('status', (callOptions) => this.client.maintenance.status(callOptions));
      const leaseText = this.activeLease ? `, lease ${this.activeLease.id} (TTL ${this.leaseTtlSeconds}s)` : '';
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
    this.activeLease?.handle.release();
    this.lease?.then((lease) => lease.handle.release()).catch(() => undefined);
    this.activeLease = undefined;
    this.lease = undefined;
    this.listeners.clear();
    this.client.close();
    this.logger.info('etcd kvstore closed');
  }

  /** One page-by-page read of `prefix`, every page at the first page's revision. */
  private async listOnce(prefix: string): Promise<ListResult> {
    const { key, rangeEnd } = this.prefixRange(prefix);
    const pairs: KvPair[] = [];
    let revision: string | undefined;
    let from = key;
    for (;;) {
      const response = await this.call('list', (callOptions) =>
        this.client.kv.range({ key: from, range_end: rangeEnd, limit: LIST_PAGE_SIZE, revision: revision ?? '0' }, callOptions),
      );
      revision ??= response.header.revision;
      for (const kv of response.kvs) pairs.push(this.toPair(kv));
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
    const wireKey = this.encodeKey(key);
    if (prevRevision !== 'absent' && prevRevision <= 0n) {
      // etcd reads a missing key's mod revision as 0; no existing key has that revision.
      return { ok: false, current: await this.get(key) };
    }
    return this.leasedWrite(what, options, async (lease) => {
      const response = await this.call(what, (callOptions) =>
        this.client.kv.txn(
          {
            compare: [this.revisionCompare(wireKey, prevRevision)],
            success: [{ request_put: { key: wireKey, value: Buffer.from(value, 'utf8'), lease } }],
            failure: [{ request_range: { key: wireKey } }],
          },
          callOptions,
        ),
      );
      if (response.succeeded) return { ok: true, revision: BigInt(response.header.revision) };
      const current = response.responses[0]?.response_range.kvs[0];
      return { ok: false, current: current && this.toPair(current) };
    });
  }

  /** The compare of a CAS: create revision 0 for `'absent'`, else mod revision equality. */
  private revisionCompare(key: Buffer, prevRevision: bigint | 'absent'): ICompare {
    return prevRevision === 'absent'
      ? { key, target: 'Create', result: 'Equal', create_revision: '0' }
      : { key, target: 'Mod', result: 'Equal', mod_revision: prevRevision.toString() };
  }

  /**
   * Runs a write with this store's lease when `options.leased` (granting it first if needed). If
   * etcd no longer knows the lease, it is reported lost and the write retried once with a new one.
   */
  private async leasedWrite<T>(what: string, options: PutOptions | undefined, write: (lease: string) => Promise<T>): Promise<T> {
    if (!options?.leased) return write('0');
    for (let attempt = 1; ; attempt++) {
      const lease = await this.acquireLease(what);
      try {
        return await write(lease.id);
      } catch (err) {
        if (!(err instanceof KvUnavailableError && err.cause instanceof EtcdLeaseInvalidError) || attempt > 1) throw err;
        this.leaseLost(lease, `etcd no longer knows lease ${lease.id} (expired)`);
      }
    }
  }

  /** This store's lease, granting it on first use; concurrent callers share one grant. */
  private acquireLease(what: string): Promise<ActiveLease> {
    this.assertOpen(what);
    if (this.lease !== undefined) return this.lease;
    const handle = this.client.lease(this.leaseTtlSeconds);
    const granting = this.call(`lease grant for ${what}`, () => handle.grant()).then(
      (id) => {
        const lease: ActiveLease = { id, handle };
        if (this.closed) {
          handle.release();
          return lease;
        }
        this.activeLease = lease;
        handle.on('lost', (err) => this.leaseLost(lease, `keepalive failed: ${err.message}`));
        handle.on('keepaliveSucceeded', () => this.noteSuccess());
        handle.on('keepaliveFailed', (err) => {
          if (isConnectivityError(err)) this.noteFailure(err);
        });
        this.logger.info({ lease: id, ttlSeconds: this.leaseTtlSeconds }, 'lease granted');
        return lease;
      },
      (err: unknown) => {
        // Nothing was granted (or the grant's answer was lost and the lease will just expire);
        // the next leased write tries again.
        handle.release();
        if (this.lease === granting) this.lease = undefined;
        throw err;
      },
    );
    this.lease = granting;
    return granting;
  }

  /** Forgets `lease` (if still current) and tells listeners once. */
  private leaseLost(lease: ActiveLease, reason: string): void {
    if (this.activeLease !== lease) return;
    lease.handle.release();
    this.activeLease = undefined;
    this.lease = undefined;
    this.logger.warn({ lease: lease.id, reason }, 'lease lost; leased keys are gone or going, a new lease is granted on the next leased write');
    this.emit({ kind: 'lease-lost', lease: lease.id, reason });
  }

  /**
   * Runs one etcd call with a deadline (the gRPC deadline plus a timer of our own, since the
   * client's retries and auth exchange could otherwise outlast it) and maps every failure to
   * KvUnavailableError naming the endpoints, with the client's error as `cause`.
   */
  private async call<T>(what: string, op: (callOptions: CallOptions) => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
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
    if (this.closed) return new KvUnavailableError(`etcd kvstore ${endpoints} is closed; cannot ${what}`, { cause: err });
    const reason = err instanceof CallTimeoutError ? err.message : describeError(err);
    return new KvUnavailableError(
      `etcd ${endpoints}: ${what} failed: ${reason}; check that etcd is running and reachable (--kvstore-opt etcd.address / etcd.config)`,
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
      this.logger.warn({ err: this.lastError }, 'etcd unreachable');
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
    if (this.closed) throw new KvUnavailableError(`etcd kvstore ${this.endpoints.join(', ')} is closed; cannot ${what}`);
  }

  private encodeKey(key: string): Buffer {
    return Buffer.concat([this.namespace, Buffer.from(key, 'utf8')]);
  }

  private decodeKey(key: Buffer): string {
    return key.subarray(this.namespace.length).toString('utf8');
  }

  /** Wire range `[key, rangeEnd)` of every key starting with `prefix` (inside the namespace). */
  private prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
    const key = this.encodeKey(prefix);
    // etcd's "from key" form: key "\0" with range_end "\0" means every key.
    if (key.length === 0) return { key: Buffer.from([0]), rangeEnd: Buffer.from([0]) };
    return { key, rangeEnd: prefixEnd(key) };
  }

  private toPair(kv: IKeyValue): KvPair {
    return {
      key: this.decodeKey(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: BigInt(kv.create_revision),
      modRevision: BigInt(kv.mod_revision),
      ...(kv.lease !== '0' && kv.lease !== '' && { lease: kv.lease }),
    };
  }
}

/**
 * The smallest byte string greater than every string starting with `prefix` (clientv3's
 * `GetPrefixRangeEnd`): drop trailing 0xff bytes, increment the last; "\0" if none is left.
 */
function prefixEnd(prefix: Buffer): Buffer {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return Buffer.from([0]);
  const rangeEnd = Buffer.from(prefix.subarray(0, end));
  rangeEnd[end - 1] = rangeEnd[end - 1]! + 1;
  return rangeEnd;
}

/** Our own deadline fired before the client gave up. */
class CallTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** Whether `err` says etcd could not be reached or did not answer (as opposed to refusing the request). */
function isConnectivityError(err: unknown): boolean {
  if (err instanceof CallTimeoutError || isBrokenCircuit(err)) return true;
  return typeof err === 'object' && err !== null && isRecoverableError(err as Error);
}

/** etcd3's per-host circuit breaker refused to try (the last calls to that host failed). */
function isBrokenCircuit(err: unknown): boolean {
  return (err as { isBrokenCircuitError?: boolean } | null)?.isBrokenCircuitError === true;
}

/** A short reason from a client error. */
function describeError(err: unknown): string {
  if (isBrokenCircuit(err)) return `not attempted: the last calls to etcd failed, next attempt within ${HOST_RETRY_MS / 1000} s`;
  if (err instanceof Error) return err.message.replace(/^\w+Error: /, '');
  return String(err);
}

