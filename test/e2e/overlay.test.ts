/**
 * Two lab hosts on a shared underlay (198.19.250.0/24, etcd on the underlay), each with its own
 * dockerd and daemon (--kvstore etcd, --underlay-ip): the same `docker network create` on both;
 * containers reach each other across hosts by IP (ICMP, TCP) through the VXLAN collect_md overlay
 * with the sender's identity in the VNI; a policy allowing web->db on TCP 5432 only is enforced on
 * the receiving host in both directions, and its drops show in the receiving host's
 * `cilium monitor` with the sender's labels; a multi-megabyte TCP transfer does not stall and DF pings
 * of exactly the container MTU cross while one byte more is refused at the sender (MTU);
 * a third host joining while traffic flows learns every endpoint within 5 s; a node whose record
 * disappears (lease expiry) is removed from the peer's ipcache and re-learned when it comes back.
 */
import t from 'tap';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { startUnderlay, type Underlay } from '../lab/underlay.js';
import { runCommand } from '../lab/exec.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, StatusModel } from '../../src/api/models.js';
import { fileURLToPath } from 'node:url';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const SUBNET = '198.18.120.0/24';
/** Sends one ICMP echo with DF set (busybox ping has no -M); run in a container's netns. */
const DF_PING = fileURLToPath(new URL('../lab/df-ping.py', import.meta.url));
let underlay: Underlay;
let etcdUrl = '';
const hosts: DockerHost[] = [];
const daemons: CiliumDaemon[] = [];
const underlayIps: string[] = [];
/** Container name -> [host index, IP]. */
const where: Record<string, [number, string]> = {};

async function docker(h: number, args: string[]): Promise<string> {
  const r = await hosts[h]!.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker@h${h} ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n${daemons[h]?.process?.logTail(20)}`);
  return r.stdout.trim();
}

/** HTTP GET from a container to another container's port; true if the page came back. */
async function http(from: string, to: string, port: number): Promise<boolean> {
  const [h] = where[from]!;
  const r = await hosts[h]!.docker(['exec', from, 'timeout', '4', 'wget', '-q', '-O', '-', `http://${where[to]![1]}:${port}/passwd`], { timeoutMs: 20_000 });
  return r.code === 0 && r.stdout.includes('root');
}

async function ping(from: string, to: string): Promise<boolean> {
  const [h] = where[from]!;
  const r = await hosts[h]!.docker(['exec', from, 'ping', '-c', '1', '-W', '2', where[to]![1]], { timeoutMs: 20_000 });
  return r.code === 0;
}

async function readyEndpoint(h: number, name: string): Promise<EndpointModel> {
  return eventually(async () => {
    const eps = await daemons[h]!.cliJson<EndpointModel[]>(['endpoint', 'list']);
    const e = eps.find((x) => x.containerName === name);
    return e?.state === 'ready' ? e : undefined;
  }, 30_000, `${name} ready on h${h}`);
}

async function run(h: number, name: string, labels: string[]): Promise<void> {
  // httpd on 80, 5432 and 8080 (8080 serves /tmp, where the big file goes).
  const serve = 'httpd -p 80 -h /etc; httpd -p 5432 -h /etc; httpd -p 8080 -h /tmp; exec sleep 100000';
  await docker(h, ['run', '-d', '--name', name, '--network', 'ovl', ...labels.flatMap((l) => ['-l', l]), 'bb', 'sh', '-c', serve]);
  where[name] = [h, await docker(h, ['inspect', '-f', '{{(index .NetworkSettings.Networks "ovl").IPAddress}}', name])];
  await readyEndpoint(h, name);
}

/** Remote ipcache entries (those with a tunnel endpoint) of host h. */
async function tunnelled(h: number): Promise<Array<{ prefix: string; identity: number; tunnelEndpoint?: string }>> {
  const all = await daemons[h]!.cliJson<Array<{ prefix: string; identity: number; tunnelEndpoint?: string }>>(['bpf', 'ipcache', 'list']);
  return all.filter((e) => e.tunnelEndpoint);
}

