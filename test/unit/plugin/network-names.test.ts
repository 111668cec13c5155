/**
 * Network names through Docker's wire protocol: two plugin stacks (two hosts) on one store,
 * called over their Unix sockets the way dockerd calls them. `--ipam-opt cilium.network` arrives
 * as RequestPool `Options`; a conflict must come back as an IPAM `{"Error": ...}` on HTTP 200 (the
 * only form dockerd shows for IPAM calls) and as a NetworkDriver `{"Err": ...}` for
 * CreateNetwork/CreateEndpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PluginStack } from '../../support/plugin-harness.js';

const NET_A = 'a'.repeat(64);
const NET_B = 'b'.repeat(64);
const NET_B2 = 'c'.repeat(64);
const EP = 'e'.repeat(64);

async function twoHosts(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-plugin-names-'));
  const store = LocalKvStore.open({ path: join(dir, 'shared.db') });
  const a = await new PluginStack({ nodeName: 'node-a', store }).start();
  const b = await new PluginStack({ nodeName: 'node-b', store }).start();
  t.teardown(async () => {
    await a.destroy();
    await b.destroy();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { a, b };
}

/** The claim's status once it is `want`, or whatever it is after ~5 s. */
async function statusSoon(stack: PluginStack, networkId: string, want: string): Promise<string | undefined> {
  for (let i = 0; i < 250 && stack.networks.claimOf(networkId)?.status !== want; i++)
    await new Promise((r) => setTimeout(r, 20));
  return stack.networks.claimOf(networkId)?.status;
}

/** RequestPool -> gateway RequestAddress -> CreateNetwork, as `docker network create` sends them. */
async function createNetwork(
  stack: PluginStack,
  networkId: string,
  pool: string,
  options: Record<string, string>,
  internal = false,
) {
  const rp = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: pool,
    SubPool: '',
    Options: options,
    V6: false,
  });
  if (rp.body.Error) return { pool: rp };
  const gw = await stack.call('IpamDriver.RequestAddress', {
    PoolID: rp.body.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  const generic: Record<string, unknown> = {
    'com.docker.network.enable_ipv6': false,
    'com.docker.network.generic': {},
  };
  if (internal) generic['com.docker.network.internal'] = true;
  const cn = await stack.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: generic,
    IPv4Data: [{ AddressSpace: 'CiliumLocal', Gateway: gw.body.Address, Pool: rp.body.Pool }],
    IPv6Data: [],
  });
  return { pool: rp, gateway: gw, network: cn };
}

t.test("RequestPool with cilium.network: the second host without --subnet gets the first host's pool", async (t) => {
  const { a, b } = await twoHosts(t);
  const first = await createNetwork(a, NET_A, '198.18.90.0/24', { 'cilium.network': 'app' });
  t.equal(first.network?.status, 200);
  const second = await createNetwork(b, NET_B, '', { 'cilium.network': 'app' });
  t.same(second.pool.body, { PoolID: '198.18.90.0-24', Pool: '198.18.90.0/24', Data: {} });
  t.equal(second.gateway?.body.Address, '198.18.90.1/24');
  t.equal(second.network?.status, 200);
  t.equal(b.endpoints.getNetwork(NET_B)?.clusterName, 'app', 'the local network record keeps its cluster name');
});

t.test(
  'a conflicting --subnet is an IPAM Error on HTTP 200; a conflicting --internal fails CreateNetwork with Err',
  async (t) => {
    const { a, b } = await twoHosts(t);
    await createNetwork(a, NET_A, '198.18.90.0/24', { 'cilium.network': 'app' });
    const refused = await createNetwork(b, NET_B, '198.18.91.0/24', { 'cilium.network': 'app' });
    t.equal(refused.pool.status, 200, 'IPAM errors travel on 200');
    t.match(refused.pool.body, {
      Error: /^network "app" conflicts with the cluster record networks\/v1\/app \(created by node node-a/,
    });
    t.notOk('Err' in refused.pool.body, 'dockerd ignores Err on a 200 IPAM reply');

    const internal = await createNetwork(b, NET_B, '198.18.90.0/24', { 'cilium.network': 'app' }, true);
    t.equal(internal.network?.status, 409);
    t.match(internal.network?.body, { Err: /not --internal in the cluster, --internal on node node-b/ });
    // dockerd rolls the failed create back: gateway release, then ReleasePool.
    t.equal((await b.call('IpamDriver.ReleasePool', { PoolID: internal.pool.body.PoolID })).status, 200);
    t.same(
      (await a.networks.list())[0]?.users.map((u) => u.node),
      ['node-a'],
      'the refused host holds no user key',
    );
  },
);

t.test('a name learnt later that conflicts refuses CreateEndpoint with Err', async (t) => {
  const { a, b } = await twoHosts(t);
  await createNetwork(a, NET_A, '198.18.92.0/24', {});
  await createNetwork(b, NET_B2, '198.18.93.0/24', {});
  // The watcher hands names over; registration runs in the background (never blocking an attach).
  await a.endpoints.setNetworkName(NET_A, 'db');
  t.equal(await statusSoon(a, NET_A, 'agreed'), 'agreed');
  await b.endpoints.setNetworkName(NET_B2, 'db');
  t.equal(await statusSoon(b, NET_B2, 'conflict'), 'conflict');
  const address = await b.call('IpamDriver.RequestAddress', { PoolID: '198.18.93.0-24', Address: '', Options: {} });
  const reply = await b.call('NetworkDriver.CreateEndpoint', {
    NetworkID: NET_B2,
    EndpointID: EP,
    Interface: { Address: address.body.Address, AddressIPv6: '', MacAddress: '' },
    Options: {},
  });
  t.equal(reply.status, 409);
  t.match(reply.body, {
    Err: new RegExp(
      /^network "db" conflicts with the cluster record networks\/v1\/db \(created by node node-a /.source +
        /.*subnet 198\.18\.92\.0\/24 in the cluster, 198\.18\.93\.0\/24 on node node-b/.source,
    ),
  });
  t.same(b.endpoints.listEndpoints(), [], 'no endpoint made');
});
