/**
 * The driver takes only what the IPAM handed out, on the raw plugin socket: CreateEndpoint with an
 * address nobody requested, another endpoint's address, the host's underlay address, the gateway,
 * an aux reservation, another node's address or a wrong prefix length is refused with Docker's
 * error shape and changes nothing; CreateNetwork with a pool RequestPool never handed out (or a
 * gateway it did not allocate) likewise. Docker's real order (RequestAddress before
 * CreateEndpoint, --ip, aux addresses, retries, restarts) keeps working.
 */
import t from 'tap';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PluginStack, type PluginReply } from '../../support/plugin-harness.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NET = 'a'.repeat(64);
const OTHER_NET = 'b'.repeat(64);
const epId = (n: number): string => n.toString(16).padStart(64, 'e');

async function createNetwork(
  stack: PluginStack,
  networkId: string,
  subnet: string,
  aux: string[] = [],
): Promise<string> {
  const pool = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: subnet,
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
  for (const a of aux) await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: a, Options: null });
  const created = await stack.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: {},
    IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: subnet, Gateway: String(gw.body.Address) }],
    IPv6Data: [],
  });
  if (created.status !== 200) throw new Error(`CreateNetwork: ${created.raw}`);
  return poolId;
}

function createEndpoint(
  stack: PluginStack,
  endpointId: string,
  address: string,
  networkId = NET,
): Promise<PluginReply> {
  return stack.call('NetworkDriver.CreateEndpoint', {
    NetworkID: networkId,
    EndpointID: endpointId,
    Interface: { Address: address, AddressIPv6: '', MacAddress: '' },
    Options: {},
  });
}

async function requestAddress(stack: PluginStack, poolId: string, address = ''): Promise<string> {
  const r = await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: address, Options: null });
  if (typeof r.body.Address !== 'string') throw new Error(`RequestAddress: ${r.raw}`);
  return r.body.Address;
}

async function snapshot(stack: PluginStack): Promise<string> {
  const { pairs } = await stack.store.list('');
  return JSON.stringify([pairs.map((p) => [p.key, p.value]), [...stack.datapath.links.keys()]]);
}

