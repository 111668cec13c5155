/**
 * PeerWatcher against the real embedded store, with a recording datapath: remote endpoints become
 * /32 entries with their identity, network and the node's underlay address; remote blocks become
 * world entries and routes into the tunnel; a peer's underlay address becomes a remote-node entry
 * tunnelled to itself; this node's own keys and nodes without an underlay are ignored; a node whose
 * record goes (lease expiry) loses every entry; a node that comes back with a new boot id and a
 * new underlay address is re-learned; a re-list repairs state the watch missed.
 */
import t from 'tap';
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

const node = (name: string, underlayIp: string | undefined, bootId = 'boot-1') =>
  JSON.stringify({
    name,
    hostname: name,
    bootId,
    startedAt: '',
    blocks: [],
    ...(underlayIp && { underlayIp, tunnel: 'vxlan', tunnelPort: 8472 }),
  });

t.test('programs remote endpoints and blocks, forgets departed nodes, re-learns returning ones', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-peers-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    watcher.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let kernel: RemoteEntry[] = [];
  let syncs = 0;
  const datapath = {
    async syncRemoteEntries(entries: RemoteEntry[]) {
      syncs++;
      kernel = [...entries].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
      return { written: entries.length, deleted: 0 };
    },
  };
  await store.put('nodes/v1/me', node('me', '198.19.250.1'));
  await store.put('nodes/v1/b', node('b', '198.19.250.2'));
  await store.put('nodes/v1/no-overlay', node('no-overlay', undefined));
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.0/26', 'me');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.64/26', 'b');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.128/26', 'no-overlay');
  await store.put('ip/v1/198.18.120.2', JSON.stringify({ identity: 300, node: 'me', endpoint: 1 }));
  await store.put('ip/v1/198.18.120.66', JSON.stringify({ identity: 400, node: 'b', endpoint: 1 }));
  await store.put('ip/v1/198.18.120.130', JSON.stringify({ identity: 500, node: 'no-overlay', endpoint: 1 }));

  let routes: PeerRoute[] = [];
  const routeWriter = {
    async syncPeerRoutes(desired: PeerRoute[]) {
      routes = [...desired];
      return { written: desired.length, deleted: 0 };
    },
  };
  const watcher = new PeerWatcher({
    store,
    nodeName: 'me',
    datapath,
    networkNumber,
    routes: routeWriter,
    routingMode: 'tunnel',
    log,
  });
  await watcher.start();
  const net = networkNumber('198.18.120.0/24');
  t.same(
    kernel,
    [
      { prefix: '198.18.120.64/26', identity: 2, netId: net, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.18.120.66/32', identity: 400, netId: net, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.19.250.2/32', identity: 6, netId: 0, tunnelEndpoint: '198.19.250.2' },
    ],
    'only b: its block (world), its endpoint and its own address (remote-node); not ours, ' +
      'not the node without an underlay',
  );
  t.same(
    routes,
    [{ prefix: '198.18.120.64/26', via: '198.19.250.2' }],
    "b's block is routed (into the tunnel, for the host's own traffic)",
  );
  t.same(
    watcher.peers().find((p) => p.name === 'b'),
    {
      name: 'b',
      underlayIp: '198.19.250.2',
      tunnel: 'vxlan',
      bootId: 'boot-1',
      blocks: ['198.18.120.64/26'],
      endpoints: 1,
    },
  );

  await store.put('ip/v1/198.18.120.67', JSON.stringify({ identity: 401, node: 'b', endpoint: 2 }));
  await waitFor(() => kernel.some((e) => e.prefix === '198.18.120.67/32'), 5000, 'new remote endpoint');
  t.pass('a new remote endpoint arrives through the watch');

  // b's lease expires: its record and its leased ip keys are deleted.
  await store.delete('nodes/v1/b');
  await waitFor(() => kernel.length === 0, 5000, 'b removed');
  t.same(kernel, [], 'every entry pointing at b is gone with its record');
  await waitFor(() => routes.length === 0, 5000, "b's route removed");
  t.pass("and its block's route");

  // b reboots: new boot id, new underlay address.
  await store.put('nodes/v1/b', node('b', '198.19.250.12', 'boot-2'));
  await waitFor(
    () => kernel.length === 4 && kernel.every((e) => e.tunnelEndpoint === '198.19.250.12'),
    5000,
    'b re-learned',
  );
  t.ok(
    kernel.some((e) => e.prefix === '198.19.250.12/32' && e.identity === 6),
    'its new address is the remote node',
  );
  t.same(routes, [{ prefix: '198.18.120.64/26', via: '198.19.250.12' }], 'its block routed to the new address');
  t.pass('b re-learned at its new underlay address');

  // A change the watch never saw (written behind its back and then repaired by a re-list).
  watcher.stop();
  await store.delete('ip/v1/198.18.120.67');
  const before = syncs;
  await watcher.relist();
  t.ok(syncs > before, 're-list synced');
  t.notOk(
    kernel.some((e) => e.prefix === '198.18.120.67/32'),
    're-list dropped the entry the watch missed',
  );
});

