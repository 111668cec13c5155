/**
 * Single host, end to end: a private dockerd in a lab host, our daemon beside it, the real docker
 * CLI. Networks with every IPAM option, labelled containers that reach each other and their
 * gateway, connect/disconnect, stop/start, rm -f, network rm, 50 concurrent starts, /29
 * exhaustion, daemon restart under traffic, dockerd restart both ways, and the CLI's view.
 */
import t from 'tap';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, IdentityModel, IpModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let host: DockerHost;
let daemon: CiliumDaemon;

async function docker(args: string[], expectOk = true): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (expectOk && r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n${daemon.process?.logTail(25)}`,
    );
  return r.stdout.trim();
}

async function dockerFails(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code === 0) throw new Error(`docker ${args.join(' ')} unexpectedly succeeded`);
  return r.stderr;
}

async function ipOf(container: string, network: string): Promise<string> {
  return docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
}

async function ping(from: string, to: string, count = 2): Promise<boolean> {
  const r = await host.docker(['exec', from, 'ping', '-c', String(count), '-W', '2', '-i', '0.2', to], {
    timeoutMs: 30_000,
  });
  return r.code === 0;
}

async function endpointOf(container: string): Promise<EndpointModel | undefined> {
  const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
  return eps.find((e) => e.containerName === container);
}

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  daemon = new CiliumDaemon(host);
  await daemon.start();
});

t.test('networks with every IPAM option', async (t) => {
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.100.0/24', 'n1']);
  t.equal(
    await docker(['network', 'inspect', '-f', '{{.Driver}} {{.IPAM.Driver}} {{(index .IPAM.Config 0).Subnet}}', 'n1']),
    'cilium cilium 198.18.100.0/24',
  );
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', 'n2']);
  t.equal(
    await docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'n2']),
    '198.18.160.0/24',
    'no --subnet: carved from --default-pool',
  );
  await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.102.0/24',
    '--ip-range',
    '198.18.102.128/25',
    '--gateway',
    '198.18.102.254',
    '--aux-address',
    'reserved1=198.18.102.128',
    'n3',
  ]);
  t.equal(await docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'n3']), '198.18.102.254');
  await docker(['run', '-d', '--name', 'r1', '--network', 'n3', 'bb', 'sleep', '1000']);
  t.equal(await ipOf('r1', 'n3'), '198.18.102.129', 'first address of --ip-range, skipping the aux address');
  t.match(await docker(['exec', 'r1', 'ip', 'route']), /default via 198\.18\.102\.254/, 'default route via --gateway');
  t.ok(await ping('r1', '198.18.102.254'), 'the gateway answers');
  const overlap = await dockerFails([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.100.0/25',
    'n1bis',
  ]);
  t.match(overlap, /overlap/i, 'overlapping subnet refused with a clear error');
  await docker(['rm', '-f', 'r1']);
});

t.test('labelled containers reach each other and get identities', async (t) => {
  await docker([
    'run',
    '-d',
    '--name',
    'web',
    '--network',
    'n1',
    '-l',
    'app=web',
    '-l',
    'tier=front',
    'bb',
    'sleep',
    '1000',
  ]);
  await docker(['run', '-d', '--name', 'db', '--network', 'n1', '-l', 'app=db', 'bb', 'sleep', '1000']);
  await docker([
    'run',
    '-d',
    '--name',
    'web2',
    '--network',
    'n1',
    '-l',
    'app=web',
    '-l',
    'tier=front',
    'bb',
    'sleep',
    '1000',
  ]);
  const webIp = await ipOf('web', 'n1');
  const dbIp = await ipOf('db', 'n1');
  t.match(webIp, /^198\.18\.100\.\d+$/);
  t.ok(await ping('web', dbIp), 'web -> db by IP');
  t.ok(await ping('db', webIp), 'db -> web by IP');
  t.ok(await ping('web', '198.18.100.1'), 'web -> gateway');
  t.match(
    await docker(['exec', 'web', 'ip', 'route']),
    /default via 198\.18\.100\.1 dev eth0/,
    'default route through the host',
  );
  t.notMatch(await docker(['exec', 'web', 'ip', 'link']), /eth1/, 'no docker_gwbridge leg');
  // httpd/wget over TCP.
  await docker(['exec', '-d', 'db', 'httpd', '-f', '-p', '8080', '-h', '/etc']);
  await eventually(
    async () =>
      (await host.docker(['exec', 'web', 'wget', '-q', '-O', '-', `http://${dbIp}:8080/passwd`])).stdout.includes(
        'root',
      ),
    10_000,
    'TCP web -> db',
  );
  t.pass('TCP web -> db:8080');

  const web = await eventually(
    async () => {
      const e = await endpointOf('web');
      return e?.state === 'ready' ? e : undefined;
    },
    15_000,
    'web endpoint ready',
  );
  t.same(
    web.labels,
    ['container:app=web', 'container:tier=front', 'docker:network=n1'],
    'container labels plus docker:network',
  );
  t.ok(web.identity >= 256, `allocated identity ${web.identity}`);
  const web2 = await eventually(
    async () => {
      const e = await endpointOf('web2');
      return e?.state === 'ready' ? e : undefined;
    },
    15_000,
    'web2 ready',
  );
  t.equal(web2.identity, web.identity, 'same label set -> same identity');
  const db = await eventually(
    async () => {
      const e = await endpointOf('db');
      return e?.state === 'ready' ? e : undefined;
    },
    15_000,
    'db ready',
  );
  t.not(db.identity, web.identity, 'different labels -> different identity');
  const ids = await daemon.cliJson<IdentityModel[]>(['identity', 'list']);
  t.ok(
    ids.some((i) => i.id === 1 && i.labels.includes('reserved:host')),
    'reserved identities listed',
  );
  t.match(
    ids.find((i) => i.id === web.identity),
    { labels: ['container:app=web', 'container:tier=front', 'docker:network=n1'], localReferences: 2 },
  );
  const got = await daemon.cliJson<IdentityModel>(['identity', 'get', String(db.identity)]);
  t.same(got.labels, ['container:app=db', 'docker:network=n1']);
  const ips = await daemon.cliJson<IpModel[]>(['ip', 'list']);
  t.match(
    ips.find((i) => i.ip === webIp),
    { identity: web.identity, source: 'local' },
    'ip list maps IP -> identity',
  );
  const table = await daemon.cli(['endpoint', 'list']);
  t.match(table.stdout, /ENDPOINT\s+CONTAINER\s+IDENTITY/, 'table output by default');
  t.match(table.stdout, /container:app=web/);
  const one = await daemon.cliJson<EndpointModel>(['endpoint', 'get', 'web']);
  t.equal(one.ipv4, webIp, 'endpoint get by container name');
  // Identity released with the last reference.
  await docker(['rm', '-f', 'web2']);
  await docker(['rm', '-f', 'web']);
  await eventually(
    async () => !(await daemon.cliJson<IdentityModel[]>(['identity', 'list'])).some((i) => i.id === web.identity),
    10_000,
    'identity garbage-collected',
  );
  t.pass('identity released when its last endpoint went');
});

