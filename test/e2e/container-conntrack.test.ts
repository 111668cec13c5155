/**
 * Kernel conntrack bypass in container namespaces (src/datapath/container-conntrack.ts), with a
 * real dockerd: dockerd's embedded-DNS NAT rules switch conntrack on in every container of a
 * user-defined network; the daemon exempts non-loopback traffic in the raw table.
 *
 * - the two raw rules appear in each ordinary container's namespace, once, also after a daemon
 *   restart; the kernel tracks none of the containers' TCP connections;
 * - Docker's embedded DNS (127.0.0.11, NATed, on loopback) still answers container names;
 * - a container with NET_ADMIN is left alone (it keeps conntrack for its own rules);
 * - `--container-conntrack kernel` leaves new containers alone.
 */
import t from 'tap';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import { NOTRACK_COMMENT } from '../../src/datapath/container-conntrack.js';
import type { StatusModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let host: DockerHost;
let daemon: CiliumDaemon;
const ips: Record<string, string> = {};

async function docker(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n${daemon.process?.logTail(20)}`);
  return r.stdout.trim();
}

/** Our raw-table rules in the container's namespace. */
async function notrackRules(container: string): Promise<string[]> {
  const r = await host.execInContainerNetns(container, ['iptables', '-w', '5', '-t', 'raw', '-S'], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`iptables -t raw -S in ${container}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.includes(NOTRACK_COMMENT));
}

/** Kernel conntrack entries in the container's namespace that involve `ip`. */
async function tracked(container: string, ip: string): Promise<string[]> {
  const r = await host.docker(['exec', container, 'cat', '/proc/net/nf_conntrack']);
  if (r.code !== 0) throw new Error(`reading /proc/net/nf_conntrack in ${container}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.includes(`=${ip} `));
}

async function run(name: string, extra: string[] = []): Promise<void> {
  await docker(['run', '-d', '--name', name, '--network', 'ct', ...extra, 'bb', 'sh', '-c', 'httpd -p 80 -h /etc; exec sleep 100000']);
  ips[name] = await docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ct").IPAddress}}', name]);
}

async function fetch(from: string, to: string): Promise<boolean> {
  const r = await host.docker(['exec', from, 'timeout', '5', 'wget', '-q', '-O', '-', `http://${ips[to]}/passwd`], { timeoutMs: 20_000 });
  return r.code === 0 && r.stdout.includes('root');
}

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  daemon = new CiliumDaemon(host);
  await daemon.start(60_000);
  t.teardown(() => daemon.stop());
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.232.0/24', 'ct']);
  await run('srv');
  await run('cli');
  await run('adm', ['--cap-add', 'NET_ADMIN']);
});

t.test('ordinary containers get the two notrack rules; the kernel tracks none of their connections', async (t) => {
  for (const c of ['srv', 'cli']) {
    const rules = await eventually(async () => ((await notrackRules(c)).length >= 2 ? notrackRules(c) : undefined), 20_000, `rules in ${c}`);
    t.equal(rules.length, 2, `${c}: two rules`);
    t.ok(rules.some((r) => r.includes('-A PREROUTING ! -i lo')), `${c}: PREROUTING except loopback`);
    t.ok(rules.some((r) => r.includes('-A OUTPUT ! -o lo')), `${c}: OUTPUT except loopback`);
  }
  for (let i = 0; i < 3; i++) t.ok(await fetch('cli', 'srv'), `cli -> srv TCP ${i + 1}`);
  t.same(await tracked('cli', ips.srv!), [], 'cli: no kernel conntrack entry for its connections to srv');
  t.same(await tracked('srv', ips.cli!), [], 'srv: no kernel conntrack entry for connections from cli');
});

t.test("Docker's embedded DNS still answers (its NAT on loopback keeps conntrack)", async (t) => {
  const r = await host.docker(['exec', 'cli', 'nslookup', 'srv'], { timeoutMs: 20_000 });
  t.equal(r.code, 0, `nslookup srv: ${r.stderr}`);
  t.match(r.stdout, new RegExp(`Address:?\\s+(1: )?${ips.srv!.replace(/\./g, '\\.')}`), 'srv resolves to its address');
  const ping = await host.docker(['exec', 'cli', 'ping', '-c', '1', '-W', '2', 'srv'], { timeoutMs: 20_000 });
  t.equal(ping.code, 0, 'ping by name');
});

t.test('a NET_ADMIN container is left alone', async (t) => {
  await eventually(async () => {
    const s = await daemon.cliJson<StatusModel>(['status']);
    return (s.containerConntrack?.skipped ?? 0) >= 1 ? s : undefined;
  }, 20_000, 'the NET_ADMIN container handled');
  t.same(await notrackRules('adm'), [], 'no rules in adm');
  t.ok(await fetch('adm', 'srv'), 'adm -> srv works');
  t.ok((await tracked('adm', ips.srv!)).length > 0, 'adm keeps kernel conntrack');
  const s = await daemon.cliJson<StatusModel>(['status']);
  t.match(s.containerConntrack, { mode: 'bypass', failed: 0 }, 'status: bypass mode, no failure');
  t.ok(s.containerConntrack!.applied >= 2, `status: applied in ${s.containerConntrack!.applied}`);
  const text = await daemon.cli(['status']);
  t.match(text.stdout, /container conntrack: bypassed in \d+/, 'status text shows it');
});

t.test('a daemon restart adds no second copy', async (t) => {
  await daemon.stop();
  await daemon.start(60_000);
  await eventually(async () => {
    const s = await daemon.cliJson<StatusModel>(['status']);
    return s.endpoints.ready === 3 ? s : undefined;
  }, 30_000, 'endpoints ready again');
  await new Promise((r) => setTimeout(r, 3000));
  for (const c of ['srv', 'cli']) t.equal((await notrackRules(c)).length, 2, `${c}: still two rules`);
  t.ok(await fetch('cli', 'srv'), 'cli -> srv after the restart');
});

t.test('--container-conntrack kernel leaves new containers alone', async (t) => {
  await daemon.stop();
  daemon = new CiliumDaemon(host, { extraArgs: ['--container-conntrack', 'kernel'] });
  await daemon.start(60_000);
  await run('plain');
  await eventually(async () => {
    const s = await daemon.cliJson<StatusModel>(['status']);
    return s.endpoints.ready === 4 ? s : undefined;
  }, 30_000, 'plain ready');
  t.same(await notrackRules('plain'), [], 'no rules in plain');
  t.ok(await fetch('plain', 'srv'), 'plain -> srv');
  t.ok((await tracked('plain', ips.srv!)).length > 0, 'plain keeps kernel conntrack');
  t.equal((await daemon.cliJson<StatusModel>(['status'])).containerConntrack?.mode, 'kernel');
});
