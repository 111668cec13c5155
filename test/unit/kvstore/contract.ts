/**
 * The KvStore contract as a reusable tap suite: every backend (local, etcd, consul) runs it
 * against itself, so the layers above can rely on one behaviour. It uses only the KvStore
 * interface; anything backend-specific belongs in that backend's own test file.
 *
 * Usage, from a backend's test file:
 *
 * ```ts
 * runKvStoreContract(t, 'LocalKvStore', async ({ leaseTtlMs }) => { ... return fixture; });
 * ```
 */
import type { Test } from 'tap';
import { MAX_TXN_OPERATIONS, type KvStore, type WatchEvent, type Watcher } from '../../../src/kvstore/kvstore.js';

/** Options a fixture's stores are opened with. */
export interface KvStoreOpenOptions {
  /** Lease TTL for the store being opened (the backend's default when undefined). */
  leaseTtlMs?: number;
}

/** One isolated, empty backing store (a fresh file, or a fresh key namespace on a cluster). */
export interface KvStoreFixture {
  /** The first client of the backing store, opened with the options given to the factory. */
  store: KvStore;
  /**
   * Opens another client of the same backing store. The suite only calls it after closing every
   * earlier client (the embedded backend allows one open client per file).
   */
  reopen(options?: KvStoreOpenOptions): Promise<KvStore>;
  /** Closes every client the fixture opened (close must be idempotent) and removes the data. */
  cleanup(): Promise<void>;
}

/** Tunables for slow backends (consul's minimum session TTL is 10 s). */
export interface KvStoreContractOptions {
  /** Lease TTL used by the lease tests. Default 1000 ms. */
  leaseTtlMs?: number;
}

/** How long to wait for a watch event that must arrive. */
const EVENT_TIMEOUT_MS = 5_000;

/**
 * Registers the contract as subtests of `t` under `name`. `makeFixture` is called once per
 * subtest, so tests never see each other's keys.
 */
