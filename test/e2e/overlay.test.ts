/**
 * Two lab hosts on a shared underlay (198.19.250.0/24, etcd on the underlay), each with its own
 * dockerd and daemon (--kvstore etcd, --underlay-ip): the same `docker network create` on both;
 * containers reach each other across hosts by IP (ICMP, TCP) through the VXLAN collect_md overlay
 * with the sender's identity in the VNI; a policy allowing web->db on TCP 5432 only is enforced on
 * the receiving host in both directions, and its drops show in the receiving host's
 * `cilium monitor` with the sender's labels; a multi-megabyte TCP transfer does not stall and DF pings
 * of exactly the container MTU cross while one byte more is refused at the sender (MTU);
 * a third host joining while traffic flows learns every endpoint within 5 s; a node whose record
 * disappears (lease expiry) is removed from the peer's ipcache and re-learned when it comes back;
 * a tunnel or underlay device deleted and created again (new ifindex), or our filter taken off
 * one, is taken up again by the daemon's device check.
 */
import t from 'tap';
import { requireRoot } from '../lab/preconditions.js';
import { startUnderlay } from '../lab/underlay.js';
import { checkDbFromWebOnReceiver, Cluster } from '../lab/cluster.js';
import { runCommand } from '../lab/exec.js';
import { eventually } from '../support/cilium-daemon.js';
import type { StatusModel } from '../../src/api/models.js';
import { fileURLToPath } from 'node:url';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

/** Sends one ICMP echo with DF set (busybox ping has no -M); run in a container's netns. */
const DF_PING = fileURLToPath(new URL('../lab/df-ping.py', import.meta.url));
let c: Cluster;

t.before(async () => {
  const underlay = await startUnderlay(t);
  c = new Cluster(
    underlay,
    { backend: 'etcd', address: await underlay.startEtcd() },
    { name: 'ovl', subnet: '198.18.120.0/24' },
  );
  for (let h = 0; h < 2; h++) await c.addHost(t, h, { leaseTtl: '5s' });
  for (let h = 0; h < 2; h++) await c.createNetwork(h);
  await c.run(0, 'web', ['app=web']);
  await c.run(0, 'db1', ['app=db']);
  await c.run(1, 'db2', ['app=db']);
  await c.run(1, 'web2', ['app=web']);
});

t.test('the tunnel device and the MTU', async (t) => {
  for (let h = 0; h < 2; h++) {
    const link = await c.hosts[h]!.exec(['ip', '-d', '-json', 'link', 'show', 'cilium_vxlan'], { check: true });
    const [info] = JSON.parse(link.stdout) as Array<{
      mtu: number;
      linkinfo: { info_kind: string; info_data: { port: number; external?: boolean } };
    }>;
    t.equal(info!.linkinfo.info_kind, 'vxlan', `h${h}: cilium_vxlan is a vxlan device`);
    t.equal(info!.linkinfo.info_data.port, 8472, `h${h}: on port 8472`);
    t.ok(info!.linkinfo.info_data.external, `h${h}: external (collect_md)`);
  }
  const mtu = await c.hosts[0]!.docker(['exec', 'web', 'cat', '/sys/class/net/eth0/mtu']);
  t.equal(mtu.stdout.trim(), '1450', 'container MTU = underlay 1500 - 50');
});

t.test('each host learns the other: endpoints /32 and blocks, tunnelled to the peer underlay IP', async (t) => {
  for (let h = 0; h < 2; h++) {
    const other = 1 - h;
    const remoteNames = Object.entries(c.where)
      .filter(([, [hh]]) => hh === other)
      .map(([n]) => n);
    const entries = await eventually(
      async () => {
        const e = await c.tunnelled(h);
        return remoteNames.every((n) => e.some((x) => x.prefix === `${c.where[n]![1]}/32`)) ? e : undefined;
      },
      20_000,
      `h${h} learns h${other}'s endpoints`,
    );
    for (const n of remoteNames) {
      const e = entries.find((x) => x.prefix === `${c.where[n]![1]}/32`)!;
      t.equal(e.tunnelEndpoint, c.underlayIps[other], `h${h}: ${n} via ${c.underlayIps[other]}`);
      t.ok(e.identity >= 256, `h${h}: ${n} has its security identity (${e.identity})`);
    }
    t.ok(
      entries.some((x) => !x.prefix.endsWith('/32') && x.identity === 2 && x.tunnelEndpoint === c.underlayIps[other]),
      `h${h}: the peer's block, world identity`,
    );
    const status = await c.daemons[h]!.cliJson<StatusModel>(['status']);
    t.match(
      status.overlay,
      { tunnel: 'vxlan', device: 'cilium_vxlan', port: 8472, underlayIp: c.underlayIps[h], mtu: 1450 },
      `h${h}: status shows the overlay`,
    );
    t.same(
      status.overlay?.peers.map((p) => [p.name, p.underlayIp]),
      [[c.hosts[other]!.name, c.underlayIps[other]]],
      `h${h}: status lists the peer`,
    );
  }
});

