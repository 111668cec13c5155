/**
 * Issue 16: a daemon restart must reproduce exactly the definition each network had. One lab
 * host; networks with every `docker network create` option the driver handles (--subnet,
 * --ip-range, --gateway, --aux-address, -o com.docker.network.driver.mtu and other -o options,
 * --internal, --label, --attachable, --ipam-opt, --ipam-opt cilium.network=<name>, no --subnet)
 * are created at once, the daemon is killed (SIGKILL) and started again, then stopped cleanly
 * (SIGTERM) and started again; after each start every network must agree with its cluster record
 * (`cilium network list`: ok, same --ip-range) and `docker run` on each must work with the
 * network's addresses, gateway and MTU. First on the embedded store, then on etcd.
 *
 * Before the fix, the restarted daemon rebuilt a network's definition without its --ip-range,
 * declared a conflict with its own record at the first resync and refused every new container.
 */
import t, { type Test } from 'tap';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { etcdUnavailableReason } from '../support/etcd-server.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { NetworkModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const ETCD_URL = 'http://127.0.0.1:23791';
const COMMON = ['-d', 'cilium', '--ipam-driver', 'cilium'];

/** One network: its create options and what a container on it must see. */
interface Case {
  name: string;
  options: string[];
  /** Addresses containers get must match. */
  address: RegExp;
  gateway?: string;
  mtu?: number;
  /** An address `docker run --ip` must be refused (reserved by --aux-address). */
  reserved?: string;
  ipRange?: string;
}

const CASES: Case[] = [
  {
    name: 'r-range',
    options: ['--subnet', '198.18.44.0/24', '--ip-range', '198.18.44.128/25'],
    address: /^198\.18\.44\.(12[89]|1[3-9]\d|2\d\d)$/,
    ipRange: '198.18.44.128/25',
  },
  {
    name: 'r-gw',
    options: [
      '--subnet',
      '198.18.45.0/24',
      '--ip-range',
      '198.18.45.64/26',
      '--gateway',
      '198.18.45.254',
      '--aux-address',
      'printer=198.18.45.70',
    ],
    address: /^198\.18\.45\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])$/,
    gateway: '198.18.45.254',
    reserved: '198.18.45.70',
    ipRange: '198.18.45.64/26',
  },
  {
    name: 'r-opts',
    options: [
      '--subnet',
      '198.18.46.0/24',
      '--internal',
      '-o',
      'com.docker.network.driver.mtu=1400',
      '-o',
      'team=blue',
      '--label',
      'owner=qa',
      '--attachable',
      '--ipam-opt',
      'flavour=plain',
    ],
    address: /^198\.18\.46\./,
    mtu: 1400,
  },
  {
    name: 'r-named',
    options: ['--subnet', '198.18.47.0/24', '--ip-range', '198.18.47.32/27', '--ipam-opt', 'cilium.network=r-named'],
    address: /^198\.18\.47\.(3[2-9]|[45]\d|6[0-3])$/,
    ipRange: '198.18.47.32/27',
  },
  { name: 'r-default', options: [], address: /^198\.18\.16[0-9]\./ },
];

