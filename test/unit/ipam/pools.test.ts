/**
 * Pools: --subnet and --ip-range, default-pool carving, overlap rules (same node, other node,
 * different range), IPv6 rejection, the store layout, and release by one or all nodes.
 */
import t from 'tap';
import { newIpam, setup, subnetRequest } from './fixtures/ipam-fixture.js';

t.test('--subnet creates a pool with a stable, slash-free id and the documented store keys', async (t) => {
  const { file, ipam } = setup(t);
  const result = await ipam.requestPool({ pool: '198.18.10.0/24', subPool: '', options: { ik: 'iv' }, v6: false });
  t.same(result, { poolId: '198.18.10.0-24', pool: '198.18.10.0/24', data: {} });

  const record = await file.store.get('ipam/v1/pools/198.18.10.0-24');
  t.ok(record, 'pool record stored under its literal key');
  t.match(JSON.parse(record!.value), {
    subnet: '198.18.10.0/24',
    createdBy: 'node-a',
    options: { ik: 'iv' },
    createdAt: String,
  });
  t.ok(await file.store.get('ipam/v1/pool-users/198.18.10.0-24/node-a'), 'this node is recorded as a user');

  t.match(await ipam.getPool('198.18.10.0-24'), {
    poolId: '198.18.10.0-24',
    pool: '198.18.10.0/24',
    prefixLength: 24,
    nodes: ['node-a'],
    blocks: [],
    options: { ik: 'iv' },
  });
});

t.test('a subnet with host bits set is canonicalised, as Docker does', async (t) => {
  const { ipam } = setup(t);
  t.same(await ipam.requestPool(subnetRequest('198.18.10.77/24')), {
    poolId: '198.18.10.0-24',
    pool: '198.18.10.0/24',
    data: {},
  });
});

t.test('--ip-range is stored as the subPool', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.13.0/24', '198.18.13.128/25'));
  t.match(await ipam.getPool(poolId), { pool: '198.18.13.0/24', subPool: '198.18.13.128/25' });
});

t.test('bad pool requests are BadRequestErrors that say what to do', async (t) => {
  const { ipam } = setup(t);
  await t.rejects(ipam.requestPool({ pool: 'fd00::/64', subPool: '', options: {}, v6: true }), {
    code: 'ERR_BAD_REQUEST',
    message: /IPv4 only.*without --ipv6/,
  });
  await t.rejects(ipam.requestPool({ pool: '', subPool: '', options: {}, v6: true }), {
    code: 'ERR_BAD_REQUEST',
    message: /IPv6/,
  });
  await t.rejects(ipam.requestPool(subnetRequest('fd00::/64')), { code: 'ERR_BAD_REQUEST', message: /IPv6 prefix/ });
  await t.rejects(ipam.requestPool(subnetRequest('10.0.0.0')), {
    code: 'ERR_BAD_REQUEST',
    message: /invalid --subnet "10.0.0.0"/,
  });
  await t.rejects(ipam.requestPool(subnetRequest('10.0.0.0/24', '10.0.1.0/25')), {
    code: 'ERR_BAD_REQUEST',
    message: /--ip-range 10.0.1.0\/25 is not inside --subnet 10.0.0.0\/24/,
  });
  await t.rejects(ipam.requestPool(subnetRequest('', '10.0.1.0/25')), {
    code: 'ERR_BAD_REQUEST',
    message: /needs a --subnet/,
  });
  await t.rejects(ipam.requestPool(subnetRequest('10.0.0.0/31')), { code: 'ERR_BAD_REQUEST', message: /too small/ });
  t.same(await ipam.listPools(), [], 'nothing was stored');
});

t.test('pool "" carves the next free subnet from the default pool, skipping overlaps', async (t) => {
  const { ipam } = setup(t);
  const first = await ipam.requestPool(subnetRequest(''));
  t.same(first, { poolId: '10.200.0.0-24', pool: '10.200.0.0/24', data: {} });
  const second = await ipam.requestPool(subnetRequest(''));
  t.same(second.pool, '10.200.1.0/24', 'the second network gets the next subnet');

  // A user network inside the default pool: carving must step around it.
  await ipam.requestPool(subnetRequest('10.200.2.128/25'));
  await ipam.requestPool(subnetRequest('10.200.4.0/23'));
  t.equal((await ipam.requestPool(subnetRequest(''))).pool, '10.200.3.0/24');
  t.equal((await ipam.requestPool(subnetRequest(''))).pool, '10.200.6.0/24', '10.200.4.0/23 covers .4 and .5');

  // A released carved subnet is the first candidate again.
  await ipam.releasePool(first.poolId);
  t.equal((await ipam.requestPool(subnetRequest(''))).pool, '10.200.0.0/24');
});

