/**
 * The store prefix (`--kvstore-opt prefix`, src/kvstore/prefixed-store.ts) on every backend:
 * `prefixedFixture` runs the KvStore contract (contract.ts) through a PrefixedKvStore, and
 * `runKvStorePrefixChecks` checks where keys physically land, with a raw client of the backend
 * (the SQLite file, etcd's JSON gateway, consul's HTTP API) that bypasses the KvStore classes,
 * and that stores under two prefixes of one backing store never see each other's keys.
 */
import type { Test } from 'tap';
import type { KvStore, WatchEvent } from '../../../src/kvstore/kvstore.js';
import { PrefixedKvStore } from '../../../src/kvstore/prefixed-store.js';
import type { KvStoreFixture } from './contract.js';

/** The default prefix (config.ts DEFAULT_KVSTORE_PREFIX). */
export const PREFIX = 'cilium/state/';

/** A contract fixture whose stores live under `prefix` of the fixture's backing store. */
export function prefixedFixture(fixture: KvStoreFixture, prefix = PREFIX): KvStoreFixture {
  return {
    store: new PrefixedKvStore(fixture.store, prefix),
    reopen: async (options) => new PrefixedKvStore(await fixture.reopen(options), prefix),
    cleanup: () => fixture.cleanup(),
  };
}

/** One key as the backend itself holds it. */
export interface RawEntry {
  key: string;
  value: string;
  /** Bound to a lease (etcd lease, consul session, a lease row of the embedded store). */
  leased: boolean;
}

