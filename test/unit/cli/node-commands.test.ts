/**
 * `cilium node list`, `cilium status --all-nodes`, the NODES column of `cilium identity list` and
 * `cilium version`, as child processes against the real ApiServer; and `-o json` on every verb of
 * the command tree.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import type { ClusterNodeStatus } from '../../../src/cluster/peer-watcher.js';
import { nodeRoutes } from '../../../src/api/node-routes.js';
import { versionRoutes } from '../../../src/api/version-routes.js';
import type { NodeModel, VersionModel } from '../../../src/api/models.js';
import { buildProgram } from '../../../src/cli/main.js';
import { renderNodeList } from '../../../src/cli/node-commands.js';
import { startApi } from '../api/fixtures/api-harness.js';
import { runCli } from './fixtures/run-cli.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const base = { hostname: '', bootId: 'b', startedAt: '2026-03-01T00:00:00.000Z' };
const cluster: ClusterNodeStatus[] = [
  {
    ...base,
    name: 'h1',
    underlayIp: '198.19.0.1',
    tunnel: 'vxlan',
    tunnelPort: 8472,
    blocks: ['198.18.120.0/26'],
    endpoints: 1,
    local: true,
    peer: false,
  },
  {
    ...base,
    name: 'h2',
    underlayIp: '198.19.0.2',
    tunnel: 'vxlan',
    tunnelPort: 8472,
    blocks: ['198.18.120.64/26', '198.18.121.0/26'],
    endpoints: 2,
    local: false,
    peer: true,
  },
  { ...base, name: 'h3', blocks: [], endpoints: 0, local: false, peer: false },
];

async function setup(t: Parameters<typeof startApi>[0]) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-nodecli-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.put('heartbeat/v1/h1', new Date().toISOString());
  await store.put('heartbeat/v1/h2', new Date(Date.now() - 3600_000).toISOString());
  return startApi(t, {
    routes: [nodeRoutes({ peers: { nodeList: () => cluster }, store }), versionRoutes('7.7.7', 'h1')],
  });
}

t.test('node list: one row per node, blocks one per line, reasons under the table', async (t) => {
  const nodes: NodeModel[] = [
    {
      ...base,
      name: 'h1',
      local: true,
      underlayIp: '198.19.0.1',
      routingMode: 'tunnel',
      tunnel: 'vxlan',
      tunnelPort: 8472,
      blocks: ['198.18.120.0/26'],
      endpoints: 1,
      peer: false,
      lastSeen: '',
      lastSeenSecondsAgo: 4,
      health: 'ok',
    },
    {
      ...base,
      name: 'h2',
      local: false,
      underlayIp: '198.19.0.2',
      routingMode: 'native',
      blocks: ['198.18.120.64/26', '198.18.121.0/26'],
      endpoints: 2,
      peer: false,
      health: 'unknown',
      detail: 'no heartbeat stored yet',
    },
  ];
  t.equal(
    renderNodeList(nodes),
    [
      'NAME   UNDERLAY IP   ROUTING             BLOCKS             ENDPOINTS   PEER    HEALTH    LAST SEEN',
      'h1     198.19.0.1    tunnel vxlan:8472   198.18.120.0/26    1           local   ok        4s ago',
      'h2     198.19.0.2    native              198.18.120.64/26   2           no      unknown   -',
      '                                         198.18.121.0/26',
      'h2: no heartbeat stored yet',
      '',
    ].join('\n'),
  );
});

t.test('node list and status --all-nodes through the CLI; -o json', async (t) => {
  const { host } = await setup(t);
  const table = await runCli(['--host', host, 'node', 'list']);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.split('\n');
  t.match(lines[0], /^NAME\s+UNDERLAY IP\s+ROUTING\s+BLOCKS\s+ENDPOINTS\s+PEER\s+HEALTH\s+LAST SEEN$/);
  t.match(lines[1], /^h1\s+198\.19\.0\.1\s+tunnel vxlan:8472\s+198\.18\.120\.0\/26\s+1\s+local\s+ok\s+\d+s ago$/);
  t.match(lines[2], /^h2\s+198\.19\.0\.2\s+tunnel vxlan:8472\s+198\.18\.120\.64\/26\s+2\s+yes\s+stale\s+36\d\ds ago$/);
  t.match(lines[3], /^\s+198\.18\.121\.0\/26$/);
  t.match(lines[4], /^h3\s+-\s+none\s+-\s+0\s+no\s+unknown\s+-$/);
  t.match(lines[5], /^h2: no heartbeat for 36\d\ds/);
  t.match(lines[6], /^h3: no heartbeat stored yet; no underlay address/);

  const json = await runCli(['--host', host, 'node', 'list', '-o', 'json']);
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), [
    { name: 'h1', health: 'ok' },
    { name: 'h2', health: 'stale', peer: true },
    { name: 'h3', health: 'unknown' },
  ]);

  const status = await runCli(['--host', host, 'status', '--all-nodes']);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /^Node: {8}node-1\n/);
  t.match(
    status.stdout,
    new RegExp(
      /\nCluster health: {3}1\/3 nodes ok \(heartbeats in the store\)\n {2}h1 \(local\): ok, last seen /.source +
        /\d+s ago, underlay 198\.19\.0\.1\n {2}h2: stale, last seen 36\d\ds ago, underlay 198\.19\.0\.2 /.source +
        /\(no heartbeat for /.source,
    ),
  );
  const plain = await runCli(['--host', host, 'status', '-o', 'json']);
  t.notOk('nodes' in JSON.parse(plain.stdout), 'no node list without --all-nodes');
});

t.test('identity list shows the nodes holding each identity; version prints both sides', async (t) => {
  const { host, backend } = await setup(t);
  backend.identities = [
    { id: 1, labels: ['reserved:host'], reserved: true, localReferences: 0 },
    { id: 40001, labels: ['container:app=web'], reserved: false, localReferences: 2, nodes: ['h1', 'h2'] },
    { id: 40002, labels: ['container:app=db'], reserved: false, localReferences: 0, nodes: ['h3'] },
    { id: 40003, labels: ['container:app=x'], reserved: false, localReferences: 1 },
  ];
  const ids = await runCli(['--host', host, 'identity', 'list']);
  t.equal(ids.code, 0, ids.stderr);
  t.same(ids.stdout.split('\n'), [
    'ID      LABELS              LOCAL REFS   NODES',
    '1       reserved:host       reserved',
    '40001   container:app=web   2            h1',
    '                                         h2',
    '40002   container:app=db    0            h3',
    '40003   container:app=x     1            ?',
    '',
  ]);

  const version = await runCli(['--host', host, 'version']);
  t.equal(version.code, 0, version.stderr);
  t.equal(
    version.stdout,
    `Client: ${PACKAGE_VERSION} node ${process.version} ${process.platform}/${process.arch}\n` +
      `Daemon: 7.7.7 node ${process.version} ${process.platform}/${process.arch}, node h1, kernel ${release()}\n`,
  );
  const json = await runCli(['--host', host, 'version', '-o', 'json']);
  const parsed = JSON.parse(json.stdout) as { client: { version: string }; daemon: VersionModel };
  t.equal(parsed.client.version, PACKAGE_VERSION);
  t.match(parsed.daemon, { version: '7.7.7', node: 'h1', kernel: release() });
});

t.test('version without a daemon: the client line, then the error', async (t) => {
  const r = await runCli(['--host', 'unix:///nonexistent/cilium.sock', 'version']);
  t.equal(r.code, 1);
  t.match(r.stdout, /^Client: \S+ node /);
  t.match(r.stderr, /cannot reach the cilium-docker daemon .*ERR_DAEMON_UNREACHABLE/);
});

t.test('every verb takes -o json', async (t) => {
  const leaves: string[] = [];
  const walk = (cmd: Command, path: string[]) => {
    if (cmd.commands.length === 0) {
      leaves.push(path.join(' '));
      t.ok(
        cmd.options.some((o) => o.long === '--output'),
        `cilium ${path.join(' ')} has -o`,
      );
    }
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(buildProgram(), []);
  for (const verb of [
    'node list',
    'kvstore get',
    'version',
    'identity list',
    'endpoint list',
    'network list',
    'bpf ipcache list',
    'ip list',
  ])
    t.ok(leaves.includes(verb), `${verb} is a verb`);
});
