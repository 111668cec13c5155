/**
 * Identities while the store is unreachable: a label set this node knows is acquired with zero
 * store round trips (also after its last local user went away during the outage), a new label set
 * fails after the bounded wait with ERR_IDENTITY_UNAVAILABLE, an allocation that completes after
 * its caller gave up is released (nothing leaks), and releases that failed are finished by the
 * next reassert (the resync).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { IdentityAllocator } from '../../../src/identity/allocator.js';
import { LabelSet } from '../../../src/identity/labels.js';
import { log } from '../../../src/util/log.js';
import { withOutageSwitch } from '../../support/outage-store.js';

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-ident-outage-'));
  const inner = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const outage = withOutageSwitch(inner, 'etcd http://127.0.0.1:2379');
  return { inner, outage, allocator: new IdentityAllocator({ store: outage.store, nodeName: 'a', log }) };
}

const web = LabelSet.parse(['container:app=web', 'docker:network=n']);
const fresh = LabelSet.parse(['container:app=new', 'docker:network=n']);

t.test('a known label set is acquired with the store down, with zero round trips', async (t) => {
  const { outage, allocator } = setup(t);
  const id = await allocator.acquire(web);
  outage.fail();
  const before = outage.calls;
  t.equal(await allocator.acquire(web, { timeoutMs: 1000 }), id);
  t.equal(outage.calls, before, 'no store call');
  outage.hang();
  t.equal(await allocator.acquire(web, { timeoutMs: 1000 }), id, 'also when the store hangs');
  t.equal(outage.calls, before, 'still no store call');
  outage.restore();
});

t.test('a new label set fails after the bounded wait with a clear error', async (t) => {
  const { outage, allocator } = setup(t);
  outage.fail();
  await t.rejects(allocator.acquire(fresh, { timeoutMs: 5000 }), {
    code: 'ERR_IDENTITY_UNAVAILABLE',
    message: /no identity for container:app=new.*simulated outage/,
  });

  outage.hang();
  const started = performance.now();
  await t.rejects(allocator.acquire(fresh, { timeoutMs: 300 }), {
    code: 'ERR_IDENTITY_UNAVAILABLE',
    message: /within --identity-timeout 300 ms/,
  });
  const waited = performance.now() - started;
  t.ok(waited >= 290 && waited < 3000, `bounded by the timeout (${Math.round(waited)} ms)`);
  t.equal(allocator.lookupLocal(fresh), undefined, 'not known locally');
});

t.test('an allocation that completes after its caller gave up is released again', async (t) => {
  const { inner, outage, allocator } = setup(t);
  outage.hang();
  await t.rejects(allocator.acquire(fresh, { timeoutMs: 100 }), { code: 'ERR_IDENTITY_UNAVAILABLE' });
  const callsBefore = outage.calls;
  outage.restore(); // the hanging allocation goes through now, then its release
  const keyCount = async () => (await inner.list('identities/v1/')).pairs.length;
  const deadline = Date.now() + 10_000;
  while (
    Date.now() < deadline &&
    (outage.calls < callsBefore + 2 || (await keyCount()) > 0 || allocator.lookupLocal(fresh) !== undefined)
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(
    outage.calls >= callsBefore + 2,
    `the abandoned allocation completed and was released (${outage.calls - callsBefore} ` +
      'calls after the store came back)',
  );
  t.same(
    (await inner.list('identities/v1/')).pairs.map((p) => p.key),
    [],
    'no identity, label or reference key left',
  );
  t.equal(allocator.lookupLocal(fresh), undefined, 'no local reference left');
  const id = await allocator.acquire(fresh, { timeoutMs: 5000 });
  t.ok(id >= 256, `the next attempt allocates normally (${id})`);
});

t.test('a release during the outage stays pending: the label set stays known; the resync finishes it', async (t) => {
  const { inner, outage, allocator } = setup(t);
  const id = await allocator.acquire(web);
  outage.fail();
  await allocator.release(web); // the last local user went away during the outage
  t.equal(allocator.lookupLocal(web), id, 'still known locally');
  const before = outage.calls;
  t.equal(
    await allocator.acquire(web, { timeoutMs: 1000 }),
    id,
    'a new container with the same labels starts during the outage',
  );
  t.equal(outage.calls, before, 'without a store call');
  await allocator.release(web);
  outage.restore();
  t.ok(await inner.get(`identities/v1/id/${id}`), 'identity still in the store until the resync');
  await allocator.reassertReferences();
  t.same(
    (await inner.list('identities/v1/')).pairs.map((p) => p.key),
    [],
    'reassert finished the release: reference removed, identity collected',
  );
  t.equal(allocator.lookupLocal(web), undefined);
});

t.test('identities of a dead node are collected by a live node once unreferenced, two passes in a row', async (t) => {
  const { inner, allocator: live } = setup(t);
  const dead = new IdentityAllocator({ store: inner, nodeName: 'dead', log });
  const shared = LabelSet.parse(['container:app=shared']);
  const deadOnly = await dead.acquire(fresh);
  const sharedId = await dead.acquire(shared);
  t.equal(await live.acquire(shared), sharedId);
  // The dead node's lease expires: its reference keys vanish, nobody releases.
  for (const p of (await inner.list('identities/v1/value/')).pairs)
    if (p.key.endsWith('/dead')) await inner.delete(p.key);

  t.same(await live.collectUnreferenced(), [], 'first pass only marks');
  t.ok(await inner.get(`identities/v1/id/${deadOnly}`));
  t.same(await live.collectUnreferenced(), [deadOnly], 'second pass collects the unreferenced identity');
  t.notOk(await inner.get(`identities/v1/id/${deadOnly}`), 'id key gone');
  t.same(
    (await inner.list('identities/v1/labels/')).pairs.map((p) => p.value),
    [String(sharedId)],
    'its label key too',
  );
  t.ok(await inner.get(`identities/v1/id/${sharedId}`), 'an identity another node references stays');

  // Marked, then referenced again before the next pass: the reference rewrites the id key, it stays.
  const late = LabelSet.parse(['container:app=late']);
  const lateId = await dead.acquire(late);
  await inner.delete(`identities/v1/value/${Buffer.from(late.toCanonical()).toString('base64url')}/dead`);
  t.same(await live.collectUnreferenced(), [], 'marks the unreferenced identity');
  const other = new IdentityAllocator({ store: inner, nodeName: 'other', log });
  t.equal(await other.acquire(late), lateId, 'referenced again meanwhile');
  // and unreferenced again
  await inner.delete(`identities/v1/value/${Buffer.from(late.toCanonical()).toString('base64url')}/other`);
  t.same(await live.collectUnreferenced(), [], 'the id key revision changed: the stale mark does not collect it');
  t.same(await live.collectUnreferenced(), [lateId], 'two passes at the same revision do');
});
