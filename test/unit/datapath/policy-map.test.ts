/**
 * PolicyMap.syncEndpoint against a real cilium_policy map: it diffs against its mirror of the
 * endpoint's entries (not a read of the whole map), so these cases check the kernel's contents
 * after every step, including a second PolicyMap adopting the pinned map of a "previous run" and
 * writes made behind the mirror's back.
 */
import t, { type Test } from 'tap';
import type * as abi from '../../../src/datapath/bpf/abi.js';
import { loadLxcDatapath } from '../../../src/datapath/bpf/programs.js';
import type { EndpointPolicyEntry } from '../../../src/datapath/bpf/maps.js';
import { bpfSkipReason, pinRoot } from './fixtures/bpf-sandbox.js';

const skip = bpfSkipReason();

const allow = (peer: number, dport = 80, cookie = 1): EndpointPolicyEntry => ({
  direction: 'ingress',
  peer,
  protocol: 6,
  dport,
  portPrefixLen: 16,
  verdict: 'allow',
  cookie,
});

/** What the kernel holds, as sorted strings per endpoint. */
async function kernel(policy: {
  list(): Promise<Array<[abi.PolicyKey, abi.PolicyValue]>>;
}): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const [k, v] of await policy.list()) {
    const row = `${k.direction} ${k.peer} ${k.protocol}/${k.dport}/${k.portPrefixLen} ${v.verdict} ${v.cookie}`;
    out.set(k.epId, [...(out.get(k.epId) ?? []), row].sort());
  }
  return out;
}

async function open(t: Test, root: string) {
  const dp = await loadLxcDatapath({ pinRoot: root, maxEntries: { ct: 1024, ipcache: 1024, policy: 4096 } });
  t.teardown(() => dp.close());
  return dp;
}

t.test('sync writes only differences, deletes what is gone, leaves other endpoints alone', { skip }, async (t) => {
  const dp = await open(t, pinRoot(t));
  const first = await dp.policy.syncEndpoint(1, [allow(100), allow(101), allow(102, 443)]);
  t.same(first, { written: 3, deleted: 0, unchanged: 0 });
  t.same((await dp.policy.syncEndpoint(2, [allow(100)])).written, 1);

  // One changed cookie, one removed, one added, one kept.
  const second = await dp.policy.syncEndpoint(1, [allow(100), allow(101, 80, 9), allow(103)]);
  t.same(second, { written: 2, deleted: 1, unchanged: 1 });
  const k = await kernel(dp.policy);
  t.same(k.get(1), ['ingress 100 6/80/16 allow 1', 'ingress 101 6/80/16 allow 9', 'ingress 103 6/80/16 allow 1']);
  t.same(k.get(2), ['ingress 100 6/80/16 allow 1'], 'the other endpoint is untouched');

  t.same(
    await dp.policy.syncEndpoint(1, [allow(100), allow(101, 80, 9), allow(103)]),
    { written: 0, deleted: 0, unchanged: 3 },
    'a repeated sync writes nothing',
  );
  t.equal(await dp.policy.removeEndpoint(1), 3);
  t.same([...(await kernel(dp.policy)).keys()], [2], 'only endpoint 2 remains');
});

t.test('a repeated key in one sync: the last value wins in the kernel and in the mirror', { skip }, async (t) => {
  const dp = await open(t, pinRoot(t));
  await dp.policy.syncEndpoint(5, [allow(100, 80, 1), allow(100, 80, 2)]);
  t.same((await kernel(dp.policy)).get(5), ['ingress 100 6/80/16 allow 2']);
  t.same(await dp.policy.syncEndpoint(5, [allow(100, 80, 2)]), { written: 0, deleted: 0, unchanged: 1 });
});

t.test('a new PolicyMap adopts the pinned entries of a previous run and diffs against them', { skip }, async (t) => {
  const root = pinRoot(t);
  const before = await loadLxcDatapath({ pinRoot: root, maxEntries: { ct: 1024, ipcache: 1024, policy: 4096 } });
  await before.policy.syncEndpoint(7, [allow(1), allow(2), allow(3)]);
  await before.policy.syncEndpoint(8, [allow(1)]);
  before.close();

  const after = await open(t, root);
  t.same(
    await after.policy.syncEndpoint(7, [allow(2), allow(3), allow(4)]),
    { written: 1, deleted: 1, unchanged: 2 },
    'stale entry of the previous run deleted',
  );
  t.same((await kernel(after.policy)).get(7), [
    'ingress 2 6/80/16 allow 1',
    'ingress 3 6/80/16 allow 1',
    'ingress 4 6/80/16 allow 1',
  ]);
  t.same((await kernel(after.policy)).get(8), ['ingress 1 6/80/16 allow 1']);
});

t.test('writes through the generic methods drop the mirror, so the next sync sees them', { skip }, async (t) => {
  const dp = await open(t, pinRoot(t));
  await dp.policy.syncEndpoint(3, [allow(10)]);
  dp.policy.set(
    { epId: 3, direction: 'ingress', peer: 11, protocol: 6, dport: 80, portPrefixLen: 16 },
    { verdict: 'deny', cookie: 5 },
  );
  t.same(
    await dp.policy.syncEndpoint(3, [allow(10)]),
    { written: 0, deleted: 1, unchanged: 1 },
    'the entry set behind the mirror is removed',
  );
  await dp.policy.setMany([
    [
      { epId: 3, direction: 'egress', peer: 0, protocol: 0, dport: 0, portPrefixLen: 0 },
      { verdict: 'allow', cookie: 6 },
    ],
  ]);
  t.same((await dp.policy.syncEndpoint(3, [allow(10)])).deleted, 1);
  t.same((await kernel(dp.policy)).get(3), ['ingress 10 6/80/16 allow 1']);
});

t.test('a key the trie cannot represent fails the sync before any write', { skip }, async (t) => {
  const dp = await open(t, pinRoot(t));
  await dp.policy.syncEndpoint(4, [allow(10)]);
  await t.rejects(dp.policy.syncEndpoint(4, [allow(11), { ...allow(12), portPrefixLen: 17 }]), TypeError);
  t.same((await kernel(dp.policy)).get(4), ['ingress 10 6/80/16 allow 1'], 'unchanged');
  t.same(await dp.policy.syncEndpoint(4, [allow(10)]), { written: 0, deleted: 0, unchanged: 1 });
});
