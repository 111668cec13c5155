/**
 * Many unconditional writes at once (a resync re-asserting thousands of owned keys): packed into
 * transactions of {@link MAX_TXN_OPERATIONS} puts, a few transactions in flight. 10 000 keys are
 * then ~160 round trips instead of 10 000 sequential ones.
 */
import { MAX_TXN_OPERATIONS, type KvStore } from './kvstore.js';

/** How many batch transactions are in flight at once: enough to hide a round trip, not to flood the store. */
const DEFAULT_CONCURRENCY = 4;

/** One key to write. */
export interface BatchedPut {
  key: string;
  value: string;
  leased?: boolean;
}

/**
 * Writes every entry (unconditionally; each batch is atomic, the whole is not) with at most
 * `concurrency` transactions in flight. Rejects with the first failure, after the batches in
 * flight have settled. Returns how many transactions it sent.
 */
export async function putBatched(
  store: KvStore,
  entries: readonly BatchedPut[],
  concurrency = DEFAULT_CONCURRENCY,
): Promise<number> {
  const batches: BatchedPut[][] = [];
  for (let i = 0; i < entries.length; i += MAX_TXN_OPERATIONS) batches.push(entries.slice(i, i + MAX_TXN_OPERATIONS));
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < batches.length) {
      const batch = batches[next++]!;
      try {
        await store.transaction(
          [],
          batch.map((e) => ({ op: 'put', key: e.key, value: e.value, ...(e.leased === true && { leased: true }) })),
        );
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
  if (failure !== undefined) throw failure.err;
  return batches.length;
}
