/**
 * A KvStore decorator that times every call (for `cilium_kvstore_operations_duration_seconds`)
 * and tracks reachability (for `cilium status` and outage handling), whatever the backend.
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

/** Receives one observation per call. */
export type KvObserver = (action: string, seconds: number, ok: boolean) => void;

/** Times calls and remembers the last failure. */
export class InstrumentedKvStore implements KvStore {
  private lastError: string | undefined;
  private lastErrorAt: number | undefined;
  private lastSuccessAt: number | undefined;

  constructor(
    private readonly inner: KvStore,
    private readonly observe: KvObserver,
  ) {}

  /** True if the last call succeeded (or none failed yet). */
  get reachable(): boolean {
    return this.lastErrorAt === undefined || (this.lastSuccessAt ?? 0) > this.lastErrorAt;
  }

  /** The last failure's message, if the store is currently failing. */
  get currentError(): string | undefined {
    return this.reachable ? undefined : this.lastError;
  }

  private async timed<T>(action: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      this.lastSuccessAt = Date.now();
      this.observe(action, (performance.now() - started) / 1000, true);
      return result;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.lastErrorAt = Date.now();
      this.observe(action, (performance.now() - started) / 1000, false);
      throw err;
    }
  }

  get(key: string): Promise<KvPair | undefined> {
    return this.timed('get', () => this.inner.get(key));
  }
  list(prefix: string): Promise<ListResult> {
    return this.timed('list', () => this.inner.list(prefix));
  }
  put(key: string, value: string, options?: PutOptions): Promise<bigint> {
    return this.timed('put', () => this.inner.put(key, value, options));
  }
  create(key: string, value: string, options?: PutOptions): Promise<CasResult> {
    return this.timed('create', () => this.inner.create(key, value, options));
  }
  atomicPut(key: string, value: string, prevRevision: bigint | 'absent', options?: PutOptions): Promise<CasResult> {
    return this.timed('atomicPut', () => this.inner.atomicPut(key, value, prevRevision, options));
  }
  delete(key: string): Promise<boolean> {
    return this.timed('delete', () => this.inner.delete(key));
  }
  atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    return this.timed('atomicDelete', () => this.inner.atomicDelete(key, prevRevision));
  }
  deletePrefix(prefix: string): Promise<number> {
    return this.timed('deletePrefix', () => this.inner.deletePrefix(prefix));
  }
  transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    return this.timed('transaction', () => this.inner.transaction(conditions, operations));
  }
  transactions(requests: readonly TxnRequest[]): Promise<TxnResult[]> {
    return this.timed('transactions', () => this.inner.transactions(requests));
  }
  watch(prefix: string, fromRevision: bigint, handlers: WatchHandlers): Watcher {
    return this.inner.watch(prefix, fromRevision, handlers);
  }
  async status(): Promise<KvStatus> {
    const s = await this.inner.status();
    return this.currentError && s.healthy
      ? { ...s, healthy: false, detail: `${s.detail}; last error: ${this.currentError}` }
      : s;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