t.test('remote endpoint names for the DNS resolver: named entries of live peers only, gone with the key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-peers-names-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  const watcher = new PeerWatcher({
    store,
    nodeName: 'me',
    datapath: { syncRemoteEntries: async (e) => ({ written: e.length, deleted: 0 }) },
    networkNumber,
    log,
  });
  t.teardown(async () => {
    watcher.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.put('nodes/v1/me', node('me', '198.19.250.1'));
  await store.put('nodes/v1/b', node('b', '198.19.250.2'));
  await store.put(
    'ip/v1/198.18.120.2',
    JSON.stringify({ identity: 300, node: 'me', endpoint: 1, name: 'mine', network: 'ovl' }),
  );
  await store.put(
    'ip/v1/198.18.120.66',
    JSON.stringify({ identity: 400, node: 'b', endpoint: 1, name: 'web', network: 'ovl' }),
  );
  await store.put('ip/v1/198.18.120.67', JSON.stringify({ identity: 401, node: 'b', endpoint: 2 }));
  await store.put(
    'ip/v1/198.18.120.200',
    JSON.stringify({ identity: 402, node: 'gone', endpoint: 1, name: 'ghost', network: 'ovl' }),
  );
  await watcher.start();
  t.same(
    watcher.remoteNames(),
    [{ ip: '198.18.120.66', name: 'web', network: 'ovl', node: 'b' }],
    "b's named entry; not ours, not unnamed, not a node without a record",
  );
  // Aliases come with the entry; what is not a string (or absurdly long) is dropped, at most 64 kept.
  await store.put(
    'ip/v1/198.18.120.66',
    JSON.stringify({
      identity: 400,
      node: 'b',
      endpoint: 1,
      name: 'web',
      aliases: ['www', 7, '', 'x'.repeat(300), 'front'],
      network: 'ovl',
    }),
  );
  await waitFor(() => watcher.remoteNames()[0]?.aliases !== undefined, 5000, 'aliases learned');
  t.same(
    watcher.remoteNames(),
    [{ ip: '198.18.120.66', name: 'web', aliases: ['www', 'front'], network: 'ovl', node: 'b' }],
    'the string aliases',
  );
  await store.put(
    'ip/v1/198.18.120.66',
    JSON.stringify({
      identity: 400,
      node: 'b',
      endpoint: 1,
      name: 'web',
      aliases: Array.from({ length: 100 }, (_, i) => `a${i}`),
      network: 'ovl',
    }),
  );
  await waitFor(() => watcher.remoteNames()[0]?.aliases?.length === 64, 5000, '64 aliases kept');
  t.pass('at most 64 aliases of one entry');
  await store.delete('ip/v1/198.18.120.66');
  await waitFor(() => watcher.remoteNames().length === 0, 5000, 'name gone');
  t.pass('a deleted key takes its name with it');
});
