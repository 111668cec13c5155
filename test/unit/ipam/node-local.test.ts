/**
 * Node-local address keys (kvstore/store-scopes.ts): with a cluster store and a node store of its
 * own, container addresses inside this node's blocks live in the node store, so allocation and
 * release go on while the cluster store is down; block claims, gateways, reservations and static
 * addresses outside this node's blocks stay in the cluster store. A restart over the same files
 * restores exactly the allocations. Two nodes never hand out the same address.
 */
import t from 'tap';
import { newIpam, openStoreFile, subnetRequest } from './fixtures/ipam-fixture.js';
import { withOutageSwitch } from '../../support/outage-store.js';

const POOL = '198.18.72.0/24';

async function keys(
  store: { list(prefix: string): Promise<{ pairs: { key: string }[] }> },
  prefix: string,
): Promise<string[]> {
  return (await store.list(prefix)).pairs.map((p) => p.key);
}

t.test('container addresses go to the node store; claims, gateway and reservations to the cluster', async (t) => {
  const cluster = openStoreFile(t);
  const node = openStoreFile(t);
  const ipam = newIpam(cluster.store, { nodeStore: node.store });
  const { poolId } = await ipam.requestPool(subnetRequest(POOL));
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: true })).address, '198.18.72.1');
  t.equal(
    (await ipam.requestAddress({ poolId, address: '198.18.72.250', gateway: false, reserved: true })).address,
    '198.18.72.250',
  );
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.72.2');
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.72.3');
  t.equal(
    (await ipam.requestAddress({ poolId, address: '198.18.72.10', gateway: false })).address,
    '198.18.72.10',
    '--ip inside our block',
  );
  t.equal(
    (await ipam.requestAddress({ poolId, address: '198.18.72.200', gateway: false })).address,
    '198.18.72.200',
    '--ip outside any block',
  );

  t.same(
    await keys(node.store, 'ipam/v1/'),
    [
      `ipam/v1/addresses/${poolId}/198.18.72.10`,
      `ipam/v1/addresses/${poolId}/198.18.72.2`,
      `ipam/v1/addresses/${poolId}/198.18.72.3`,
    ],
    "node store: container addresses inside this node's block only",
  );
  t.same(
    await keys(cluster.store, 'ipam/v1/addresses/'),
    [
      `ipam/v1/addresses/${poolId}/198.18.72.1`,
      `ipam/v1/addresses/${poolId}/198.18.72.200`,
      `ipam/v1/addresses/${poolId}/198.18.72.250`,
    ],
    'cluster store: gateway, --ip outside blocks, reservation',
  );
  t.same(
    await keys(cluster.store, 'ipam/v1/blocks/'),
    [`ipam/v1/blocks/${poolId}/198.18.72.0/26`],
    'block claim in the cluster store',
  );
  t.same(
    (await ipam.listAddresses(poolId)).map((a) => a.address),
    ['198.18.72.1', '198.18.72.2', '198.18.72.3', '198.18.72.10', '198.18.72.200', '198.18.72.250'],
    'listed from both stores',
  );

  await t.rejects(
    ipam.requestAddress({ poolId, address: '198.18.72.3', gateway: false }),
    { code: 'ERR_ADDRESS_IN_USE' },
    'a node-local address is in use',
  );
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.72.1', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
    message: /gateway/,
  });
  await ipam.releaseAddress(poolId, '198.18.72.2');
  await ipam.releaseAddress(poolId, '198.18.72.200');
  t.notOk(await node.store.get(`ipam/v1/addresses/${poolId}/198.18.72.2`), 'released from the node store');
  t.notOk(await cluster.store.get(`ipam/v1/addresses/${poolId}/198.18.72.200`), 'released from the cluster store');
});

t.test("cluster store down: allocation and release inside this node's blocks go on", async (t) => {
  const cluster = openStoreFile(t);
  const node = openStoreFile(t);
  const outage = withOutageSwitch(cluster.store, 'etcd http://127.0.0.1:2379');
  const ipam = newIpam(outage.store, { nodeStore: node.store, blockPrefixLength: 29 });
  const { poolId } = await ipam.requestPool(subnetRequest(POOL));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.72.2');

  outage.fail();
  await t.rejects(outage.store.get('anything'), { code: 'ERR_KV_UNAVAILABLE' }, 'the cluster store is down');
  const during = [];
  for (let i = 0; i < 5; i++) during.push((await ipam.requestAddress({ poolId, address: '', gateway: false })).address);
  t.same(
    during,
    ['198.18.72.3', '198.18.72.4', '198.18.72.5', '198.18.72.6', '198.18.72.7'],
    'the rest of the /29 block, without the cluster store',
  );
  t.equal(
    await ipam.requestAddress({ poolId, address: '', gateway: false }).catch((e: { code: string }) => e.code),
    'ERR_KV_UNAVAILABLE',
    'a new block needs the cluster store: a clear error',
  );
  await ipam.releaseAddress(poolId, '198.18.72.4');
  t.equal(
    (await ipam.requestAddress({ poolId, address: '', gateway: false })).address,
    '198.18.72.4',
    'released and reused during the outage',
  );
  await t.rejects(
    ipam.requestAddress({ poolId, address: '198.18.72.9', gateway: false }),
    { code: 'ERR_KV_UNAVAILABLE' },
    '--ip outside our blocks needs the cluster store',
  );
  t.same((await ipam.listAddresses(poolId)).length, 7, 'listing works from what was last read');

  outage.restore();
  t.equal(
    (await ipam.requestAddress({ poolId, address: '', gateway: false })).address,
    '198.18.72.8',
    'store back: the next block is claimed',
  );
  t.same(await keys(cluster.store, 'ipam/v1/blocks/'), [
    `ipam/v1/blocks/${poolId}/198.18.72.0/29`,
    `ipam/v1/blocks/${poolId}/198.18.72.8/29`,
  ]);
});

