/**
 * Two endpoints to measure between, and the two kinds the datapath bench builds:
 *
 *  - ContainerPair: two containers of a lab host (test/lab), tools run from the host's binaries
 *    inside each container's netns (`nsenter --net=<SandboxKey>`, from the lab host's mount
 *    namespace, where the SandboxKey bind mounts exist);
 *  - RoutedTopology: baselines.md's "raw routed veth pair": plain network namespaces c1 and c2,
 *    each with a veth to a router namespace r (ip_forward, /32 routes, no bridge, no netfilter
 *    unless the caller loads rules into r). Created from nothing here, removed by destroy(), on
 *    process exit by the lab's emergency registry, and after a SIGKILL by the next bench run
 *    (namespace names carry the owner's PID).
 *
 * Every address is inside 198.18.0.0/15; nothing is created in the root namespace (veths are
 * created from inside the router namespace, straight into the client namespaces).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerHost } from '../../test/lab/docker-host.js';
import { runCommand, type CommandResult } from '../../test/lab/exec.js';
import { isProcessAlive } from '../../test/lab/host-cleanup.js';
import { LabProcess } from '../../test/lab/lab-process.js';
import { labBinaries } from '../../test/lab/preconditions.js';
import { registerEmergencyCleanup } from '../../test/lab/process-registry.js';

/** What the measurements need from a pair of endpoints. */
export interface EndpointPair {
  /** The server's address, as the client reaches it. */
  readonly serverIp: string;
  /** Runs argv in the client's network namespace. */
  runInClient(argv: readonly string[], timeoutMs: number): Promise<CommandResult>;
  /** Runs argv in the server's network namespace. */
  runInServer(argv: readonly string[], timeoutMs: number): Promise<CommandResult>;
  /** Starts a long-running argv in the server's network namespace. */
  startInServer(argv: readonly string[], logName: string): LabProcess;
  /** Starts a long-running argv in the client's network namespace. */
  startInClient(argv: readonly string[], logName: string): LabProcess;
}

/** The network namespace path of a container of `host` (its SandboxKey). */
export async function sandboxOf(host: DockerHost, container: string): Promise<string> {
  const r = await host.docker(['inspect', '--format', '{{.NetworkSettings.SandboxKey}}', container]);
  const key = r.stdout.trim();
  if (r.code !== 0 || key === '')
    throw new Error(`no network namespace for container ${container} on ${host.name}: ${r.stderr.trim()}`);
  return key;
}

/** Two containers of one lab host. */
export class ContainerPair implements EndpointPair {
  private constructor(
    readonly host: DockerHost,
    readonly client: string,
    readonly server: string,
    readonly serverIp: string,
    private readonly clientNetns: string,
    private readonly serverNetns: string,
  ) {}

