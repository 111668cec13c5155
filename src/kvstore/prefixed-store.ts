/**
 * A KvStore that lives under a key prefix of another (`--kvstore-opt prefix`, default
 * `cilium/state/`, as Cilium keeps its state): every key, list/watch/delete prefix, transaction
 * condition and operation, leased or not, goes to the backend with the prefix prepended, and
 * every key that comes back (pairs, CAS and transaction results, watch events) has it stripped.
 * Several clusters, or other tools, can then share one etcd or consul without seeing each
 * other's keys, and the layers above never see the prefix (`cilium kvstore get` shows keys as
 * the daemon names them).
 *
 * One layer for every backend, below the layers that give keys meaning, so that no key is ever
 * written outside the prefix by a module that forgot it. Leases are the backend's: a leased key
 * is bound to the backend store's one lease whatever its prefix.
 */
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
} from './kvstore.js';

/** `inner` seen from under `prefix` (a valid prefix, see `parseStorePrefix`; not empty). */
export class PrefixedKvStore implements KvStore {
  constructor(
    private readonly inner: KvStore,
    readonly prefix: string,
  ) {}

  /** The backend's key of one of ours. */
  private wire(key: string): string {
    return this.prefix + key;
  }

  /** Our key of one the backend returned (always under the prefix: we only ask for those). */
  private strip(key: string): string {
    return key.slice(this.prefix.length);
  }

  private pair(pair: KvPair): KvPair;
  private pair(pair: KvPair | undefined): KvPair | undefined;
  private pair(pair: KvPair | undefined): KvPair | undefined {
    return pair && { ...pair, key: this.strip(pair.key) };
  }

  private cas(result: CasResult): CasResult {
    return result.ok ? result : { ok: false, current: this.pair(result.current) };
  }

  private condition(c: TxnCondition): TxnCondition {
    return { ...c, key: this.wire(c.key) };
  }

  private operation(o: TxnOperation): TxnOperation {
    return { ...o, key: this.wire(o.key) };
  }

  private txnResult(result: TxnResult): TxnResult {
    if (result.ok) return result;
    return {
      ok: false,
      current: new Map([...result.current].map(([key, pair]) => [this.strip(key), this.pair(pair)])),
    };
  }

  async get(key: string): Promise<KvPair | undefined> {
    return this.pair(await this.inner.get(this.wire(key)));
  }
  async list(prefix: string): Promise<ListResult> {
    const { pairs, revision } = await this.inner.list(this.wire(prefix));
    return { pairs: pairs.map((p) => this.pair(p)), revision };
  }
  put(key: string, value: string, options?: PutOptions): Promise<bigint> {
    return this.inner.put(this.wire(key), value, options);
  }
  async create(key: string, value: string, options?: PutOptions): Promise<CasResult> {
    return this.cas(await this.inner.create(this.wire(key), value, options));
  }
  async atomicPut(
    key: string,
    value: string,
    prevRevision: bigint | 'absent',
    options?: PutOptions,
  ): Promise<CasResult> {
    return this.cas(await this.inner.atomicPut(this.wire(key), value, prevRevision, options));
  }
  delete(key: string): Promise<boolean> {
    return this.inner.delete(this.wire(key));
  }
  atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    return this.inner.atomicDelete(this.wire(key), prevRevision);
  }
  deletePrefix(prefix: string): Promise<number> {
    return this.inner.deletePrefix(this.wire(prefix));
  }
  async transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    return this.txnResult(
      await this.inner.transaction(
        conditions.map((c) => this.condition(c)),
        operations.map((o) => this.operation(o)),
      ),
    );
  }
  async transactions(requests: readonly TxnRequest[]): Promise<TxnResult[]> {
    const results = await this.inner.transactions(
      requests.map((r) => ({
        conditions: r.conditions.map((c) => this.condition(c)),
        operations: r.operations.map((o) => this.operation(o)),
      })),
    );
    return results.map((r) => this.txnResult(r));
  }
  watch(prefix: string, fromRevision: bigint, handlers: WatchHandlers): Watcher {
    return this.inner.watch(this.wire(prefix), fromRevision, {
      onEvent: (event) => handlers.onEvent({ ...event, key: this.strip(event.key) }),
      ...(handlers.onResyncNeeded && { onResyncNeeded: (reason: string) => handlers.onResyncNeeded!(reason) }),
    });
  }
  /** The backend's status, its detail naming the prefix. */
  async status(): Promise<KvStatus> {
    const status = await this.inner.status();
    return { ...status, detail: `${status.detail}; key prefix ${this.prefix}` };
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
