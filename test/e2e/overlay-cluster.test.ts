/**
 * Three lab hosts from the start on one underlay, one store reachable from all, the same
 * `docker network create` on each; run once with the etcd backend and once with the consul
 * backend (the in-repo Consul API server, test/support/consul-api-server.ts, as a process on the
 * underlay). One set of hosts per backend, shared by the scenarios in order:
 *  - containers on all three hosts ping and open TCP connections to each other by IP and by name
 *    (all pairs; names of other hosts' containers come from each host's cluster resolver,
 *    --dns-address on its underlay address, containers run with --dns <it>);
 *  - a policy imported on host 0 is enforced on hosts 1 and 2 (`cilium policy wait REV` on each),
 *    cross-host;
 *  - host 1's daemon and dockerd are killed (-9): hosts 0 and 2 keep talking without loss; host 1's
 *    keys expire (short lease) and hosts 0 and 2 remove its ip entries and ipcache routes; host 1
 *    restarts (daemon, then dockerd, whose `--restart always` containers come back): it rejoins
 *    and all pairs work again;
 *  - host 2 loses its path to the store only (unreachable routes inside host 2 and the underlay
 *    namespace, both directions; VXLAN to the other hosts untouched): its containers keep talking to hosts 0 and 1; a
 *    container started on host 0 during the cut is learned by host 2 within the resync interval
 *    (10 s) after the route goes;
 *  - a fourth host added while traffic flows learns every endpoint within 5 s.
 */