t.test('static --ip, image labels, connect/disconnect, stop/start, rm -f', async (t) => {
  await docker(['run', '-d', '--name', 'fixed', '--network', 'n1', '--ip', '198.18.100.50', 'bb', 'sleep', '1000']);
  t.equal(await ipOf('fixed', 'n1'), '198.18.100.50');
  const dup = await dockerFails([
    'run',
    '-d',
    '--name',
    'fixed2',
    '--network',
    'n1',
    '--ip',
    '198.18.100.50',
    'bb',
    'sleep',
    '1000',
  ]);
  t.match(dup, /198\.18\.100\.50.*(in use|allocated)/i, 'a taken --ip is refused, naming the address');
  await docker(['rm', '-f', 'fixed2']);

  await docker(['network', 'connect', 'n2', 'fixed']);
  const n2ip = await ipOf('fixed', 'n2');
  t.match(n2ip, /^198\.18\.160\.\d+$/, 'second interface on n2');
  t.match(await docker(['exec', 'fixed', 'ip', '-o', 'addr']), new RegExp(`eth1.*${n2ip.replace(/\./g, '\\.')}`));
  await docker(['network', 'disconnect', 'n2', 'fixed']);
  t.notMatch(await docker(['exec', 'fixed', 'ip', 'link']), /eth1/, 'disconnected');
  const afterDisconnect = await daemon.cliJson<IpModel[]>(['ip', 'list']);
  t.notOk(
    afterDisconnect.some((i) => i.ip === n2ip),
    'n2 endpoint gone',
  );

  await docker(['stop', '-t', '1', 'fixed']);
  const stopped = await daemon.cliJson<IpModel[]>(['ip', 'list']);
  t.notOk(
    stopped.some((i) => i.ip === '198.18.100.50'),
    'address released at stop',
  );
  await docker(['start', 'fixed']);
  t.equal(await ipOf('fixed', 'n1'), '198.18.100.50', 'same --ip after start');
  t.ok(await ping('fixed', '198.18.100.1'));
  await docker(['rm', '-f', 'fixed']);
  const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
  t.notOk(
    eps.some((e) => e.ipv4 === '198.18.100.50'),
    'rm -f removes the endpoint',
  );
  // Veths of deleted endpoints are removed in the background, just after DeleteEndpoint answers.
  const lxcCount = async () =>
    ((await host.exec(['ip', '-o', 'link', 'show'])).stdout.match(/ lxc[0-9a-f]{11}@/g) ?? []).length;
  await eventually(async () => (await lxcCount()) === eps.length || undefined, 10_000, 'deleted veths gone').catch(
    () => undefined,
  );
  t.equal(await lxcCount(), eps.length, 'one lxc veth per endpoint, none leaked');
});