t.test('cross-host ICMP and TCP by IP, both ways', async (t) => {
  await eventually(async () => c.ping('web', 'db2'), 20_000, 'web -> db2 ping');
  t.ok(await c.ping('web', 'db2'), 'h0 web -> h1 db2 ping');
  t.ok(await c.ping('db2', 'web'), 'h1 db2 -> h0 web ping');
  t.ok(await c.http('web', 'db2', 80), 'h0 web -> h1 db2 TCP 80');
  t.ok(await c.http('web2', 'db1', 80), 'h1 web2 -> h0 db1 TCP 80');
  t.ok(await c.http('db1', 'web2', 5432), 'h0 db1 -> h1 web2 TCP 5432');
});

/** Packets cilium_vxlan received and sent on host h so far. */
async function tunnelDevicePackets(h: number): Promise<{ rx: number; tx: number }> {
  const r = await c.hosts[h]!.exec(['ip', '-s', '-json', 'link', 'show', 'cilium_vxlan'], { check: true });
  const [link] = JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>;
  return { rx: link!.stats64.rx.packets, tx: link!.stats64.tx.packets };
}

t.test(
  "containers' traffic bypasses the tunnel device both ways (encapsulation in BPF); " +
    'a peer that uses the device interoperates',
  async (t) => {
    for (let h = 0; h < 2; h++) {
      const status = await c.daemons[h]!.cliJson<StatusModel>(['status']);
      t.match(
        status.overlay,
        { encap: 'bpf', underlayDevice: String },
        `h${h}: encapsulation in BPF (${status.overlay?.underlayDevice})`,
      );
      const entry = (await c.tunnelled(h)).find((e) => e.tunnelEndpoint === c.underlayIps[1 - h]);
      t.equal(entry?.tunnelNexthop, undefined, `h${h}: the peer is on the underlay's link, its own next hop`);
    }
    const before = [await tunnelDevicePackets(0), await tunnelDevicePackets(1)];
    t.equal(await c.flow('web', 'db2', 10), 0, 'h0 web -> h1 db2: 10 pings, no loss');
    t.ok(await c.http('web2', 'db1', 80), 'h1 web2 -> h0 db1 TCP 80');
    for (let h = 0; h < 2; h++) {
      const after = await tunnelDevicePackets(h);
      const rx = after.rx - before[h]!.rx;
      const tx = after.tx - before[h]!.tx;
      t.ok(rx < 3 && tx < 3, `h${h}: cilium_vxlan carried none of it (rx +${rx}, tx +${tx})`);
    }

    // h1 switches to the tunnel device (--tunnel-encap device): the same packets on the wire, so h0
    // (still in BPF) and h1 keep talking; h1's agent takes its from_underlay off the underlay device.
    await c.daemons[1]!.stop();
    try {
      await c.daemons[1]!.start(60_000, { CILIUM_DOCKER_TUNNEL_ENCAP: 'device' });
      const status = await c.daemons[1]!.cliJson<StatusModel>(['status']);
      t.equal(status.overlay?.encap, 'device', 'h1: encapsulation by the tunnel device');
      const filters = await c.hosts[1]!.exec(
        ['tc', '-json', 'filter', 'show', 'dev', status.overlay!.underlayDevice!, 'ingress'],
        { check: true },
      );
      t.notMatch(filters.stdout, /from_underlay/, 'h1: no from_underlay on the underlay device');
      await eventually(async () => c.ping('web', 'db2'), 20_000, 'web -> db2 after the switch');
      const mixed = [await tunnelDevicePackets(0), await tunnelDevicePackets(1)];
      t.equal(await c.flow('web', 'db2', 10), 0, 'mixed: h0 web -> h1 db2, 10 pings, no loss');
      t.ok(await c.http('web2', 'db1', 80), 'mixed: h1 web2 -> h0 db1 TCP 80');
      const h0 = await tunnelDevicePackets(0);
      const h1 = await tunnelDevicePackets(1);
      t.ok(
        h1.tx - mixed[1]!.tx >= 10 && h1.rx - mixed[1]!.rx >= 10,
        `h1: its tunnel device carries its side (rx +${h1.rx - mixed[1]!.rx}, tx +${h1.tx - mixed[1]!.tx})`,
      );
      t.ok(
        h0.tx - mixed[0]!.tx < 3 && h0.rx - mixed[0]!.rx < 3,
        `h0: still none through its tunnel device (rx +${h0.rx - mixed[0]!.rx}, tx +${h0.tx - mixed[0]!.tx})`,
      );
    } finally {
      await c.daemons[1]!.stop();
      await c.daemons[1]!.start(60_000);
    }
    await eventually(async () => c.ping('web', 'db2'), 20_000, 'web -> db2 back in BPF');
    const filters = await c.hosts[1]!.exec(
      [
        'tc',
        '-json',
        'filter',
        'show',
        'dev',
        (await c.daemons[1]!.cliJson<StatusModel>(['status'])).overlay!.underlayDevice!,
        'ingress',
      ],
      { check: true },
    );
    t.match(filters.stdout, /from_underlay/, 'h1: from_underlay back on the underlay device');
  },
);

