/**
 * Native routing (`--routing-mode native`): two lab hosts on a shared underlay (198.19.251.0/24,
 * etcd on the underlay), the same `docker network create` on both. No tunnel device: each daemon
 * installs kernel routes to the peer's address blocks via the peer's underlay IP (protocol 193),
 * containers get the underlay's full MTU, and packets cross the underlay unencapsulated (a capture
 * on the underlay device sees the containers' own addresses). Strict reverse-path filtering is
 * on in both hosts (rp_filter=1, as many distributions set it) and does not get in the way.
 * Cross-host ICMP and TCP work both ways; a web->db 5432-only policy is enforced on the receiving
 * host with the sender's identity from the ipcache (drops in the receiving host's `cilium
 * monitor` with the sender's labels); `cilium status` shows the mode and the routes; a peer whose
 * lease expires has its routes removed; `cilium cleanup` removes the routes it installed.
 */
import t from 'tap';
import { requireRoot } from '../lab/preconditions.js';
import { startUnderlay } from '../lab/underlay.js';
import { checkDbFromWebOnReceiver, Cluster } from '../lab/cluster.js';
import { runCommand } from '../lab/exec.js';
import { eventually } from '../support/cilium-daemon.js';
import type { StatusModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let c: Cluster;

/**
 * Raw AF_PACKET capture on a device for N seconds: prints `<ip protocol> <src> <dst>` per IPv4
 * frame (the lab machine has no tcpdump; Python's socket module reads the device directly).
 */
const CAPTURE = `
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    ip = f[14:]
    if len(ip) >= 20 and ip[0] >> 4 == 4:
        print(ip[9], socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), flush=True)
`;

/** Routes of host h's main table with the daemon's protocol (193): prefix -> gateway. */
async function peerRoutes(h: number): Promise<Map<string, string>> {
  const r = await c.hosts[h]!.exec(['ip', '-json', 'route', 'show', 'proto', '193'], { check: true });
  const routes = JSON.parse(r.stdout || '[]') as Array<{ dst: string; gateway?: string; dev?: string }>;
  return new Map(routes.map((x) => [x.dst, `${x.gateway ?? ''} dev ${x.dev ?? ''}`]));
}

/** Blocks a daemon claimed, from its node record as its peer sees it. */
async function blocksOf(h: number): Promise<string[]> {
  const status = await c.daemons[1 - h]!.cliJson<StatusModel>(['status']);
  return status.overlay?.peers.find((p) => p.name === c.hosts[h]!.name)?.blocks ?? [];
}

t.before(async () => {
  const underlay = await startUnderlay(t, { prefix: '198.19.251' });
  c = new Cluster(
    underlay,
    { backend: 'etcd', address: await underlay.startEtcd() },
    { name: 'nat', subnet: '198.18.124.0/24' },
  );
  for (let h = 0; h < 2; h++) {
    await c.addHost(t, h, {
      leaseTtl: '5s',
      daemonArgs: () => ['--routing-mode', 'native'],
      // Strict reverse-path filtering inside the lab host (never the root namespace).
      prepare: (host) =>
        host
          .exec(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1'], {
            check: true,
          })
          .then(() => undefined),
    });
  }
  for (let h = 0; h < 2; h++) await c.createNetwork(h);
  await c.run(0, 'web', ['app=web']);
  await c.run(0, 'db1', ['app=db']);
  await c.run(1, 'db2', ['app=db']);
  await c.run(1, 'web2', ['app=web']);
});

t.test('no tunnel device; containers get the underlay MTU', async (t) => {
  for (let h = 0; h < 2; h++) {
    const link = await c.hosts[h]!.exec(['ip', 'link', 'show', 'cilium_vxlan']);
    t.not(link.code, 0, `h${h}: no cilium_vxlan device`);
    const kinds = await c.hosts[h]!.exec(['ip', '-d', '-json', 'link', 'show'], { check: true });
    const tunnels = (JSON.parse(kinds.stdout) as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>).filter(
      (l) => ['vxlan', 'geneve'].includes(l.linkinfo?.info_kind ?? ''),
    );
    t.same(
      tunnels.map((l) => l.ifname),
      [],
      `h${h}: no vxlan/geneve device at all`,
    );
  }
  const mtu = await c.hosts[0]!.docker(['exec', 'web', 'cat', '/sys/class/net/eth0/mtu']);
  t.equal(mtu.stdout.trim(), '1500', 'container MTU = underlay MTU 1500 (no encapsulation overhead)');
});