t.test('CreateEndpoint takes only an address the IPAM handed out for that network to this node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-alloc-'));
  const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
  const stack = await new PluginStack({ store }).start();
  const nodeB = await new PluginStack({ store, nodeName: 'node-b' }).start();
  let again: PluginStack | undefined;
  t.teardown(async () => {
    await again?.stop().catch(() => undefined);
    await stack.destroy();
    await nodeB.destroy();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const poolId = await createNetwork(stack, NET, '198.18.30.0/24', ['198.18.30.10']);
  const otherPool = await createNetwork(stack, OTHER_NET, '198.18.31.0/24');
  const first = await requestAddress(stack, poolId);
  t.equal(first, '198.18.30.2/24');
  t.equal((await createEndpoint(stack, epId(1), first)).status, 200, 'the address RequestAddress gave');
  t.equal((await createEndpoint(stack, epId(1), first)).status, 200, 'a retried CreateEndpoint of the same endpoint');
  const otherNetAddress = await requestAddress(stack, otherPool);
  // node-b joins the pool (the same network on another host) and allocates in its own block.
  await createNetwork(nodeB, NET, '198.18.30.0/24');
  const nodeBAddress = await requestAddress(nodeB, poolId);
  const before = await snapshot(stack);

  const refused: Array<[string, string, RegExp]> = [
    ['an address nobody requested', '198.18.30.77/24', /198\.18\.30\.77 was not allocated in pool 198\.18\.30\.0\/24/],
    ["the host's underlay address", '198.19.250.1/24', /198\.19\.250\.1 was not allocated in pool 198\.18\.30\.0\/24/],
    ["the network's gateway", '198.18.30.1/24', /gateway/],
    ['an --aux-address reservation', '198.18.30.10/24', /aux-address/],
    ["another network's address", otherNetAddress, /was not allocated in pool 198\.18\.30\.0\/24/],
    ["another node's address", nodeBAddress, /allocated by node node-b/],
    ['a wrong prefix length', '198.18.30.2/32', /prefix length/],
  ];
  for (const [what, address, message] of refused) {
    const r = await createEndpoint(stack, epId(2), address);
    t.equal(r.status, 400, `${what} (${address}): refused`);
    t.match(String(r.body.Err), message, `${what}: says why (${String(r.body.Err).slice(0, 120)})`);
  }
  const stolen = await createEndpoint(stack, epId(2), first);
  t.equal(stolen.status, 409, "another endpoint's address is refused");
  t.match(
    String(stolen.body.Err),
    new RegExp(`endpoint ${epId(1).slice(0, 12)} on this node holds it`),
    'names the holder',
  );
  t.equal(await snapshot(stack), before, 'no refused call changed the store or made a link');
  t.notOk(stack.endpoints.getEndpoint(epId(2)), 'no endpoint record');
  t.equal(stack.endpoints.getEndpoint(epId(1))?.hostIfName, `lxc${epId(1).slice(0, 11)}`, 'the holder keeps its veth');

  // Two CreateEndpoint calls for one allocated address at once: exactly one gets it.
  const shared = await requestAddress(stack, poolId);
  const race = await Promise.all([createEndpoint(stack, epId(3), shared), createEndpoint(stack, epId(4), shared)]);
  t.same(race.map((r) => r.status).sort(), [200, 409], 'concurrent claims of one address: one wins');

  // --ip: a static RequestAddress, then CreateEndpoint with it.
  const fixed = await requestAddress(stack, poolId, '198.18.30.50');
  t.equal(fixed, '198.18.30.50/24');
  t.equal((await createEndpoint(stack, epId(5), fixed)).status, 200, 'a --ip address');

  // Teardown in Docker's order, then the address is no longer ours to use until requested again.
  t.equal((await stack.call('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: epId(1) })).status, 200);
  t.equal((await stack.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '198.18.30.2' })).status, 200);
  t.equal((await createEndpoint(stack, epId(6), first)).status, 400, 'a released address is refused');
  t.equal(await requestAddress(stack, poolId), first, 'requested again');
  t.equal((await createEndpoint(stack, epId(6), first)).status, 200, 'and then accepted');

  // A daemon restart keeps the allocations and the holders.
  await stack.stop();
  again = await new PluginStack({ dir: stack.dir, store, datapath: stack.datapath }).start();
  t.equal(
    (await createEndpoint(again, epId(7), first)).status,
    409,
    'after a restart, a restored endpoint still holds its address',
  );
  const next = await requestAddress(again, poolId);
  t.equal((await createEndpoint(again, epId(7), next)).status, 200, 'after a restart, a new address is accepted');
});

t.test('CreateNetwork takes only a pool RequestPool handed out to this node, with its gateway', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-alloc-'));
  const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
  const stack = await new PluginStack({ store }).start();
  const nodeB = await new PluginStack({ store, nodeName: 'node-b' }).start();
  t.teardown(async () => {
    await stack.destroy();
    await nodeB.destroy();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const createNetworkCall = (networkId: string, pool: string, gateway: string): Promise<PluginReply> =>
    stack.call('NetworkDriver.CreateNetwork', {
      NetworkID: networkId,
      Options: {},
      IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: pool, Gateway: gateway }],
      IPv6Data: [],
    });

  const never = await createNetworkCall(NET, '198.18.40.0/24', '198.18.40.1/24');
  t.equal(never.status, 400, 'a pool nobody requested');
  t.match(String(never.body.Err), /pool 198\.18\.40\.0\/24 was not handed out to node node-a/);
  // node-b's pool is not this node's until this node asks for it.
  await createNetwork(nodeB, OTHER_NET, '198.18.41.0/24');
  t.equal((await createNetworkCall(NET, '198.18.41.0/24', '198.18.41.1/24')).status, 400, "another node's pool");
  t.equal(
    (await createNetworkCall(NET, '198.18.41.5/24', '198.18.41.1/24')).status,
    400,
    'a pool written with host bits',
  );
  const pool = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: '198.18.42.0/24',
    SubPool: '',
    Options: {},
    V6: false,
  });
  const gatewayless = await createNetworkCall(NET, '198.18.42.0/24', '198.18.42.9/24');
  t.equal(gatewayless.status, 400, 'a gateway the IPAM did not allocate');
  t.match(
    String(gatewayless.body.Err),
    /gateway 198\.18\.42\.9 is not the gateway allocated in pool 198\.18\.42\.0\/24 \(none allocated yet\)/,
  );
  t.equal(stack.endpoints.listNetworks().length, 0, 'no network recorded');
  const gw = await stack.call('IpamDriver.RequestAddress', {
    PoolID: pool.body.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  t.equal((await createNetworkCall(NET, '198.18.42.0/24', '198.18.42.9/24')).status, 400, 'still not that gateway');
  t.equal(
    (await createNetworkCall(NET, '198.18.42.0/24', String(gw.body.Address))).status,
    200,
    "Docker's order: RequestPool, gateway, CreateNetwork",
  );
  t.equal(
    (await createNetworkCall(NET, '198.18.42.0/24', String(gw.body.Address))).status,
    200,
    'a retried CreateNetwork',
  );
  // Joining a pool another node created: RequestPool then the recorded gateway.
  const joined = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: '198.18.41.0/24',
    SubPool: '',
    Options: {},
    V6: false,
  });
  const joinedGw = await stack.call('IpamDriver.RequestAddress', {
    PoolID: joined.body.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  t.equal(
    (await createNetworkCall(OTHER_NET, '198.18.41.0/24', String(joinedGw.body.Address))).status,
    200,
    'the same network on a second host',
  );
});
