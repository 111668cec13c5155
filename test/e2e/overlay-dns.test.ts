/**
 * Cross-host name resolution. Two lab hosts on the shared underlay (etcd on it), each daemon with
 * its cluster resolver on its underlay address (--dns-address), host 0's dockerd started with
 * `--dns <that address>`, host 1's containers with `docker run --dns <its address>`: dockerd's embedded DNS answers its
 * own host's names and forwards the others to the resolver, from the container's namespace (the resolver
 * counts the answers; it can only answer when the query's source is a container it knows).
 *
 * A container on host 0 pings and fetches a page from a container on host 1 by name
 * (`<name>` and `<name>.<network>`) and the other way round; a container of another network is
 * not resolvable, except by a container on both networks; other names reach the upstream (a fake
 * one inside host 1) or are refused without one; network aliases resolve (a shared one to every
 * container that has it) and a renamed container answers to its new name only; a removed
 * container's name stops resolving; an egress policy that does not allow
 * the host blocks the resolver, and `toEntities: [host]` lets it through.
 */
import t, { type Test } from 'tap';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { startUnderlay, type Underlay } from '../lab/underlay.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, StatusModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const OVL = '198.18.124.0/24';
/** Host 0's address on the underlay (startUnderlay's default prefix, host number 1). */
const H0_UNDERLAY = '198.19.250.1';
const OTHER = '198.18.125.0/24';
let underlay: Underlay;
const hosts: DockerHost[] = [];
const daemons: CiliumDaemon[] = [];
const underlayIps: string[] = [];
/** Container name -> [host index, IP]. */
const where: Record<string, [number, string]> = {};

async function docker(h: number, args: string[]): Promise<string> {
  const r = await hosts[h]!.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(
      `docker@h${h} ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n` +
        `${daemons[h]?.process?.logTail(20)}`,
    );
  return r.stdout.trim();
}

async function run(
  h: number,
  name: string,
  network: string,
  labels: string[] = [],
  extra: string[] = [],
): Promise<void> {
  const dns = h === 0 ? [] : ['--dns', underlayIps[h]!];
  await docker(h, [
    'run',
    '-d',
    '--name',
    name,
    '--network',
    network,
    ...dns,
    ...extra,
    ...labels.flatMap((l) => ['-l', l]),
    'bb',
    'sh',
    '-c',
    'httpd -p 80 -h /etc; exec sleep 100000',
  ]);
  where[name] = [
    h,
    await docker(h, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]),
  ];
  await eventually(
    async () => {
      const eps = await daemons[h]!.cliJson<EndpointModel[]>(['endpoint', 'list']);
      return eps.find((x) => x.containerName === name)?.state === 'ready' ? true : undefined;
    },
    30_000,
    `${name} ready on h${h}`,
  );
}

/** The address `target` resolves to inside container `from` (busybox nslookup through 127.0.0.11), or undefined. */
async function resolve(from: string, target: string): Promise<string | undefined> {
  const [h] = where[from]!;
  const r = await hosts[h]!.docker(['exec', from, 'nslookup', target], { timeoutMs: 20_000 });
  if (r.code !== 0) return undefined;
  // busybox prints the server first ("Server: 127.0.0.11", "Address: 127.0.0.11:53"), then the answers.
  const answers = r.stdout
    .split(/\n\s*\n/)
    .slice(1)
    .join('\n');
  return /Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)/.exec(answers)?.[1];
}

async function pingByName(from: string, target: string): Promise<boolean> {
  const [h] = where[from]!;
  return (
    (await hosts[h]!.docker(['exec', from, 'ping', '-c', '1', '-W', '2', target], { timeoutMs: 20_000 })).code === 0
  );
}

async function httpByName(from: string, target: string): Promise<boolean> {
  const [h] = where[from]!;
  const r = await hosts[h]!.docker(['exec', from, 'timeout', '5', 'wget', '-q', '-O', '-', `http://${target}/passwd`], {
    timeoutMs: 20_000,
  });
  return r.code === 0 && r.stdout.includes('root');
}