t.before(async () => {
  underlay = await startUnderlay(t);
  etcdUrl = await underlay.startEtcd();
  for (let i = 0; i < 2; i++) {
    const host = await startDockerHost(t);
    hosts.push(host);
    await ensureBusyboxImage(host, 'bb');
    underlayIps.push(await underlay.attach(host, i + 1));
    const daemon = new CiliumDaemon(host, {
      extraArgs: ['--kvstore', 'etcd', '--kvstore-opt', `etcd.address=${etcdUrl}`, '--kvstore-opt', 'etcd.lease-ttl=5s', '--underlay-ip', underlayIps[i]!, '--resync-interval', '10s'],
    });
    daemons.push(daemon);
    await daemon.start(60_000);
  }
  for (let h = 0; h < 2; h++) await docker(h, ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', SUBNET, 'ovl']);
  await run(0, 'web', ['app=web']);
  await run(0, 'db1', ['app=db']);
  await run(1, 'db2', ['app=db']);
  await run(1, 'web2', ['app=web']);
});

t.test('the tunnel device and the MTU', async (t) => {
  for (let h = 0; h < 2; h++) {
    const link = await hosts[h]!.exec(['ip', '-d', '-json', 'link', 'show', 'cilium_vxlan'], { check: true });
    const [info] = JSON.parse(link.stdout) as Array<{ mtu: number; linkinfo: { info_kind: string; info_data: { port: number; external?: boolean } } }>;
    t.equal(info!.linkinfo.info_kind, 'vxlan', `h${h}: cilium_vxlan is a vxlan device`);
    t.equal(info!.linkinfo.info_data.port, 8472, `h${h}: on port 8472`);
    t.ok(info!.linkinfo.info_data.external, `h${h}: external (collect_md)`);
  }
  const mtu = await hosts[0]!.docker(['exec', 'web', 'cat', '/sys/class/net/eth0/mtu']);
  t.equal(mtu.stdout.trim(), '1450', 'container MTU = underlay 1500 - 50');
});

t.test('each host learns the other: endpoints /32 and blocks, tunnelled to the peer underlay IP', async (t) => {
  for (let h = 0; h < 2; h++) {
    const other = 1 - h;
    const remoteNames = Object.entries(where).filter(([, [hh]]) => hh === other).map(([n]) => n);
    const entries = await eventually(async () => {
      const e = await tunnelled(h);
      return remoteNames.every((n) => e.some((x) => x.prefix === `${where[n]![1]}/32`)) ? e : undefined;
    }, 20_000, `h${h} learns h${other}'s endpoints`);
    for (const n of remoteNames) {
      const e = entries.find((x) => x.prefix === `${where[n]![1]}/32`)!;
      t.equal(e.tunnelEndpoint, underlayIps[other], `h${h}: ${n} via ${underlayIps[other]}`);
      t.ok(e.identity >= 256, `h${h}: ${n} has its security identity (${e.identity})`);
    }
    t.ok(entries.some((x) => !x.prefix.endsWith('/32') && x.identity === 2 && x.tunnelEndpoint === underlayIps[other]), `h${h}: the peer's block, world identity`);
    const status = await daemons[h]!.cliJson<StatusModel>(['status']);
    t.match(status.overlay, { tunnel: 'vxlan', device: 'cilium_vxlan', port: 8472, underlayIp: underlayIps[h], mtu: 1450 }, `h${h}: status shows the overlay`);
    t.same(status.overlay?.peers.map((p) => [p.name, p.underlayIp]), [[hosts[other]!.name, underlayIps[other]]], `h${h}: status lists the peer`);
  }
});

t.test('cross-host ICMP and TCP by IP, both ways', async (t) => {
  await eventually(async () => ping('web', 'db2'), 20_000, 'web -> db2 ping');
  t.ok(await ping('web', 'db2'), 'h0 web -> h1 db2 ping');
  t.ok(await ping('db2', 'web'), 'h1 db2 -> h0 web ping');
  t.ok(await http('web', 'db2', 80), 'h0 web -> h1 db2 TCP 80');
  t.ok(await http('web2', 'db1', 80), 'h1 web2 -> h0 db1 TCP 80');
  t.ok(await http('db1', 'web2', 5432), 'h0 db1 -> h1 web2 TCP 5432');
});

t.test('a multi-megabyte TCP transfer across hosts arrives whole (MTU)', async (t) => {
  await docker(1, ['exec', 'db2', 'sh', '-c', 'dd if=/dev/urandom of=/tmp/big bs=1024 count=8192 2>/dev/null; md5sum /tmp/big']);
  const want = (await docker(1, ['exec', 'db2', 'md5sum', '/tmp/big'])).split(' ')[0];
  const r = await hosts[0]!.docker(['exec', 'web', 'sh', '-c', `timeout 30 wget -q -O /tmp/got http://${where.db2![1]}:8080/big && md5sum /tmp/got`], { timeoutMs: 60_000 });
  t.equal(r.code, 0, `transfer finished: ${r.stderr}`);
  t.equal(r.stdout.split(' ')[0], want, '8 MiB, same checksum');
});

t.test('DF pings at the MTU boundary: a full-size packet crosses, one byte more is refused at the sender', async (t) => {
  // The container MTU (1450) plus VXLAN's 50 bytes fills the underlay's 1500 exactly: a DF
  // packet of 1450 bytes must cross whole, both ways; 1451 must fail locally with EMSGSIZE
  // (the sender learns the limit) instead of vanishing in the tunnel.
  const dfPing = async (from: string, to: string, bytes: number) => {
    const [h] = where[from]!;
    return hosts[h]!.execInContainerNetns(from, ['python3', DF_PING, where[to]![1], String(bytes), '3'], { timeoutMs: 20_000 });
  };
  for (const [from, to] of [['web', 'db2'], ['db2', 'web']] as const) {
    const full = await dfPing(from, to, 1450);
    t.equal(full.code, 0, `${from} -> ${to}: DF 1450 bytes answered (${full.stdout.trim()} ${full.stderr.trim()})`);
    t.equal(full.stdout.trim(), 'reply 1450 bytes', `${from} -> ${to}: the reply is full-size too`);
    const over = await dfPing(from, to, 1451);
    t.equal(over.code, 3, `${from} -> ${to}: DF 1451 bytes refused by the sender (${over.stdout.trim()})`);
    t.equal(over.stdout.trim(), 'EMSGSIZE mtu=1450', `${from} -> ${to}: the path MTU it reports`);
  }
});

t.test('policy web->db on 5432 only, enforced on the receiving host in both directions', async (t) => {
  const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: db-from-web
spec:
  endpointSelector:
    matchLabels:
      app: db
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: web
    toPorts:
    - ports:
      - port: "5432"
        protocol: TCP
`;
  const imported = await daemons[0]!.cli(['policy', 'import', '-', '-o', 'json'], policy);
  t.equal(imported.code, 0, `imported on h0: ${imported.stderr}`);
  const revision = (JSON.parse(imported.stdout) as { revision: number }).revision;
  for (const d of daemons) {
    const w = await d.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
    t.equal(w.code, 0, `policy revision ${revision} enforced on ${d.host.name}`);
  }
  const monitors = [daemons[0]!.monitor(['drop']), daemons[1]!.monitor(['drop'])];
  t.teardown(() => monitors.forEach((m) => m.stop()));
  await new Promise((r) => setTimeout(r, 2000));

  t.ok(await http('web', 'db2', 5432), 'h0 web -> h1 db2:5432 allowed');
  t.notOk(await http('web', 'db2', 80), 'h0 web -> h1 db2:80 dropped');
  t.ok(await http('web2', 'db1', 5432), 'h1 web2 -> h0 db1:5432 allowed');
  t.notOk(await http('web2', 'db1', 80), 'h1 web2 -> h0 db1:80 dropped');
  t.notOk(await http('db1', 'db2', 5432), 'h0 db1 -> h1 db2:5432 dropped (not web)');
  t.ok(await http('db1', 'web2', 80), 'h0 db1 -> h1 web2:80 still allowed (web is not selected)');

  const onH1 = await monitors[1]!.waitFor((e) => e.daddr === where.db2![1] && e.dport === 80 && e.saddr === where.web![1]);
  t.ok((onH1.srcLabels as string[]).includes('container:app=web'), `h1 monitor: drop carries the sender's labels (${JSON.stringify(onH1.srcLabels)})`);
  t.equal(onH1.reasonName, 'Policy denied', 'h1: reason');
  const onH0 = await monitors[0]!.waitFor((e) => e.daddr === where.db1![1] && e.dport === 80 && e.saddr === where.web2![1]);
  t.ok((onH0.srcLabels as string[]).includes('container:app=web'), `h0 monitor: drop carries the sender's labels (${JSON.stringify(onH0.srcLabels)})`);
  t.notOk(monitors[0]!.events.some((e) => e.daddr === where.db2![1] && e.dport === 80), 'the sender (h0) did not drop web->db2:80: the receiver did');

  const del = await daemons[1]!.cli(['policy', 'delete', '--all', '-o', 'json']);
  t.equal(del.code, 0, 'deleted from h1');
  const delRevision = (JSON.parse(del.stdout) as { revision: number }).revision;
  for (const d of daemons) await d.cli(['policy', 'wait', String(delRevision), '--timeout', '20s']);
  t.ok(await http('web', 'db2', 80), 'after delete: web -> db2:80 passes again');
});

t.test('an etcd outage leaves the overlay working; when etcd returns, new endpoints are learned again', async (t) => {
  await underlay.stopEtcd();
  const during = await hosts[0]!.docker(['exec', 'web', 'ping', '-c', '20', '-i', '0.25', where.db2![1]], { timeoutMs: 60_000 });
  t.match(during.stdout, / 0% packet loss/, 'h0 -> h1 ping with etcd down: no loss');
  t.ok(await http('web2', 'db1', 80), 'h1 -> h0 TCP with etcd down');
  t.ok((await tunnelled(0)).some((e) => e.prefix === `${where.db2![1]}/32`), 'h0 kept its remote entries');
  await underlay.startEtcd();
  await run(1, 'late', ['app=late']);
  await eventually(async () => (await tunnelled(0)).some((e) => e.prefix === `${where.late![1]}/32`), 30_000, 'h0 learns a container started after the outage');
  t.ok(await ping('web', 'late'), 'h0 web -> h1 late (started after etcd returned)');
});

t.test('a third host joining while traffic flows learns every endpoint within 5 s and reaches both hosts', async (t) => {
  // Traffic between h0 and h1 while h2 joins.
  const flow = hosts[0]!.docker(['exec', 'web', 'ping', '-c', '40', '-i', '0.25', where.db2![1]], { timeoutMs: 60_000 });
  const host = await startDockerHost(t);
  hosts.push(host);
  await ensureBusyboxImage(host, 'bb');
  underlayIps.push(await underlay.attach(host, 3));
  const daemon = new CiliumDaemon(host, { extraArgs: ['--kvstore', 'etcd', '--kvstore-opt', `etcd.address=${etcdUrl}`, '--kvstore-opt', 'etcd.lease-ttl=5s', '--underlay-ip', underlayIps[2]!, '--resync-interval', '10s'] });
  daemons.push(daemon);
  await daemon.start(60_000);
  const ready = Date.now();
  const remote = Object.entries(where).map(([, [, addr]]) => `${addr}/32`);
  await eventually(async () => {
    const e = await tunnelled(2);
    return remote.every((p) => e.some((x) => x.prefix === p));
  }, 5_000, 'h2 learns every remote endpoint');
  t.pass(`h2 learned all ${remote.length} remote endpoints ${Date.now() - ready} ms after its daemon answered`);
  await docker(2, ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', SUBNET, 'ovl']);
  await run(2, 'web3', ['app=web3']);
  await eventually(async () => (await ping('web3', 'web')) && (await ping('web3', 'db2')), 20_000, 'web3 reaches h0 and h1');
  t.ok(await http('web3', 'web', 80), 'h2 web3 -> h0 web TCP');
  t.ok(await http('db1', 'web3', 80), 'h0 db1 -> h2 web3 TCP');
  const pinged = await flow;
  const loss = /(\d+)% packet loss/.exec(pinged.stdout)?.[1];
  t.equal(loss, '0', `h0 -> h1 traffic while h2 joined: ${loss}% loss`);
});

t.test('a node that leaves is removed from the peer; when it comes back it is re-learned', async (t) => {
  const h1Ip = underlayIps[1]!;
  await daemons[1]!.stop('SIGKILL');
  // Its lease (5 s TTL) expires: the record and its ip entries go, and so do h0's entries for it.
  await eventually(async () => (await tunnelled(0)).every((e) => e.tunnelEndpoint !== h1Ip), 30_000, 'h0 drops h1 entries');
  t.pass('h0 removed every entry pointing at h1 after its lease expired');
  await daemons[1]!.start(60_000);
  await eventually(async () => (await tunnelled(0)).some((e) => e.prefix === `${where.db2![1]}/32` && e.tunnelEndpoint === h1Ip), 30_000, 'h0 re-learns h1');
  t.pass('h0 re-learned h1 after its restart');
  await eventually(async () => http('web', 'db2', 80), 20_000, 'web -> db2 after the rejoin');
  t.pass('traffic flows again');
});

t.teardown(async () => {
  // The underlay's etcd log helps when something failed.
  if (!t.passing()) await runCommand('tail', ['-n', '20', `${underlay.dir}/etcd.log`]).then((r) => t.comment(r.stdout));
});
