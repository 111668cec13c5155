/**
 * `cilium network list`: the CLI as a child process against the real ApiServer (fake backend):
 * the table with its STATUS column, the reason of a conflict under the table, and `-o json`.
 */
import t from 'tap';
import type { NetworkModel } from '../../../src/api/models.js';
import { startApi } from '../api/fixtures/api-harness.js';
import { runCli } from './fixtures/run-cli.js';

const CONFLICT =
  'network "db" conflicts with the cluster record networks/v1/db (created by node node-a at ' +
  '2026-01-01T00:00:00.000Z): subnet 198.18.42.0/24 in the cluster, ' +
  '198.18.43.0/24 on node node-b; remove this network';

const networks: NetworkModel[] = [
  {
    name: 'app',
    networkId: 'a'.repeat(64),
    subnet: '198.18.40.0/24',
    gateway: '198.18.40.1',
    internal: false,
    createdBy: 'node-a',
    createdAt: '2026-01-01T00:00:00.000Z',
    nodes: ['node-a', 'node-b'],
    status: 'ok',
  },
  {
    name: 'db',
    networkId: 'b'.repeat(64),
    subnet: '198.18.43.0/24',
    gateway: '198.18.43.1',
    internal: true,
    createdBy: 'node-a',
    nodes: ['node-a'],
    status: 'conflict',
    detail: CONFLICT,
  },
  {
    name: 'web',
    subnet: '198.18.44.0/24',
    ipRange: '198.18.44.128/25',
    gateway: '198.18.44.1',
    createdBy: 'node-c',
    nodes: ['node-c'],
    status: 'remote',
  },
];

t.test('network list: one row per network with its status; conflicts explained under the table', async (t) => {
  const { host, backend } = await startApi(t);
  backend.networks = networks;
  const r = await runCli(['--host', host, 'network', 'list']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.match(lines[0], /^NAME\s+NETWORK ID\s+SUBNET\s+IP RANGE\s+GATEWAY\s+INTERNAL\s+CREATED BY\s+NODES\s+STATUS$/);
  t.match(lines[1], /^app\s+aaaaaaaaaaaa\s+198\.18\.40\.0\/24\s+198\.18\.40\.1\s+node-a\s+node-a,node-b\s+ok$/);
  t.match(lines[2], /^db\s+bbbbbbbbbbbb\s+198\.18\.43\.0\/24\s+198\.18\.43\.1\s+yes\s+node-a\s+node-a\s+conflict$/);
  t.match(lines[3], /^web\s+198\.18\.44\.0\/24\s+198\.18\.44\.128\/25\s+198\.18\.44\.1\s+node-c\s+node-c\s+remote$/);
  t.equal(lines[4], `db: ${CONFLICT}`);
});

t.test('network list -o json prints the models', async (t) => {
  const { host, backend } = await startApi(t);
  backend.networks = networks;
  const r = await runCli(['--host', host, 'network', 'list', '-o', 'json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), networks);
});