t.test(
  'a re-created tunnel or underlay device, or a filter removed from one, is taken up again (device check, 15 s)',
  async (t) => {
    const h1 = c.hosts[1]!;
    const ifindexOf = async (dev: string) => {
      const r = await h1.exec(['ip', '-json', 'link', 'show', dev]);
      return r.code === 0 ? (JSON.parse(r.stdout) as Array<{ ifindex: number }>)[0]!.ifindex : 0;
    };
    const ingressFilters = async (dev: string) =>
      (await h1.exec(['tc', '-json', 'filter', 'show', 'dev', dev, 'ingress'])).stdout;
    const underlayDevice = (await c.daemons[1]!.cliJson<StatusModel>(['status'])).overlay!.underlayDevice!;
    const pingFromHost1 = async (to: string) =>
      (await h1.exec(['timeout', '5', 'busybox', 'ping', '-c', '1', '-W', '2', to], { timeoutMs: 20_000 })).code === 0;

    // The tunnel device (the host's own traffic to remote containers): deleted, it comes back with
    // its filter and the routes into it, under another ifindex the reloaded programs use.
    const vxlanBefore = await ifindexOf('cilium_vxlan');
    await h1.exec(['ip', 'link', 'del', 'cilium_vxlan'], { check: true });
    const vxlanAfter = await eventually(
      async () => {
        const i = await ifindexOf('cilium_vxlan');
        return i && i !== vxlanBefore && /from_overlay/.test(await ingressFilters('cilium_vxlan')) ? i : undefined;
      },
      40_000,
      'cilium_vxlan re-created with from_overlay',
    );
    t.not(
      vxlanAfter,
      vxlanBefore,
      `h1: cilium_vxlan re-created (ifindex ${vxlanBefore} -> ${vxlanAfter}) with from_overlay`,
    );
    const routes = await eventually(
      async () => {
        const r = (await c.daemons[1]!.cliJson<StatusModel>(['status'])).overlay?.routes ?? [];
        return r.some((x) => x.via === c.underlayIps[0]) ? r : undefined;
      },
      20_000,
      "h1's route to h0's block",
    );
    t.ok(routes.length > 0, `h1: the routes into the tunnel are back (${JSON.stringify(routes)})`);
    t.ok(
      await eventually(() => pingFromHost1(c.ip('db1')), 20_000, 'host h1 -> db1'),
      'host h1 -> h0 db1 through the new tunnel device',
    );
    t.ok(
      await eventually(() => c.ping('web2', 'db1'), 20_000, 'web2 -> db1'),
      'h1 web2 -> h0 db1 after the tunnel device came back',
    );

    // The underlay device re-created by "the network manager" (same name and address, new
    // ifindex): from_underlay on the new one and containers' traffic encapsulated in BPF again.
    const underlayBefore = await ifindexOf(underlayDevice);
    await h1.exec(['ip', 'link', 'del', underlayDevice], { check: true });
    await c.underlay.attach(h1, 2);
    const underlayAfter = await eventually(
      async () => {
        const i = await ifindexOf(underlayDevice);
        return i && /from_underlay/.test(await ingressFilters(underlayDevice)) ? i : undefined;
      },
      40_000,
      `from_underlay on the new ${underlayDevice}`,
    );
    t.not(
      underlayAfter,
      underlayBefore,
      `h1: ${underlayDevice} re-created (ifindex ${underlayBefore} -> ${underlayAfter}), from_underlay on it`,
    );
    await eventually(() => c.ping('web2', 'db1'), 30_000, 'web2 -> db1 over the new underlay device');
    const before = await tunnelDevicePackets(1);
    t.equal(await c.flow('web2', 'db1', 10), 0, 'h1 web2 -> h0 db1: 10 pings, no loss');
    t.ok(await c.http('web', 'db2', 80), 'h0 web -> h1 db2 TCP 80');
    const after = await tunnelDevicePackets(1);
    t.ok(
      after.rx - before.rx < 3 && after.tx - before.tx < 3,
      'h1: still encapsulated in BPF, ' +
        `cilium_vxlan carried none of it (rx +${after.rx - before.rx}, tx +${after.tx - before.tx})`,
    );

    // Our filter taken off the underlay device (its clsact qdisc deleted): put back.
    await h1.exec(['tc', 'qdisc', 'del', 'dev', underlayDevice, 'clsact'], { check: true });
    t.notMatch(await ingressFilters(underlayDevice), /from_underlay/, 'h1: from_underlay removed by hand');
    await eventually(
      async () => /from_underlay/.test(await ingressFilters(underlayDevice)),
      40_000,
      'from_underlay attached again',
    );
    const back = await tunnelDevicePackets(1);
    t.equal(await c.flow('web', 'db2', 5), 0, 'h0 web -> h1 db2 after the filter came back: 5 pings, no loss');
    const end = await tunnelDevicePackets(1);
    t.ok(
      end.rx - back.rx < 3,
      `h1: decapsulated by from_underlay again, not by cilium_vxlan (rx +${end.rx - back.rx})`,
    );
  },
);

