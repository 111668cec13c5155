/**
 * TransactionBatcher on the embedded store: concurrent submissions share one `transactions`
 * call, each caller gets its own result, requests writing the same key never share a batch, a
 * malformed request fails alone, and a failing batch rejects every caller in it.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import type { KvStore, TxnRequest } from '../../../src/kvstore/kvstore.js';
import { TransactionBatcher } from '../../../src/kvstore/transaction-batcher.js';

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-batcher-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const batches: number[] = [];
  const counted = Object.create(store) as KvStore;
  (counted as { transactions: KvStore['transactions'] }).transactions = (requests: readonly TxnRequest[]) => {
    batches.push(requests.length);
    return store.transactions(requests);
  };
  return { store, counted, batches };
}

t.test('concurrent submissions share one round trip; each gets its own result', async (t) => {
  const { store, counted, batches } = setup(t);
  await store.put('b/taken', 'x');
  const batcher = new TransactionBatcher(counted);
  const results = await Promise.all(
    ['b/1', 'b/2', 'b/taken', 'b/3'].map((key) =>
      batcher.submit([{ key, absent: true }], [{ op: 'put', key, value: 'v' }]),
    ),
  );
  t.same(batches, [4], 'one batch of four');
  t.same(
    results.map((r) => r.ok),
    [true, true, false, true],
  );
  t.equal((await store.get('b/taken'))?.value, 'x');
  t.equal((await store.list('b/')).pairs.length, 4);
});

t.test('requests writing the same key go to different batches; the limit splits batches', async (t) => {
  const { counted, batches } = setup(t);
  const batcher = new TransactionBatcher(counted, 3);
  const same = await Promise.all(
    [1, 2].map((i) => batcher.submit([{ key: 's/k', absent: true }], [{ op: 'put', key: 's/k', value: String(i) }])),
  );
  t.same(batches, [1, 1], 'two batches');
  t.same(same.map((r) => r.ok).sort(), [false, true], 'one of the two creates wins');
  batches.length = 0;
  await Promise.all(
    Array.from({ length: 7 }, (_, i) => batcher.submit([], [{ op: 'put', key: `l/${i}`, value: 'v' }])),
  );
  t.same(batches, [3, 3, 1], 'at most maxBatch per batch');
});

t.test('a malformed request fails alone; a failing batch rejects its callers', async (t) => {
  const { store, counted } = setup(t);
  const batcher = new TransactionBatcher(counted);
  const good = batcher.submit([], [{ op: 'put', key: 'm/ok', value: 'v' }]);
  await t.rejects(
    batcher.submit(
      [],
      [
        { op: 'put', key: 'm/dup', value: '1' },
        { op: 'delete', key: 'm/dup' },
      ],
    ),
    { code: 'ERR_BAD_REQUEST' },
  );
  t.ok((await good).ok, 'the good one still applies');
  await store.close();
  await t.rejects(
    Promise.all([
      batcher.submit([], [{ op: 'put', key: 'm/a', value: 'v' }]),
      batcher.submit([], [{ op: 'put', key: 'm/b', value: 'v' }]),
    ]),
    { code: 'ERR_KV_UNAVAILABLE' },
  );
});