async function applyPolicy(t: Test, yaml: string): Promise<void> {
  const imported = await daemons[0]!.cli(['policy', 'import', '-', '-o', 'json'], yaml);
  t.equal(imported.code, 0, `policy imported: ${imported.stderr}`);
  const revision = (JSON.parse(imported.stdout) as { revision: number }).revision;
  for (const d of daemons)
    t.equal(
      (await d.cli(['policy', 'wait', String(revision), '--timeout', '20s'])).code,
      0,
      `revision ${revision} on ${d.host.name}`,
    );
}

/**
 * A stand-in for the site's DNS server, inside host 1 on its underlay address, port 5353: answers
 * every A query with 198.18.99.1 (and every other type with an empty NOERROR). Node's dgram, no
 * project code, so it is an independent peer of the resolver's forwarding.
 */
const UPSTREAM_ANSWER = '198.18.99.1';
const FAKE_UPSTREAM = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => {
  let p = 12;
  while (p < m.length && m[p] !== 0) p += m[p] + 1;
  p += 5;
  if (p > m.length) return;
  const isA = m.readUInt16BE(p - 4) === 1;
  const h = Buffer.from(m.subarray(0, 12));
  h.writeUInt16BE(0x8180, 2); h.writeUInt16BE(1, 4); h.writeUInt16BE(isA ? 1 : 0, 6);
  h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const a = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 99, 1]);
  s.send(Buffer.concat([h, m.subarray(12, p), isA ? a : Buffer.alloc(0)]), r.port, r.address);
});
s.bind(5353, process.argv[1], () => console.log('fake upstream listening'));
`;

t.before(async () => {
  underlay = await startUnderlay(t);
  const etcdUrl = await underlay.startEtcd();
  for (let i = 0; i < 2; i++) {
    // Host 0 enables the resolver for all its containers (dockerd --dns, its underlay address to
    // be, 198.19.250.1); host 1 per container (docker run --dns).
    const host = await startDockerHost(t, { extraDockerdArgs: i === 0 ? ['--dns', H0_UNDERLAY] : [] });
    hosts.push(host);
    await ensureBusyboxImage(host, 'bb');
    underlayIps.push(await underlay.attach(host, i + 1));
  }
  if (underlayIps[0] !== H0_UNDERLAY)
    throw new Error(`host 0's underlay address is ${underlayIps[0]}, not ${H0_UNDERLAY} given to its dockerd --dns`);
  const upstream = hosts[1]!.spawn(
    [process.execPath, '-e', FAKE_UPSTREAM, underlayIps[1]!],
    {},
    { logName: 'fake-upstream.log' },
  );
  await eventually(
    async () => (upstream.readLog().includes('listening') ? true : undefined),
    20_000,
    'fake upstream listening',
  );
  // h0 forwards foreign names to the fake upstream on h1; h1 has none (REFUSED).
  const upstreams = [`${underlayIps[1]}:5353`, 'none'];
  for (let i = 0; i < 2; i++) {
    const daemon = new CiliumDaemon(hosts[i]!, {
      extraArgs: [
        '--kvstore',
        'etcd',
        '--kvstore-opt',
        `etcd.address=${etcdUrl}`,
        '--kvstore-opt',
        'etcd.lease-ttl=5s',
        '--underlay-ip',
        underlayIps[i]!,
        '--dns-address',
        underlayIps[i]!,
        '--dns-upstream',
        upstreams[i]!,
      ],
    });
    daemons.push(daemon);
    await daemon.start(60_000);
  }
  for (let h = 0; h < 2; h++) {
    await docker(h, ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', OVL, 'ovl']);
    await docker(h, ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', OTHER, 'other']);
  }
  await run(0, 'alpha', 'ovl', ['app=alpha']);
  await run(1, 'beta', 'ovl', ['app=beta']);
  await run(1, 'gamma', 'other');
});