async function docker(host: DockerHost, daemon: CiliumDaemon, args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed: ${r.stderr}\n${daemon.process?.logTail(20)}`);
  return r.stdout.trim();
}

/** `cilium network list` once no network of ours waits for its first registration. */
async function settledNetworks(daemon: CiliumDaemon): Promise<Map<string, NetworkModel>> {
  const list = await eventually(
    async () => {
      const all = await daemon.cliJson<NetworkModel[]>(['network', 'list']);
      const ours = all.filter((n) => CASES.some((c) => c.name === n.name));
      return ours.length === CASES.length && ours.every((n) => n.status !== 'unregistered') ? ours : undefined;
    },
    30_000,
    'every network registered or refused',
  );
  return new Map(list.map((n) => [n.name, n]));
}

/** Every network agrees with its record, and a container on each gets its address, gateway, MTU. */
async function checkNetworks(t: Test, host: DockerHost, daemon: CiliumDaemon, when: string): Promise<void> {
  const networks = await settledNetworks(daemon);
  for (const c of CASES) {
    const n = networks.get(c.name);
    t.match(n, { status: 'ok' }, `${when}: ${c.name} agrees with its cluster record ${n?.detail ?? ''}`);
    t.equal(n?.ipRange, c.ipRange, `${when}: ${c.name} --ip-range ${c.ipRange ?? '(none)'}`);
  }
  const runs = await Promise.all(
    CASES.map((c) =>
      host.docker(
        [
          'run',
          '--rm',
          '--network',
          c.name,
          'bb',
          'sh',
          '-c',
          'ip -o -4 addr show eth0; ip -4 route show default; cat /sys/class/net/eth0/mtu',
        ],
        { timeoutMs: 120_000 },
      ),
    ),
  );
  CASES.forEach((c, i) => {
    const r = runs[i]!;
    t.equal(r.code, 0, `${when}: docker run --network ${c.name} ${r.stderr.trim()}`);
    const address = /inet (\S+)\//.exec(r.stdout)?.[1] ?? '';
    t.match(address, c.address, `${when}: ${c.name} container address ${address}`);
    if (c.gateway)
      t.match(
        r.stdout,
        new RegExp(`default via ${c.gateway.replace(/\./g, '\\.')} `),
        `${when}: ${c.name} default route via ${c.gateway}`,
      );
    if (c.mtu) t.match(r.stdout.trim().split('\n').at(-1), String(c.mtu), `${when}: ${c.name} MTU ${c.mtu}`);
  });
  for (const c of CASES.filter((x) => x.reserved)) {
    const r = await host.docker(['run', '--rm', '--network', c.name, '--ip', c.reserved!, 'bb', 'true'], {
      timeoutMs: 60_000,
    });
    t.not(r.code, 0, `${when}: --aux-address ${c.reserved} on ${c.name} stays reserved`);
    t.match(r.stderr, /aux-address/, `${when}: refused as an --aux-address reservation: ${r.stderr.trim()}`);
  }
}

/** Creates every network, restarts the daemon after SIGKILL and after SIGTERM, checks each time. */
async function createRestartCheck(t: Test, host: DockerHost, daemon: CiliumDaemon): Promise<void> {
  await Promise.all(CASES.map((c) => docker(host, daemon, ['network', 'create', ...COMMON, ...c.options, c.name])));
  await checkNetworks(t, host, daemon, 'created');
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    await daemon.stop(signal);
    await daemon.start();
    await checkNetworks(t, host, daemon, `after ${signal} and a restart`);
  }
  for (const c of CASES) await docker(host, daemon, ['network', 'rm', c.name]);
  await daemon.stop('SIGTERM');
}

let host: DockerHost;

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
});

t.test('embedded store: every network keeps its definition across kill -9 and a clean restart', async (t) => {
  const daemon = new CiliumDaemon(host, { extraArgs: ['--resync-interval', '1s'] });
  t.teardown(() => daemon.stop('SIGKILL'));
  await daemon.start();
  await createRestartCheck(t, host, daemon);
});

t.test('etcd: every network keeps its definition across kill -9 and a clean restart', async (t) => {
  const missing = etcdUnavailableReason();
  if (missing !== undefined) {
    if (process.env.CI === 'true') t.fail(`etcd is required when CI=true: ${missing}`);
    else t.plan(0, missing);
    return;
  }
  const dataDir = join(host.dir, 'etcd');
  mkdirSync(dataDir, { recursive: true });
  const etcd = host.spawn(
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
  t.teardown(() => etcd.kill('SIGKILL'));
  await eventually(
    async () => {
      const r = await host.exec(['busybox', 'wget', '-q', '-O', '-', `${ETCD_URL}/health`]);
      return r.code === 0 && r.stdout.includes('true');
    },
    30_000,
    'etcd healthy',
  );
  // The embedded store's run left its node state behind: this daemon starts from nothing.
  const daemon = new CiliumDaemon(host, {
    extraArgs: [
      '--kvstore',
      'etcd',
      '--kvstore-opt',
      `etcd.address=${ETCD_URL}`,
      '--kvstore-opt',
      'etcd.lease-ttl=10s',
      '--resync-interval',
      '1s',
    ],
  });
  rmSync(daemon.stateDir, { recursive: true, force: true });
  t.teardown(() => daemon.stop('SIGKILL'));
  await daemon.start();
  await createRestartCheck(t, host, daemon);
});
