/**
 * Coalesces transactions submitted at about the same time into {@link KvStore.transactions}
 * batches: one round trip (and, on etcd, one gRPC call and one raft entry) for up to
 * {@link MAX_TXN_OPERATIONS} of them. Many concurrent identity allocations (a daemon starting
 * dozens of containers, or restoring them) then cost a few round trips instead of one each,
 * while a lone transaction waits only for the current event-loop turn to end.
 *
 * Requests are collected until the event loop's check phase (`setImmediate`), then sent in order
 * as batches of transactions that write disjoint keys (etcd refuses a batch writing one key
 * twice); a request whose keys are taken goes into the next batch of the same flush. Each caller
 * gets its own transaction's result, or the batch's error.
 */
import {
  MAX_TXN_OPERATIONS,
  type KvStore,
  type TxnCondition,
  type TxnOperation,
  type TxnRequest,
  type TxnResult,
} from './kvstore.js';
import { assertTransactionShape } from './transaction-shape.js';

interface Pending {
  request: TxnRequest;
  resolve(result: TxnResult): void;
  reject(err: unknown): void;
}

/** Batches transactions for one store. */
export class TransactionBatcher {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly store: KvStore,
    private readonly maxBatch = MAX_TXN_OPERATIONS,
  ) {}

  /** Same contract as {@link KvStore.transaction}; sent with whatever else is submitted this turn. */
  submit(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    try {
      // A malformed request fails alone, not the batch it would have joined.
      assertTransactionShape(conditions, operations);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<TxnResult>((resolve, reject) => {
      this.pending.push({ request: { conditions, operations }, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch: Pending[] = [];
      const rest: Pending[] = [];
      const written = new Set<string>();
      for (const p of this.pending) {
        const keys = p.request.operations.map((o) => o.key);
        if (batch.length < this.maxBatch && keys.every((k) => !written.has(k))) {
          batch.push(p);
          for (const k of keys) written.add(k);
        } else rest.push(p);
      }
      this.pending = rest;
      this.store.transactions(batch.map((p) => p.request)).then(
        (results) => {
          for (const [i, p] of batch.entries()) p.resolve(results[i]!);
        },
        (err: unknown) => {
          for (const p of batch) p.reject(err);
        },
      );
    }
  }
}
