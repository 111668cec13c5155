/**
 * Two hosts on one store: two Ipam instances with different node names share a pool (the same
 * `docker network create` run on each host), claim different blocks, and never hand out the same
 * address, also when both allocate at the same time. The store is wrapped with random latency so
 * the two nodes' requests interleave at every step.
 */
import t from 'tap';
import { newIpam, openStoreFile, subnetRequest, withLatency } from './fixtures/ipam-fixture.js';

t.test('two nodes share a pool and the gateway, and allocate from their own blocks', async (t) => {
  const file = openStoreFile(t);
  const nodeA = newIpam(file.store, { nodeName: 'node-a' });
  const nodeB = newIpam(file.store, { nodeName: 'node-b' });
  const a = await nodeA.requestPool(subnetRequest('198.18.70.0/24'));
  const b = await nodeB.requestPool(subnetRequest('198.18.70.0/24'));
  t.equal(b.poolId, a.poolId);
  t.equal((await nodeA.requestAddress({ poolId: a.poolId, address: '', gateway: true })).address, '198.18.70.1');
  t.equal(
    (await nodeB.requestAddress({ poolId: b.poolId, address: '', gateway: true })).address,
    '198.18.70.1',
    'the other host gets the same gateway',
  );

  t.equal((await nodeA.requestAddress({ poolId: a.poolId, address: '', gateway: false })).address, '198.18.70.2');
  t.equal(
    (await nodeB.requestAddress({ poolId: b.poolId, address: '', gateway: false })).address,
    '198.18.70.64',
    'node-b starts its own block',
  );
  t.equal((await nodeA.requestAddress({ poolId: a.poolId, address: '', gateway: false })).address, '198.18.70.3');
  t.same((await nodeA.getPool(a.poolId))?.blocks, [
    { cidr: '198.18.70.0/26', node: 'node-a' },
    { cidr: '198.18.70.64/26', node: 'node-b' },
  ]);

  // A static address inside the other node's block is still unique cluster-wide.
  t.equal(
    (await nodeA.requestAddress({ poolId: a.poolId, address: '198.18.70.65', gateway: false })).address,
    '198.18.70.65',
  );
  t.equal((await nodeB.requestAddress({ poolId: b.poolId, address: '', gateway: false })).address, '198.18.70.66');
  await t.rejects(nodeB.requestAddress({ poolId: b.poolId, address: '198.18.70.2', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
    message: /a container on node node-a/,
  });

  // A node never releases another node's container address.
  await nodeB.releaseAddress(b.poolId, '198.18.70.2');
  t.match(await nodeA.listAddresses(a.poolId), [
    { address: '198.18.70.1' },
    { address: '198.18.70.2', node: 'node-a' },
  ]);
  // The shared gateway stays while the other node uses the pool.
  await nodeB.releaseAddress(b.poolId, '198.18.70.1');
  t.equal((await nodeA.getPool(a.poolId))?.gateway, '198.18.70.1');
  t.ok(await file.store.get(`ipam/v1/addresses/${a.poolId}/198.18.70.1`));
});

t.test(
  'a node whose blocks are full and whose other blocks are taken gets PoolExhaustedError naming the holders',
  async (t) => {
    const file = openStoreFile(t);
    const nodeA = newIpam(file.store, { nodeName: 'node-a', blockPrefixLength: 29 });
    const nodeB = newIpam(file.store, { nodeName: 'node-b', blockPrefixLength: 29 });
    const { poolId } = await nodeA.requestPool(subnetRequest('198.18.71.0/28'));
    await nodeB.requestPool(subnetRequest('198.18.71.0/28'));
    t.equal((await nodeA.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.71.1');
    t.equal((await nodeB.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.71.8');
    for (let i = 0; i < 6; i++) await nodeA.requestAddress({ poolId, address: '', gateway: false }); // .2-.7
    await t.rejects(nodeA.requestAddress({ poolId, address: '', gateway: false }), {
      code: 'ERR_POOL_EXHAUSTED',
      message: /no free address in pool 198\.18\.71\.0\/28 for node node-a: .*held by node-b/,
    });
  },
);

t.test('concurrent allocation on two nodes: distinct addresses, disjoint blocks, no failures', async (t) => {
  const file = openStoreFile(t);
  const store = withLatency(file.store);
  const nodeA = newIpam(store, { nodeName: 'node-a', blockPrefixLength: 28 });
  const nodeB = newIpam(store, { nodeName: 'node-b', blockPrefixLength: 28 });
  const [pa, pb] = await Promise.all([
    nodeA.requestPool(subnetRequest('198.18.72.0/24')),
    nodeB.requestPool(subnetRequest('198.18.72.0/24')),
  ]);
  t.equal(pa.poolId, pb.poolId, 'concurrent creation of the same network joins one pool');
  const poolId = pa.poolId;
  t.same((await nodeA.getPool(poolId))?.nodes, ['node-a', 'node-b']);
  await Promise.all([
    nodeA.requestAddress({ poolId, address: '', gateway: true }),
    nodeB.requestAddress({ poolId, address: '', gateway: true }),
  ]);

  // Small blocks so both nodes claim several, racing for the same next block; plus static
  // requests into the range that race with dynamic allocation: a static request may lose (the
  // address went to a container first, AddressInUseError), a dynamic one must never fail.
  const dynamic = [
    ...Array.from({ length: 60 }, (_, i) =>
      nodeA
        .requestAddress({ poolId, address: '', gateway: false, owner: `a${i}` })
        .then((r) => ['node-a', r.address] as const),
    ),
    ...Array.from({ length: 60 }, (_, i) =>
      nodeB
        .requestAddress({ poolId, address: '', gateway: false, owner: `b${i}` })
        .then((r) => ['node-b', r.address] as const),
    ),
  ];
  const statics = [20, 40, 60, 80].map((last) =>
    nodeA.requestAddress({ poolId, address: `198.18.72.${last}`, gateway: false }),
  );
  const [dynamicResults, staticResults] = await Promise.all([Promise.allSettled(dynamic), Promise.allSettled(statics)]);
  t.same(
    dynamicResults.filter((r) => r.status === 'rejected'),
    [],
    'no dynamic request failed',
  );
  const staticFailures = staticResults.flatMap((r) => (r.status === 'rejected' ? [r.reason as { code?: string }] : []));
  t.ok(
    staticFailures.every((err) => err.code === 'ERR_ADDRESS_IN_USE'),
    'a static request fails only because the address is in use',
  );
  const pairs = dynamicResults.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const addresses = [
    ...pairs.map(([, address]) => address),
    ...staticResults.flatMap((r) => (r.status === 'fulfilled' ? [r.value.address] : [])),
  ];
  t.equal(new Set(addresses).size, addresses.length, 'every address handed out is distinct');
  t.equal(addresses.length, 124 - staticFailures.length);
  t.notOk(addresses.includes('198.18.72.1'), 'the gateway was not handed out');

  const pool = await nodeA.getPool(poolId);
  const cidrs = pool!.blocks.map((b) => b.cidr);
  t.equal(new Set(cidrs).size, cidrs.length, 'no block is claimed twice');
  const blockOwner = (address: string) => {
    const last = Number(address.split('.')[3]);
    return pool!.blocks.find((b) => {
      const start = Number(b.cidr.split('/')[0]!.split('.')[3]);
      return last >= start && last < start + 16;
    })?.node;
  };
  const misplaced = pairs.filter(([node, address]) => blockOwner(address) !== node);
  t.same(misplaced, [], 'every dynamic address comes from a block of the node that got it');
  const stored = await nodeA.listAddresses(poolId);
  t.equal(stored.length, addresses.length + 1, 'one key per address, plus the gateway');
});

t.test('two nodes allocating their first address at the same moment claim different blocks', async (t) => {
  const file = openStoreFile(t);
  const store = withLatency(file.store);
  const nodeA = newIpam(store, { nodeName: 'node-a' });
  const nodeB = newIpam(store, { nodeName: 'node-b' });
  // Several fresh pools, so the race for the first block is run many times.
  for (let third = 0; third < 20; third++) {
    const subnet = `198.18.${100 + third}.0/24`;
    const { poolId } = await nodeA.requestPool(subnetRequest(subnet));
    await nodeB.requestPool(subnetRequest(subnet));
    const [a, b] = await Promise.all([
      nodeA.requestAddress({ poolId, address: '', gateway: false }),
      nodeB.requestAddress({ poolId, address: '', gateway: false }),
    ]);
    const blocks = (await nodeA.getPool(poolId))!.blocks;
    const blockOf = (address: string) =>
      blocks.find(
        (blk) => Math.floor(Number(address.split('.')[3]) / 64) * 64 === Number(blk.cidr.split('/')[0]!.split('.')[3]),
      );
    t.same(
      { a: blockOf(a.address)?.node, b: blockOf(b.address)?.node, blocks: blocks.length },
      { a: 'node-a', b: 'node-b', blocks: 2 },
      `${subnet}: node-a got ${a.address}, node-b got ${b.address}`,
    );
  }
});

t.test('two nodes creating overlapping subnets at the same moment: exactly one wins', async (t) => {
  const file = openStoreFile(t);
  const store = withLatency(file.store);
  const nodeA = newIpam(store, { nodeName: 'node-a' });
  const nodeB = newIpam(store, { nodeName: 'node-b' });
  for (let second = 0; second < 20; second++) {
    const results = await Promise.allSettled([
      nodeA.requestPool(subnetRequest(`10.${second}.0.0/16`)),
      nodeB.requestPool(subnetRequest(`10.${second}.1.0/24`)),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled').length;
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as { code?: string }).code] : []));
    t.same({ won, lost }, { won: 1, lost: ['ERR_POOL_OVERLAP'] }, `10.${second}.0.0/16 vs 10.${second}.1.0/24`);
  }
  t.equal((await nodeA.listPools()).length, 20, 'one pool per pair, no leftover record of a loser');
});

t.test('a node joining while the last user releases the pool keeps a usable pool', async (t) => {
  const file = openStoreFile(t);
  const store = withLatency(file.store);
  const nodeA = newIpam(store, { nodeName: 'node-a' });
  const nodeB = newIpam(store, { nodeName: 'node-b' });
  for (let third = 0; third < 40; third++) {
    const subnet = `198.18.${200 + third}.0/24`;
    const { poolId } = await nodeA.requestPool(subnetRequest(subnet));
    // Start node-b a little later each round so its join lands at every step of the release.
    const delayMs = (third % 10) * 1.5;
    const joining = new Promise<void>((resolve) => setTimeout(resolve, delayMs)).then(() =>
      nodeB.requestPool(subnetRequest(subnet)),
    );
    const [, joined] = await Promise.all([nodeA.releasePool(poolId), joining]);
    t.equal(joined.poolId, poolId);
    const pool = await nodeB.getPool(poolId);
    t.same(pool?.nodes, ['node-b'], `${subnet}: the pool exists with node-b as its user`);
    t.equal((await nodeB.requestAddress({ poolId, address: '', gateway: true })).address, `198.18.${200 + third}.1`);
  }
});
