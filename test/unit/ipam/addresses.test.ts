/**
 * Addresses in one pool on one node: gateway (default, explicit, replayed), aux reservations,
 * static --ip, --ip-range, range checks, exhaustion of a /29, release and reuse, release
 * idempotence, and 50 concurrent requests.
 */
import t from 'tap';
import { setup, subnetRequest, withLatency, newIpam, openStoreFile } from './fixtures/ipam-fixture.js';

t.test('the default gateway is the first host address; replays and explicit repeats succeed', async (t) => {
  const { file, ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.10.0/24'));
  t.same(await ipam.requestAddress({ poolId, address: '', gateway: true }), {
    address: '198.18.10.1',
    prefixLength: 24,
  });
  t.equal((await ipam.getPool(poolId))?.gateway, '198.18.10.1', 'recorded in the pool');
  t.same(JSON.parse((await file.store.get(`ipam/v1/addresses/${poolId}/198.18.10.1`))!.value), {
    node: 'node-a',
    kind: 'gateway',
  });

  // dockerd replays the gateway with its address after a restart (RequiresRequestReplay).
  t.same(await ipam.requestAddress({ poolId, address: '198.18.10.1', gateway: true }), {
    address: '198.18.10.1',
    prefixLength: 24,
  });
  t.same(await ipam.requestAddress({ poolId, address: '', gateway: true }), {
    address: '198.18.10.1',
    prefixLength: 24,
  });
  t.equal((await ipam.listAddresses(poolId)).length, 1);

  // A different gateway for the same pool is a conflicting definition.
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.10.254', gateway: true }), {
    code: 'ERR_BAD_REQUEST',
    message: /already has gateway 198\.18\.10\.1.*--gateway 198\.18\.10\.1/,
  });
  // Dynamic allocation never hands out the gateway.
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.10.2');
});

t.test('an explicit --gateway is used as given, even outside --ip-range', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.13.0/24', '198.18.13.128/25'));
  t.same(await ipam.requestAddress({ poolId, address: '198.18.13.254', gateway: true }), {
    address: '198.18.13.254',
    prefixLength: 24,
  });
  t.equal((await ipam.getPool(poolId))?.gateway, '198.18.13.254');
});

t.test('the gateway cannot take an address a container holds', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.14.0/24'));
  await ipam.requestAddress({ poolId, address: '198.18.14.1', gateway: false, owner: 'web' });
  await t.rejects(ipam.requestAddress({ poolId, address: '', gateway: true }), {
    code: 'ERR_ADDRESS_IN_USE',
    message: new RegExp(
      /198\.18\.14\.1 as the gateway of pool 198\.18\.14\.0\/24.*container web on node node-a; pass a /.source +
        /free address with --gateway/.source,
    ),
  });
  t.equal((await ipam.getPool(poolId))?.gateway, undefined, 'no gateway recorded');
});

t.test('--ip-range: dynamic addresses only from the range, static ones anywhere in the subnet', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.13.0/24', '198.18.13.128/25'));
  t.equal(
    (await ipam.requestAddress({ poolId, address: '', gateway: true })).address,
    '198.18.13.1',
    'gateway from the subnet',
  );
  t.equal(
    (await ipam.requestAddress({ poolId, address: '198.18.13.10', gateway: false, reserved: true })).address,
    '198.18.13.10',
  );
  t.equal((await ipam.requestAddress({ poolId, address: '198.18.13.50', gateway: false })).address, '198.18.13.50');
  t.same(await ipam.requestAddress({ poolId, address: '', gateway: false }), {
    address: '198.18.13.128',
    prefixLength: 24,
  });
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.13.129');
  t.same(
    (await ipam.getPool(poolId))?.blocks,
    [{ cidr: '198.18.13.128/26', node: 'node-a' }],
    'blocks are slices of the range',
  );
});