t.test('50 concurrent docker run -d get 50 distinct addresses', async (t) => {
  const manyId = await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.104.0/24',
    'many',
  ]);
  const started = Date.now();
  const runs = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      host.docker(['run', '-d', '--name', `m${i}`, '--network', 'many', '-l', 'group=many', 'bb', 'sleep', '1000'], {
        timeoutMs: 180_000,
      }),
    ),
  );
  t.comment(`50 concurrent starts: ${Date.now() - started} ms`);
  const failures = runs.filter((r) => r.code !== 0);
  t.equal(failures.length, 0, `no failure ${failures.map((f) => f.stderr).join(' | ')}`);
  const ips = await Promise.all(Array.from({ length: 50 }, (_, i) => ipOf(`m${i}`, 'many')));
  t.equal(new Set(ips).size, 50, '50 distinct addresses');
  t.ok(await ping('m0', ips[49]!), 'm0 reaches m49');
  await docker(['rm', '-f', ...Array.from({ length: 50 }, (_, i) => `m${i}`)]);
  // dockerd 20.10 may still be releasing the last endpoints (its own DeleteEndpoint calls) when
  // `rm -f` of 50 returns; `network rm` then says "has active endpoints" for a moment. Now and
  // then dockerd's own endpoint count of the network leaks (moby#17217: "has active endpoints"
  // while `network inspect` lists no container; only a dockerd restart clears it). That refusal
  // is dockerd's, before any call reaches us, and is tolerated (with a comment); any refusal by
  // our plugin fails. Our own state is checked below either way.
  let lastRm = '';
  const networkRm = async () => {
    const r = await host.docker(['network', 'rm', 'many']);
    lastRm = r.stderr.trim();
    return r.code === 0 || undefined;
  };
  const removed = await eventually(networkRm, 30_000, 'network rm many').catch(() => undefined);
  if (!removed) {
    const listed = (
      await host.docker(['network', 'inspect', '-f', '{{range $id, $c := .Containers}}{{$c.Name}} {{end}}', 'many'])
    ).stdout.trim();
    const dockerdLeak =
      /has active endpoints/.test(lastRm) && !/remote|NetworkDriver|IpamDriver|still has/.test(lastRm) && listed === '';
    t.ok(
      dockerdLeak,
      `network rm many refused by dockerd's own endpoint count, not by our plugin (${lastRm}; containers listed: ` +
        `"${listed}")\n--- daemon log ---\n${dockerdLeak ? '' : daemon.process?.logTail(40)}`,
    );
    t.comment(`dockerd kept a stale endpoint count on "many" after rm -f of 50 (moby#17217): ${lastRm}`);
  }
  const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
  const ours = eps.filter((e) => e.networkId === manyId || e.networkName === 'many');
  if (removed) {
    t.same(
      ours.map((e) => e.containerName),
      [],
      'every endpoint of the 50 is gone from our daemon',
    );
    t.notOk(
      (await daemon.cliJson<IpModel[]>(['ip', 'list'])).some((i) => i.ip.startsWith('198.18.104.')),
      'and every address released',
    );
  } else {
    // dockerd kept an endpoint it never sent DeleteEndpoint for: ours may still hold it, correctly.
    t.ok(ours.length <= 1, `our daemon holds ${ours.length} endpoint(s) of "many" that dockerd never deleted`);
  }
});

t.test('exhausting a /29 gives a clear error through docker run', async (t) => {
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.105.0/29', 'tiny']);
  for (let i = 0; i < 5; i++)
    await docker(['run', '-d', '--name', `tiny${i}`, '--network', 'tiny', 'bb', 'sleep', '1000']);
  const err = await dockerFails(['run', '-d', '--name', 'tiny5', '--network', 'tiny', 'bb', 'sleep', '1000']);
  t.match(err, /no free address in pool 198\.18\.105\.0\/29/, `clear error: ${err.trim()}`);
  await docker(['rm', '-f', 'tiny5']);
  await docker(['rm', '-f', 'tiny0']);
  await docker(['run', '-d', '--name', 'tiny6', '--network', 'tiny', 'bb', 'sleep', '1000']);
  t.pass('a released address is reusable');
  await docker(['rm', '-f', 'tiny1', 'tiny2', 'tiny3', 'tiny4', 'tiny6']);
  await docker(['network', 'rm', 'tiny']);
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.105.0/29', 'tiny']);
  await docker(['network', 'rm', 'tiny']);
  t.pass('network rm released the pool (same subnet re-creatable)');
});

