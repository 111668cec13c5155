// A lab "host": a network namespace plus a persistent mount and UTS namespace, with a private
// dockerd (and the containerd it supervises) running inside them.
//
// Why these namespaces:
//  - net: containers, veths and our daemon's links live in the host's netns, never the root one.
//  - mnt: dockerd keeps bind mounts of container network namespaces under its exec-root; after a
//    dockerd restart they must still be there (live-restore, endpoint restore), so every dockerd
//    of a host runs in the same persistent mount namespace. `ip netns exec` is not used: it makes
//    a new mount namespace per call and remounts /sys, which hides the cgroup v1 hierarchies.
//    The mount namespace also gives each host private /run/docker (plugin discovery reads the
//    fixed /run/docker/plugins), /run/containerd (dockerd would otherwise adopt any containerd
//    at /run/containerd/containerd.sock instead of starting its own), /run/cilium, /etc/docker,
//    /etc/resolv.conf (a nameserver in 198.18/15) and, by default, its own bpffs at /sys/fs/bpf,
//    so two hosts on one machine, or two test runs, never see each other's sockets or pins.
//  - uts: each host has its own hostname (`cdl-<id>`), which node names default to.

import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { basename, join } from 'node:path';
import { runCommand, type CommandResult, type RunOptions } from './exec.js';
import {
  cleanupHostSync,
  isProcessAlive,
  LAB_RUN_DIR,
  mountPoints,
  mountsUnder,
  processStartTime,
  reapStaleHosts,
  saveHostRecord,
  type HostRecord,
} from './host-cleanup.js';
import { LabProcess, type ProcessExit } from './lab-process.js';
import { ensureSafetyRoute, labBinaries, type LabBinaries } from './preconditions.js';
import { registerEmergencyCleanup } from './process-registry.js';

/**
 * What the lab needs of a test: a tap `Test` satisfies it; a script outside tap can pass a
 * stand-in (see fixtures/orphan-host.ts).
 */
export interface LabTest {
  teardown(fn: () => unknown): void;
  comment(...message: unknown[]): void;
  passing(): boolean;
}

/** Options for {@link startDockerHost}. */
export interface DockerHostOptions {
  /** Appended to dockerd's command line (after the lab's own flags). */
  extraDockerdArgs?: string[];
  /** dockerd `--live-restore`; default false. */
  liveRestore?: boolean;
  /**
   * Base of dockerd's `--default-address-pool` (split into /24s); must lie in 198.18.0.0/15.
   * Default: a /20 of 198.19.0.0/16 chosen per host (hosts of one test process do not overlap).
   */
  defaultAddressPool?: string;
  /** Mount a fresh bpffs at /sys/fs/bpf inside the host; default true. */
  privateBpffs?: boolean;
  /** How long to wait for dockerd to answer; default 60 s. */
  readyTimeoutMs?: number;
  /** Extra environment for dockerd (it otherwise gets only PATH and HOME). */
  dockerdEnv?: Record<string, string>;
}

/** Options for {@link DockerHost.spawn}. */
export interface SpawnOptions {
  cwd?: string;
  /** Log file name under the host's log directory; default `<argv0 basename>-<n>.log`. */
  logName?: string;
}

/** How {@link DockerHost.stopDockerd} and {@link DockerHost.restartDockerd} stop dockerd. */
export interface DockerdStopOptions {
  /** SIGTERM: graceful, waited for (SIGKILL after `timeoutMs`). SIGKILL: a crash. */
  signal: 'SIGTERM' | 'SIGKILL';
  /** Grace period for SIGTERM; default 20 s. */
  timeoutMs?: number;
}

/** Private directories bind-mounted inside the host: [name under <dir>/priv, path in host]. */
const PRIVATE_DIRS: readonly (readonly [string, string])[] = [
  ['run-docker', '/run/docker'],
  ['run-containerd', '/run/containerd'],
  ['run-cilium', '/run/cilium'],
  ['etc-docker', '/etc/docker'],
];

const DOCKERD_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const DOCKERD_STOP_TIMEOUT_MS = 20_000;
const LAB_NAMESERVER = '198.18.0.53';

let hostsStarted = 0;

function defaultPoolFor(index: number): string {
  return `198.19.${(index * 16) % 256}.0/20`;
}