t.test(
  "a host reaches the other host's containers through the tunnel as remote-node; containers reach the other host",
  async (t) => {
    const h0 = c.hosts[0]!;
    const fromHost0 = (argv: string[]) => h0.exec(['timeout', '5', 'busybox', ...argv], { timeoutMs: 20_000 });
    const pingFromHost0 = async (to: string, source?: string) =>
      (await fromHost0(['ping', '-c', '1', '-W', '2', ...(source ? ['-I', source] : []), to])).code === 0;
    const httpFromHost0 = async (to: string, port: number) => {
      const r = await fromHost0(['wget', '-q', '-O', '-', `http://${to}:${port}/passwd`]);
      return r.code === 0 && r.stdout.includes('root');
    };
    const entries = await eventually(
      async () => {
        const e = await c.tunnelled(1);
        return e.some((x) => x.prefix === `${c.underlayIps[0]}/32`) ? e : undefined;
      },
      20_000,
      "h1 knows h0's own address",
    );
    t.match(
      entries.find((x) => x.prefix === `${c.underlayIps[0]}/32`),
      { identity: 6, tunnelEndpoint: c.underlayIps[0] },
      "h1: h0's address is the remote node, through the tunnel",
    );
    const status = await c.daemons[0]!.cliJson<StatusModel>(['status']);
    t.ok(
      status.overlay?.routes?.some((r) => r.via === c.underlayIps[1]),
      `h0: a route to h1's block into the tunnel (${JSON.stringify(status.overlay?.routes)})`,
    );

    t.ok(await eventually(() => pingFromHost0(c.ip('db2')), 20_000, 'host h0 -> db2 ping'), 'host h0 -> h1 db2 ping');
    t.ok(await httpFromHost0(c.ip('db2'), 80), 'host h0 -> h1 db2 TCP 80');
    const toHost0 = await c.hosts[1]!.docker(['exec', 'db2', 'ping', '-c', '1', '-W', '2', c.underlayIps[0]!], {
      timeoutMs: 20_000,
    });
    t.equal(toHost0.code, 0, "h1 db2 -> host h0's own address ping");

    // Only other nodes' hosts may talk to db: the host's traffic carries remote-node, a container's
    // its own identity, and what a host forwards from another source (here: a second address of h0,
    // not its underlay one) is the world on arrival.
    await c.importPolicy(
      t,
      0,
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: db-from-nodes
spec:
  endpointSelector:
    matchLabels:
      app: db
  ingress:
  - fromEntities:
    - remote-node
`,
    );
    const monitor = c.daemons[1]!.monitor(['drop']);
    t.teardown(() => monitor.stop());
    await h0.exec(['ip', 'addr', 'add', '198.19.251.1/32', 'dev', 'lo'], { check: true });
    t.teardown(() => h0.exec(['ip', 'addr', 'del', '198.19.251.1/32', 'dev', 'lo']));
    await new Promise((r) => setTimeout(r, 2000));
    t.ok(await pingFromHost0(c.ip('db2')), 'with policy: host h0 -> db2 ping allowed (remote-node)');
    t.ok(await httpFromHost0(c.ip('db2'), 80), 'with policy: host h0 -> db2:80 allowed (remote-node)');
    t.notOk(await c.http('web', 'db2', 80), 'with policy: h0 container web -> db2:80 dropped (not remote-node)');
    t.notOk(
      await pingFromHost0(c.ip('db2'), '198.19.251.1'),
      'with policy: h0 sending from another address -> db2 dropped',
    );
    const spoofed = await monitor.waitFor((e) => e.daddr === c.ip('db2') && e.saddr === '198.19.251.1');
    t.ok(
      (spoofed.srcLabels as string[]).includes('reserved:world'),
      `h1 monitor: that drop is from the world (${JSON.stringify(spoofed.srcLabels)})`,
    );
    await c.deletePolicies(t, 0);
  },
);

t.test('a multi-megabyte TCP transfer across hosts arrives whole (MTU)', async (t) => {
  await c.docker(1, [
    'exec',
    'db2',
    'sh',
    '-c',
    'dd if=/dev/urandom of=/tmp/big bs=1024 count=8192 2>/dev/null; md5sum /tmp/big',
  ]);
  const want = (await c.docker(1, ['exec', 'db2', 'md5sum', '/tmp/big'])).split(' ')[0];
  const r = await c.hosts[0]!.docker(
    ['exec', 'web', 'sh', '-c', `timeout 30 wget -q -O /tmp/got http://${c.where.db2![1]}:8080/big && md5sum /tmp/got`],
    { timeoutMs: 60_000 },
  );
  t.equal(r.code, 0, `transfer finished: ${r.stderr}`);
  t.equal(r.stdout.split(' ')[0], want, '8 MiB, same checksum');
});