t.test('cluster store down before anything was read: a clear error, nothing allocated', async (t) => {
  const cluster = openStoreFile(t);
  const node = openStoreFile(t);
  const outage = withOutageSwitch(cluster.store);
  const first = newIpam(outage.store, { nodeStore: node.store });
  const { poolId } = await first.requestPool(subnetRequest(POOL));
  const fresh = newIpam(outage.store, { nodeStore: node.store });
  outage.fail();
  await t.rejects(fresh.requestAddress({ poolId, address: '', gateway: false }), {
    code: 'ERR_KV_UNAVAILABLE',
    message: /simulated outage/,
  });
  t.same(await keys(node.store, 'ipam/v1/'), []);
});

t.test(
  'a restart over the same files restores exactly the allocations (also those made during an outage)',
  async (t) => {
    const cluster = openStoreFile(t);
    const node = openStoreFile(t);
    const outage = withOutageSwitch(cluster.store);
    const before = newIpam(outage.store, { nodeStore: node.store });
    const { poolId } = await before.requestPool(subnetRequest(POOL));
    await before.requestAddress({ poolId, address: '', gateway: true });
    await before.requestAddress({ poolId, address: '', gateway: false }); // .2
    outage.fail();
    await before.requestAddress({ poolId, address: '', gateway: false }); // .3
    await before.requestAddress({ poolId, address: '', gateway: false }); // .4
    await before.releaseAddress(poolId, '198.18.72.3');
    outage.restore();
    const listed = await before.listAddresses(poolId);

    const reopenedCluster = await cluster.reopen();
    const reopenedNode = await node.reopen();
    const after = newIpam(reopenedCluster, { nodeStore: reopenedNode });
    t.same(await after.listAddresses(poolId), listed, 'same allocations after the restart');
    t.same(
      listed.map((a) => a.address),
      ['198.18.72.1', '198.18.72.2', '198.18.72.4'],
    );
    t.equal(
      (await after.requestAddress({ poolId, address: '', gateway: false })).address,
      '198.18.72.3',
      'the released address is free again',
    );
    t.equal(
      (await after.requestAddress({ poolId, address: '', gateway: false })).address,
      '198.18.72.5',
      'the others are still taken',
    );
  },
);

t.test('two nodes with node stores of their own never hand out the same address', async (t) => {
  const cluster = openStoreFile(t);
  const nodeA = newIpam(cluster.store, { nodeName: 'node-a', nodeStore: openStoreFile(t).store });
  const nodeB = newIpam(cluster.store, { nodeName: 'node-b', nodeStore: openStoreFile(t).store });
  const { poolId } = await nodeA.requestPool(subnetRequest(POOL));
  await nodeB.requestPool(subnetRequest(POOL));
  await nodeA.requestAddress({ poolId, address: '', gateway: true });
  t.equal((await nodeA.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.72.2');
  t.equal(
    (await nodeB.requestAddress({ poolId, address: '', gateway: false })).address,
    '198.18.72.64',
    'node-b starts its own block',
  );

  // node-a's addresses are node-local: node-b cannot see them, so it never allocates inside node-a's block.
  await t.rejects(nodeB.requestAddress({ poolId, address: '198.18.72.2', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
    message: /inside block 198\.18\.72\.0\/26 .* which node node-a holds/,
  });
  await t.rejects(
    nodeB.requestAddress({ poolId, address: '198.18.72.30', gateway: false }),
    { code: 'ERR_ADDRESS_IN_USE', message: /node-a/ },
    'also a free one',
  );

  // A static address outside every block is a cluster key: the node that claims its block later skips it.
  t.equal((await nodeB.requestAddress({ poolId, address: '198.18.72.130', gateway: false })).address, '198.18.72.130');
  for (let i = 0; i < 61; i++) await nodeA.requestAddress({ poolId, address: '', gateway: false }); // .3-.63
  t.equal(
    (await nodeA.requestAddress({ poolId, address: '', gateway: false })).address,
    '198.18.72.128',
    'node-a claimed 198.18.72.128/26',
  );
  t.equal((await nodeA.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.72.129');
  t.equal(
    (await nodeA.requestAddress({ poolId, address: '', gateway: false })).address,
    '198.18.72.131',
    "node-b's static .130 is skipped",
  );

  // Concurrent: both nodes allocate at once, every address distinct.
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? nodeA : nodeB).requestAddress({ poolId, address: '', gateway: false }),
    ),
  );
  t.equal(new Set(results.map((r) => r.address)).size, 40, '40 distinct addresses');
  const all = [...(await nodeA.listAddresses(poolId)), ...(await nodeB.listAddresses(poolId))].filter(
    (a) => a.kind === 'endpoint',
  );
  const holders = new Set(all.map((a) => `${a.node}/${a.address}`));
  const addresses = new Set([...holders].map((h) => h.split('/')[1]));
  t.equal(addresses.size, holders.size, `no address held by two nodes (${addresses.size} addresses)`);
});
