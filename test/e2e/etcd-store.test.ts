/**
 * The daemon on a real etcd (inside the lab host's namespace): containers get identities and
 * ip entries in etcd, policy is stored and enforced, and an etcd outage leaves networking and
 * policy in place while status reports it; when etcd returns, the daemon resyncs (shortened
 * interval) and repairs keys deleted behind its back.
 */
import t from 'tap';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import type { LabProcess } from '../lab/lab-process.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, IpModel, StatusModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let host: DockerHost;
let daemon: CiliumDaemon;
let etcd: LabProcess | undefined;
const ETCD_URL = 'http://127.0.0.1:23791';

function startEtcd(): void {
  const dataDir = join(host.dir, 'etcd');
  mkdirSync(dataDir, { recursive: true });
  etcd = host.spawn(
    [
      '/usr/bin/etcd',
      '--name=lab',
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${ETCD_URL}`,
      `--advertise-client-urls=${ETCD_URL}`,
      '--listen-peer-urls=http://127.0.0.1:23801',
      '--initial-advertise-peer-urls=http://127.0.0.1:23801',
      '--initial-cluster=lab=http://127.0.0.1:23801',
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--log-level=warn',
    ],
    {},
    { logName: 'etcd.log' },
  );
}

/** Calls etcd's v3 JSON gateway from inside the host (busybox wget; keys and values are base64). */
async function etcdHttp(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await host.exec(['busybox', 'wget', '-q', '-O', '-', '--header', 'Content-Type: application/json', '--post-data', JSON.stringify(body), `${ETCD_URL}${path}`]);
  if (r.code !== 0) throw new Error(`etcd ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The value of one key, or undefined. */
async function etcdGet(key: string): Promise<string | undefined> {
  const r = (await etcdHttp('/v3/kv/range', { key: b64(key) })) as { kvs?: Array<{ value: string }> };
  return r.kvs?.[0] ? Buffer.from(r.kvs[0].value, 'base64').toString() : undefined;
}

/** Keys under a prefix. */
async function etcdKeys(prefix: string): Promise<string[]> {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  const r = (await etcdHttp('/v3/kv/range', { key: b64(prefix), range_end: end.toString('base64'), keys_only: true })) as { kvs?: Array<{ key: string }> };
  return (r.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString());
}

async function etcdDelete(key: string): Promise<void> {
  await etcdHttp('/v3/kv/deleterange', { key: b64(key) });
}

async function etcdHealthy(): Promise<boolean> {
  const r = await host.exec(['busybox', 'wget', '-q', '-O', '-', `${ETCD_URL}/health`]);
  return r.code === 0 && r.stdout.includes('true');
}

async function docker(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed: ${r.stderr}\n${daemon.process?.logTail(20)}`);
  return r.stdout.trim();
}

async function ping(from: string, to: string): Promise<boolean> {
  return (await host.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to], { timeoutMs: 20_000 })).code === 0;
}

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  startEtcd();
  await eventually(async () => (await etcdHealthy()) || undefined, 30_000, 'etcd healthy');
  daemon = new CiliumDaemon(host, { extraArgs: ['--kvstore', 'etcd', '--kvstore-opt', `etcd.address=${ETCD_URL}`, '--kvstore-opt', 'etcd.lease-ttl=10s', '--resync-interval', '2s'] });
  await daemon.start();
});

t.test('identities, ip entries and policy live in etcd', async (t) => {
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.120.0/24', 'en']);
  await docker(['run', '-d', '--name', 'ca', '--network', 'en', '-l', 'app=a', 'bb', 'sleep', '10000']);
  await docker(['run', '-d', '--name', 'cb', '--network', 'en', '-l', 'app=b', 'bb', 'sleep', '10000']);
  const a = await eventually(async () => (await daemon.cliJson<EndpointModel[]>(['endpoint', 'list'])).find((e) => e.containerName === 'ca' && e.state === 'ready'), 20_000, 'a ready');
  const b = await eventually(async () => (await daemon.cliJson<EndpointModel[]>(['endpoint', 'list'])).find((e) => e.containerName === 'cb' && e.state === 'ready'), 20_000, 'b ready');
  t.ok(await ping('ca', b.ipv4), 'a -> b');
  const ids = await etcdKeys('identities/v1/id/');
  t.ok(ids.includes(`identities/v1/id/${a.identity}`), `identity ${a.identity} allocated in etcd`);
  const ipKey = await etcdGet(`ip/v1/${a.ipv4}`);
  t.match(JSON.parse(ipKey ?? '{}'), { identity: a.identity, node: host.name }, `ip/v1 entry in etcd (${ipKey})`);
  const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: b-from-nobody }
spec:
  endpointSelector: { matchLabels: { app: b } }
  ingress: [ {} ]
`;
  const r = await daemon.cli(['policy', 'import', '-', '-o', 'json'], policy);
  t.equal(r.code, 0, r.stderr);
  const rev = (JSON.parse(r.stdout) as { revision: number }).revision;
  t.equal((await daemon.cli(['policy', 'wait', String(rev)])).code, 0);
  t.notOk(await ping('ca', b.ipv4), 'policy from etcd enforced');
  t.match(await etcdGet('policies/v1/repository'), /b-from-nobody/, 'repository stored in etcd');
});

t.test('etcd outage: networking and policy go on, status shows it, resync repairs after', async (t) => {
  const b = (await daemon.cliJson<EndpointModel[]>(['endpoint', 'list'])).find((e) => e.containerName === 'cb')!;
  const a = (await daemon.cliJson<EndpointModel[]>(['endpoint', 'list'])).find((e) => e.containerName === 'ca')!;
  etcd!.kill('SIGKILL');
  await etcd!.wait(10_000);
  t.ok(await ping('cb', a.ipv4), 'existing endpoints keep connectivity');
  t.notOk(await ping('ca', b.ipv4), 'and their policy');
  const status = await eventually(async () => {
    const s = await daemon.cliJson<StatusModel>(['status']);
    return s.kvstore.healthy ? undefined : s;
  }, 20_000, 'status shows the outage');
  t.equal(status.kvstore.backend, 'etcd');
  t.pass(`status: ${status.kvstore.detail.slice(0, 120)}`);
  startEtcd();
  await eventually(async () => (await daemon.cliJson<StatusModel>(['status'])).kvstore.healthy || undefined, 60_000, 'healthy again');
  // Keys deleted behind the daemon's back come back within a (2 s) resync interval.
  await etcdDelete(`ip/v1/${a.ipv4}`);
  await eventually(async () => (await etcdGet(`ip/v1/${a.ipv4}`))?.includes(String(a.identity)) || undefined, 30_000, 'ip key repaired');
  t.pass('ip key repaired by the resync');
  const ips = await daemon.cliJson<IpModel[]>(['ip', 'list']);
  t.ok(ips.some((i) => i.ip === a.ipv4), 'ip list');
  const st = await daemon.cliJson<StatusModel>(['status']);
  t.ok((st.resync?.resyncs ?? 0) > 1 && st.resync?.lastResyncAt, `resyncs ran (${st.resync?.resyncs})`);
  await docker(['rm', '-f', 'ca', 'cb']);
  await docker(['network', 'rm', 'en']);
});