t.test('aux addresses are reservations; a repeat reservation succeeds, a container cannot take one', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.15.0/24'));
  await ipam.requestAddress({ poolId, address: '198.18.15.10', gateway: false, reserved: true });
  t.match(await ipam.listAddresses(poolId), [{ address: '198.18.15.10', kind: 'reserved', node: 'node-a' }]);
  t.same(await ipam.requestAddress({ poolId, address: '198.18.15.10', gateway: false, reserved: true }), {
    address: '198.18.15.10',
    prefixLength: 24,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.15.10', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
    message: new RegExp(
      /198\.18\.15\.10 is already in use in pool 198\.18\.15\.0\/24 \(by an --aux-address reservation /.source +
        /\(node node-a\)\); choose another --ip/.source,
    ),
  });
});

t.test('static --ip: allocated once, then AddressInUseError naming the holder', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.16.0/24'));
  t.same(await ipam.requestAddress({ poolId, address: '198.18.16.50', gateway: false, owner: 'c1' }), {
    address: '198.18.16.50',
    prefixLength: 24,
  });
  t.match(await ipam.listAddresses(poolId), [
    { address: '198.18.16.50', kind: 'endpoint', owner: 'c1', node: 'node-a', poolId },
  ]);
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.16.50', gateway: false }), {
    code: 'ERR_ADDRESS_IN_USE',
    message:
      'address 198.18.16.50 is already in use in pool 198.18.16.0/24 (by container c1 on node node-a); ' +
      'choose another --ip, or leave it out to get a free address',
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.16.50', gateway: false, reserved: true }), {
    code: 'ERR_ADDRESS_IN_USE',
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.16.50', gateway: true }), {
    code: 'ERR_ADDRESS_IN_USE',
  });
});

t.test('addresses outside the subnet, network/broadcast and malformed ones are rejected', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.17.0/24'));
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.18.5', gateway: false }), {
    code: 'ERR_ADDRESS_OUT_OF_RANGE',
    message: /198\.18\.18\.5 \(--ip\) is outside pool 198\.18\.17\.0\/24/,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '10.0.0.1', gateway: true }), {
    code: 'ERR_ADDRESS_OUT_OF_RANGE',
    message: /--gateway/,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.17.0', gateway: false }), {
    code: 'ERR_ADDRESS_OUT_OF_RANGE',
    message: /network address.*from 198\.18\.17\.1 to 198\.18\.17\.254/,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.17.255', gateway: false }), {
    code: 'ERR_ADDRESS_OUT_OF_RANGE',
    message: /broadcast/,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: '198.18.17.5/24', gateway: false }), {
    code: 'ERR_BAD_REQUEST',
    message: /plain IPv4/,
  });
  await t.rejects(ipam.requestAddress({ poolId, address: 'fd00::5', gateway: false }), {
    code: 'ERR_BAD_REQUEST',
    message: /IPv6/,
  });
  t.same(await ipam.listAddresses(poolId), []);
});

t.test('an unknown pool is a PoolNotFoundError', async (t) => {
  const { ipam } = setup(t);
  await t.rejects(ipam.requestAddress({ poolId: '10.1.1.0-24', address: '', gateway: false }), {
    code: 'ERR_POOL_NOT_FOUND',
    message: /unknown pool 10\.1\.1\.0-24.*docker network create/,
  });
});

t.test('a /29 gives the gateway and 5 containers, then PoolExhaustedError', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.5.0/29'));
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: true })).address, '198.18.5.1');
  const got: string[] = [];
  for (let i = 0; i < 5; i++) got.push((await ipam.requestAddress({ poolId, address: '', gateway: false })).address);
  t.same(got, ['198.18.5.2', '198.18.5.3', '198.18.5.4', '198.18.5.5', '198.18.5.6']);
  await t.rejects(ipam.requestAddress({ poolId, address: '', gateway: false }), {
    code: 'ERR_POOL_EXHAUSTED',
    message:
      'no free address in pool 198.18.5.0/29: all 6 usable addresses are in use; ' +
      'use a larger --subnet or --ip-range, or remove containers',
  });
  t.same(
    (await ipam.getPool(poolId))?.blocks,
    [{ cidr: '198.18.5.0/29', node: 'node-a' }],
    'a range smaller than a block is one block',
  );
});

