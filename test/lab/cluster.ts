// Several lab hosts on one underlay, each with its dockerd and its daemon on the same store, and
// the same cilium network on each: the multi-host e2e tests (overlay, native routing, the
// overlay cluster) drive containers across them by name through one table.
import type { Test } from 'tap';
import { startDockerHost, type DockerHost } from './docker-host.js';
import { ensureBusyboxImage } from './busybox-image.js';
import type { Underlay } from './underlay.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, IpModel } from '../../src/api/models.js';

/** Resync interval of every daemon of a cluster: the bound on reconvergence after a cut from the store. */
export const RESYNC_MS = 10_000;

/** An entry of `cilium bpf ipcache list`. */
export interface IpcacheEntry {
  prefix: string;
  identity: number;
  tunnelEndpoint?: string;
  /** Encapsulation in BPF: the underlay gateway towards tunnelEndpoint, or 'device'; absent = on-link. */
  tunnelNexthop?: string;
}

/** Where a cluster's daemons keep their state. */
export interface ClusterStore {
  backend: 'etcd' | 'consul';
  /** `host:port` as the underlay's startEtcd()/startConsul() returned it. */
  address: string;
}

/** How one host of a cluster starts. */
export interface ClusterHostOptions {
  /** The lease TTL of the host's daemon (its keys expire this long after it dies). */
  leaseTtl: string;
  /** More daemon arguments, given the host's underlay address. */
  daemonArgs?: (underlayIp: string) => string[];
  /** Runs inside the new host before its daemon starts. */
  prepare?: (host: DockerHost) => Promise<void>;
}

/** Hosts, their daemons and underlay addresses, and where every container runs. */
export class Cluster {
  readonly hosts: DockerHost[] = [];
  readonly daemons: CiliumDaemon[] = [];
  readonly underlayIps: string[] = [];
  /** Container name -> [host index, IP]. */
  readonly where: Record<string, [number, string]> = {};

  constructor(
    readonly underlay: Underlay,
    readonly store: ClusterStore,
    /** The cilium network (name and subnet) every host creates and every container joins. */
    readonly network: { name: string; subnet: string },
  ) {}

  /** Host h on the underlay (as <prefix>.<h+1>) with its daemon started; its network is not created yet. */
  async addHost(t: Test, h: number, opts: ClusterHostOptions): Promise<void> {
    const host = await startDockerHost(t);
    this.hosts[h] = host;
    await ensureBusyboxImage(host, 'bb');
    const ip = await this.underlay.attach(host, h + 1);
    this.underlayIps[h] = ip;
    await opts.prepare?.(host);
    const { backend, address } = this.store;
    const daemon = new CiliumDaemon(host, {
      extraArgs: [
        ...[
          '--kvstore',
          backend,
          '--kvstore-opt',
          `${backend}.address=${address}`,
          '--kvstore-opt',
          `${backend}.lease-ttl=${opts.leaseTtl}`,
        ],
        ...['--underlay-ip', ip, '--resync-interval', `${RESYNC_MS / 1000}s`],
        ...(opts.daemonArgs?.(ip) ?? []),
      ],
    });
    this.daemons[h] = daemon;
    await daemon.start(60_000);
  }

  async createNetwork(h: number): Promise<void> {
    await this.docker(h, [
      'network',
      'create',
      '-d',
      'cilium',
      '--ipam-driver',
      'cilium',
      '--subnet',
      this.network.subnet,
      this.network.name,
    ]);
  }

  /** `docker` on host h; its stdout, trimmed. Throws with the daemon's log tail when it fails. */
  async docker(h: number, args: string[]): Promise<string> {
    const r = await this.hosts[h]!.docker(args, { timeoutMs: 120_000 });
    if (r.code !== 0)
      throw new Error(
        `docker@h${h} ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n` +
          `${this.daemons[h]?.process?.logTail(20)}`,
      );
    return r.stdout.trim();
  }

