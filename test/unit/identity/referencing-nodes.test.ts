/**
 * `cilium identity list`'s cluster-wide references: which nodes hold a reference to each
 * identity, read from their reference keys in a real store shared by three allocators (nodes),
 * following acquire and release.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { IdentityAllocator } from '../../../src/identity/allocator.js';
import { LabelSet } from '../../../src/identity/labels.js';
import { log } from '../../../src/util/log.js';

t.test('referencingNodes: every node holding a reference, per identity, from the store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-refnodes-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const quiet = log.child({ component: 'identity-test' }, { level: 'silent' });
  const [a, b, c] = ['node-a', 'node-b', 'node-c'].map(
    (nodeName) => new IdentityAllocator({ store, nodeName, log: quiet }),
  );
  const web = LabelSet.parse(['app=web']);
  // A label value with '/' and '=' must not confuse the node part of the key.
  const db = LabelSet.parse(['app=db/primary=1']);

  const webId = await a!.acquire(web);
  await a!.acquire(web); // a second local reference: still one reference key for node-a
  t.equal(await c!.acquire(web), webId);
  const dbId = await b!.acquire(db);

  const all = await a!.referencingNodes();
  t.same(all.get(webId), ['node-a', 'node-c']);
  t.same(all.get(dbId), ['node-b']);
  t.equal(all.size, 2);
  t.same([...(await b!.referencingNodes(db))], [[dbId, ['node-b']]], 'one label set only');

  await c!.release(web);
  t.same((await a!.referencingNodes()).get(webId), ['node-a'], 'a released reference is gone');
  await b!.release(db);
  t.equal((await a!.referencingNodes()).has(dbId), false);
  t.same([...(await a!.referencingNodes(db))], []);
});