/** Parses dotted-quad `a.b.c.d/len` and tells whether it lies within 198.18.0.0/15. */
function insideLabRange(cidr: string): boolean {
  const m = /^(\d+)\.(\d+)\.\d+\.\d+\/(\d+)$/.exec(cidr);
  if (!m) return false;
  return Number(m[1]) === 198 && (Number(m[2]) === 18 || Number(m[2]) === 19) && Number(m[3]) >= 15;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** GET /_ping on dockerd's socket; true when it answers 200. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * A private dockerd in its own namespaces. Create with {@link startDockerHost}; removed by
 * {@link DockerHost.stop}, which the test's teardown calls anyway.
 */
export class DockerHost {
  /** Lab id; every name of this host derives from it. */
  readonly id: string;
  /** Network namespace name (`cdl-<id>`), i.e. `/run/netns/<name>`. */
  readonly name: string;
  /** Hostname inside the host's UTS namespace (same as `name`). */
  readonly hostname: string;
  /** The host's directory; removed by stop(). */
  readonly dir: string;
  /** dockerd's API socket path. */
  readonly socketPath: string;
  /** `unix://<socketPath>`, for `DOCKER_HOST` or `-H`. */
  readonly dockerHost: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** Base of dockerd's default address pool (a CIDR inside 198.18.0.0/15). */
  readonly defaultAddressPool: string;
  /** Where the host's /run/docker/plugins is, seen from the test process (plugin sockets). */
  readonly pluginDir: string;
  /** Where the host's /run/cilium is, seen from the test process (agent socket). */
  readonly ciliumRunDir: string;
  /** Log files of dockerd and of spawned processes. */
  readonly logDir: string;
  readonly dockerdLogPath: string;

  private readonly t: LabTest;
  private readonly opts: DockerHostOptions;
  private readonly bin: LabBinaries;
  private readonly record: HostRecord;
  private readonly nsDir: string;
  private readonly pidFile: string;
  private readonly dockerConfigDir: string;
  private dockerd: LabProcess | undefined;
  private readonly dockerdPids: number[] = [];
  private readonly containerdPids = new Set<number>();
  private readonly spawned: LabProcess[] = [];
  private stopping: Promise<void> | undefined;
  private created = false;
  private unregisterEmergency: () => void = () => {};

  /** @internal Use {@link startDockerHost}. */
  constructor(t: LabTest, id: string, opts: DockerHostOptions) {
    this.t = t;
    this.opts = opts;
    this.bin = labBinaries();
    this.id = id;
    this.name = `cdl-${id}`;
    this.hostname = this.name;
    this.dir = join(LAB_RUN_DIR, this.name);
    this.socketPath = join(this.dir, 'docker.sock');
    this.dockerHost = `unix://${this.socketPath}`;
    this.dataRoot = join(this.dir, 'data');
    this.execRoot = join(this.dir, 'exec');
    this.logDir = join(this.dir, 'logs');
    this.dockerdLogPath = join(this.logDir, 'dockerd.log');
    this.pluginDir = join(this.dir, 'priv', 'run-docker', 'plugins');
    this.ciliumRunDir = join(this.dir, 'priv', 'run-cilium');
    this.nsDir = join(this.dir, 'ns');
    this.pidFile = join(this.dir, 'dockerd.pid');
    this.dockerConfigDir = join(this.dir, 'docker-config');
    this.defaultAddressPool = opts.defaultAddressPool ?? defaultPoolFor(hostsStarted++);
    if (!insideLabRange(this.defaultAddressPool)) {
      throw new Error(`defaultAddressPool ${this.defaultAddressPool} is not inside 198.18.0.0/15`);
    }
    this.record = {
      id,
      netns: this.name,
      dir: this.dir,
      nsDir: this.nsDir,
      cgroupName: this.name,
      ownerPid: process.pid,
      ownerStartTime: processStartTime(process.pid) ?? '',
    };
  }

  /** nsenter flags that put a command inside this host (net, mount and UTS namespaces). */
  get nsenterArgs(): string[] {
    return [`--net=/run/netns/${this.name}`, `--mount=${this.nsDir}/mnt`, `--uts=${this.nsDir}/uts`];
  }

  /** PID of the running dockerd, if any. */
  get dockerdPid(): number | undefined {
    return this.dockerd && !this.dockerd.exited ? this.dockerd.pid : undefined;
  }

  /** Every dockerd PID this host has started, oldest first. */
  get dockerdPidHistory(): readonly number[] {
    return this.dockerdPids;
  }

  /** Every containerd PID seen for this host (dockerd supervises them). */
  get containerdPidHistory(): readonly number[] {
    this.containerdPid();
    return [...this.containerdPids];
  }

  /** PID of the containerd dockerd started for this host, if it is alive. */
  containerdPid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.containerdPidFile, 'utf8').trim());
      if (pid > 0 && isProcessAlive(pid)) {
        this.containerdPids.add(pid);
        return pid;
      }
    } catch {
      // not started (yet)
    }
    return undefined;
  }

  /**
   * Creates and starts a host (see {@link startDockerHost}, which is the usual entry point).
   * On failure everything created so far is removed before the error propagates.
   */
  static async start(t: LabTest, opts: DockerHostOptions = {}): Promise<DockerHost> {
    await ensureSafetyRoute();
    reapStaleHosts();
    const host = new DockerHost(t, newHostId(), opts);
    t.teardown(() => host.stop());
    try {
      await host.setUp();
      await host.startDockerd();
    } catch (e) {
      await host.stop().catch(() => {});
      throw e;
    }
    return host;
  }

  /** Creates directories, namespaces and private mounts. */
  private async setUp(): Promise<void> {
    mkdirSync(this.dir, { mode: 0o711 }); // EEXIST if another run took the id: not ours to clean
    this.created = true;
    saveHostRecord(this.record);
    this.unregisterEmergency = registerEmergencyCleanup(() => cleanupHostSync(this.record));

    for (const d of [this.nsDir, this.dataRoot, this.execRoot, this.logDir, this.dockerConfigDir]) {
      mkdirSync(d, { recursive: true });
    }
    for (const [name, target] of PRIVATE_DIRS) {
      mkdirSync(join(this.dir, 'priv', name), { recursive: true });
      mkdirSync(target, { recursive: true }); // mount point in the shared file system; stays empty
    }
    mkdirSync(this.pluginDir, { recursive: true });
    writeFileSync(join(this.dir, 'daemon.json'), '{}\n');
    writeFileSync(join(this.dir, 'resolv.conf'), `nameserver ${LAB_NAMESERVER}\n`);
    writeFileSync(join(this.dockerConfigDir, 'config.json'), '{}\n');
    writeFileSync(join(this.nsDir, 'mnt'), '');
    writeFileSync(join(this.nsDir, 'uts'), '');

    const { ip, mount, nsenter, unshare } = this.bin;
    await runCommand(ip, ['netns', 'add', this.name], { check: true });

    // The kernel refuses to bind a mount namespace file onto a shared mount (it could create a
    // reference loop), and / is shared on systemd machines: give the files a private mount.
    await runCommand(mount, ['--bind', this.nsDir, this.nsDir], { check: true });
    await runCommand(mount, ['--make-private', this.nsDir], { check: true });

    // The script runs inside the host's netns (so lo, ip_forward and the fresh sysfs are the
    // host's: /sys/class/net lists its links, and writes there cannot reach the root
    // namespace's devices) and inside the new mount and UTS namespaces, made persistent by
    // unshare. Slave propagation: mounts made inside (dockerd's netns bind mounts, overlays)
    // never show up in the root namespace. The mounts below /sys (cgroup hierarchies,
    // securityfs, ...) are moved aside and back on top of the new sysfs, which is what
    // `ip netns exec` does not do.
    const privateBpffs = this.opts.privateBpffs !== false;
    const carried = sysSubmounts().filter((m) => !(privateBpffs && m === '/sys/fs/bpf'));
    const keeps = carried.map((_, i) => join(this.dir, 'keep', String(i)));
    for (const k of keeps) mkdirSync(k, { recursive: true });
    const binds = PRIVATE_DIRS.map(([name, target]) => `${join(this.dir, 'priv', name)}:${target}`);
    const script = [
      'set -e',
      'ip link set lo up',
      'echo 1 > /proc/sys/net/ipv4/ip_forward',
      'hostname "$LAB_HOSTNAME"',
      'mount --bind "$LAB_RESOLV" /etc/resolv.conf',
      // biome-ignore-start lint/suspicious/noTemplateCurlyInString: shell parameter expansions, not templates.
      'for b in $LAB_BINDS; do mount --bind "${b%%:*}" "${b#*:}"; done',
      'for m in $LAB_SYS_CARRY; do mount --move "${m%%:*}" "${m#*:}"; done',
      'mount -t sysfs sysfs /sys',
      'for m in $LAB_SYS_CARRY; do mount --move "${m#*:}" "${m%%:*}"; done',
      // biome-ignore-end lint/suspicious/noTemplateCurlyInString: -
      'if [ "$LAB_BPFFS" = yes ]; then mount -t bpf bpf /sys/fs/bpf; fi',
    ].join('\n');
    const env = {
      PATH: DOCKERD_PATH,
      LAB_HOSTNAME: this.hostname,
      LAB_RESOLV: join(this.dir, 'resolv.conf'),
      LAB_BINDS: binds.join(' '),
      LAB_SYS_CARRY: carried.map((m, i) => `${m}:${keeps[i]}`).join(' '),
      LAB_BPFFS: privateBpffs ? 'yes' : 'no',
    };
    for (const path of [...binds, ...carried, ...keeps]) {
      if (/\s/.test(path)) throw new Error(`lab mount path contains whitespace: ${path}`);
    }
    await runCommand(
      nsenter,
      [
        `--net=/run/netns/${this.name}`,
        '--',
        unshare,
        `--mount=${this.nsDir}/mnt`,
        `--uts=${this.nsDir}/uts`,
        '--propagation',
        'slave',
        '/bin/sh',
        '-c',
        script,
      ],
      { check: true, env },
    );
  }

  private dockerdArgv(): string[] {
    return [
      this.bin.nsenter,
      ...this.nsenterArgs,
      '--',
      this.bin.dockerd,
      '-H',
      this.dockerHost,
      '--data-root',
      this.dataRoot,
      '--exec-root',
      this.execRoot,
      '--pidfile',
      this.pidFile,
      '--config-file',
      join(this.dir, 'daemon.json'),
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--default-address-pool',
      `base=${this.defaultAddressPool},size=24`,
      '--cgroup-parent',
      `/${this.record.cgroupName}`,
      '--exec-opt',
      'native.cgroupdriver=cgroupfs',
      `--live-restore=${this.opts.liveRestore === true}`,
      ...(this.opts.extraDockerdArgs ?? []),
    ];
  }

  /**
   * Starts dockerd (same arguments every time) and waits until it answers `docker version`.
   * Throws, with the tail of dockerd's log, if it exits or does not answer within the timeout.
   */
  async startDockerd(): Promise<void> {
    if (this.dockerdPid !== undefined) throw new Error(`dockerd of ${this.name} is already running`);
    this.dropStaleContainerdPidFile();
    const dockerd = LabProcess.start(this.dockerdArgv(), {
      env: { PATH: DOCKERD_PATH, HOME: '/root', ...this.opts.dockerdEnv },
      logPath: this.dockerdLogPath,
    });
    this.dockerd = dockerd;
    this.dockerdPids.push(dockerd.pid);
    const timeoutMs = this.opts.readyTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (dockerd.exited) {
        const how = JSON.stringify(dockerd.exitStatus);
        throw new Error(`dockerd of ${this.name} exited ${how} before answering; log:\n${dockerd.logTail(30)}`);
      }
      if (await ping(this.socketPath)) break;
      if (Date.now() > deadline) {
        await dockerd.stop(2_000);
        throw new Error(`dockerd of ${this.name} did not answer within ${timeoutMs} ms; log:\n${dockerd.logTail(30)}`);
      }
      await sleep(50);
    }
    const version = await this.docker(['version', '--format', '{{.Server.Version}}']);
    if (version.code !== 0) {
      throw new Error(`docker version against ${this.name} failed: ${version.stderr.trim()}`);
    }
    this.containerdPid();
  }

  /**
   * Stops dockerd. SIGTERM is a clean shutdown and is waited for (SIGKILL after the timeout);
   * dockerd stops its containerd too. SIGKILL is a crash: container processes and their shims
   * stay, the supervised containerd dies with dockerd (parent-death signal), and the next
   * dockerd starts a new one. No-op when dockerd is not running.
   */
  async stopDockerd(opts: DockerdStopOptions): Promise<ProcessExit | undefined> {
    const dockerd = this.dockerd;
    if (dockerd === undefined || dockerd.exited) return dockerd?.exitStatus;
    const containerd = this.containerdPid();
    let exit: ProcessExit;
    if (opts.signal === 'SIGKILL') {
      dockerd.kill('SIGKILL');
      exit = await dockerd.wait();
      // containerd gets SIGKILL from the kernel as dockerd dies (parent-death signal); let it
      // finish dying so that the next dockerd does not adopt a containerd on its way out.
      for (let i = 0; containerd !== undefined && i < 40 && isProcessAlive(containerd); i++) await sleep(50);
    } else {
      exit = await dockerd.stop(opts.timeoutMs ?? DOCKERD_STOP_TIMEOUT_MS);
    }
    // dockerd refuses to start while its pid file names a live process; PIDs get reused.
    rmSync(this.pidFile, { force: true });
    return exit;
  }

  private get containerdPidFile(): string {
    return join(this.execRoot, 'containerd', 'containerd.pid');
  }

  /**
   * dockerd 20.10 adopts the containerd named in its pid file if kill(pid, 0) succeeds, which
   * is also true of a zombie. After a dockerd crash its containerd (killed through
   * PR_SET_PDEATHSIG) is such a zombie until init reaps it, and dockerd would wait for it
   * forever ("timeout waiting for containerd to start"). Forget a pid file naming a dead process.
   */
  private dropStaleContainerdPidFile(): void {
    let pid: number;
    try {
      pid = Number(readFileSync(this.containerdPidFile, 'utf8').trim());
    } catch {
      return;
    }
    if (!(pid > 0) || !isProcessAlive(pid)) rmSync(this.containerdPidFile, { force: true });
  }

  /** Stops dockerd with `signal` and starts it again with identical arguments. */
  async restartDockerd(opts: DockerdStopOptions): Promise<void> {
    await this.stopDockerd(opts);
    await this.startDockerd();
  }

  /**
   * Runs the docker CLI (`/usr/bin/docker -H <this host> ...args`) from the test process.
   * Resolves with its output and exit code; never rejects unless `opts.check` is set.
   */
  docker(args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, DOCKER_CONFIG: this.dockerConfigDir };
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    delete env.DOCKER_TLS_VERIFY;
    return runCommand(this.bin.docker, ['-H', this.dockerHost, ...args], { ...opts, env });
  }

  /**
   * Runs `argv` inside the host (its net, mount and UTS namespaces) and resolves with its output;
   * never rejects unless `opts.check` is set. `DOCKER_HOST` points at this host's dockerd.
   */
  exec(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const env = { ...process.env, DOCKER_HOST: this.dockerHost, ...opts.env };
    return runCommand(this.bin.nsenter, [...this.nsenterArgs, '--', ...argv], { ...opts, env });
  }

  /**
   * Runs `argv` inside the network namespace of `container` (name or ID), with the host's tools
   * rather than the image's. The container's `SandboxKey` is a bind mount that exists only in
   * the host's mount namespace, so `nsenter --net=<SandboxKey>` has to run in there; this does.
   */
  async execInContainerNetns(
    container: string,
    argv: readonly string[],
    opts: RunOptions = {},
  ): Promise<CommandResult> {
    const key = await this.docker(['inspect', '--format', '{{.NetworkSettings.SandboxKey}}', container]);
    const sandbox = key.stdout.trim();
    if (key.code !== 0 || sandbox === '') {
      throw new Error(`no network namespace for container ${container} on ${this.name}: ${key.stderr.trim()}`);
    }
    return this.exec([this.bin.nsenter, `--net=${sandbox}`, '--', ...argv], opts);
  }

  /**
   * Starts a long-running `argv` inside the host with stdout/stderr appended to a log file under
   * {@link logDir}. The environment is the test's plus `DOCKER_HOST` for this host plus `env`.
   * stop() ends it (after dockerd) if the test has not.
   */
  spawn(argv: readonly string[], env: Record<string, string> = {}, opts: SpawnOptions = {}): LabProcess {
    if (this.stopping) throw new Error(`host ${this.name} is stopping`);
    const logName = opts.logName ?? `${basename(argv[0] ?? 'process')}-${this.spawned.length + 1}.log`;
    const proc = LabProcess.start([this.bin.nsenter, ...this.nsenterArgs, '--', ...argv], {
      env: { ...process.env, DOCKER_HOST: this.dockerHost, ...env },
      cwd: opts.cwd,
      logPath: join(this.logDir, logName),
    });
    this.spawned.push(proc);
    return proc;
  }

  /**
   * Removes the host: all containers, dockerd (SIGTERM, SIGKILL after 20 s), spawned processes,
   * containerd, anything else in its namespaces or cgroup, its mounts, the netns and the
   * directory. Idempotent; the test teardown calls it too. Throws if something could not be
   * removed.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    if (!this.created) return;
    const warnings: string[] = [];
    try {
      await this.stopProcesses(warnings);
      if (!this.safeIsPassing()) this.commentLogs();
      if (process.env.CDL_KEEP_LOGS) {
        const keep = join('/tmp', `${this.name}-logs`);
        cpSync(this.logDir, keep, { recursive: true });
        warnings.push(`logs kept in ${keep}`);
      }
    } catch (e) {
      warnings.push(`graceful stop failed, forcing: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      for (const w of warnings) this.comment(`${this.name}: ${w}`);
    }
    cleanupHostSync(this.record); // throws if the netns or a mount survives
    this.unregisterEmergency();
  }

  /** The graceful part of stop(): containers, dockerd, spawned processes, containerd. */
  private async stopProcesses(warnings: string[]): Promise<void> {
    if (this.dockerdPid !== undefined) {
      // Containers first, while dockerd and any network plugin can still tear endpoints down.
      const ps = await this.docker(['ps', '-aq'], { timeoutMs: 30_000 });
      const ids = ps.stdout.split('\n').filter((l) => l.length > 0);
      if (ids.length > 0) {
        const rm = await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
        if (rm.code !== 0) warnings.push(`docker rm -f: ${rm.stderr.trim()}`);
      }
      await this.stopDockerd({ signal: 'SIGTERM' });
    }
    await Promise.all(this.spawned.map((p) => p.stop(5_000)));
    // dockerd stops the containerd it supervises on a clean shutdown; after a SIGKILL timeout
    // of dockerd it may not have.
    const containerd = this.containerdPid();
    if (containerd !== undefined) {
      try {
        process.kill(containerd, 'SIGTERM');
      } catch {
        // gone
      }
      for (let i = 0; i < 100 && isProcessAlive(containerd); i++) await sleep(50);
    }
  }

  private safeIsPassing(): boolean {
    try {
      return this.t.passing();
    } catch {
      return true;
    }
  }

  private comment(msg: string): void {
    try {
      this.t.comment(msg);
    } catch {
      process.stderr.write(`${msg}\n`);
    }
  }

  private commentLogs(): void {
    const logs = [this.dockerd, ...this.spawned].filter((p): p is LabProcess => p !== undefined);
    for (const p of new Set(logs)) {
      this.comment(`--- ${this.name}: ${basename(p.logPath)} (last 40 lines) ---\n${p.logTail(40)}`);
    }
  }

  /** Paths still mounted at or below the host's directory, in the test process's view. */
  mountsLeft(): string[] {
    return mountsUnder(this.dir);
  }

  /** True once stop() has removed the netns and the directory. */
  get removed(): boolean {
    return !existsSync(`/run/netns/${this.name}`) && !existsSync(this.dir);
  }
}

