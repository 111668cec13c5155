// A shared underlay for several lab hosts: a network namespace `cdu-<id>` holding a bridge, one
// veth per host into it (`ul0` inside the host, 198.19.250.<n>/24 by default), and processes every
// host must reach (etcd, or the in-repo Consul API server) on the bridge's own address
// <prefix>.254. Everything stays inside 198.18.0.0/15; deleting the namespace removes the bridge
// and every veth with it.

import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DockerHost, LabTest } from './docker-host.js';
import { runCommand } from './exec.js';
import { LabProcess } from './lab-process.js';
import { registerEmergencyCleanup } from './process-registry.js';

/** Options of {@link startUnderlay}. */
export interface UnderlayOptions {
  /** First three octets of the underlay /24, inside 198.18.0.0/15; default 198.19.250. */
  prefix?: string;
}

/** The shared underlay network. */
export class Underlay {
  /** Network namespace name (`/run/netns/<netns>`). */
  readonly netns: string;
  readonly prefix: string;
  /** The bridge's address: where shared services listen. */
  readonly serviceIp: string;
  readonly dir: string;
  private readonly processes: LabProcess[] = [];
  private unregister: () => void = () => {};
  private stopped = false;

  private constructor(
    readonly id: string,
    prefix: string,
  ) {
    this.netns = `cdu-${id}`;
    this.prefix = prefix;
    this.serviceIp = `${prefix}.254`;
    this.dir = join('/run', this.netns);
  }