t.test('carving fails with PoolExhaustedError when the default pool is full', async (t) => {
  const { ipam } = setup(t, { defaultPool: '10.201.0.0/23', defaultPoolPrefixLength: 24 });
  await ipam.requestPool(subnetRequest(''));
  await ipam.requestPool(subnetRequest(''));
  await t.rejects(ipam.requestPool(subnetRequest('')), {
    code: 'ERR_POOL_EXHAUSTED',
    message:
      'no free /24 left in the default pool 10.201.0.0/23: all 2 are used by or overlap other networks; ' +
      'pass --subnet, or remove unused networks',
  });
});

t.test('concurrent carving hands out distinct subnets', async (t) => {
  const { ipam } = setup(t);
  const results = await Promise.all(Array.from({ length: 10 }, () => ipam.requestPool(subnetRequest(''))));
  const pools = results.map((r) => r.pool).sort();
  t.same(pools, Array.from({ length: 10 }, (_, i) => `10.200.${i}.0/24`).sort());
});

t.test('a subnet overlapping a different pool is a PoolOverlapError naming both', async (t) => {
  const { file, ipam } = setup(t);
  await ipam.requestPool(subnetRequest('10.10.0.0/16'));
  await t.rejects(ipam.requestPool(subnetRequest('10.10.5.0/24')), {
    code: 'ERR_POOL_OVERLAP',
    message:
      /cannot create pool 10\.10\.5\.0\/24: it overlaps existing pool 10\.10\.0\.0\/16 \(created by node node-a\)/,
  });
  await t.rejects(ipam.requestPool(subnetRequest('10.0.0.0/8')), {
    code: 'ERR_POOL_OVERLAP',
    message: /10\.0\.0\.0\/8.*10\.10\.0\.0\/16/,
  });
  // Overlap is about the cluster, not the host: another node gets the same answer.
  const nodeB = newIpam(file.store, { nodeName: 'node-b' });
  await t.rejects(nodeB.requestPool(subnetRequest('10.10.128.0/17')), {
    code: 'ERR_POOL_OVERLAP',
    message: /10\.10\.0\.0\/16/,
  });
  t.same(
    (await ipam.listPools()).map((p) => p.pool),
    ['10.10.0.0/16'],
  );
});

t.test('the same subnet twice on one node is a PoolOverlapError', async (t) => {
  const { ipam } = setup(t);
  await ipam.requestPool(subnetRequest('198.18.20.0/24'));
  await t.rejects(ipam.requestPool(subnetRequest('198.18.20.0/24')), {
    code: 'ERR_POOL_OVERLAP',
    message: /another network with subnet 198\.18\.20\.0\/24 on node node-a.*docker network rm/,
  });
  t.same((await ipam.getPool('198.18.20.0-24'))?.nodes, ['node-a']);
});

t.test('the same subnet from another node joins the pool; a different --ip-range is a conflict', async (t) => {
  const { file, ipam } = setup(t);
  const nodeB = newIpam(file.store, { nodeName: 'node-b' });
  const nodeC = newIpam(file.store, { nodeName: 'node-c' });
  const a = await ipam.requestPool(subnetRequest('198.18.30.0/24', '198.18.30.0/25'));
  const b = await nodeB.requestPool(subnetRequest('198.18.30.0/24', '198.18.30.0/25'));
  t.same(b, a, 'same pool id and subnet on both hosts');
  t.same((await ipam.getPool(a.poolId))?.nodes, ['node-a', 'node-b']);

  await t.rejects(nodeC.requestPool(subnetRequest('198.18.30.0/24', '198.18.30.128/25')), {
    code: 'ERR_POOL_OVERLAP',
    message: new RegExp(
      /pool 198\.18\.30\.0\/24 already exists with --ip-range 198\.18\.30\.0\/25 \(created by node /.source +
        /node-a\).*pass --ip-range 198\.18\.30\.0\/25/.source,
    ),
  });
  await t.rejects(nodeC.requestPool(subnetRequest('198.18.30.0/24')), {
    code: 'ERR_POOL_OVERLAP',
    message: /this request has none/,
  });
  t.same((await ipam.getPool(a.poolId))?.nodes, ['node-a', 'node-b'], 'the failed joins left no user key');
});