t.test('containers reach each other across hosts by name, both ways', async (t) => {
  const beta = await eventually(
    async () => ((await resolve('alpha', 'beta')) === where.beta![1] ? true : undefined),
    30_000,
    'alpha resolves beta',
  );
  t.ok(beta, `h0 alpha resolves beta (h1) to ${where.beta![1]}`);
  t.equal(await resolve('alpha', 'BETA.ovl'), where.beta![1], '<name>.<network>, any case');
  t.ok(await pingByName('alpha', 'beta'), 'alpha pings beta by name');
  t.ok(await httpByName('alpha', 'beta'), 'alpha fetches http://beta/ (TCP by name)');
  await eventually(
    async () => ((await resolve('beta', 'alpha')) === where.alpha![1] ? true : undefined),
    30_000,
    'beta resolves alpha',
  );
  t.ok(await pingByName('beta', 'alpha.ovl'), 'beta pings alpha.ovl by name');
  t.ok(await httpByName('beta', 'alpha'), 'beta fetches http://alpha/');
  for (let h = 0; h < 2; h++) {
    const status = await daemons[h]!.cliJson<StatusModel>(['status']);
    t.equal(status.dns?.address, `${underlayIps[h]}:53`, `h${h}: status shows the resolver`);
    t.same(status.dns?.upstreams, h === 0 ? [`${underlayIps[1]}:5353`] : [], `h${h}: its upstreams`);
    t.ok(
      (status.dns?.clusterAnswers ?? 0) > 0,
      `h${h}: the resolver answered (${status.dns?.clusterAnswers}): queries came from the containers' own addresses`,
    );
  }
  const text = await daemons[0]!.cli(['status']);
  t.match(
    text.stdout,
    /DNS:\s+198\.19\.\S+:53, upstreams 198\.19\.\S+:5353; \d+ queries/,
    'cilium status prints the resolver',
  );
});

t.test("another network's container does not resolve, unless the querier is on that network too", async (t) => {
  // h0's upstream answers every name with 198.18.99.1: a name that is not a cluster name gets that.
  t.equal(
    await resolve('alpha', 'gamma'),
    UPSTREAM_ANSWER,
    'gamma (network other, h1) is not a cluster name in ovl: left to the upstream',
  );
  t.equal(await resolve('alpha', 'gamma.other'), UPSTREAM_ANSWER, 'nor gamma.other');
  t.equal(await resolve('alpha', 'nobody.ovl'), undefined, 'an unknown name under ovl is NXDOMAIN, never forwarded');
  // delta (h0) is on both networks; its queries leave from one address, yet it sees both networks.
  await run(0, 'delta', 'ovl');
  await docker(0, ['network', 'connect', 'other', 'delta']);
  const gammaIp = where.gamma![1];
  await eventually(
    async () => ((await resolve('delta', 'gamma')) === gammaIp ? true : undefined),
    30_000,
    'delta resolves gamma',
  );
  t.pass(`delta (ovl + other) resolves gamma to ${gammaIp}`);
  t.equal(await resolve('delta', 'beta'), where.beta![1], 'and beta, on ovl');
  t.ok(await pingByName('delta', 'gamma.other'), 'delta pings gamma.other by name');
});

t.test('other names go to the upstream (h0: a fake one on h1), or are refused (h1: none)', async (t) => {
  t.equal(await resolve('alpha', 'www.example.test'), UPSTREAM_ANSWER, "h0: the upstream's answer");
  t.equal(await resolve('beta', 'www.example.test'), undefined, 'h1: no upstream, no answer');
  const [s0, s1] = await Promise.all(daemons.map((d) => d.cliJson<StatusModel>(['status'])));
  t.ok((s0!.dns?.forwarded ?? 0) > 0, `h0 forwarded (${s0!.dns?.forwarded})`);
  t.ok((s1!.dns?.refused ?? 0) > 0, `h1 refused (${s1!.dns?.refused})`);
});