  /** Creates the namespace and bridge; `t.teardown` removes them. */
  static async start(t: LabTest, opts: UnderlayOptions = {}): Promise<Underlay> {
    const prefix = opts.prefix ?? '198.19.250';
    if (!/^198\.1[89]\.\d{1,3}$/.test(prefix)) throw new Error(`underlay prefix ${prefix} is not inside 198.18.0.0/15`);
    const u = new Underlay(randomBytes(3).toString('hex'), prefix);
    t.teardown(() => u.stop());
    mkdirSync(u.dir, { recursive: true });
    u.unregister = registerEmergencyCleanup(() => {
      try {
        execFileSync('ip', ['netns', 'del', u.netns], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    });
    await runCommand('ip', ['netns', 'add', u.netns], { check: true });
    for (const cmd of [
      ['link', 'set', 'lo', 'up'],
      ['link', 'add', 'br0', 'type', 'bridge'],
      ['addr', 'add', `${u.serviceIp}/24`, 'dev', 'br0'],
      ['link', 'set', 'br0', 'up'],
    ])
      await runCommand('ip', ['-n', u.netns, ...cmd], { check: true });
    return u;
  }

  /** Connects host to the underlay as <prefix>.<n> on its device `ul0`; returns the address. */
  async attach(host: DockerHost, n: number): Promise<string> {
    const outer = `cdu${this.id}h${n}`;
    const ip = `${this.prefix}.${n}`;
    await runCommand(
      'ip',
      ['link', 'add', outer, 'netns', this.netns, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', host.name],
      { check: true },
    );
    await runCommand('ip', ['-n', this.netns, 'link', 'set', outer, 'master', 'br0', 'up'], { check: true });
    await runCommand('ip', ['-n', host.name, 'addr', 'add', `${ip}/24`, 'dev', 'ul0'], { check: true });
    await runCommand('ip', ['-n', host.name, 'link', 'set', 'ul0', 'up'], { check: true });
    return ip;
  }

  /** Cuts or restores host n's link to the underlay (the bridge port goes down/up). */
  async setLink(n: number, up: boolean): Promise<void> {
    await runCommand('ip', ['-n', this.netns, 'link', 'set', `cdu${this.id}h${n}`, up ? 'up' : 'down'], {
      check: true,
    });
  }

  /**
   * Cuts (or restores) the path between host n and the underlay's services (etcd, consul) in both
   * directions, leaving the host's traffic to the other hosts (bridged, never routed through the
   * underlay namespace) alone: an unreachable route for the service address inside the host, and
   * one for the host's address inside the underlay namespace. A route on one side only would not
   * do: data the store sends on an established connection would still arrive.
   */
  async setServicePath(host: DockerHost, n: number, up: boolean): Promise<void> {
    const verb = up ? 'del' : 'add';
    await runCommand('ip', ['-n', host.name, 'route', verb, 'unreachable', `${this.serviceIp}/32`], { check: true });
    await runCommand('ip', ['-n', this.netns, 'route', verb, 'unreachable', `${this.prefix}.${n}/32`], { check: true });
  }

  /** Starts a long-running process inside the underlay namespace. */
  spawn(argv: readonly string[], logName: string): LabProcess {
    const p = LabProcess.start(['nsenter', `--net=/run/netns/${this.netns}`, '--', ...argv], {
      logPath: join(this.dir, logName),
    });
    this.processes.push(p);
    return p;
  }

  private etcd: LabProcess | undefined;

  /** Stops etcd (SIGTERM), keeping its data: startEtcd() brings the same cluster back. */
  async stopEtcd(): Promise<void> {
    await this.etcd?.stop(5_000);
    this.etcd = undefined;
  }

  /**
   * Starts etcd on <serviceIp>:2379 (again, after stopEtcd: same data, same revisions) and waits
   * until it answers; resolves with its client URL.
   */
  async startEtcd(): Promise<string> {
    const url = `http://${this.serviceIp}:2379`;
    const data = join(this.dir, 'etcd');
    mkdirSync(data, { recursive: true });
    const etcd = this.spawn(
      [
        '/usr/bin/etcd',
        '--name=lab',
        `--data-dir=${data}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        '--listen-peer-urls=http://127.0.0.1:2380',
        '--initial-advertise-peer-urls=http://127.0.0.1:2380',
        '--initial-cluster=lab=http://127.0.0.1:2380',
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--log-level=warn',
      ],
      'etcd.log',
    );
    this.etcd = etcd;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await runCommand(
        'ip',
        ['netns', 'exec', this.netns, 'busybox', 'wget', '-q', '-O', '-', `${url}/health`],
        { timeoutMs: 5_000 },
      );
      if (r.code === 0 && r.stdout.includes('true')) return url;
      if (etcd.exited || Date.now() > deadline)
        throw new Error(`etcd in ${this.netns} did not become healthy:\n${etcd.logTail(20)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  private consul: LabProcess | undefined;

  /**
   * Starts the in-repo Consul API server (test/support/consul-api-server.ts: no Consul can be
   * installed here) on <serviceIp>:8500 as a process in the underlay namespace, where every host
   * reaches it as it reaches etcd, and waits until it answers; resolves with its address.
   * `sessionTtlMinMs` is the agent's session_ttl_min (Consul's default 10 s when omitted).
   */
  async startConsul(sessionTtlMinMs?: number): Promise<string> {
    if (this.consul && !this.consul.exited) throw new Error(`consul in ${this.netns} is already running`);
    const url = `http://${this.serviceIp}:8500`;
    const main = fileURLToPath(new URL('../support/consul-api-server-main.ts', import.meta.url));
    const hooks = new URL('../support/ts-resolve-hooks.mjs', import.meta.url).href;
    // Node's own TypeScript transform: the same way test/support/identity-race.ts runs workers.
    const consul = this.spawn(
      [
        process.execPath,
        '--experimental-transform-types',
        '--disable-warning=ExperimentalWarning',
        `--import=${hooks}`,
        main,
        this.serviceIp,
        '8500',
        ...(sessionTtlMinMs === undefined ? [] : [String(sessionTtlMinMs)]),
      ],
      'consul.log',
    );
    this.consul = consul;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await runCommand(
        'ip',
        ['netns', 'exec', this.netns, 'busybox', 'wget', '-q', '-O', '-', `${url}/v1/status/leader`],
        { timeoutMs: 5_000 },
      );
      if (r.code === 0) return url;
      if (consul.exited || Date.now() > deadline)
        throw new Error(`consul API server in ${this.netns} did not answer:\n${consul.logTail(20)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  /** Stops the processes and deletes the namespace (bridge and veths go with it). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.processes.map((p) => p.stop(5_000)));
    await runCommand('ip', ['netns', 'del', this.netns]);
    rmSync(this.dir, { recursive: true, force: true });
    this.unregister();
  }
}

/** Creates a shared underlay for lab hosts (removed by the test's teardown). */
export function startUnderlay(t: LabTest, opts: UnderlayOptions = {}): Promise<Underlay> {
  return Underlay.start(t, opts);
}