export function runKvStoreContract(
  t: Test,
  name: string,
  makeFixture: (options: KvStoreOpenOptions) => Promise<KvStoreFixture>,
  opts: KvStoreContractOptions = {},
): void {
  const leaseTtlMs = opts.leaseTtlMs ?? 1_000;

  /** A fresh fixture whose cleanup runs when subtest `t` ends. */
  async function setup(t: Test, options: KvStoreOpenOptions = {}): Promise<KvStoreFixture> {
    const fixture = await makeFixture(options);
    t.teardown(() => fixture.cleanup());
    return fixture;
  }

  t.test(`${name}: KvStore contract`, async (t) => {
    t.test('get returns what put stored, with create and mod revisions', async (t) => {
      const { store } = await setup(t);
      t.equal(await store.get('rt/missing'), undefined, 'missing key reads as undefined');

      const first = await store.put('rt/key', '{"json": "value"}');
      t.type(first, 'bigint', 'put returns a bigint revision');
      t.match(await store.get('rt/key'), {
        key: 'rt/key',
        value: '{"json": "value"}',
        createRevision: first,
        modRevision: first,
      });

      const second = await store.put('rt/key', 'ünïcödé\nline two ✓');
      t.ok(second > first, 'an update gets a newer revision');
      t.match(await store.get('rt/key'), { value: 'ünïcödé\nline two ✓', createRevision: first, modRevision: second });

      await store.put('rt/empty', '');
      t.equal((await store.get('rt/empty'))?.value, '', 'an empty value is kept as an empty string');
      t.equal((await store.get('rt/key'))?.lease, undefined, 'an unleased key has no lease');
    });

    t.test('revisions strictly increase across writes of any kind and key', async (t) => {
      const { store } = await setup(t);
      const revisions: bigint[] = [];
      revisions.push(await store.put('rev/a', '1'));
      revisions.push(await store.put('rev/b', '1'));
      const created = await store.create('rev/c', '1');
      if (!created.ok) throw new Error('create of a fresh key failed');
      revisions.push(created.revision);
      const swapped = await store.atomicPut('rev/a', '2', revisions[0]!);
      if (!swapped.ok) throw new Error('atomicPut with the current revision failed');
      revisions.push(swapped.revision);
      t.ok(await store.delete('rev/b'), 'delete removed rev/b');
      revisions.push(await store.put('rev/b', '2'));
      for (let i = 1; i < revisions.length; i++) {
        t.ok(
          revisions[i]! > revisions[i - 1]!,
          `write ${i} (${revisions[i]}) is after write ${i - 1} (${revisions[i - 1]})`,
        );
      }
      const { revision } = await store.list('rev/');
      t.ok(revision >= revisions.at(-1)!, 'a list is consistent with at least the last write');
      t.ok((await store.put('rev/d', '1')) > revision, 'a write after a list is newer than the list');
    });

    t.test('list returns exactly the keys under a string prefix, sorted', async (t) => {
      const { store } = await setup(t);
      let last = 0n;
      for (const key of ['ls/a/b/2', 'ls/a/b/1', 'ls/a/b2', 'ls/a/b/1/deeper', 'ls/a/c', 'ls/a/b']) {
        last = await store.put(key, `value of ${key}`);
      }
      const { pairs, revision } = await store.list('ls/a/b/');
      t.same(
        pairs.map((pair) => pair.key),
        ['ls/a/b/1', 'ls/a/b/1/deeper', 'ls/a/b/2'],
        'children only, sorted; not the sibling ls/a/b2 nor ls/a/b itself',
      );
      t.same(
        pairs.map((pair) => pair.value),
        pairs.map((pair) => `value of ${pair.key}`),
      );
      for (const pair of pairs) t.type(pair.modRevision, 'bigint');
      t.ok(revision >= last, 'list revision covers every write before it');

      const empty = await store.list('ls/nothing/');
      t.same(empty.pairs, [], 'a prefix without keys lists nothing');
      t.ok(empty.revision >= last, 'an empty list still reports the store revision');
    });

    t.test('create is create-only and reports the current pair on conflict', async (t) => {
      const { store } = await setup(t);
      const first = await store.create('cr/key', 'first');
      if (!first.ok) throw new Error('first create failed');
      const second = await store.create('cr/key', 'second');
      t.equal(second.ok, false, 'second create fails');
      if (!second.ok) t.match(second.current, { key: 'cr/key', value: 'first', modRevision: first.revision });
      t.equal((await store.get('cr/key'))?.value, 'first', 'the failed create did not write');
    });

    t.test('atomicPut writes only when the mod revision matches', async (t) => {
      const { store } = await setup(t);
      const missing = await store.atomicPut('cas/key', 'x', 1n);
      t.same(missing, { ok: false, current: undefined }, 'a revision precondition on a missing key fails');

      const absent = await store.atomicPut('cas/key', 'v1', 'absent');
      if (!absent.ok) throw new Error("atomicPut 'absent' on a missing key failed");
      const again = await store.atomicPut('cas/key', 'other', 'absent');
      t.equal(again.ok, false, "'absent' fails once the key exists");
      if (!again.ok) t.equal(again.current?.value, 'v1');

      const swapped = await store.atomicPut('cas/key', 'v2', absent.revision);
      if (!swapped.ok) throw new Error('atomicPut with the current revision failed');
      t.ok(swapped.revision > absent.revision);

      const stale = await store.atomicPut('cas/key', 'v3', absent.revision);
      t.equal(stale.ok, false, 'a stale revision fails');
      if (!stale.ok)
        t.match(stale.current, { value: 'v2', modRevision: swapped.revision, createRevision: absent.revision });
      t.match(await store.get('cas/key'), { value: 'v2', modRevision: swapped.revision });
    });

    t.test('delete and atomicDelete', async (t) => {
      const { store } = await setup(t);
      const revision = await store.put('del/key', 'v');
      t.equal(await store.atomicDelete('del/key', revision - 1n), false, 'a stale revision does not delete');
      t.ok(await store.get('del/key'), 'key still there after a failed atomicDelete');
      t.equal(await store.atomicDelete('del/key', revision), true, 'the current revision deletes');
      t.equal(await store.get('del/key'), undefined);
      t.equal(await store.atomicDelete('del/key', revision), false, 'atomicDelete of a missing key is false');

      await store.put('del/other', 'v');
      t.equal(await store.delete('del/other'), true, 'delete of an existing key is true');
      t.equal(await store.delete('del/other'), false, 'delete of a missing key is false');
      t.equal(await store.get('del/other'), undefined);
    });

    t.test('deletePrefix removes exactly the keys under the prefix', async (t) => {
      const { store } = await setup(t);
      for (const key of ['dp/x/1', 'dp/x/2', 'dp/x/2/3', 'dp/x2', 'dp/x']) await store.put(key, 'v');
      t.equal(await store.deletePrefix('dp/x/'), 3, 'three keys under dp/x/');
      t.same(
        (await store.list('dp/')).pairs.map((pair) => pair.key),
        ['dp/x', 'dp/x2'],
        'the prefix itself and siblings survive',
      );
      t.equal(await store.deletePrefix('dp/x/'), 0, 'nothing left to delete');
    });

    t.test('watch delivers puts and deletes under its prefix, in revision order, never synchronously', async (t) => {
      const { store } = await setup(t);
      const { revision } = await store.list('w/in/');
      const recorder = record(t, store, 'w/in/', revision);

      const pending = store.put('w/in/a', 'v1');
      t.equal(recorder.events.length, 0, 'no event is delivered inside the put call');
      const a1 = await pending;
      await store.put('w/inside-not', 'sibling, not under the prefix');
      const b = await store.put('w/in/b', 'v');
      const a2 = await store.put('w/in/a', 'v2');
      await store.delete('w/in/b');
      await store.put('w/other/c', 'elsewhere');
      await store.put('w/in/z', 'last');
      await recorder.waitForKey('w/in/z');

      t.match(recorder.events, [
        { type: 'put', key: 'w/in/a', value: 'v1', modRevision: a1, createRevision: a1 },
        { type: 'put', key: 'w/in/b', value: 'v', modRevision: b, createRevision: b },
        { type: 'put', key: 'w/in/a', value: 'v2', modRevision: a2, createRevision: a1 },
        { type: 'delete', key: 'w/in/b' },
        { type: 'put', key: 'w/in/z', value: 'last' },
      ]);
      t.equal(recorder.events.length, 5, 'nothing from outside the prefix');
      assertRevisionOrder(t, recorder.events);
      t.ok(recorder.events[3]!.modRevision > a2, 'the delete event carries its own, newer revision');
    });

    t.test('watch starts strictly after fromRevision, including writes between a list and the watch', async (t) => {
      const { store } = await setup(t);
      await store.put('ws/before', 'before the list');
      const { revision: listed } = await store.list('ws/');
      const between = await store.put('ws/between', 'after the list, before the watch');
      const fromList = record(t, store, 'ws/', listed);
      const fromBetween = record(t, store, 'ws/', between);
      await store.put('ws/after', 'after the watch');
      await fromList.waitForKey('ws/after');
      await fromBetween.waitForKey('ws/after');

      t.same(
        fromList.events.map((event) => event.key),
        ['ws/between', 'ws/after'],
        'the write between list and watch is delivered; the one before the list is not',
      );
      t.same(
        fromBetween.events.map((event) => event.key),
        ['ws/after'],
        'the event at fromRevision itself is not delivered',
      );
    });

    t.test('deletePrefix produces a delete event for every removed key', async (t) => {
      const { store } = await setup(t);
      await store.put('wd/1', 'v');
      await store.put('wd/2', 'v');
      const recorder = record(t, store, 'wd/', (await store.list('wd/')).revision);
      await store.deletePrefix('wd/');
      await recorder.waitFor((events) => events.length >= 2, 'two delete events');
      t.same(recorder.events.map((event) => [event.type, event.key]).sort(), [
        ['delete', 'wd/1'],
        ['delete', 'wd/2'],
      ]);
      assertRevisionOrder(t, recorder.events);
    });

    t.test('a closed watcher gets no more events', async (t) => {
      const { store } = await setup(t);
      const { revision } = await store.list('wc/');
      const closing = record(t, store, 'wc/', revision);
      const staying = record(t, store, 'wc/', revision);
      await store.put('wc/1', 'v');
      await closing.waitForKey('wc/1');
      closing.watcher.close();
      await store.put('wc/2', 'v');
      await store.put('wc/3', 'v');
      await staying.waitForKey('wc/3');
      await settle();
      t.same(
        closing.events.map((event) => event.key),
        ['wc/1'],
        'nothing after close',
      );
      t.same(
        staying.events.map((event) => event.key),
        ['wc/1', 'wc/2', 'wc/3'],
      );
    });

    t.test('a watcher closed from inside its handler gets nothing more, even from the same burst', async (t) => {
      const { store } = await setup(t);
      const { revision } = await store.list('wh/');
      const seen: string[] = [];
      const watcher = store.watch('wh/', revision, {
        onEvent: (event) => {
          seen.push(event.key);
          watcher.close();
        },
      });
      t.teardown(() => watcher.close());
      const observer = record(t, store, 'wh/', revision);
      await Promise.all([store.put('wh/1', 'v'), store.put('wh/2', 'v'), store.put('wh/3', 'v')]);
      await store.put('wh/last', 'v');
      await observer.waitForKey('wh/last');
      await settle();
      t.equal(seen.length, 1, `one event before the handler closed the watch (got ${seen.join(', ')})`);
    });

    t.test('a closed store delivers nothing more and rejects operations with ERR_KV_UNAVAILABLE', async (t) => {
      const fixture = await setup(t);
      const { store } = fixture;
      const recorder = record(t, store, 'sc/', (await store.list('sc/')).revision);
      await store.put('sc/1', 'v');
      await recorder.waitForKey('sc/1');
      await store.close();
      await store.close();
      t.pass('close is idempotent');
      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => store.get('sc/1')],
        ['list', () => store.list('sc/')],
        ['put', () => store.put('sc/2', 'v')],
        ['create', () => store.create('sc/2', 'v')],
        ['atomicPut', () => store.atomicPut('sc/1', 'v', 'absent')],
        ['delete', () => store.delete('sc/1')],
        ['atomicDelete', () => store.atomicDelete('sc/1', 1n)],
        ['deletePrefix', () => store.deletePrefix('sc/')],
      ];
      for (const [what, call] of calls) {
        await t.rejects(call(), { code: 'ERR_KV_UNAVAILABLE' }, `${what} after close`);
      }

      const other = await fixture.reopen();
      const observer = record(t, other, 'sc/', (await other.list('sc/')).revision);
      await other.put('sc/3', 'written by another client');
      await observer.waitForKey('sc/3');
      await settle();
      t.same(
        recorder.events.map((event) => event.key),
        ['sc/1'],
        'the closed store delivered nothing more',
      );
    });

    t.test('20 concurrent creates of one key: exactly one succeeds', async (t) => {
      const { store } = await setup(t);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.create('cc/key', `writer ${i}`)));
      const winners = results.flatMap((result, i) => (result.ok ? [i] : []));
      t.equal(winners.length, 1, 'one winner');
      const winner = `writer ${winners[0]}`;
      for (const result of results) {
        if (!result.ok) t.equal(result.current?.value, winner, 'losers see the winning value');
      }
      t.equal((await store.get('cc/key'))?.value, winner);
    });

    t.test('transaction: all operations at one revision when every condition holds, none otherwise', async (t) => {
      const { store } = await setup(t);
      const base = await store.put('tx/existing', 'old');
      await store.put('tx/doomed', 'x');
      const { revision: listed } = await store.list('tx/');
      const recorder = record(t, store, 'tx/', listed);
      const done = await store.transaction(
        [
          { key: 'tx/new', absent: true },
          { key: 'tx/existing', modRevision: base },
          { key: 'tx/doomed', value: 'x' },
        ],
        [
          { op: 'put', key: 'tx/new', value: 'n' },
          { op: 'put', key: 'tx/existing', value: 'new' },
          { op: 'delete', key: 'tx/doomed' },
          { op: 'delete', key: 'tx/never-existed' },
        ],
      );
      if (!done.ok)
        throw new Error(`transaction with holding conditions failed: ${JSON.stringify([...done.current.keys()])}`);
      t.ok(done.revision > base, 'a new revision');
      t.match(await store.get('tx/new'), { value: 'n', modRevision: done.revision, createRevision: done.revision });
      t.match(await store.get('tx/existing'), { value: 'new', modRevision: done.revision, createRevision: base });
      t.equal(await store.get('tx/doomed'), undefined, 'the delete applied');
      await recorder.waitFor((seen) => seen.length >= 3, 'three events');
      t.same(
        recorder.events.map((e) => [e.type, e.key]).sort(),
        [
          ['delete', 'tx/doomed'],
          ['put', 'tx/existing'],
          ['put', 'tx/new'],
        ],
        'watchers see every write of the transaction (and nothing for the missing key)',
      );
      t.ok(
        recorder.events.every((e) => e.modRevision === done.revision),
        'all at the transaction revision',
      );

      for (const [why, condition] of [
        ['absent on an existing key', { key: 'tx/new', absent: true }],
        ['a stale revision', { key: 'tx/existing', modRevision: base }],
        ['another value', { key: 'tx/existing', value: 'old' }],
        ['a value on a missing key', { key: 'tx/doomed', value: 'x' }],
      ] as const) {
        const failed = await store.transaction(
          [{ key: 'tx/other', absent: true }, condition],
          [
            { op: 'put', key: 'tx/other', value: 'must not appear' },
            { op: 'delete', key: 'tx/new' },
          ],
        );
        t.equal(failed.ok, false, `${why}: not applied`);
        if (!failed.ok) {
          t.same(
            [...failed.current.keys()].sort(),
            [...new Set(['tx/other', condition.key])].sort(),
            `${why}: reports every condition key`,
          );
          t.equal(failed.current.get('tx/other'), undefined, `${why}: an absent key reads as undefined`);
          if (condition.key === 'tx/existing')
            t.match(failed.current.get('tx/existing'), { value: 'new', modRevision: done.revision });
        }
      }
      t.equal(await store.get('tx/other'), undefined, 'no failed transaction wrote');
      t.ok(await store.get('tx/new'), 'no failed transaction deleted');
    });

    t.test('transaction: leased puts are bound to the lease; limits are checked before anything is sent', async (t) => {
      const { store } = await setup(t);
      const done = await store.transaction(
        [],
        [
          { op: 'put', key: 'txl/leased', value: 'l', leased: true },
          { op: 'put', key: 'txl/plain', value: 'p' },
        ],
      );
      t.ok(done.ok, 'an unconditional transaction applies');
      const status = await store.status();
      t.equal((await store.get('txl/leased'))?.lease, status.lease?.id, 'leased put carries the store lease');
      t.equal((await store.get('txl/plain'))?.lease, undefined, 'unleased put has none');
      const again = await store.transaction([], [{ op: 'put', key: 'txl/leased', value: 'l2' }]);
      t.ok(again.ok);
      t.equal((await store.get('txl/leased'))?.lease, undefined, 'an unleased put detaches a leased key, as put does');

      const tooMany = Array.from({ length: MAX_TXN_OPERATIONS + 1 }, (_, i) => ({
        op: 'put' as const,
        key: `txl/k${i}`,
        value: 'v',
      }));
      await t.rejects(store.transaction([], tooMany), { code: 'ERR_BAD_REQUEST' }, 'more than MAX_TXN_OPERATIONS');
      await t.rejects(
        store.transaction(
          [],
          [
            { op: 'put', key: 'txl/dup', value: 'a' },
            { op: 'delete', key: 'txl/dup' },
          ],
        ),
        { code: 'ERR_BAD_REQUEST' },
        'one key written twice',
      );
      await t.rejects(
        store.transaction([{ key: 'txl/plain', modRevision: 0n }], []),
        { code: 'ERR_BAD_REQUEST' },
        'revision 0',
      );
      t.same((await store.list('txl/k')).pairs, [], 'the refused transaction wrote nothing');
      const max = await store.transaction([], tooMany.slice(1));
      t.ok(max.ok, 'exactly MAX_TXN_OPERATIONS applies');
      t.equal((await store.list('txl/k')).pairs.length, MAX_TXN_OPERATIONS);
    });

    t.test('transaction: 20 racing creates of the same two keys: one winner writes both', async (t) => {
      const { store } = await setup(t);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.transaction(
            [
              { key: 'txr/a', absent: true },
              { key: 'txr/b', absent: true },
            ],
            [
              { op: 'put', key: 'txr/a', value: `w${i}` },
              { op: 'put', key: 'txr/b', value: `w${i}` },
            ],
          ),
        ),
      );
      const winners = results.flatMap((r, i) => (r.ok ? [`w${i}`] : []));
      t.equal(winners.length, 1, 'one winner');
      t.equal((await store.get('txr/a'))?.value, winners[0]);
      t.equal((await store.get('txr/b'))?.value, winners[0], 'both keys from the same writer');
      for (const r of results) if (!r.ok) t.equal(r.current.get('txr/a')?.value, winners[0], 'losers see the winner');
    });

    t.test('transactions: a batch of independent transactions, each applied or not on its own', async (t) => {
      const { store } = await setup(t);
      const base = await store.put('txb/taken', 'old');
      const held = await store.put('txb/held', 'h');
      // (No condition names a key another transaction of the batch writes: etcd evaluates every
      // condition before any write, consul and the embedded store one transaction after another.)
      const results = await store.transactions([
        {
          conditions: [{ key: 'txb/a', absent: true }],
          operations: [{ op: 'put', key: 'txb/a', value: 'a', leased: true }],
        },
        { conditions: [{ key: 'txb/held', absent: true }], operations: [{ op: 'put', key: 'txb/never', value: 'x' }] },
        {
          conditions: [{ key: 'txb/taken', value: 'old' }],
          operations: [{ op: 'put', key: 'txb/taken', value: 'new' }],
        },
        { conditions: [], operations: [{ op: 'put', key: 'txb/b', value: 'b' }] },
      ]);
      t.same(
        results.map((r) => r.ok),
        [true, false, true, true],
        'each transaction on its own conditions',
      );
      const failed = results[1]!;
      if (!failed.ok)
        t.match(
          failed.current.get('txb/held'),
          { value: 'h', modRevision: held },
          'a failed one reports its condition keys',
        );
      t.match(await store.get('txb/a'), { value: 'a' });
      t.ok((await store.get('txb/a'))?.lease, 'leased put in a batch carries the lease');
      t.equal(await store.get('txb/never'), undefined, 'the failed one wrote nothing');
      t.equal((await store.get('txb/taken'))?.value, 'new');
      const revisions = results.flatMap((r) => (r.ok ? [r.revision] : []));
      t.ok(
        revisions.every((r) => r > base),
        'applied transactions have new revisions',
      );
      t.same(await store.transactions([]), [], 'an empty batch');
      await t.rejects(
        store.transactions([
          { conditions: [], operations: [{ op: 'put', key: 'txb/dup', value: '1' }] },
          { conditions: [], operations: [{ op: 'put', key: 'txb/dup', value: '2' }] },
        ]),
        { code: 'ERR_BAD_REQUEST' },
        'two transactions of a batch writing one key',
      );
      t.equal(await store.get('txb/dup'), undefined, 'the refused batch wrote nothing');
    });

    t.test('leased keys live while the store renews its lease and vanish after it closes', async (t) => {
      const fixture = await setup(t, { leaseTtlMs });
      const { store } = fixture;
      const revision = await store.put('lease/mine', 'leased', { leased: true });
      await store.put('lease/plain', 'not leased');
      const pair = await store.get('lease/mine');
      t.ok(pair?.lease, 'a leased key reports its lease');
      const status = await store.status();
      t.equal(status.lease?.id, pair?.lease, "the key's lease is the store's lease");
      t.equal(status.lease?.ttlSeconds, leaseTtlMs / 1000, 'status reports the TTL in seconds');

      await sleep(leaseTtlMs * 2.5);
      t.match(await store.get('lease/mine'), { value: 'leased', modRevision: revision }, 'renewed past its TTL');

      await store.close();
      const other = await fixture.reopen();
      const { pairs, revision: listed } = await other.list('lease/');
      const recorder = record(t, other, 'lease/', listed);
      if (pairs.some((p) => p.key === 'lease/mine')) {
        await recorder.waitForKey('lease/mine', leaseTtlMs * 3 + EVENT_TIMEOUT_MS);
        t.match(recorder.events, [{ type: 'delete', key: 'lease/mine' }], 'expiry is seen as a delete event');
      }
      t.equal(await other.get('lease/mine'), undefined, 'the leased key is gone');
      t.equal((await other.get('lease/plain'))?.value, 'not leased', 'unleased keys stay');
    });

    t.end();
  });
}