  /**
   * Runs a container on the network on host h and waits for its endpoint. It serves HTTP on 80
   * and 5432 (/etc) and on 8080 (/tmp, for files a test writes there).
   */
  async run(h: number, name: string, labels: string[], extra: string[] = []): Promise<void> {
    const serve = 'httpd -p 80 -h /etc; httpd -p 5432 -h /etc; httpd -p 8080 -h /tmp; exec sleep 100000';
    await this.docker(h, [
      'run',
      '-d',
      '--name',
      name,
      '--network',
      this.network.name,
      ...extra,
      ...labels.flatMap((l) => ['-l', l]),
      'bb',
      'sh',
      '-c',
      serve,
    ]);
    await this.locate(h, name);
  }

  /** Records a container's (possibly new) IP and waits until its endpoint is ready. */
  async locate(h: number, name: string): Promise<void> {
    this.where[name] = [
      h,
      await this.docker(h, [
        'inspect',
        '-f',
        `{{(index .NetworkSettings.Networks "${this.network.name}").IPAddress}}`,
        name,
      ]),
    ];
    await eventually(
      async () => {
        const eps = await this.daemons[h]!.cliJson<EndpointModel[]>(['endpoint', 'list']);
        return eps.find((x) => x.containerName === name)?.state === 'ready';
      },
      60_000,
      `${name} ready on h${h}`,
    );
  }

  /** The IP of a container. */
  ip(name: string): string {
    return this.where[name]![1];
  }

  /** The containers on host h. */
  namesOn(h: number): string[] {
    return Object.entries(this.where)
      .filter(([, [hh]]) => hh === h)
      .map(([n]) => n);
  }

  /** One ping from a container to another's IP; true if it was answered. */
  async ping(from: string, to: string): Promise<boolean> {
    const r = await this.hosts[this.where[from]![0]]!.docker(
      ['exec', from, 'ping', '-c', '1', '-W', '2', this.ip(to)],
      { timeoutMs: 20_000 },
    );
    return r.code === 0;
  }

  /** HTTP GET from a container to another's port; true if the page came back. */
  async http(from: string, to: string, port: number): Promise<boolean> {
    const r = await this.hosts[this.where[from]![0]]!.docker(
      ['exec', from, 'timeout', '4', 'wget', '-q', '-O', '-', `http://${this.ip(to)}:${port}/passwd`],
      { timeoutMs: 20_000 },
    );
    return r.code === 0 && r.stdout.includes('root');
  }

  /**
   * `ping` and an HTTP GET from a container to another by its name (on another host); the
   * failures, each naming what failed. Ping's output must show the address the name resolved to.
   */
  async byName(from: string, to: string): Promise<string[]> {
    const host = this.hosts[this.where[from]![0]]!;
    const p = await host.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to], { timeoutMs: 20_000 });
    const failed: string[] = [];
    if (p.code !== 0 || !p.stdout.includes(`(${this.ip(to)})`))
      failed.push(`${from}->${to} ping by name: ${(p.stdout + p.stderr).trim().split('\n')[0]}`);
    const g = await host.docker(['exec', from, 'timeout', '4', 'wget', '-q', '-O', '-', `http://${to}/passwd`], {
      timeoutMs: 20_000,
    });
    if (g.code !== 0 || !g.stdout.includes('root')) failed.push(`${from}->${to} tcp by name: ${g.stderr.trim()}`);
    return failed;
  }

  /** `ping -c count -i 0.25` from a container, started now; resolves with the loss in percent. */
  flow(from: string, to: string, count: number): Promise<number> {
    return this.hosts[this.where[from]![0]]!.docker(
      ['exec', from, 'ping', '-c', String(count), '-i', '0.25', '-W', '2', this.ip(to)],
      { timeoutMs: count * 250 + 60_000 },
    ).then((r) => Number(/(\d+)% packet loss/.exec(r.stdout)?.[1] ?? '100'));
  }

  /** Remote ipcache entries (those with a tunnel endpoint) of host h. */
  async tunnelled(h: number): Promise<IpcacheEntry[]> {
    const all = await this.daemons[h]!.cliJson<IpcacheEntry[]>(['bpf', 'ipcache', 'list']);
    return all.filter((e) => e.tunnelEndpoint);
  }

  /** IPs host h knows from the store (`cilium ip list`). */
  async storeIps(h: number): Promise<string[]> {
    return (await this.daemons[h]!.cliJson<IpModel[]>(['ip', 'list'])).map((e) => e.ip);
  }

  /**
   * Imports a policy through host h's daemon and waits until every daemon enforces its revision
   * (each wait asserted).
   */
  async importPolicy(t: Test, h: number, yaml: string): Promise<void> {
    const imported = await this.daemons[h]!.cli(['policy', 'import', '-', '-o', 'json'], yaml);
    t.equal(imported.code, 0, `imported on h${h}: ${imported.stderr}`);
    await this.waitPolicy(t, (JSON.parse(imported.stdout) as { revision: number }).revision, 'enforced');
  }

  /** Deletes every policy through host h's daemon and waits until every daemon has the deletion. */
  async deletePolicies(t: Test, h: number): Promise<void> {
    const del = await this.daemons[h]!.cli(['policy', 'delete', '--all', '-o', 'json']);
    t.equal(del.code, 0, `deleted on h${h}: ${del.stderr}`);
    await this.waitPolicy(t, (JSON.parse(del.stdout) as { revision: number }).revision, 'deletion enforced');
  }

  private async waitPolicy(t: Test, revision: number, what: string): Promise<void> {
    for (const [h, d] of this.daemons.entries()) {
      const w = await d.cli(['policy', 'wait', String(revision), '--timeout', '30s']);
      t.equal(w.code, 0, `h${h} (${d.host.name}): policy revision ${revision} ${what}: ${w.stderr.trim()}`);
    }
  }
}