t.test(
  'DF pings at the MTU boundary: a full-size packet crosses, one byte more is refused at the sender',
  async (t) => {
    // The container MTU (1450) plus VXLAN's 50 bytes fills the underlay's 1500 exactly: a DF
    // packet of 1450 bytes must cross whole, both ways; 1451 must fail locally with EMSGSIZE
    // (the sender learns the limit) instead of vanishing in the tunnel.
    const dfPing = async (from: string, to: string, bytes: number) => {
      const [h] = c.where[from]!;
      return c.hosts[h]!.execInContainerNetns(from, ['python3', DF_PING, c.where[to]![1], String(bytes), '3'], {
        timeoutMs: 20_000,
      });
    };
    for (const [from, to] of [
      ['web', 'db2'],
      ['db2', 'web'],
    ] as const) {
      const full = await dfPing(from, to, 1450);
      t.equal(full.code, 0, `${from} -> ${to}: DF 1450 bytes answered (${full.stdout.trim()} ${full.stderr.trim()})`);
      t.equal(full.stdout.trim(), 'reply 1450 bytes', `${from} -> ${to}: the reply is full-size too`);
      const over = await dfPing(from, to, 1451);
      t.equal(over.code, 3, `${from} -> ${to}: DF 1451 bytes refused by the sender (${over.stdout.trim()})`);
      t.equal(over.stdout.trim(), 'EMSGSIZE mtu=1450', `${from} -> ${to}: the path MTU it reports`);
    }
  },
);