t.test('daemon restart under running containers', async (t) => {
  await docker(['run', '-d', '--name', 'pa', '--network', 'n1', '-l', 'app=pa', 'bb', 'sleep', '1000']);
  await docker(['run', '-d', '--name', 'pb', '--network', 'n1', '-l', 'app=pb', 'bb', 'sleep', '1000']);
  const pbIp = await ipOf('pb', 'n1');
  const before = await eventually(
    async () => {
      const e = await endpointOf('pa');
      return e?.state === 'ready' ? e : undefined;
    },
    15_000,
    'pa ready',
  );
  // A ping runs across a crash and a clean restart of the daemon.
  const pinger = host.docker(['exec', 'pa', 'ping', '-c', '40', '-i', '0.1', '-W', '1', pbIp], { timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, 500));
  await daemon.stop('SIGKILL');
  await new Promise((r) => setTimeout(r, 1000));
  await daemon.start();
  await daemon.stop('SIGTERM');
  await daemon.start();
  const result = await pinger;
  t.match(result.stdout, /40 packets transmitted, 40 packets received/, 'no packet lost across kill -9 and restart');
  const after = await daemon.cliJson<EndpointModel>(['endpoint', 'get', 'pa']);
  t.match(
    after,
    { id: before.id, identity: before.identity, ipv4: before.ipv4, state: 'ready', labels: before.labels },
    'endpoint restored as it was',
  );
  await docker(['run', '-d', '--name', 'pc', '--network', 'n1', 'bb', 'sleep', '1000']);
  const pcIp = await ipOf('pc', 'n1');
  t.not(pcIp, pbIp, 'restored allocations are not handed out again');
  t.ok(await ping('pc', pbIp), 'new container reaches an old one');
  await docker(['rm', '-f', 'pc']);
});

t.test('dockerd restart: clean stop and kill -9', async (t) => {
  await docker([
    'run',
    '-d',
    '--name',
    'keep',
    '--restart',
    'always',
    '--network',
    'n1',
    '--ip',
    '198.18.100.77',
    '-l',
    'app=keep',
    'bb',
    'sleep',
    '100000',
  ]);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const oldEp = await eventually(
      async () => {
        const e = await endpointOf('keep');
        return e?.state === 'ready' ? e : undefined;
      },
      15_000,
      'keep ready',
    );
    await host.restartDockerd({ signal });
    const ep = await eventually(
      async () => {
        const e = await endpointOf('keep');
        return e && e.endpointId !== oldEp.endpointId && e.state === 'ready' ? e : undefined;
      },
      60_000,
      `keep back after dockerd ${signal}`,
    );
    t.equal(ep.ipv4, '198.18.100.77', `${signal}: --ip reused`);
    t.same(ep.labels, oldEp.labels, `${signal}: labels learnt again`);
    t.ok(await ping('keep', '198.18.100.1'), `${signal}: networked again`);
    const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
    t.notOk(
      eps.some((e) => e.endpointId === oldEp.endpointId),
      `${signal}: stale endpoint torn down`,
    );
    const running = (await docker(['ps', '-q'])).split('\n').filter((s) => s !== '').length;
    t.equal(eps.length, running, `${signal}: one endpoint per running container`);
  }
  await docker(['rm', '-f', 'keep']);
});

t.test('CLI and API', async (t) => {
  const status = await daemon.cliJson<{ node: string; kvstore: { healthy: boolean }; docker: { connected: boolean } }>([
    'status',
  ]);
  t.match(status, { node: host.name, kvstore: { healthy: true }, docker: { connected: true } });
  const missing = await daemon.cli(['endpoint', 'get', 'no-such-thing']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /endpoint "no-such-thing" not found/);
  const down = await new CiliumDaemon(host).cli(['--host', 'unix:///nonexistent/cilium.sock', 'status']);
  t.equal(down.code, 1, 'CLI fails when no daemon listens');
  t.match(down.stderr, /cannot reach the cilium-docker daemon/);
});

t.test('network rm with containers gone leaves nothing behind', async (t) => {
  await docker(['rm', '-f', 'db', 'pa', 'pb']);
  for (const n of ['n1', 'n2', 'n3']) await docker(['network', 'rm', n]);
  const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
  t.equal(eps.length, 0, 'no endpoints');
  const ips = await daemon.cliJson<IpModel[]>(['ip', 'list']);
  t.equal(ips.length, 0, 'no addresses');
  const leftover = async () => / (lxc|tmp)[0-9a-f]{11}@/.test((await host.exec(['ip', '-o', 'link', 'show'])).stdout);
  await eventually(async () => !(await leftover()) || undefined, 10_000, 'veths gone').catch(() => undefined);
  t.notOk(await leftover(), 'no veths left');
});