/** Mount points directly below /sys (not nested in another /sys submount), deduplicated. */
function sysSubmounts(): string[] {
  const below = [...new Set(mountPoints().filter((m) => m.startsWith('/sys/')))];
  return below.filter((m) => !below.some((p) => p !== m && m.startsWith(`${p}/`)));
}

function newHostId(): string {
  for (let i = 0; i < 100; i++) {
    const id = randomBytes(3).toString('hex');
    const name = `cdl-${id}`;
    if (!existsSync(join(LAB_RUN_DIR, name)) && !existsSync(`/run/netns/${name}`)) return id;
  }
  throw new Error('cannot find a free lab host id');
}

/**
 * Starts a lab host for test `t`: network namespace `cdl-<id>` (lo up, ip_forward on), a
 * persistent mount and UTS namespace with private /run/docker, /run/containerd, /run/cilium,
 * /etc/docker, /etc/resolv.conf, sysfs and bpffs, and a private dockerd inside them (cgroupfs
 * driver, no bridge, no iptables, address pool inside 198.18.0.0/15). Also makes sure the root
 * namespace routes 198.18.0.0/15 to `unreachable` and reaps hosts left behind by dead test
 * processes. `t.teardown` removes the host; so does process exit, as a last resort.
 */
export function startDockerHost(t: LabTest, opts: DockerHostOptions = {}): Promise<DockerHost> {
  return DockerHost.start(t, opts);
}