t.test('an egress policy must allow the host for the resolver to be reachable', async (t) => {
  const base = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: alpha-egress
spec:
  endpointSelector:
    matchLabels:
      app: alpha
  egress:
  - toEndpoints:
    - matchLabels:
        app: beta
`;
  await applyPolicy(t, base);
  t.ok(
    await eventually(
      async () => ((await resolve('alpha', 'beta')) === undefined ? true : undefined),
      60_000,
      'resolver blocked',
    ),
    'without host in the egress rules the resolver is unreachable',
  );
  await applyPolicy(
    t,
    `${base}  - toEntities:
    - host
`,
  );
  await eventually(
    async () => ((await resolve('alpha', 'beta')) === where.beta![1] ? true : undefined),
    20_000,
    'resolver allowed',
  );
  t.ok(await httpByName('alpha', 'beta'), 'with toEntities host: alpha fetches http://beta/ by name');
  const del = await daemons[0]!.cli(['policy', 'delete', '--all', '-o', 'json']);
  t.equal(del.code, 0, 'policy deleted');
  const revision = (JSON.parse(del.stdout) as { revision: number }).revision;
  for (const d of daemons) await d.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
});

t.test('network aliases resolve across hosts; a renamed container answers to its new name only', async (t) => {
  // Two containers on h1 share the alias `api` (as a compose service with two replicas would).
  await run(1, 'epsilon', 'ovl', [], ['--network-alias', 'api', '--network-alias', 'eps-alias']);
  await run(1, 'eta', 'ovl', [], ['--network-alias', 'api']);
  const epsilonIp = where.epsilon![1];
  await eventually(
    async () => ((await resolve('alpha', 'eps-alias')) === epsilonIp ? true : undefined),
    30_000,
    'alpha resolves eps-alias',
  );
  t.pass(`h0 alpha resolves epsilon's alias eps-alias to ${epsilonIp}`);
  const api = await hosts[0]!.docker(['exec', 'alpha', 'nslookup', 'api.ovl'], { timeoutMs: 20_000 });
  const apiAnswers = [
    ...api.stdout
      .split(/\n\s*\n/)
      .slice(1)
      .join('\n')
      .matchAll(/Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)/g),
  ]
    .map((m) => m[1])
    .sort();
  t.same(
    apiAnswers,
    [epsilonIp, where.eta![1]].sort(),
    `api.ovl: both containers that share the alias (${api.stdout.trim().split('\n').join(' | ')})`,
  );
  t.ok(await pingByName('alpha', 'eps-alias'), 'alpha pings epsilon by its alias');

  await docker(1, ['rename', 'epsilon', 'zeta']);
  await eventually(
    async () => ((await resolve('alpha', 'zeta')) === epsilonIp ? true : undefined),
    20_000,
    'alpha resolves zeta',
  );
  t.pass(`after docker rename on h1: h0 alpha resolves zeta to ${epsilonIp}`);
  t.equal(
    await resolve('alpha', 'epsilon'),
    UPSTREAM_ANSWER,
    'the old name is no cluster name any more (left to the upstream)',
  );
  t.equal(await resolve('alpha', 'eps-alias.ovl'), epsilonIp, 'its alias still resolves');
  t.ok(await httpByName('alpha', 'zeta'), 'alpha fetches http://zeta/');
  const ep = (await daemons[1]!.cliJson<EndpointModel[]>(['endpoint', 'list'])).find((e) => e.ipv4 === epsilonIp);
  t.equal(ep?.containerName, 'zeta', 'h1: the endpoint carries the new name');
});

t.test("a removed container's name stops resolving", async (t) => {
  const betaIp = where.beta![1];
  await docker(1, ['rm', '-f', 'beta']);
  await eventually(
    async () => ((await resolve('alpha', 'beta')) === UPSTREAM_ANSWER ? true : undefined),
    20_000,
    'beta gone from the resolver',
  );
  t.pass(`alpha no longer resolves beta to ${betaIp}: the name went to the upstream`);
  t.equal(await resolve('alpha', 'beta.ovl'), undefined, 'beta.ovl: NXDOMAIN');
});