/** Containers labelled app=db accept TCP 5432 from app=web only; nothing else is selected. */
export const DB_FROM_WEB = `apiVersion: cilium.io/v2
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

/**
 * DB_FROM_WEB on a two-host cluster with web and db1 on host 0, db2 and web2 on host 1: imported
 * on host 0, enforced on the receiving host in both directions, its drops in the receiving host's
 * `cilium monitor` with the sender's labels (and not in the sender's); deleted from host 1,
 * traffic passes again.
 */
export async function checkDbFromWebOnReceiver(t: Test, c: Cluster): Promise<void> {
  await c.importPolicy(t, 0, DB_FROM_WEB);
  const monitors = [c.daemons[0]!.monitor(['drop']), c.daemons[1]!.monitor(['drop'])];
  t.teardown(() => {
    for (const m of monitors) m.stop();
  });
  await new Promise((r) => setTimeout(r, 2000));

  t.ok(await c.http('web', 'db2', 5432), 'h0 web -> h1 db2:5432 allowed');
  t.notOk(await c.http('web', 'db2', 80), 'h0 web -> h1 db2:80 dropped');
  t.ok(await c.http('web2', 'db1', 5432), 'h1 web2 -> h0 db1:5432 allowed');
  t.notOk(await c.http('web2', 'db1', 80), 'h1 web2 -> h0 db1:80 dropped');
  t.notOk(await c.http('db1', 'db2', 5432), 'h0 db1 -> h1 db2:5432 dropped (not web)');
  t.ok(await c.http('db1', 'web2', 80), 'h0 db1 -> h1 web2:80 still allowed (web is not selected)');

  const onH1 = await monitors[1]!.waitFor((e) => e.daddr === c.ip('db2') && e.dport === 80 && e.saddr === c.ip('web'));
  t.ok(
    (onH1.srcLabels as string[]).includes('container:app=web'),
    `h1 monitor: drop carries the sender's labels (${JSON.stringify(onH1.srcLabels)})`,
  );
  t.equal(onH1.reasonName, 'Policy denied', 'h1: reason');
  const onH0 = await monitors[0]!.waitFor((e) => e.daddr === c.ip('db1') && e.dport === 80 && e.saddr === c.ip('web2'));
  t.ok(
    (onH0.srcLabels as string[]).includes('container:app=web'),
    `h0 monitor: drop carries the sender's labels (${JSON.stringify(onH0.srcLabels)})`,
  );
  t.notOk(
    monitors[0]!.events.some((e) => e.daddr === c.ip('db2') && e.dport === 80),
    'the sender (h0) did not drop web->db2:80: the receiver did',
  );

  await c.deletePolicies(t, 1);
  t.ok(await c.http('web', 'db2', 80), 'after delete: web -> db2:80 passes again');
}