t.test("each host routes the peer's blocks via the peer's underlay IP; status shows them", async (t) => {
  for (let h = 0; h < 2; h++) {
    const other = 1 - h;
    const blocks = await eventually(
      async () => {
        const b = await blocksOf(other);
        return b.length > 0 ? b : undefined;
      },
      20_000,
      `h${h} knows h${other}'s blocks`,
    );
    const routes = await eventually(
      async () => {
        const r = await peerRoutes(h);
        return blocks.every((b) => r.has(b)) ? r : undefined;
      },
      20_000,
      `h${h} routes h${other}'s blocks`,
    );
    for (const b of blocks)
      t.equal(
        routes.get(b),
        `${c.underlayIps[other]} dev ul0`,
        `h${h}: ip route shows ${b} via ${c.underlayIps[other]} dev ul0`,
      );
    t.equal(routes.size, blocks.length, `h${h}: no other peer routes`);
    const own = await blocksOf(h);
    t.ok(
      own.every((b) => !routes.has(b)),
      `h${h}: its own blocks are not routed to the underlay`,
    );
    const status = await c.daemons[h]!.cliJson<StatusModel>(['status']);
    t.match(
      status.overlay,
      { routingMode: 'native', tunnel: 'disabled', device: 'ul0', underlayIp: c.underlayIps[h], mtu: 1500 },
      `h${h}: status shows native routing`,
    );
    t.same(
      status.overlay?.routes?.map((r) => [r.prefix, r.via]).sort(),
      blocks.map((b) => [b, c.underlayIps[other]]).sort(),
      `h${h}: status lists the peer routes`,
    );
    const text = await c.daemons[h]!.cli(['status']);
    t.match(text.stdout, /Routing: +native/, `h${h}: cilium status prints the routing mode`);
    t.match(
      text.stdout,
      new RegExp(`route ${blocks[0]!.replace(/\./g, '\\.')} via ${c.underlayIps[other]!.replace(/\./g, '\\.')}`),
      `h${h}: cilium status prints the routes`,
    );
    // Remote endpoints still carry their identities in the ipcache.
    for (const [name, [hh, ip]] of Object.entries(c.where)) {
      if (hh !== other) continue;
      const e = await eventually(
        async () => {
          const ipcache = await c.daemons[h]!.cliJson<Array<{ prefix: string; identity: number }>>([
            'bpf',
            'ipcache',
            'list',
          ]);
          return ipcache.find((x) => x.prefix === `${ip}/32`);
        },
        20_000,
        `h${h}: ipcache has ${name}`,
      );
      t.ok(e.identity >= 256, `h${h}: remote ${name} has its security identity (${e.identity})`);
    }
  }
});

t.test('cross-host ICMP and TCP both ways, unencapsulated on the underlay', async (t) => {
  await eventually(async () => c.ping('web', 'db2'), 20_000, 'web -> db2 ping');
  t.ok(await c.ping('db2', 'web'), 'h1 db2 -> h0 web ping');
  t.ok(await c.http('web', 'db2', 80), 'h0 web -> h1 db2 TCP 80');
  t.ok(await c.http('web2', 'db1', 80), 'h1 web2 -> h0 db1 TCP 80');
  // A capture on h1's underlay device sees the containers' own addresses (no outer header).
  const capture = c.hosts[1]!.exec(['python3', '-c', CAPTURE, 'ul0', '8'], { timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 1500));
  await c.hosts[0]!.docker(['exec', 'web', 'ping', '-c', '3', '-i', '0.5', c.where.db2![1]], { timeoutMs: 20_000 });
  const seen = await capture;
  t.equal(seen.code, 0, `capture ran: ${seen.stderr.trim()}`);
  const frames = seen.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '');
  t.ok(
    frames.includes(`1 ${c.where.web![1]} ${c.where.db2![1]}`),
    `h1 ul0 carries web -> db2 ICMP as plain IPv4 (${frames.length} IPv4 frames seen)`,
  );
  t.notOk(
    frames.some((f) => f.startsWith('17 ') && f.endsWith(` ${c.underlayIps[1]}`) && f.includes(c.underlayIps[0]!)),
    'and no UDP between the underlay addresses (no encapsulation)',
  );
});

t.test('policy web->db on 5432 only, enforced on the receiving host with the sender identity from the ipcache', (t) =>
  checkDbFromWebOnReceiver(t, c),
);

t.test('a peer that leaves (lease expiry) has its routes removed; cilium cleanup removes the rest', async (t) => {
  const h1Blocks = await blocksOf(1);
  t.ok(h1Blocks.length > 0, `h0 knew h1's blocks (${h1Blocks.join(',')})`);
  await c.daemons[1]!.stop('SIGKILL');
  await eventually(
    async () => {
      const r = await peerRoutes(0);
      return h1Blocks.every((b) => !r.has(b));
    },
    30_000,
    "h0 removes h1's block routes",
  );
  t.pass("h0 removed the routes to h1's blocks after h1's lease expired");
  t.notOk(await c.ping('web', 'db2'), 'h0 web -> h1 db2 no longer routed');

  // h1 kernel state outlived its daemon (routes to h0 included); a restart adopts it, cleanup removes it.
  t.ok((await peerRoutes(1)).size > 0, 'h1 kept its routes to h0 while its daemon was down');
  await c.daemons[1]!.start(60_000);
  await eventually(async () => (await peerRoutes(0)).size > 0, 30_000, 'h0 routes h1 again after its restart');
  const cleanup = await c.daemons[1]!.cli(['cleanup', '-o', 'json']);
  t.equal(cleanup.code, 0, `cilium cleanup on h1: ${cleanup.stderr}`);
  t.match(
    cleanup.stdout,
    /route 198\.18\.124\.\d+\/\d+ via 198\.19\.251\.1/,
    'cleanup reports the peer route it removed',
  );
  t.equal((await peerRoutes(1)).size, 0, 'h1: no peer routes after cilium cleanup');
});

t.teardown(async () => {
  if (!t.passing())
    await runCommand('tail', ['-n', '20', `${c?.underlay.dir}/etcd.log`]).then((r) => t.comment(r.stdout));
});