t.test('release frees an address for reuse (lowest first)', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.6.0/29'));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  for (let i = 0; i < 5; i++) await ipam.requestAddress({ poolId, address: '', gateway: false });
  await ipam.releaseAddress(poolId, '198.18.6.4');
  await ipam.releaseAddress(poolId, '198.18.6.3');
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.6.3');
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.6.4');
  await t.rejects(ipam.requestAddress({ poolId, address: '', gateway: false }), { code: 'ERR_POOL_EXHAUSTED' });

  // A released static address can be taken again.
  await ipam.releaseAddress(poolId, '198.18.6.6');
  t.equal((await ipam.requestAddress({ poolId, address: '198.18.6.6', gateway: false })).address, '198.18.6.6');
});

t.test('releaseAddress is idempotent: unknown address, unknown pool, twice, malformed', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.7.0/24'));
  const { address } = await ipam.requestAddress({ poolId, address: '', gateway: false });
  await ipam.releaseAddress(poolId, address);
  await ipam.releaseAddress(poolId, address);
  await ipam.releaseAddress(poolId, '198.18.7.200');
  await ipam.releaseAddress('10.99.0.0-24', '10.99.0.5');
  await ipam.releaseAddress(poolId, '');
  await ipam.releaseAddress(poolId, 'not-an-ip');
  t.same(await ipam.listAddresses(poolId), []);
});

t.test('the gateway is released by its network when no other node uses the pool', async (t) => {
  const { ipam } = setup(t);
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.8.0/24'));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  await ipam.releaseAddress(poolId, '198.18.8.1');
  t.same(await ipam.listAddresses(poolId), []);
  t.equal((await ipam.getPool(poolId))?.gateway, undefined, 'the recorded gateway is cleared');
  t.equal(
    (await ipam.requestAddress({ poolId, address: '198.18.8.9', gateway: true })).address,
    '198.18.8.9',
    'a new gateway can be set',
  );
});

t.test('50 concurrent requests get 50 distinct, lowest addresses without a failure', async (t) => {
  const file = openStoreFile(t);
  const ipam = newIpam(withLatency(file.store));
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.50.0/24'));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) => ipam.requestAddress({ poolId, address: '', gateway: false, owner: `c${i}` })),
  );
  const failures = results.filter((r) => r.status === 'rejected');
  t.same(failures, [], 'no request failed');
  const addresses = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.address] : []));
  t.equal(new Set(addresses).size, 50, 'all distinct');
  const expected = Array.from({ length: 50 }, (_, i) => `198.18.50.${i + 2}`);
  t.same([...addresses].sort(), [...expected].sort(), 'compact: .2 to .51');
  t.same((await ipam.listAddresses(poolId)).length, 51, 'one key per address, plus the gateway');
  t.same(
    (await ipam.getPool(poolId))?.blocks.map((b) => b.cidr),
    ['198.18.50.0/26'],
    'the second block is claimed only when needed',
  );
});

t.test('a node claims its next block when its blocks are full', async (t) => {
  const { ipam } = setup(t, { blockPrefixLength: 30 });
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.60.0/28'));
  const got: string[] = [];
  for (let i = 0; i < 4; i++) got.push((await ipam.requestAddress({ poolId, address: '', gateway: false })).address);
  // Block .0/30 gives .1-.3 (.0 is the network address); then .4/30 is claimed.
  t.same(got, ['198.18.60.1', '198.18.60.2', '198.18.60.3', '198.18.60.4']);
  t.same(
    (await ipam.getPool(poolId))?.blocks.map((b) => b.cidr),
    ['198.18.60.0/30', '198.18.60.4/30'],
  );
});

t.test('a block filled by static addresses is skipped, not claimed', async (t) => {
  const { ipam } = setup(t, { blockPrefixLength: 30 });
  const { poolId } = await ipam.requestPool(subnetRequest('198.18.61.0/28'));
  for (const address of ['198.18.61.1', '198.18.61.2', '198.18.61.3'])
    await ipam.requestAddress({ poolId, address, gateway: false });
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.61.4');
  t.same(
    (await ipam.getPool(poolId))?.blocks.map((b) => b.cidr),
    ['198.18.61.4/30'],
  );
});
