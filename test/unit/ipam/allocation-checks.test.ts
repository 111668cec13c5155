/**
 * Ipam.checkEndpointAddress with a node store of its own: a container address inside this node's
 * blocks is checked from the node store, so container start passes the check while the cluster
 * store is down; other addresses are checked against the cluster keys last read, and an address
 * nobody allocated is still refused (not an outage error) then.
 */
import t from 'tap';
import { newIpam, openStoreFile, subnetRequest } from './fixtures/ipam-fixture.js';
import { withOutageSwitch } from '../../support/outage-store.js';

const POOL = '198.18.74.0/24';

t.test('the address check works during a cluster store outage', async (t) => {
  const cluster = openStoreFile(t);
  const node = openStoreFile(t);
  const outage = withOutageSwitch(cluster.store, 'etcd http://127.0.0.1:2379');
  const ipam = newIpam(outage.store, { nodeStore: node.store, blockPrefixLength: 29 });
  const { poolId } = await ipam.requestPool(subnetRequest(POOL));
  await ipam.requestAddress({ poolId, address: '', gateway: true });
  await ipam.requestAddress({ poolId, address: '198.18.74.200', gateway: false });
  t.equal((await ipam.requestAddress({ poolId, address: '', gateway: false })).address, '198.18.74.2');

  outage.fail();
  const during = (await ipam.requestAddress({ poolId, address: '', gateway: false })).address;
  await ipam.checkEndpointAddress(POOL, during, 24);
  t.pass(`an address allocated during the outage (${during}) passes`);
  await ipam.checkEndpointAddress(POOL, '198.18.74.200', 24);
  t.pass('a --ip outside the blocks passes from the cluster keys last read');
  await t.rejects(
    ipam.checkEndpointAddress(POOL, '198.18.74.77', 24),
    { code: 'ERR_NOT_ALLOCATED' },
    'an address nobody allocated is refused',
  );
  await t.rejects(
    ipam.checkEndpointAddress(POOL, '198.18.74.1', 24),
    { code: 'ERR_NOT_ALLOCATED', message: /gateway/ },
    'the gateway is refused',
  );
  outage.restore();
});