/** Collects a watch's events; closes the watch when the subtest ends. */
function record(t: Test, store: KvStore, prefix: string, fromRevision: bigint) {
  const events: WatchEvent[] = [];
  let resyncReason: string | undefined;
  const watcher: Watcher = store.watch(prefix, fromRevision, {
    onEvent: (event) => events.push(event),
    onResyncNeeded: (reason) => {
      resyncReason = reason;
    },
  });
  t.teardown(() => watcher.close());

  async function waitFor(done: (events: WatchEvent[]) => boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (!done(events)) {
      if (resyncReason !== undefined)
        throw new Error(`watch on ${prefix} asked for a resync (${resyncReason}) while waiting for ${what}`);
      if (Date.now() > deadline) {
        throw new Error(`no ${what} on ${prefix} within ${timeoutMs} ms; got ${JSON.stringify(events, bigintJson)}`);
      }
      await sleep(10);
    }
  }

  return {
    events,
    watcher,
    waitFor,
    /** Waits for an event on `key`. */
    waitForKey: (key: string, timeoutMs?: number) =>
      waitFor((seen) => seen.some((event) => event.key === key), `event for ${key}`, timeoutMs),
  };
}

function assertRevisionOrder(t: Test, events: WatchEvent[]): void {
  const ordered = events.every((event, i) => i === 0 || event.modRevision >= events[i - 1]!.modRevision);
  t.ok(ordered, 'events arrive in revision order');
}

function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Gives a late (wrongly delivered) event time to show up before asserting its absence. */
function settle(): Promise<void> {
  return sleep(100);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