/** A fresh backing store, a client of it without prefix, and a raw view of what it holds. */
export interface RawStoreFixture {
  /** A client of the backing store with no prefix of its own. */
  store: KvStore;
  /** Another client of the same backing store (the same object where the backend allows one client per file). */
  second(): Promise<KvStore>;
  /** Every key in the backing store, read over the backend's own wire, sorted by key. */
  rawEntries(): Promise<RawEntry[]>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `events` holds at least `count` events (5 s at most). */
async function eventsArrive(events: WatchEvent[], count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (events.length < count && Date.now() < deadline) await sleep(20);
}

/** Registers the prefix checks as subtests of `t` under `name`; `makeFixture` runs once per subtest. */
export function runKvStorePrefixChecks(t: Test, name: string, makeFixture: () => Promise<RawStoreFixture>): void {
  async function setup(t: Test): Promise<RawStoreFixture> {
    const fixture = await makeFixture();
    t.teardown(() => fixture.cleanup());
    return fixture;
  }

  t.test(`${name}: stores under a key prefix`, async (t) => {
    t.test('every write lands under the prefix; keys come back without it', async (t) => {
      const raw = await setup(t);
      await raw.store.put('other-tool/config', 'theirs');
      const store = new PrefixedKvStore(raw.store, PREFIX);
      const events: WatchEvent[] = [];
      const watcher = store.watch('', (await store.list('')).revision, { onEvent: (e) => events.push(e) });
      t.teardown(() => watcher.close());

      const put = await store.put('a/put', 'p');
      t.ok((await store.create('a/create', 'c')).ok);
      t.ok((await store.atomicPut('a/cas', 'x', 'absent')).ok);
      await store.put('a/leased', 'l', { leased: true });
      t.ok(
        (
          await store.transaction(
            [{ key: 'a/txn', absent: true }],
            [
              { op: 'put', key: 'a/txn', value: 't' },
              { op: 'put', key: 'a/txn-leased', value: 'tl', leased: true },
            ],
          )
        ).ok,
      );
      const [batched] = await store.transactions([
        { conditions: [], operations: [{ op: 'put', key: 'a/batch', value: 'b' }] },
      ]);
      t.ok(batched?.ok);
      await raw.store.put('other-tool/late', 'not ours');

      t.same(
        await raw.rawEntries(),
        [
          { key: 'cilium/state/a/batch', value: 'b', leased: false },
          { key: 'cilium/state/a/cas', value: 'x', leased: false },
          { key: 'cilium/state/a/create', value: 'c', leased: false },
          { key: 'cilium/state/a/leased', value: 'l', leased: true },
          { key: 'cilium/state/a/put', value: 'p', leased: false },
          { key: 'cilium/state/a/txn', value: 't', leased: false },
          { key: 'cilium/state/a/txn-leased', value: 'tl', leased: true },
          { key: 'other-tool/config', value: 'theirs', leased: false },
          { key: 'other-tool/late', value: 'not ours', leased: false },
        ],
        'the backend holds every key under the prefix, leased ones bound to the lease',
      );

      t.match(await store.get('a/put'), { key: 'a/put', value: 'p', modRevision: put });
      t.equal(await store.get('other-tool/config'), undefined, 'a key outside the prefix is not visible');
      t.same(
        (await store.list('')).pairs.map((p) => p.key),
        ['a/batch', 'a/cas', 'a/create', 'a/leased', 'a/put', 'a/txn', 'a/txn-leased'],
      );
      t.same(
        (await store.list('a/t')).pairs.map((p) => p.key),
        ['a/txn', 'a/txn-leased'],
      );
      t.match(
        await store.create('a/put', 'again'),
        { ok: false, current: { key: 'a/put', value: 'p' } },
        'a failed create names the key without the prefix',
      );
      t.match(await store.atomicPut('a/put', 'again', put + 1000n), { ok: false, current: { key: 'a/put' } });
      const failed = await store.transaction(
        [
          { key: 'a/put', absent: true },
          { key: 'a/none', absent: true },
        ],
        [{ op: 'put', key: 'a/put', value: 'no' }],
      );
      t.notOk(failed.ok);
      if (!failed.ok) {
        t.same(
          [...failed.current.keys()].sort(),
          ['a/none', 'a/put'],
          'a failed transaction reports the keys without the prefix',
        );
        t.match(failed.current.get('a/put'), { key: 'a/put', value: 'p' });
      }
      const [batchFailed] = await store.transactions([
        { conditions: [{ key: 'a/cas', value: 'wrong' }], operations: [{ op: 'delete', key: 'a/cas' }] },
      ]);
      t.ok(
        batchFailed && !batchFailed.ok && batchFailed.current.get('a/cas')?.key === 'a/cas',
        'so does a failed transaction of a batch',
      );

      t.ok(await store.delete('a/create'));
      t.ok(await store.atomicDelete('a/cas', (await store.get('a/cas'))!.modRevision));
      await eventsArrive(events, 9);
      t.same(
        events.map((e) => `${e.type} ${e.key}`),
        [
          'put a/put',
          'put a/create',
          'put a/cas',
          'put a/leased',
          'put a/txn',
          'put a/txn-leased',
          'put a/batch',
          'delete a/create',
          'delete a/cas',
        ],
        'watch events carry keys without the prefix, and none of the keys outside it',
      );
      t.equal(await store.deletePrefix(''), 5, "deletePrefix('') removes only the keys under the prefix");
      t.same(
        (await raw.rawEntries()).map((e) => e.key),
        ['other-tool/config', 'other-tool/late'],
      );
    });

    t.test('stores under two prefixes of one backing store do not see each other', async (t) => {
      const raw = await setup(t);
      // Adjacent prefixes: a string match on `cilium/state` would mix them.
      const a = new PrefixedKvStore(raw.store, PREFIX);
      const b = new PrefixedKvStore(await raw.second(), 'cilium/state-b/');
      const seenByA: WatchEvent[] = [];
      const watcher = a.watch('', (await a.list('')).revision, { onEvent: (e) => seenByA.push(e) });
      t.teardown(() => watcher.close());

      await a.put('identities/v1/id/300', 'a-labels');
      t.ok((await b.create('identities/v1/id/300', 'b-labels')).ok, 'the same key is free under the other prefix');
      await b.put('only-b', 'b', { leased: true });
      t.equal((await a.get('identities/v1/id/300'))?.value, 'a-labels');
      t.equal((await b.get('identities/v1/id/300'))?.value, 'b-labels');
      t.same(
        (await a.list('')).pairs.map((p) => p.key),
        ['identities/v1/id/300'],
      );
      t.same(
        (await b.list('')).pairs.map((p) => p.key),
        ['identities/v1/id/300', 'only-b'],
      );
      t.ok(
        (await a.transaction([{ key: 'only-b', absent: true }], [{ op: 'put', key: 'only-a', value: 'a' }])).ok,
        "a condition sees only its own prefix's keys",
      );
      t.equal(await a.deletePrefix(''), 2);
      await eventsArrive(seenByA, 4);
      await sleep(200);
      t.same(
        seenByA.map((e) => `${e.type} ${e.key}`),
        ['put identities/v1/id/300', 'put only-a', 'delete identities/v1/id/300', 'delete only-a'],
        "a's watch sees none of b's writes",
      );
      t.same(
        (await raw.rawEntries()).map((e) => e.key),
        ['cilium/state-b/identities/v1/id/300', 'cilium/state-b/only-b'],
        "a's deletePrefix('') left b's keys",
      );
    });
  });
}
