/**
 * PeerWatcher with native routing (a route writer given), against the real embedded store: each
 * native peer's blocks become routes via its underlay address and its endpoints keep their
 * identities in the ipcache; this node's blocks, nodes without an underlay and tunnel-mode nodes
 * (which could not receive unencapsulated traffic) get nothing; a node whose record goes (lease
 * expiry) loses its routes; a node back with a new underlay address is routed there. A tunnel-mode
 * watcher, the other way round, ignores native nodes.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PeerWatcher, type PeerRoute, type RemoteEntry } from '../../../src/cluster/peer-watcher.js';
import { networkNumber } from '../../../src/datapath/datapath.js';
import { log } from '../../../src/util/log.js';

async function waitFor(fn: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const nativeNode = (name: string, underlayIp: string | undefined, bootId = 'boot-1') =>
  JSON.stringify({
    name,
    hostname: name,
    bootId,
    startedAt: '',
    blocks: [],
    ...(underlayIp && { underlayIp, routingMode: 'native' }),
  });
const tunnelNode = (name: string, underlayIp: string) =>
  JSON.stringify({
    name,
    hostname: name,
    bootId: 'b',
    startedAt: '',
    blocks: [],
    underlayIp,
    tunnel: 'vxlan',
    tunnelPort: 8472,
  });

async function seed(store: LocalKvStore): Promise<void> {
  await store.put('nodes/v1/me', nativeNode('me', '198.19.250.1'));
  await store.put('nodes/v1/b', nativeNode('b', '198.19.250.2'));
  await store.put('nodes/v1/no-underlay', nativeNode('no-underlay', undefined));
  await store.put('nodes/v1/tun', tunnelNode('tun', '198.19.250.4'));
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.0/26', 'me');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.64/26', 'b');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.128/26', 'no-underlay');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.192/26', 'tun');
  await store.put('ip/v1/198.18.120.2', JSON.stringify({ identity: 300, node: 'me', endpoint: 1 }));
  await store.put('ip/v1/198.18.120.66', JSON.stringify({ identity: 400, node: 'b', endpoint: 1 }));
  await store.put('ip/v1/198.18.120.194', JSON.stringify({ identity: 600, node: 'tun', endpoint: 1 }));
}

function openStore(t: Test): LocalKvStore {
  const dir = mkdtempSync(join(tmpdir(), 'cd-peers-native-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

t.test('native: routes to native peers blocks via their underlay, removed when the peer leaves', async (t) => {
  const store = openStore(t);
  let kernel: RemoteEntry[] = [];
  let routes: PeerRoute[] = [];
  const datapath = {
    async syncRemoteEntries(entries: RemoteEntry[]) {
      kernel = [...entries].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
      return { written: entries.length, deleted: 0 };
    },
  };
  const routeWriter = {
    async syncPeerRoutes(desired: PeerRoute[]) {
      routes = [...desired].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
      return { written: desired.length, deleted: 0 };
    },
  };
  await seed(store);
  const watcher = new PeerWatcher({
    store,
    nodeName: 'me',
    datapath,
    networkNumber,
    routes: routeWriter,
    routingMode: 'native',
    log,
  });
  t.teardown(() => watcher.stop());
  await watcher.start();
  const net = networkNumber('198.18.120.0/24');
  t.same(
    routes,
    [{ prefix: '198.18.120.64/26', via: '198.19.250.2' }],
    "only b's block: not ours, not the node without an underlay, not the tunnel node",
  );
  t.same(
    kernel,
    [
      { prefix: '198.18.120.64/26', identity: 2, netId: net, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.18.120.66/32', identity: 400, netId: net, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.19.250.2/32', identity: 6, netId: 0, tunnelEndpoint: '198.19.250.2' },
    ],
    "b's endpoint keeps its identity in the ipcache (the receiving side's policy needs it); " +
      "b's own address is the remote node",
  );

  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.121.0/26', 'b');
  await waitFor(() => routes.length === 2, 5000, 'second block of b');
  t.same(
    routes.map((r) => r.prefix),
    ['198.18.120.64/26', '198.18.121.0/26'],
    'a block b claims later gets its route',
  );

  await store.delete('nodes/v1/b');
  await waitFor(() => routes.length === 0, 5000, 'b removed');
  t.same(kernel, [], 'b left (record gone): no routes, no entries');

  await store.put('nodes/v1/b', nativeNode('b', '198.19.250.22', 'boot-2'));
  await waitFor(() => routes.length === 2, 5000, 'b back');
  t.ok(
    routes.every((r) => r.via === '198.19.250.22'),
    'b came back on a new underlay address: routed there',
  );
});

t.test('tunnel mode ignores native peers (no tunnel device to decapsulate on their side)', async (t) => {
  const store = openStore(t);
  let kernel: RemoteEntry[] = [];
  const datapath = {
    async syncRemoteEntries(entries: RemoteEntry[]) {
      kernel = entries;
      return { written: entries.length, deleted: 0 };
    },
  };
  await seed(store);
  const watcher = new PeerWatcher({ store, nodeName: 'me', datapath, networkNumber, log });
  t.teardown(() => watcher.stop());
  await watcher.start();
  t.same(
    kernel.map((e) => e.prefix).sort(),
    ['198.18.120.192/26', '198.18.120.194/32', '198.19.250.4/32'],
    'only the tunnel node (its block, its endpoint, its own address)',
  );
  t.same(watcher.desiredRoutes(), [], 'and no routes');
});
