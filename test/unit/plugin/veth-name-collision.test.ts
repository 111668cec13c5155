/**
 * Endpoint ids that share their first 11 hex characters (the veth name's suffix) get veths of
 * their own, through the plugin socket: distinct names and MACs, Join hands each its own
 * container side, deleting one leaves the other's link, and the names survive a restart.
 * test/unit/datapath/veth-ownership.test.ts does the same with real veths.
 */
import t from 'tap';
import { PluginStack } from '../../support/plugin-harness.js';

const NET = 'a'.repeat(64);
const PREFIX = 'abcdef01234';
const FIRST = `${PREFIX}${'5'.repeat(53)}`;
const SECOND = `${PREFIX}${'6'.repeat(53)}`;
const THIRD = `${PREFIX}${'7'.repeat(53)}`;

t.test('colliding endpoint ids get their own veth names and MACs; deleting one never touches the other', async (t) => {
  const stack = await new PluginStack().start();
  t.teardown(() => stack.destroy());
  const pool = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: '198.18.35.0/24',
    SubPool: '',
    Options: {},
    V6: false,
  });
  const poolId = String(pool.body.PoolID);
  const gw = await stack.call('IpamDriver.RequestAddress', {
    PoolID: poolId,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  await stack.call('NetworkDriver.CreateNetwork', {
    NetworkID: NET,
    Options: {},
    IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: '198.18.35.0/24', Gateway: gw.body.Address }],
    IPv6Data: [],
  });
  const start = async (endpointId: string): Promise<{ mac: string; srcName: string }> => {
    const address = await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
    const created = await stack.call('NetworkDriver.CreateEndpoint', {
      NetworkID: NET,
      EndpointID: endpointId,
      Interface: { Address: address.body.Address, AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    t.equal(created.status, 200, `CreateEndpoint ${endpointId.slice(0, 13)} (${created.raw.slice(0, 120)})`);
    const joined = await stack.call('NetworkDriver.Join', {
      NetworkID: NET,
      EndpointID: endpointId,
      SandboxKey: `/var/run/docker/netns/${endpointId.slice(-4)}`,
      Options: {},
    });
    return {
      mac: String((created.body.Interface as { MacAddress?: string } | undefined)?.MacAddress),
      srcName: String((joined.body.InterfaceName as { SrcName: string }).SrcName),
    };
  };

  const first = await start(FIRST);
  t.equal(first.srcName, `tmp${PREFIX}`, 'the first keeps the usual name');
  // The second and third arrive together: each must see the names the other is taking.
  const [second, third] = await Promise.all([start(SECOND), start(THIRD)]);
  const records = [FIRST, SECOND, THIRD].map((id) => stack.endpoints.getEndpoint(id)!);
  t.equal(
    new Set(records.map((r) => r.hostIfName)).size,
    3,
    `three host-side names (${records.map((r) => r.hostIfName).join(', ')})`,
  );
  t.equal(new Set([first.srcName, second.srcName, third.srcName]).size, 3, 'Join hands each its own container side');
  t.equal(new Set([first.mac, second.mac, third.mac]).size, 3, 'three MACs');
  t.equal(new Set(records.map((r) => r.hostIfIndex)).size, 3, 'three links');
  for (const r of records)
    t.ok(/^lxc[0-9a-f]{11}$/.test(r.hostIfName) && r.hostIfName.length <= 15, `${r.hostIfName} is a valid link name`);
  t.equal(stack.datapath.links.size, 3, 'three links in the datapath');

  // Docker's teardown of the second: only its own link goes.
  await stack.call('NetworkDriver.Leave', { NetworkID: NET, EndpointID: SECOND });
  t.equal((await stack.call('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: SECOND })).status, 200);
  t.ok(stack.datapath.links.has(records[0]!.hostIfName), "the first endpoint's veth is still there");
  t.ok(stack.datapath.links.has(records[2]!.hostIfName), "the third endpoint's veth is still there");
  t.notOk(stack.datapath.links.has(records[1]!.hostIfName), "the second's veth is gone");

  // A restart keeps the recorded names (they are not derived again).
  await stack.stop();
  const again = await new PluginStack({ dir: stack.dir, datapath: stack.datapath }).start();
  t.teardown(() => again.stop().catch(() => undefined));
  t.same(
    [FIRST, THIRD].map((id) => again.endpoints.getEndpoint(id)?.hostIfName),
    [records[0]!.hostIfName, records[2]!.hostIfName],
    'both endpoints restored with their own veths',
  );
});
