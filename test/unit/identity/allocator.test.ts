/**
 * Identity allocation through the store, with two "nodes" (allocators with different node names)
 * sharing one real store: cluster-unique numbers per label set, zero store round trips for held
 * identities, reference counting, garbage collection, and the race between a collection on one
 * node and an allocation of the same label set on another.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import type { KvStore, TxnResult } from '../../../src/kvstore/kvstore.js';
import { IdentityAllocator } from '../../../src/identity/allocator.js';
import { LabelSet } from '../../../src/identity/labels.js';
import { log } from '../../../src/util/log.js';

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-ident-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** Counts store calls and adds a random 0–2 ms delay so concurrent operations interleave. */
function jittered(store: KvStore): KvStore & { calls: number } {
  const wrapped = Object.create(store) as KvStore & { calls: number };
  wrapped.calls = 0;
  for (const m of [
    'get',
    'list',
    'put',
    'create',
    'atomicPut',
    'delete',
    'atomicDelete',
    'transaction',
    'transactions',
  ] as const) {
    const original = (store[m] as (...a: unknown[]) => Promise<unknown>).bind(store);
    (wrapped as unknown as Record<string, unknown>)[m] = async (...args: unknown[]) => {
      wrapped.calls++;
      await new Promise((r) => setTimeout(r, Math.random() * 2));
      return original(...args);
    };
  }
  return wrapped;
}

const web = LabelSet.parse(['app=web', 'docker:network=n1']);
const db = LabelSet.parse(['app=db']);

t.test('same labels -> same number on every node; different labels -> different numbers', async (t) => {
  const store = jittered(setup(t));
  const a = new IdentityAllocator({ store, nodeName: 'a', log });
  const b = new IdentityAllocator({ store, nodeName: 'b', log });
  const [ida, idb, iddb] = await Promise.all([a.acquire(web), b.acquire(web), b.acquire(db)]);
  t.equal(ida, idb, 'two nodes allocating the same label set at once agree');
  t.not(iddb, ida);
  t.ok(ida >= 256 && ida <= 65535 && ida < 2 ** 24, 'in the allocation range and fits the 24-bit VNI');
  const before = store.calls;
  t.equal(await a.acquire(web), ida, 'second reference on a held identity');
  t.equal(store.calls, before, 'costs zero store round trips');
  const ids = (await a.list()).filter((i) => !i.reserved);
  t.same(ids.map((i) => i.id).sort(), [ida, iddb].sort(), 'exactly two identities in the store');
  const c = new IdentityAllocator({ store, nodeName: 'c', log });
  const fresh = LabelSet.parse(['app=fresh']);
  const beforeNew = store.calls;
  const idFresh = await c.acquire(fresh);
  t.equal(store.calls - beforeNew, 1, 'a new label set costs one round trip (one transaction)');
  const beforeRef = store.calls;
  t.equal(await b.acquire(fresh), idFresh, 'another node gets the same number');
  t.equal(store.calls - beforeRef, 2, 'a label set another node allocated costs two round trips');
});

t.test('100 nodes racing for one label set get one number', async (t) => {
  const store = jittered(setup(t));
  const nodes = Array.from({ length: 100 }, (_, i) => new IdentityAllocator({ store, nodeName: `n${i}`, log }));
  const ids = await Promise.all(nodes.map((n) => n.acquire(web)));
  t.equal(new Set(ids).size, 1, 'one number');
  t.equal((await store.list('identities/v1/id/')).pairs.length, 1, 'losers gave their numbers back');
});

t.test('references and garbage collection', async (t) => {
  const store = setup(t);
  const a = new IdentityAllocator({ store, nodeName: 'a', log });
  const b = new IdentityAllocator({ store, nodeName: 'b', log });
  const id = await a.acquire(web);
  await a.acquire(web);
  await b.acquire(web);
  await a.release(web);
  await a.release(web);
  t.ok(await store.get(`identities/v1/id/${id}`), 'kept while node b references it');
  await b.release(web);
  t.notOk(await store.get(`identities/v1/id/${id}`), 'collected when no node references it');
  t.equal((await store.list('identities/v1/')).pairs.length, 0, 'no key left behind');
});

t.test('collection racing an allocation of the same label set never leaves a dangling identity', async (t) => {
  const store = jittered(setup(t));
  const a = new IdentityAllocator({ store, nodeName: 'a', log });
  const b = new IdentityAllocator({ store, nodeName: 'b', log });
  for (let i = 0; i < 150; i++) {
    await a.acquire(web);
    // a drops its last reference (and collects) while b takes a new one.
    const [, idB] = await Promise.all([a.release(web), b.acquire(web)]);
    const idKey = await store.get(`identities/v1/id/${idB}`);
    if (idKey?.value !== web.toCanonical()) {
      t.fail(`round ${i}: b holds identity ${idB} but its key is ${idKey ? `"${idKey.value}"` : 'gone'}`);
      return;
    }
    const labelKey = await store.get(`identities/v1/labels/${Buffer.from(web.toCanonical()).toString('base64url')}`);
    if (labelKey?.value !== String(idB)) {
      t.fail(`round ${i}: the label set points at ${labelKey?.value}, b holds ${idB}`);
      return;
    }
    await b.release(web);
  }
  t.pass('150 rounds: the identity b holds always exists and is bound to its labels');
});

t.test('a label key pointing at a vanished number is repaired', async (t) => {
  const store = setup(t);
  const a = new IdentityAllocator({ store, nodeName: 'a', log });
  const id = await a.acquire(db);
  // Simulate a collector that died between deleting the id key and the label key.
  await store.delete(`identities/v1/id/${id}`);
  const b = new IdentityAllocator({ store, nodeName: 'b', log });
  const idb = await b.acquire(db);
  t.ok((await store.get(`identities/v1/id/${idb}`))?.value === db.toCanonical(), 'b got a live identity');
});

t.test('allocation gives up with a clear error when every candidate is taken', async (t) => {
  const store = setup(t);
  const full: KvStore = Object.create(store) as KvStore;
  // Every candidate number is held by another label set: the label key is absent, the id key is not.
  (full as { transactions: KvStore['transactions'] }).transactions = async (requests): Promise<TxnResult[]> =>
    requests.map(({ conditions }) => ({
      ok: false,
      current: new Map(
        conditions.map((c) => [
          c.key,
          c.key.startsWith('identities/v1/id/')
            ? { key: c.key, value: 'other', createRevision: 1n, modRevision: 1n }
            : undefined,
        ]),
      ),
    }));
  const a = new IdentityAllocator({ store: full, nodeName: 'a', log, maxAttempts: 5 });
  await t.rejects(a.acquire(web), { code: 'ERR_IDENTITY_ALLOCATION', message: /after 5 attempts/ });
  t.same(
    a.getStats(),
    { attempts: 5, allocated: 0, referenced: 0, candidateCollisions: 5 },
    'five candidate collisions counted',
  );
});