t.test('policy web->db on 5432 only, enforced on the receiving host in both directions', (t) =>
  checkDbFromWebOnReceiver(t, c),
);

t.test('an etcd outage leaves the overlay working; when etcd returns, new endpoints are learned again', async (t) => {
  await c.underlay.stopEtcd();
  const during = await c.hosts[0]!.docker(['exec', 'web', 'ping', '-c', '20', '-i', '0.25', c.where.db2![1]], {
    timeoutMs: 60_000,
  });
  t.match(during.stdout, / 0% packet loss/, 'h0 -> h1 ping with etcd down: no loss');
  t.ok(await c.http('web2', 'db1', 80), 'h1 -> h0 TCP with etcd down');
  t.ok(
    (await c.tunnelled(0)).some((e) => e.prefix === `${c.where.db2![1]}/32`),
    'h0 kept its remote entries',
  );
  await c.underlay.startEtcd();
  await c.run(1, 'late', ['app=late']);
  await eventually(
    async () => (await c.tunnelled(0)).some((e) => e.prefix === `${c.where.late![1]}/32`),
    30_000,
    'h0 learns a container started after the outage',
  );
  t.ok(await c.ping('web', 'late'), 'h0 web -> h1 late (started after etcd returned)');
});

t.test(
  'a third host joining while traffic flows learns every endpoint within 5 s and reaches both hosts',
  async (t) => {
    // Traffic between h0 and h1 while h2 joins.
    const flow = c.hosts[0]!.docker(['exec', 'web', 'ping', '-c', '40', '-i', '0.25', c.where.db2![1]], {
      timeoutMs: 60_000,
    });
    await c.addHost(t, 2, { leaseTtl: '5s' });
    const ready = Date.now();
    const remote = Object.entries(c.where).map(([, [, addr]]) => `${addr}/32`);
    await eventually(
      async () => {
        const e = await c.tunnelled(2);
        return remote.every((p) => e.some((x) => x.prefix === p));
      },
      5_000,
      'h2 learns every remote endpoint',
    );
    t.pass(`h2 learned all ${remote.length} remote endpoints ${Date.now() - ready} ms after its daemon answered`);
    await c.createNetwork(2);
    await c.run(2, 'web3', ['app=web3']);
    await eventually(
      async () => (await c.ping('web3', 'web')) && (await c.ping('web3', 'db2')),
      20_000,
      'web3 reaches h0 and h1',
    );
    t.ok(await c.http('web3', 'web', 80), 'h2 web3 -> h0 web TCP');
    t.ok(await c.http('db1', 'web3', 80), 'h0 db1 -> h2 web3 TCP');
    const pinged = await flow;
    const loss = /(\d+)% packet loss/.exec(pinged.stdout)?.[1];
    t.equal(loss, '0', `h0 -> h1 traffic while h2 joined: ${loss}% loss`);
  },
);

t.test('a node that leaves is removed from the peer; when it comes back it is re-learned', async (t) => {
  const h1Ip = c.underlayIps[1]!;
  await c.daemons[1]!.stop('SIGKILL');
  // Its lease (5 s TTL) expires: the record and its ip entries go, and so do h0's entries for it.
  await eventually(
    async () => (await c.tunnelled(0)).every((e) => e.tunnelEndpoint !== h1Ip),
    30_000,
    'h0 drops h1 entries',
  );
  t.pass('h0 removed every entry pointing at h1 after its lease expired');
  await c.daemons[1]!.start(60_000);
  await eventually(
    async () => (await c.tunnelled(0)).some((e) => e.prefix === `${c.where.db2![1]}/32` && e.tunnelEndpoint === h1Ip),
    30_000,
    'h0 re-learns h1',
  );
  t.pass('h0 re-learned h1 after its restart');
  await eventually(async () => c.http('web', 'db2', 80), 20_000, 'web -> db2 after the rejoin');
  t.pass('traffic flows again');
});

t.teardown(async () => {
  // The underlay's etcd log helps when something failed.
  if (!t.passing())
    await runCommand('tail', ['-n', '20', `${c?.underlay.dir}/etcd.log`]).then((r) => t.comment(r.stdout));
});
