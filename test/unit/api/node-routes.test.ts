/**
 * `/v1/node` over a real PeerWatcher and embedded store: every node with a record (this one
 * included), its underlay address, routing mode, blocks and endpoints, whether it is programmed as
 * a peer and why not, and its health from its heartbeat (ok, stale, unknown). Also `/v1/version`.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PeerWatcher } from '../../../src/cluster/peer-watcher.js';
import { networkNumber } from '../../../src/datapath/bpf-datapath.js';
import { nodeModels, nodeRoutes } from '../../../src/api/node-routes.js';
import { versionRoutes } from '../../../src/api/version-routes.js';
import { log } from '../../../src/util/log.js';
import { startApi } from './fixtures/api-harness.js';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();

const record = (name: string, extra: Record<string, unknown>) =>
  JSON.stringify({
    name,
    hostname: `${name}.lab`,
    bootId: `boot-${name}`,
    startedAt: '2026-03-01T00:00:00.000Z',
    blocks: [],
    ...extra,
  });

async function setup(t: Parameters<typeof startApi>[0]) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-noderoutes-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  const peers = new PeerWatcher({
    store,
    nodeName: 'h1',
    datapath: { syncRemoteEntries: async (entries) => ({ written: entries.length, deleted: 0 }) },
    networkNumber,
    log: log.child({ component: 'peers-test' }, { level: 'silent' }),
  });
  t.teardown(async () => {
    peers.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const tunnel = { tunnel: 'vxlan', tunnelPort: 8472 };
  await store.put('nodes/v1/h1', record('h1', { underlayIp: '198.19.0.1', ...tunnel }));
  await store.put('nodes/v1/h2', record('h2', { underlayIp: '198.19.0.2', ...tunnel }));
  await store.put('nodes/v1/h3', record('h3', { underlayIp: '198.19.0.3', routingMode: 'native' }));
  await store.put('nodes/v1/h4', record('h4', {}));
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.0/26', 'h1');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.64/26', 'h2');
  await store.put('ipam/v1/blocks/198.18.121.0-24/198.18.121.0/26', 'h2');
  await store.put('ip/v1/198.18.120.66', JSON.stringify({ identity: 40001, node: 'h2', endpoint: 3 }));
  await store.put('ip/v1/198.18.120.67', JSON.stringify({ identity: 40001, node: 'h2', endpoint: 4 }));
  await store.put('heartbeat/v1/h1', ago(5));
  await store.put('heartbeat/v1/h2', ago(181));
  await store.put('heartbeat/v1/h3', ago(-30)); // its clock runs ahead of ours
  await peers.start();
  const api = await startApi(t, {
    routes: [nodeRoutes({ peers, store, now: () => NOW }), versionRoutes('9.9.9', 'h1')],
  });
  return { store, peers, ...api };
}

t.test('GET /v1/node lists every node with its record, blocks, peer state and heartbeat health', async (t) => {
  const { client } = await setup(t);
  const nodes = await client.listNodes();
  t.same(
    nodes.map((n) => n.name),
    ['h1', 'h2', 'h3', 'h4'],
    'sorted, this node included',
  );
  const [h1, h2, h3, h4] = nodes;
  t.same(h1, {
    name: 'h1',
    local: true,
    hostname: 'h1.lab',
    underlayIp: '198.19.0.1',
    routingMode: 'tunnel',
    tunnel: 'vxlan',
    tunnelPort: 8472,
    blocks: ['198.18.120.0/26'],
    endpoints: 0,
    bootId: 'boot-h1',
    startedAt: '2026-03-01T00:00:00.000Z',
    peer: false,
    lastSeen: ago(5),
    lastSeenSecondsAgo: 5,
    health: 'ok',
  });
  t.match(h2, {
    local: false,
    peer: true,
    routingMode: 'tunnel',
    blocks: ['198.18.120.64/26', '198.18.121.0/26'],
    endpoints: 2,
    health: 'stale',
    lastSeenSecondsAgo: 181,
  });
  t.match(h2!.detail, /no heartbeat for 181s \(one is due every 60s\)/);
  t.match(h3, { peer: false, routingMode: 'native', health: 'ok', lastSeenSecondsAgo: 0 });
  t.match(h3!.detail, /routing mode native differs from this node's \(tunnel\): not programmed as a peer/);
  t.match(h4, { routingMode: 'none', health: 'unknown', peer: false });
  t.notOk('underlayIp' in h4!);
  t.match(h4!.detail, /no heartbeat stored yet; no underlay address/);
});

t.test('a node whose record goes (lease expired) leaves the list', async (t) => {
  const { store, client } = await setup(t);
  await store.delete('nodes/v1/h2');
  const deadline = Date.now() + 10_000;
  while ((await client.listNodes()).some((n) => n.name === 'h2')) {
    if (Date.now() > deadline) throw new Error('h2 still listed');
    await new Promise((r) => setTimeout(r, 50));
  }
  t.same(
    (await client.listNodes()).map((n) => n.name),
    ['h1', 'h3', 'h4'],
  );
});

t.test('heartbeats that cannot be read make every node unknown, with the reason', async (t) => {
  const models = nodeModels(
    [{ name: 'h1', hostname: '', bootId: 'b', startedAt: '', blocks: [], endpoints: 0, local: true, peer: false }],
    new Error('kvstore unreachable'),
    NOW,
  );
  t.match(models, [{ name: 'h1', health: 'unknown', detail: 'heartbeats could not be read: kvstore unreachable' }]);
  const garbage = nodeModels(
    [{ name: 'h1', hostname: '', bootId: 'b', startedAt: '', blocks: [], endpoints: 0, local: true, peer: false }],
    new Map([['h1', 'yesterday']]),
    NOW,
  );
  t.match(garbage, [{ health: 'unknown', detail: 'heartbeat "yesterday" is not a time' }]);
});

t.test('GET /v1/version: the daemon version, node and kernel', async (t) => {
  const { client } = await setup(t);
  const v = await client.version();
  t.match(v, {
    version: '9.9.9',
    node: 'h1',
    nodejs: process.version,
    platform: `${process.platform}/${process.arch}`,
    kernel: release(),
  });
  t.type(v.kernelVersion, 'string');
});
