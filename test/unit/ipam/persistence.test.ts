/**
 * Restart: every pool, block and address lives in the store, so closing the store file and
 * opening a new Ipam over the reopened file (a daemon restart) sees exactly the same state and
 * continues where the old one stopped.
 */
import t from 'tap';
import { newIpam, openStoreFile, subnetRequest } from './fixtures/ipam-fixture.js';

t.test('a new Ipam over the reopened store sees exactly the same pools, blocks and addresses', async (t) => {
  const file = openStoreFile(t);
  const before = newIpam(file.store);
  const carved = await before.requestPool(subnetRequest(''));
  const ranged = await before.requestPool({
    pool: '198.18.13.0/24',
    subPool: '198.18.13.128/25',
    options: { ik: 'iv' },
    v6: false,
  });
  await before.requestAddress({ poolId: ranged.poolId, address: '198.18.13.254', gateway: true });
  await before.requestAddress({ poolId: ranged.poolId, address: '198.18.13.10', gateway: false, reserved: true });
  await before.requestAddress({ poolId: ranged.poolId, address: '198.18.13.50', gateway: false, owner: 'fixed' });
  for (let i = 0; i < 3; i++)
    await before.requestAddress({ poolId: ranged.poolId, address: '', gateway: false, owner: `c${i}` });
  await before.requestAddress({ poolId: carved.poolId, address: '', gateway: true });
  await before.requestAddress({ poolId: carved.poolId, address: '', gateway: false });
  await before.releaseAddress(ranged.poolId, '198.18.13.129');

  const pools = await before.listPools();
  const addresses = await before.listAddresses();
  t.equal(pools.length, 2);
  t.equal(addresses.length, 7);

  await file.reopen();
  const after = newIpam(file.store);
  t.same(await after.listPools(), pools, 'pools, users, gateways and blocks are identical');
  t.same(await after.listAddresses(), addresses, 'allocations are identical');
  t.same(
    await after.getPool(ranged.poolId),
    pools.find((p) => p.poolId === ranged.poolId),
  );

  // The restarted node goes on from the same state: the released hole first, then the next one.
  t.equal(
    (await after.requestAddress({ poolId: ranged.poolId, address: '', gateway: false })).address,
    '198.18.13.129',
  );
  t.equal(
    (await after.requestAddress({ poolId: ranged.poolId, address: '', gateway: false })).address,
    '198.18.13.131',
  );
  await t.rejects(after.requestAddress({ poolId: ranged.poolId, address: '198.18.13.50', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
  });
  t.same(
    await after.requestAddress({ poolId: ranged.poolId, address: '198.18.13.254', gateway: true }),
    {
      address: '198.18.13.254',
      prefixLength: 24,
    },
    'gateway replay after restart',
  );
  await t.rejects(
    after.requestPool(subnetRequest('198.18.13.0/24', '198.18.13.128/25')),
    { code: 'ERR_POOL_OVERLAP' },
    'still this node’s pool',
  );
  t.equal(
    (await after.requestPool(subnetRequest(''))).pool,
    '10.200.1.0/24',
    'carving continues after the carved pool',
  );
  t.same(
    (await after.getPool(ranged.poolId))?.blocks,
    [{ cidr: '198.18.13.128/26', node: 'node-a' }],
    'no new block was needed',
  );
});