import t, { type Test } from 'tap';
import { requireRoot } from '../lab/preconditions.js';
import { startUnderlay } from '../lab/underlay.js';
import { Cluster, DB_FROM_WEB, RESYNC_MS, type ClusterHostOptions } from '../lab/cluster.js';
import { eventually } from '../support/cilium-daemon.js';
import type { NodeModel, StatusModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

type Backend = 'etcd' | 'consul';

/**
 * Lease TTLs. Host 1 is the one that dies, so its lease is short (etcd: 5 s; consul: 10 s, the
 * agent's session_ttl_min, invalidated after 2x). The others' leases outlast the store cut of
 * host 2 (~12 s): a node cut from the store for longer than its lease is, by design, forgotten by
 * its peers (its keys expire), which is a different scenario.
 */
const SHORT_TTL: Record<Backend, string> = { etcd: '5s', consul: '10s' };
const LONG_TTL = '60s';

/** A host whose daemon runs the cluster resolver on its underlay address: names of other hosts' containers. */
function resolverHost(leaseTtl: string): ClusterHostOptions {
  return { leaseTtl, daemonArgs: (ip) => ['--dns-address', ip, '--dns-upstream', 'none'] };
}

/**
 * Runs a container on host h (see Cluster.run) whose DNS server is its host's cluster resolver
 * (dockerd's embedded DNS forwards what it does not know).
 */
function run(c: Cluster, h: number, name: string, labels: string[], extra: string[] = []): Promise<void> {
  return c.run(h, name, labels, ['--dns', c.underlayIps[h]!, ...extra]);
}

/** True when host h routes every container of the other live hosts through the right tunnel. */
async function knowsAll(c: Cluster, h: number, hosts: number[]): Promise<boolean> {
  const e = await c.tunnelled(h);
  return hosts
    .filter((o) => o !== h)
    .every((o) =>
      c
        .namesOn(o)
        .every((n) =>
          e.some((x) => x.prefix === `${c.ip(n)}/32` && x.tunnelEndpoint === c.underlayIps[o] && x.identity >= 256),
        ),
    );
}

/**
 * Every ordered pair of hosts among `hosts`: a ping from web<a> to db<b> (web<b> where there is
 * no db) and an HTTP GET from web<a> to web<b>, after every host routes every remote container.
 */
async function allPairs(t: Test, c: Cluster, hosts: number[], what: string): Promise<void> {
  await eventually(
    async () => {
      for (const h of hosts) if (!(await knowsAll(c, h, hosts))) return false;
      return true;
    },
    30_000,
    `every host of ${hosts.join(',')} routes every remote container (${what})`,
  );
  const pairs = hosts.flatMap((a) => hosts.filter((b) => b !== a).map((b) => [a, b] as const));
  const failed = (
    await Promise.all(
      pairs.map(async ([a, b]) => {
        // The first packet may race the peer's last ipcache update: a few seconds to settle.
        const target = c.where[`db${b}`] ? `db${b}` : `web${b}`;
        const pinged = await eventually(async () => c.ping(`web${a}`, target), 10_000, `web${a} -> ${target}`).catch(
          () => false,
        );
        const fetched = await c.http(`web${a}`, `web${b}`, 80);
        // By name: dockerd does not know another host's container; the cluster resolver does.
        const named = await c.byName(`web${a}`, `web${b}`);
        return [...(pinged ? [] : [`web${a}->${target} ping`]), ...(fetched ? [] : [`web${a}->web${b} tcp`]), ...named];
      }),
    )
  ).flat();
  t.same(
    failed,
    [],
    `${what}: ping and TCP by IP and by name between every ordered pair of ` +
      `${hosts.length} hosts (${pairs.length} pairs)`,
  );
}

async function scenario(t: Test, backend: Backend, prefix: string, subnet: string): Promise<void> {
  const underlay = await startUnderlay(t, { prefix });
  const address = backend === 'etcd' ? await underlay.startEtcd() : await underlay.startConsul();
  const c = new Cluster(underlay, { backend, address }, { name: 'ovl', subnet });
  t.teardown(() => {
    if (!t.passing())
      for (const d of c.daemons) t.comment(`--- ${d.host.name} daemon log ---\n${d.process?.logTail(40)}`);
  });

  const three = [0, 1, 2];
  await Promise.all(three.map((h) => c.addHost(t, h, resolverHost(h === 1 ? SHORT_TTL[backend] : LONG_TTL))));
  await Promise.all(three.map((h) => c.createNetwork(h)));
  await Promise.all(
    three.map(async (h) => {
      // Host 1's containers come back by themselves when its dockerd restarts.
      const extra = h === 1 ? ['--restart', 'always'] : [];
      await run(c, h, `web${h}`, ['app=web'], extra);
      await run(c, h, `db${h}`, ['app=db'], extra);
    }),
  );

  await t.test('containers on all three hosts reach each other by IP and by name', async (t) => {
    await allPairs(t, c, [0, 1, 2], 'three hosts');
    for (let h = 0; h < 3; h++) {
      const status = await c.daemons[h]!.cliJson<StatusModel>(['status']);
      t.same(
        status.overlay?.peers.map((p) => p.underlayIp).sort(),
        c.underlayIps.filter((_, o) => o !== h).sort(),
        `h${h}: status lists the two peers`,
      );
      t.match(status.kvstore, { backend, healthy: true }, `h${h}: ${backend} healthy`);
      const nodes = await c.daemons[h]!.cliJson<NodeModel[]>(['node', 'list']);
      t.same(
        nodes.map((n) => n.underlayIp).sort(),
        [...c.underlayIps.slice(0, 3)].sort(),
        `h${h}: node list shows the three nodes with their underlay IPs`,
      );
      t.same(
        nodes.filter((n) => n.local).map((n) => n.underlayIp),
        [c.underlayIps[h]],
        `h${h}: itself marked local`,
      );
      t.ok(
        nodes.every(
          (n) => n.health === 'ok' && n.routingMode === 'tunnel' && n.blocks.length > 0 && (n.local || n.peer),
        ),
        `h${h}: all healthy tunnel peers with blocks ` +
          `(${JSON.stringify(nodes.map((n) => [n.name, n.health, n.detail]))})`,
      );
    }
    const table = await c.daemons[0]!.cli(['node', 'list']);
    t.equal(table.code, 0, table.stderr);
    for (const ip of c.underlayIps.slice(0, 3))
      t.match(
        table.stdout,
        new RegExp(`\\s${ip.replaceAll('.', '\\.')}\\s+tunnel vxlan:\\d+\\s`),
        `node list table row for ${ip}`,
      );
  });

  await t.test('a policy imported on host 0 is enforced on hosts 1 and 2', async (t) => {
    await c.importPolicy(t, 0, DB_FROM_WEB);
    const checks: Array<[string, string, number, boolean, string]> = [
      ['web0', 'db1', 5432, true, 'h0 web0 -> h1 db1:5432 allowed'],
      ['web0', 'db1', 80, false, 'h0 web0 -> h1 db1:80 dropped on h1'],
      ['web0', 'db2', 5432, true, 'h0 web0 -> h2 db2:5432 allowed'],
      ['web0', 'db2', 80, false, 'h0 web0 -> h2 db2:80 dropped on h2'],
      ['db0', 'db2', 5432, false, 'h0 db0 -> h2 db2:5432 dropped (not web)'],
      ['web2', 'db1', 5432, true, 'h2 web2 -> h1 db1:5432 allowed'],
      ['web1', 'db2', 80, false, 'h1 web1 -> h2 db2:80 dropped'],
      ['web1', 'db0', 80, false, 'h1 web1 -> h0 db0:80 dropped'],
      ['db1', 'web2', 80, true, 'h1 db1 -> h2 web2:80 allowed (web is not selected)'],
    ];
    const got = await Promise.all(checks.map(([from, to, port]) => c.http(from, to, port)));
    for (const [i, [, , , want, what]] of checks.entries()) t.equal(got[i], want, what);
    await c.deletePolicies(t, 0);
    t.ok(await c.http('web0', 'db2', 80), 'after the delete: web0 -> db2:80 passes again');
  });

  await t.test(
    'host 1 dies (daemon and dockerd, kill -9): hosts 0 and 2 keep talking and forget it; it rejoins',
    async (t) => {
      const h1Ip = c.underlayIps[1]!;
      const h1Addrs = c.namesOn(1).map((n) => c.where[n]![1]);
      // Traffic both ways between hosts 0 and 2, spanning the kill and the expiry (etcd: the 5 s
      // lease; consul: twice the 10 s session TTL).
      const pings = backend === 'etcd' ? 60 : 120;
      const flows = [c.flow('web0', 'db2', pings), c.flow('web2', 'db0', pings)];
      const killed = Date.now();
      await c.daemons[1]!.stop('SIGKILL');
      await c.hosts[1]!.stopDockerd({ signal: 'SIGKILL' });
      for (const h of [0, 2]) {
        await eventually(
          async () => (await c.tunnelled(h)).every((e) => e.tunnelEndpoint !== h1Ip),
          60_000,
          `h${h} drops every route to h1`,
        );
        t.pass(`h${h}: no ipcache entry tunnels to h1 any more (${Date.now() - killed} ms after the kill)`);
        const ips = await c.storeIps(h);
        t.same(
          h1Addrs.filter((a) => ips.includes(a)),
          [],
          `h${h}: h1's ip entries expired from the store`,
        );
        const status = await c.daemons[h]!.cliJson<StatusModel>(['status']);
        t.notOk(
          status.overlay?.peers.some((p) => p.underlayIp === h1Ip),
          `h${h}: h1's node record expired (not a peer)`,
        );
      }
      const loss = await Promise.all(flows);
      t.same(loss, [0, 0], `h0 <-> h2 traffic during the kill and the expiry: ${loss.join('%, ')}% loss`);

      // The daemon first, so that dockerd finds the plugin when it restarts the containers.
      await c.daemons[1]!.start(60_000);
      await c.hosts[1]!.startDockerd();
      for (const n of c.namesOn(1)) {
        await eventually(
          async () => (await c.docker(1, ['inspect', '-f', '{{.State.Running}}', n])) === 'true',
          60_000,
          `${n} restarted by dockerd`,
        );
        await c.locate(1, n);
      }
      t.pass('h1 is back, its --restart always containers running with ready endpoints');
      await allPairs(t, c, [0, 1, 2], 'after h1 rejoined');
    },
  );

  await t.test(
    'host 2 cut from the store keeps talking; it learns what changed within the resync interval',
    async (t) => {
      await c.underlay.setServicePath(c.hosts[2]!, 3, false);
      let restored = false;
      const restore = async () => {
        if (!restored) await c.underlay.setServicePath(c.hosts[2]!, 3, true);
        restored = true;
      };
      t.teardown(restore);
      const cutAt = Date.now();
      const flows = [c.flow('web2', 'db0', 40), c.flow('db1', 'web2', 40), c.flow('web0', 'db2', 40)];
      // A container started on host 0 while host 2 cannot hear about it.
      await run(c, 0, 'late0', ['app=late']);
      const loss = await Promise.all(flows);
      t.same(loss, [0, 0, 0], `h2 <-> h0 and h1 traffic during the cut: ${loss.join('%, ')}% loss`);
      t.ok(await c.http('web2', 'web1', 80), 'h2 web2 -> h1 web1 TCP during the cut');
      t.ok(await c.http('db0', 'web2', 80), 'h0 db0 -> h2 web2 TCP during the cut');
      const late = `${c.where.late0![1]}/32`;
      t.notOk(
        (await c.tunnelled(2)).some((e) => e.prefix === late),
        'h2 has not learned late0 during the cut (the cut is real)',
      );
      t.ok(await knowsAll(c, 0, [0, 2]), 'h0 still routes h2 (its lease outlasts the cut)');
      await new Promise((r) => setTimeout(r, Math.max(0, 12_000 - (Date.now() - cutAt))));
      await restore();
      const back = Date.now();
      await eventually(
        async () => (await c.tunnelled(2)).some((e) => e.prefix === late && e.tunnelEndpoint === c.underlayIps[0]),
        RESYNC_MS,
        'h2 learns late0 after the cut',
      );
      t.pass(`h2 learned late0 ${Date.now() - back} ms after its path to the store came back (cut ${back - cutAt} ms)`);
      await eventually(async () => c.ping('web2', 'late0'), 10_000, 'web2 -> late0');
      t.ok(await c.http('web2', 'late0', 80), 'h2 web2 -> h0 late0 TCP');
      const status = await eventually(
        async () => {
          const s = await c.daemons[2]!.cliJson<StatusModel>(['status']);
          return s.kvstore.healthy ? s : undefined;
        },
        10_000,
        'h2 kvstore healthy again',
      );
      t.ok(status.kvstore.healthy, `h2: ${backend} healthy again`);
    },
  );

  await t.test('a fourth host added while traffic flows learns every endpoint within 5 s', async (t) => {
    const flows = [c.flow('web0', 'db2', 80), c.flow('web1', 'db0', 80)];
    const h = 3;
    await c.addHost(t, h, resolverHost(LONG_TTL));
    const ready = Date.now();
    await eventually(async () => knowsAll(c, h, [0, 1, 2, h]), 5_000, 'h3 learns every remote endpoint');
    t.pass(
      `h3 routes all ${Object.keys(c.where).length} remote endpoints ` +
        `${Date.now() - ready} ms after its daemon answered`,
    );
    await c.createNetwork(h);
    await run(c, h, 'web3', ['app=web']);
    await allPairs(t, c, [0, 1, 2, 3], 'four hosts');
    const loss = await Promise.all(flows);
    t.same(loss, [0, 0], `traffic while h3 joined: ${loss.join('%, ')}% loss`);
  });
}

t.test('etcd backend', (t) => scenario(t, 'etcd', '198.19.251', '198.18.121.0/24'));
t.test('consul backend', (t) => scenario(t, 'consul', '198.19.252', '198.18.122.0/24'));