  /** `network` is the Docker network whose address of `server` the client uses. */
  static async of(host: DockerHost, client: string, server: string, network: string): Promise<ContainerPair> {
    const ip = await host.docker([
      'inspect',
      '-f',
      `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
      server,
    ]);
    if (ip.code !== 0 || !/^198\.1[89]\.\d+\.\d+$/.test(ip.stdout.trim()))
      throw new Error(`${server} has no 198.18/15 address on ${network}: ${ip.stdout}${ip.stderr}`);
    return new ContainerPair(
      host,
      client,
      server,
      ip.stdout.trim(),
      await sandboxOf(host, client),
      await sandboxOf(host, server),
    );
  }

  runInClient(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.host.exec([labBinaries().nsenter, `--net=${this.clientNetns}`, '--', ...argv], { timeoutMs });
  }

  runInServer(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.host.exec([labBinaries().nsenter, `--net=${this.serverNetns}`, '--', ...argv], { timeoutMs });
  }

  startInServer(argv: readonly string[], logName: string): LabProcess {
    return this.host.spawn([labBinaries().nsenter, `--net=${this.serverNetns}`, '--', ...argv], {}, { logName });
  }

  startInClient(argv: readonly string[], logName: string): LabProcess {
    return this.host.spawn([labBinaries().nsenter, `--net=${this.clientNetns}`, '--', ...argv], {}, { logName });
  }
}

const NETNS_DIR = '/run/netns';
/** Prefix of every namespace this module creates: `bdp<owner pid>-<tag>-{r,c1,c2}`. */
const PREFIX = 'bdp';

/** Deletes namespaces left by bench runs whose process is gone (e.g. after a SIGKILL). */
export function reapStaleTopologies(): string[] {
  if (!existsSync(NETNS_DIR)) return [];
  const reaped: string[] = [];
  for (const name of readdirSync(NETNS_DIR)) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!m || isProcessAlive(Number(m[1]))) continue;
    try {
      execFileSync(labBinaries().ip, ['netns', 'del', name], { stdio: 'ignore' });
      reaped.push(name);
    } catch {
      // someone else's, or already gone
    }
  }
  return reaped;
}

/**
 * c1 (`ceth0` 198.18.N.1/32) — veth — r (`v1`, `v2`, 198.18.N.254/32 on both, ip_forward,
 * a /32 route per client) — veth — c2 (`ceth0` 198.18.N.2/32). Gateway 198.18.N.254 on-link.
 */
export class RoutedTopology implements EndpointPair {
  readonly router: string;
  readonly c1: string;
  readonly c2: string;
  readonly clientIp: string;
  readonly serverIp: string;
  readonly gatewayIp: string;
  private readonly processes: LabProcess[] = [];
  private unregister: () => void = () => {};
  private destroyed = false;

  private constructor(
    readonly tag: string,
    readonly octet: number,
    private readonly logDir: string,
  ) {
    const base = `${PREFIX}${process.pid}-${tag}`;
    this.router = `${base}-r`;
    this.c1 = `${base}-c1`;
    this.c2 = `${base}-c2`;
    this.clientIp = `198.18.${octet}.1`;
    this.serverIp = `198.18.${octet}.2`;
    this.gatewayIp = `198.18.${octet}.254`;
  }

  /** Builds the topology; on failure removes what was made and rethrows. */
  static async create(tag: string, octet: number, logDir: string): Promise<RoutedTopology> {
    if (!/^[a-z0-9]{1,6}$/.test(tag)) throw new Error(`topology tag "${tag}": 1-6 of [a-z0-9]`);
    if (!Number.isInteger(octet) || octet < 0 || octet > 255) throw new Error(`octet ${octet}`);
    mkdirSync(logDir, { recursive: true });
    const t = new RoutedTopology(tag, octet, logDir);
    const names = [t.router, t.c1, t.c2];
    t.unregister = registerEmergencyCleanup(() => {
      for (const n of names) {
        try {
          execFileSync(labBinaries().ip, ['netns', 'del', n], { stdio: 'ignore' });
        } catch {
          // not created or gone
        }
      }
    });
    try {
      await t.build();
    } catch (err) {
      await t.destroy();
      throw err;
    }
    return t;
  }

  private async ip(args: string[]): Promise<void> {
    await runCommand(labBinaries().ip, args, { check: true, timeoutMs: 30_000 });
  }

  private async build(): Promise<void> {
    const { router: r, c1, c2 } = this;
    for (const ns of [r, c1, c2]) {
      await this.ip(['netns', 'add', ns]);
      await this.ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Created inside r: neither end ever exists in the root namespace.
    for (const [dev, ns, addr] of [
      ['v1', c1, this.clientIp],
      ['v2', c2, this.serverIp],
    ] as const) {
      await this.ip(['-n', r, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'ceth0', 'netns', ns]);
      await this.ip(['-n', r, 'addr', 'add', `${this.gatewayIp}/32`, 'dev', dev]);
      await this.ip(['-n', r, 'link', 'set', dev, 'up']);
      await this.ip(['-n', r, 'route', 'add', `${addr}/32`, 'dev', dev]);
      await this.ip(['-n', ns, 'addr', 'add', `${addr}/32`, 'dev', 'ceth0']);
      await this.ip(['-n', ns, 'link', 'set', 'ceth0', 'up']);
      await this.ip(['-n', ns, 'route', 'add', `${this.gatewayIp}/32`, 'dev', 'ceth0', 'scope', 'link']);
      await this.ip(['-n', ns, 'route', 'add', 'default', 'via', this.gatewayIp, 'dev', 'ceth0']);
    }
    const fwd = await this.runIn(r, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'], 10_000);
    if (fwd.code !== 0) throw new Error(`ip_forward in ${r}: ${fwd.stderr}`);
  }

  /** Runs argv in namespace `ns` (one of router, c1, c2). */
  runIn(ns: string, argv: readonly string[], timeoutMs: number, input?: string): Promise<CommandResult> {
    return runCommand(labBinaries().nsenter, [`--net=${join(NETNS_DIR, ns)}`, '--', ...argv], { timeoutMs, input });
  }

  /** Starts a long-running argv in namespace `ns`; stopped by destroy(). */
  startIn(ns: string, argv: readonly string[], logName: string): LabProcess {
    const p = LabProcess.start([labBinaries().nsenter, `--net=${join(NETNS_DIR, ns)}`, '--', ...argv], {
      logPath: join(this.logDir, logName),
    });
    this.processes.push(p);
    return p;
  }

  runInClient(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.runIn(this.c1, argv, timeoutMs);
  }

  runInServer(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.runIn(this.c2, argv, timeoutMs);
  }

  startInServer(argv: readonly string[], logName: string): LabProcess {
    return this.startIn(this.c2, argv, logName);
  }

  startInClient(argv: readonly string[], logName: string): LabProcess {
    return this.startIn(this.c1, argv, logName);
  }

  /** Stops the processes started here and deletes the namespaces (and with them the veths). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.processes.map((p) => p.stop(3_000)));
    for (const ns of [this.router, this.c1, this.c2]) {
      if (existsSync(join(NETNS_DIR, ns)))
        await runCommand(labBinaries().ip, ['netns', 'del', ns], { timeoutMs: 30_000 });
    }
    this.unregister();
  }
}