t.test('releasePool: other nodes keep the pool; the last one removes everything', async (t) => {
  const { file, ipam } = setup(t);
  const nodeB = newIpam(file.store, { nodeName: 'node-b' });
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.40.0/24'));
  await nodeB.requestPool(subnetRequest('198.18.40.0/24'));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  await ipam.requestAddress({ poolId, address: '198.18.40.10', gateway: false, reserved: true });
  const a1 = await ipam.requestAddress({ poolId, address: '', gateway: false });
  const b1 = await nodeB.requestAddress({ poolId, address: '', gateway: false });

  // dockerd's `network rm` on node-a: ReleaseAddress(gw), ReleaseAddress(aux), ReleasePool.
  await ipam.releaseAddress(poolId, '198.18.40.1');
  await ipam.releaseAddress(poolId, '198.18.40.10');
  // A container address dockerd never released (crash) is this node's leftover: it goes too.
  await ipam.releasePool(poolId);

  const afterA = await nodeB.getPool(poolId);
  t.same(afterA?.nodes, ['node-b']);
  t.equal(afterA?.gateway, '198.18.40.1', 'the gateway stays while node-b uses the pool');
  t.same(
    afterA?.blocks.map((b) => b.node),
    ['node-b'],
    "node-a's block is released",
  );
  t.same(
    (await nodeB.listAddresses(poolId)).map((a) => `${a.address} ${a.kind} ${a.node}`),
    ['198.18.40.1 gateway node-a', '198.18.40.10 reserved node-a', `${b1.address} endpoint node-b`],
    `node-a's leftover ${a1.address} is gone, the shared definition stays`,
  );

  await nodeB.releaseAddress(poolId, '198.18.40.1');
  await nodeB.releaseAddress(poolId, b1.address);
  await nodeB.releasePool(poolId);
  t.equal(await nodeB.getPool(poolId), undefined);
  t.same((await file.store.list('ipam/')).pairs, [], 'no ipam key is left');
});

t.test('releasePool of an unknown pool is a PoolNotFoundError', async (t) => {
  const { ipam } = setup(t);
  await t.rejects(ipam.releasePool('10.9.9.0-24'), {
    code: 'ERR_POOL_NOT_FOUND',
    message: /unknown pool 10\.9\.9\.0-24/,
  });
  const { poolId } = await ipam.requestPool(subnetRequest('10.9.9.0/24'));
  await ipam.releasePool(poolId);
  await t.rejects(ipam.releasePool(poolId), { code: 'ERR_POOL_NOT_FOUND' });
  t.equal(await ipam.getPool(poolId), undefined);
});

t.test('listPools is in subnet order with users and blocks', async (t) => {
  const { ipam } = setup(t);
  await ipam.requestPool(subnetRequest('198.18.100.0/24'));
  await ipam.requestPool(subnetRequest('198.18.9.0/24'));
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.10.0/24'));
  await ipam.requestAddress({ poolId, address: '', gateway: false });
  const pools = await ipam.listPools();
  t.same(
    pools.map((p) => p.pool),
    ['198.18.9.0/24', '198.18.10.0/24', '198.18.100.0/24'],
  );
  t.same(pools[1]?.blocks, [{ cidr: '198.18.10.0/26', node: 'node-a' }]);
  t.same(pools[1]?.nodes, ['node-a']);
});

t.test('invalid options are ConfigErrors', async (t) => {
  const { file } = setup(t);
  t.throws(() => newIpam(file.store, { nodeName: 'a/b' }), { code: 'ERR_CONFIG', message: /node name/ });
  t.throws(() => newIpam(file.store, { nodeName: '' }), { code: 'ERR_CONFIG' });
  t.throws(() => newIpam(file.store, { defaultPool: '10.200.0.0' }), { code: 'ERR_CONFIG', message: /default pool/ });
  t.throws(() => newIpam(file.store, { defaultPoolPrefixLength: 12 }), { code: 'ERR_CONFIG', message: /between 16/ });
  t.throws(() => newIpam(file.store, { blockPrefixLength: 33 }), { code: 'ERR_CONFIG', message: /block prefix/ });
});
