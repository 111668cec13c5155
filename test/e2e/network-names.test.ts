/**
 * Networks by name across hosts, with the real docker CLI: two lab hosts (each its own dockerd
 * and our daemon beside it) share one real etcd. etcd runs in host A and listens on loopback and
 * on a /30 veth link between the two hosts' namespaces (198.19.254.0/30, inside 198.18.0.0/15),
 * which is the only path between them; nothing else leaves the namespaces.
 *
 * - `--ipam-opt cilium.network=<name>`: host B without --subnet gets host A's subnet, a different
 *   --subnet fails `docker network create` with the conflict message;
 * - without the option: the daemon learns the name from Docker's network events; the same name
 *   and subnet agree, a different subnet shows as `conflict` in `cilium network list` and
 *   `docker run` on that network fails with the conflict;
 * - keys deleted behind the daemons' backs come back with the resync, a restarted daemon
 *   re-adopts its names (and its conflicts);
 * - `docker network rm` on both hosts removes `networks/v1/<name>` from etcd.
 */
import t from 'tap';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { runCommand } from '../lab/exec.js';
import type { LabProcess } from '../lab/lab-process.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import { EtcdGateway } from '../support/etcd-gateway.js';
import type { EndpointModel, NetworkModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const LINK_A = '198.19.254.1';
const LINK_B = '198.19.254.2';
const ETCD_PORT = 23795;
const ETCD_URL = `http://${LINK_A}:${ETCD_PORT}`;

let hostA: DockerHost;
let hostB: DockerHost;
let daemonA: CiliumDaemon;
let daemonB: CiliumDaemon;
let etcd: LabProcess | undefined;

/**
 * etcd's JSON gateway, from inside host A (busybox wget); keys as the daemons name them,
 * under their default `--kvstore-opt prefix`.
 */
const gateway = new EtcdGateway((argv) => hostA.exec(argv, { timeoutMs: 15_000 }), ETCD_URL, 'cilium/state/');
const etcdGet = (key: string) => gateway.get(key);
const etcdKeys = (prefix: string) => gateway.keys(prefix);

async function docker(host: DockerHost, daemon: CiliumDaemon, args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(`docker ${args.join(' ')} on ${host.name} failed: ${r.stderr}\n${daemon.process?.logTail(20)}`);
  return r.stdout.trim();
}

async function subnetOf(host: DockerHost, network: string): Promise<string> {
  return (
    await host.docker(['network', 'inspect', '--format', '{{(index .IPAM.Config 0).Subnet}}', network])
  ).stdout.trim();
}

async function networkRow(daemon: CiliumDaemon, name: string): Promise<NetworkModel | undefined> {
  return (await daemon.cliJson<NetworkModel[]>(['network', 'list'])).find(
    (n) => n.name === name && n.networkId !== undefined,
  );
}

t.before(async () => {
  hostA = await startDockerHost(t);
  hostB = await startDockerHost(t);
  await Promise.all([ensureBusyboxImage(hostA, 'bb'), ensureBusyboxImage(hostB, 'bb')]);

  // The one path between the two hosts: a veth pair, one end in each namespace (gone with them).
  const id = randomBytes(3).toString('hex');
  await runCommand(
    'ip',
    ['link', 'add', `cdn${id}a`, 'netns', hostA.name, 'type', 'veth', 'peer', 'name', `cdn${id}b`, 'netns', hostB.name],
    { check: true },
  );
  t.teardown(async () => {
    await runCommand('ip', ['-n', hostA.name, 'link', 'del', `cdn${id}a`]).catch(() => undefined);
  });
  for (const [host, end, ip] of [
    [hostA, `cdn${id}a`, LINK_A],
    [hostB, `cdn${id}b`, LINK_B],
  ] as const) {
    await runCommand('ip', ['-n', host.name, 'addr', 'add', `${ip}/30`, 'dev', end], { check: true });
    await runCommand('ip', ['-n', host.name, 'link', 'set', end, 'up'], { check: true });
  }

  const dataDir = join(hostA.dir, 'etcd');
  mkdirSync(dataDir, { recursive: true });
  etcd = hostA.spawn(
    [
      '/usr/bin/etcd',
      '--name=lab',
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${ETCD_PORT},${ETCD_URL}`,
      `--advertise-client-urls=${ETCD_URL}`,
      '--listen-peer-urls=http://127.0.0.1:23805',
      '--initial-advertise-peer-urls=http://127.0.0.1:23805',
      '--initial-cluster=lab=http://127.0.0.1:23805',
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--log-level=warn',
    ],
    {},
    { logName: 'etcd.log' },
  );
  t.teardown(async () => {
    etcd?.kill('SIGTERM');
    await etcd?.wait(10_000).catch(() => undefined);
  });
  await eventually(
    async () => {
      const r = await hostB.exec(['busybox', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', `${ETCD_URL}/health`]);
      return r.code === 0 && r.stdout.includes('true');
    },
    30_000,
    'etcd healthy, seen from host B',
  );

  const args = [
    '--kvstore',
    'etcd',
    '--kvstore-opt',
    `etcd.address=${ETCD_URL}`,
    '--kvstore-opt',
    'etcd.lease-ttl=30s',
    '--resync-interval',
    '3s',
  ];
  daemonA = new CiliumDaemon(hostA, { extraArgs: args });
  daemonB = new CiliumDaemon(hostB, { extraArgs: args });
  await Promise.all([daemonA.start(), daemonB.start()]);
  t.teardown(async () => {
    await Promise.allSettled([daemonA.stop(), daemonB.stop()]);
  });
});

t.test(
  '--ipam-opt cilium.network: the second host gets the cluster subnet; ' +
    'a different --subnet fails docker network create',
  async (t) => {
    const named = ['-d', 'cilium', '--ipam-driver', 'cilium', '--ipam-opt', 'cilium.network=app'];
    await docker(hostA, daemonA, ['network', 'create', ...named, '--subnet', '198.18.130.0/24', 'app']);
    await docker(hostB, daemonB, ['network', 'create', ...named, 'app']);
    t.equal(
      await subnetOf(hostB, 'app'),
      '198.18.130.0/24',
      'host B (no --subnet) got the subnet host A created the name with',
    );
    const record = JSON.parse((await etcdGet('networks/v1/app')) ?? '{}') as Record<string, unknown>;
    t.match(
      record,
      {
        name: 'app',
        subnet: '198.18.130.0/24',
        createdBy: hostA.name,
        details: { gateway: '198.18.130.1', internal: false },
      },
      'networks/v1/app in etcd',
    );
    t.same(
      (await etcdKeys('networks/v1/app/users/')).sort(),
      [`networks/v1/app/users/${hostA.name}`, `networks/v1/app/users/${hostB.name}`].sort(),
      'one user key per host',
    );

    // Containers on both hosts: one subnet, addresses from each node's own block.
    await docker(hostA, daemonA, ['run', '-d', '--name', 'a1', '--network', 'app', 'bb', 'sleep', '10000']);
    await docker(hostB, daemonB, ['run', '-d', '--name', 'b1', '--network', 'app', 'bb', 'sleep', '10000']);
    const ipA = (
      await hostA.docker(['inspect', '--format', '{{.NetworkSettings.Networks.app.IPAddress}}', 'a1'])
    ).stdout.trim();
    const ipB = (
      await hostB.docker(['inspect', '--format', '{{.NetworkSettings.Networks.app.IPAddress}}', 'b1'])
    ).stdout.trim();
    t.match(ipA, /^198\.18\.130\./);
    t.match(ipB, /^198\.18\.130\./);
    t.not(ipA, ipB, `distinct addresses (${ipA} on A, ${ipB} on B)`);

    const row = await eventually(() => networkRow(daemonB, 'app'), 15_000, 'app in cilium network list on B');
    t.match(row, { name: 'app', subnet: '198.18.130.0/24', createdBy: hostA.name, status: 'ok' });
    t.same([...row.nodes].sort(), [hostA.name, hostB.name].sort());
    const table = await daemonB.cli(['network', 'list']);
    t.match(
      table.stdout,
      /^NAME\s+NETWORK ID\s+SUBNET\s+IP RANGE\s+GATEWAY\s+INTERNAL\s+CREATED BY\s+NODES\s+STATUS\n/,
    );
    t.match(table.stdout, /app\s+[0-9a-f]{12}\s+198\.18\.130\.0\/24\s+198\.18\.130\.1\s+\S+\s+\S+\s+ok/);

    // A different --subnet for the same name: `docker network create` itself fails, with the reason.
    await docker(hostA, daemonA, [
      'network',
      'create',
      '-d',
      'cilium',
      '--ipam-driver',
      'cilium',
      '--ipam-opt',
      'cilium.network=web',
      '--subnet',
      '198.18.132.0/24',
      'web',
    ]);
    const refused = await hostB.docker([
      'network',
      'create',
      '-d',
      'cilium',
      '--ipam-driver',
      'cilium',
      '--ipam-opt',
      'cilium.network=web',
      '--subnet',
      '198.18.131.0/24',
      'web',
    ]);
    t.not(refused.code, 0, 'docker network create failed');
    t.match(
      refused.stderr,
      new RegExp(
        /network "web" conflicts with the cluster record networks\/v1\/web \(created by node [^ ]+ at /.source +
          /[^)]+\): subnet 198\.18\.132\.0\/24 in the cluster, 198\.18\.131\.0\/24 on node [^;]+; create /.source +
          /it with the cluster's definition \(--subnet 198\.18\.132\.0\/24 --gateway 198\.18\.132\.1/.source,
      ),
      `message shown by docker: ${refused.stderr.trim()}`,
    );
    t.equal((await hostB.docker(['network', 'inspect', 'web'])).code === 0, false, 'no network left on B');
    t.same(
      await etcdKeys('networks/v1/web/users/'),
      [`networks/v1/web/users/${hostA.name}`],
      'B holds no user key for web',
    );
    t.notOk(
      (await etcdKeys('ipam/v1/pools/')).some((k) => k.includes('198.18.131.0')),
      'the refused subnet was released',
    );
  },
);

t.test(
  'names learnt from Docker: same name and subnet agree; a different subnet is a conflict that refuses docker run',
  async (t) => {
    const plain = ['-d', 'cilium', '--ipam-driver', 'cilium'];
    await docker(hostA, daemonA, ['network', 'create', ...plain, '--subnet', '198.18.135.0/24', 'shared']);
    await docker(hostB, daemonB, ['network', 'create', ...plain, '--subnet', '198.18.135.0/24', 'shared']);
    const agreed = await eventually(
      async () => {
        const row = await networkRow(daemonB, 'shared');
        return row?.status === 'ok' && row.nodes.length === 2 ? row : undefined;
      },
      20_000,
      'shared agreed on B',
    );
    t.equal(agreed.createdBy, hostA.name);

    await docker(hostA, daemonA, ['network', 'create', ...plain, '--subnet', '198.18.133.0/24', 'db']);
    await eventually(async () => (await networkRow(daemonA, 'db'))?.status === 'ok', 20_000, 'db registered by A');
    await docker(hostB, daemonB, ['network', 'create', ...plain, '--subnet', '198.18.134.0/24', 'db']);
    const conflict = await eventually(
      async () => {
        const row = await networkRow(daemonB, 'db');
        return row?.status === 'conflict' ? row : undefined;
      },
      20_000,
      'db in conflict on B',
    );
    t.match(conflict.detail, /subnet 198\.18\.133\.0\/24 in the cluster, 198\.18\.134\.0\/24 on node/);
    t.match(daemonB.log(), /"code":"ERR_NETWORK_CONFLICT"/, 'logged as an error with its code');
    const table = await daemonB.cli(['network', 'list']);
    t.match(
      table.stdout,
      /db\s+[0-9a-f]{12}\s+198\.18\.134\.0\/24\s+198\.18\.134\.1\s+\S+\s+\S+\s+conflict\n/,
      'status column',
    );
    t.match(table.stdout, /db: network "db" conflicts with the cluster record/, 'and the reason under the table');

    const run = await hostB.docker(['run', '-d', '--name', 'dbc', '--network', 'db', 'bb', 'sleep', '10000'], {
      timeoutMs: 120_000,
    });
    t.not(run.code, 0, 'docker run on the conflicting network fails');
    t.match(
      run.stderr,
      /network "db" conflicts with the cluster record networks\/v1\/db/,
      `docker says why: ${run.stderr.trim().slice(0, 300)}`,
    );
    const eps = await daemonB.cliJson<EndpointModel[]>(['endpoint', 'list']);
    t.notOk(
      eps.some((e) => e.networkName === 'db'),
      'no endpoint on it',
    );
    await docker(hostA, daemonA, ['run', '-d', '--name', 'dba', '--network', 'db', 'bb', 'sleep', '10000']);
    t.pass('the agreeing host still runs containers on db');
  },
);

t.test('the resync restores deleted keys; a restarted daemon re-adopts its names', async (t) => {
  // The record comes back at once (both daemons watch networks/v1/), the user key with the resync.
  const keys = ['networks/v1/shared', `networks/v1/shared/users/${hostB.name}`];
  const before = JSON.parse((await etcdGet('networks/v1/shared')) ?? '{}') as { createdAt?: string };
  for (const key of keys) await gateway.delete(key);
  await eventually(
    async () => {
      for (const key of keys) if (!(await etcdGet(key))) return undefined;
      return true;
    },
    20_000,
    'record and user key restored (watch, then --resync-interval 3s)',
  );
  const after = JSON.parse((await etcdGet('networks/v1/shared')) ?? '{}') as { createdAt?: string };
  t.match(after, { name: 'shared', subnet: '198.18.135.0/24', details: { gateway: '198.18.135.1' } });
  t.not(after.createdAt, before.createdAt, 'the record was re-created, not left in place');

  await daemonB.stop('SIGTERM');
  await daemonB.start();
  const shared = await eventually(
    async () => {
      const row = await networkRow(daemonB, 'shared');
      return row?.status === 'ok' ? row : undefined;
    },
    20_000,
    'shared ok after the restart',
  );
  t.equal(shared.subnet, '198.18.135.0/24');
  const db = await eventually(
    async () => {
      const row = await networkRow(daemonB, 'db');
      return row?.status === 'conflict' ? row : undefined;
    },
    20_000,
    'db still a conflict after the restart',
  );
  t.match(db.detail, /subnet 198\.18\.133\.0\/24 in the cluster/);
  const run = await hostB.docker(['run', '-d', '--name', 'dbc2', '--network', 'db', 'bb', 'sleep', '10000'], {
    timeoutMs: 120_000,
  });
  t.not(run.code, 0, 'still refused');
});

t.test('the last host to remove its network removes networks/v1/<name>', async (t) => {
  for (const host of [hostA, hostB]) for (const c of ['a1', 'b1', 'dba']) await host.docker(['rm', '-f', c]);
  await docker(hostA, daemonA, ['network', 'rm', 'app']);
  t.ok(await etcdGet('networks/v1/app'), 'still there: host B uses it');
  t.same(await etcdKeys('networks/v1/app/users/'), [`networks/v1/app/users/${hostB.name}`]);
  await docker(hostB, daemonB, ['network', 'rm', 'app']);
  t.notOk(await etcdGet('networks/v1/app'), 'removed with its last user');
  t.same(await etcdKeys('networks/v1/app/'), []);

  // The conflicting host leaves; the agreeing host's record stays until it leaves too.
  await docker(hostB, daemonB, ['network', 'rm', 'db']);
  t.ok(await etcdGet('networks/v1/db'), 'db stays for host A');
  await docker(hostA, daemonA, ['network', 'rm', 'db']);
  t.notOk(await etcdGet('networks/v1/db'), 'db removed');
  for (const host of [hostA, hostB])
    await docker(host, host === hostA ? daemonA : daemonB, ['network', 'rm', 'shared']);
  await docker(hostA, daemonA, ['network', 'rm', 'web']);
  t.same(await etcdKeys('networks/v1/'), [], 'no network record left');
});
