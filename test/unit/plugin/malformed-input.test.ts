/**
 * Every plugin call survives empty, malformed, wrongly typed, unknown-id and oversized bodies:
 * the right error key for its API, the daemon stays up, and state is unchanged.
 */
import t from 'tap';
import { PluginStack } from '../../support/plugin-harness.js';

const NETWORK_CALLS = [
  'CreateNetwork',
  'DeleteNetwork',
  'CreateEndpoint',
  'EndpointOperInfo',
  'DeleteEndpoint',
  'Join',
  'Leave',
  'ProgramExternalConnectivity',
  'RevokeExternalConnectivity',
  'AllocateNetwork',
  'FreeNetwork',
];
const IPAM_CALLS = ['RequestPool', 'ReleasePool', 'RequestAddress', 'ReleaseAddress'];

async function snapshot(stack: PluginStack): Promise<string> {
  const { pairs } = await stack.store.list('');
  return JSON.stringify(pairs.map((p) => [p.key, p.value]));
}

t.test('malformed bodies get the right error and change nothing', async (t) => {
  const stack = await new PluginStack().start();
  t.teardown(() => stack.destroy());
  // Some state to protect: a network with one container.
  const pool = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: '198.18.20.0/24',
    SubPool: '',
    Options: {},
    V6: false,
  });
  const poolId = String(pool.body.PoolID);
  await stack.call('IpamDriver.RequestAddress', {
    PoolID: poolId,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  await stack.call('NetworkDriver.CreateNetwork', {
    NetworkID: 'n'.repeat(64).replace(/n/g, 'a'),
    Options: {},
    IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: '198.18.20.0/24', Gateway: '198.18.20.1/24' }],
    IPv6Data: [],
  });
  const addr = await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
  t.equal(addr.body.Address, '198.18.20.2/24');
  const before = await snapshot(stack);

  const bodies: Array<[string, unknown]> = [
    ['empty body', undefined],
    ['empty object', {}],
    ['not JSON', { raw: '{"NetworkID": ' }],
    ['JSON array', [1, 2]],
    ['JSON string', { raw: '"hello"' }],
    [
      'wrong types',
      {
        NetworkID: 42,
        EndpointID: ['x'],
        PoolID: {},
        Address: 7,
        Pool: 3,
        Interface: 'x',
        IPv4Data: 'x',
        Options: 'x',
      },
    ],
    ['1 MB body', { NetworkID: 'x'.repeat(1024 * 1024) }],
    ['over the limit', { raw: JSON.stringify({ NetworkID: 'x'.repeat(3 * 1024 * 1024) }) }],
  ];
  for (const [what, body] of bodies) {
    for (const m of NETWORK_CALLS) {
      const r = await stack.call(`NetworkDriver.${m}`, body);
      t.ok(
        r.status >= 400 && typeof r.body.Err === 'string' && r.body.Err.length > 0,
        `NetworkDriver.${m} ${what}: non-200 with Err (${r.status} ${r.raw.slice(0, 80)})`,
      );
    }
    for (const m of IPAM_CALLS) {
      const r = await stack.call(`IpamDriver.${m}`, body);
      t.ok(
        r.status === 200 && typeof r.body.Error === 'string' && r.body.Error.length > 0,
        `IpamDriver.${m} ${what}: 200 with Error (${r.status} ${r.raw.slice(0, 80)})`,
      );
    }
  }
  // Calls with empty bodies by design still answer.
  t.same((await stack.call('Plugin.Activate')).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
  t.equal((await stack.call('NetworkDriver.GetCapabilities')).body.Scope, 'local');
  // Unknown ids: creation calls fail with a message naming the object; teardown calls succeed (idempotent).
  const unknownJoin = await stack.call('NetworkDriver.Join', {
    NetworkID: 'b'.repeat(64),
    EndpointID: 'c'.repeat(64),
    SandboxKey: '/x',
    Options: {},
  });
  t.equal(unknownJoin.status, 404);
  t.match(String(unknownJoin.body.Err), /endpoint cccccccccccc .* not known/);
  const unknownCe = await stack.call('NetworkDriver.CreateEndpoint', {
    NetworkID: 'b'.repeat(64),
    EndpointID: 'c'.repeat(64),
    Interface: { Address: '198.18.20.9/24', AddressIPv6: '', MacAddress: '' },
    Options: {},
  });
  t.equal(unknownCe.status, 404);
  t.match(String(unknownCe.body.Err), /network bbbbbbbbbbbb is not known/);
  for (const m of ['Leave', 'DeleteEndpoint', 'RevokeExternalConnectivity']) {
    const r = await stack.call(`NetworkDriver.${m}`, { NetworkID: 'b'.repeat(64), EndpointID: 'c'.repeat(64) });
    t.equal(r.status, 200, `${m} of an unknown endpoint succeeds`);
  }
  t.equal(
    (await stack.call('NetworkDriver.DeleteNetwork', { NetworkID: 'b'.repeat(64) })).status,
    200,
    'DeleteNetwork of an unknown network succeeds',
  );
  t.equal(
    (await stack.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '198.18.20.200' })).status,
    200,
    'ReleaseAddress of a free address succeeds',
  );
  const unknownPool = await stack.call('IpamDriver.RequestAddress', { PoolID: 'nope', Address: '', Options: null });
  t.match(unknownPool.body, { Error: /pool/i }, 'RequestAddress on an unknown pool names it');
  const badAddr = await stack.call('IpamDriver.RequestAddress', {
    PoolID: poolId,
    Address: '198.18.99.1',
    Options: null,
  });
  t.match(String(badAddr.body.Error), /198\.18\.99\.1/, 'an address outside the pool is named');
  const unknownRoute = await stack.call('NetworkDriver.NoSuchCall', {});
  t.equal(unknownRoute.status, 404);

  t.equal(await snapshot(stack), before, 'store unchanged by every bad request');
  const still = await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
  t.equal(still.body.Address, '198.18.20.3/24', 'daemon alive and allocating');
});
