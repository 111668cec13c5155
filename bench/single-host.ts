/**
 * Benchmark 1, "single host": what a container start costs on our network compared with
 * `--network none` and with Docker's own bridge driver, in one lab host (private dockerd in its
 * own namespaces, our daemon beside it; see test/lab/README.md).
 *
 *  1. latency: interleaved rounds of `docker run --rm --network X bb true` for X = none, a
 *     user-defined bridge network, a "null" remote driver whose handlers do no work
 *     (bench/lib/null-driver.mjs: the floor of any plugin) and our cilium network (order rotated
 *     every round), with the CPU time our daemon, dockerd and containerd spent per run;
 *  2. concurrent: N x `docker run -d` in parallel (time until all are running), then one
 *     `docker rm -f` of all of them; bridge vs ours (optionally none), interleaved;
 *  3. per-call profile from the daemon's debug log (`"msg":"plugin call"`, `ms`), per phase;
 *  4. diagnostics: a few runs of each network with `strace -f` on dockerd (the embedded DNS set-up
 *     that dockerd runs for every user-defined network), a few runs with `strace -f` on the daemon
 *     (processes spawned and fsyncs per container), micro-benchmarks of the building blocks inside
 *     the lab host, and a few runs with the daemon restarted under `node --cpu-prof` (where its main
 *     thread goes).
 *
 * Run through bench/run.mjs, which renders the JSON this writes to $BENCH_OUT as markdown.
 * Settings (environment): ROUNDS (20), WARMUP (1), CONC_ROUNDS (3), CONC_N (50),
 * CONC_CONFIGS ("bridge,cilium"; may add "none"), PROFILE_RUNS (8; 0 = no strace phase),
 * DOCKERD_TRACE_RUNS (4 per network; 0 = no strace of dockerd), MICRO_REPS (15; 0 = no micro-benchmarks), CPUPROF_RUNS
 * (10; 0 = no CPU profile), BENCH_BUDGET_S (480: diagnostics are skipped past it), BENCH_DAEMON_LOG (copy the daemon
 * log there), BENCH_TRACE_FILE (keep the raw strace output there).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBusyboxImage, runCommand, startDockerHost, type DockerHost } from '../test/lab/lab.js';
import type { LabProcess } from '../test/lab/lab-process.js';
import { CiliumDaemon } from '../test/support/cilium-daemon.js';
import { summariseCpuProfile, type ProfileSummary } from './lib/cpuprofile.js';
import { callProfile, callWindows, pluginCalls } from './lib/daemon-log.js';
import { cpuMs, envInt, LabSession, machineLoad, progress, rssMiB, sleep } from './lib/lab-session.js';
import { StraceSession, type StraceResult } from './lib/strace.js';

const ROUNDS = envInt('ROUNDS', 20, 1);
const WARMUP = envInt('WARMUP', 1, 0);
const CONC_ROUNDS = envInt('CONC_ROUNDS', 3, 0);
const CONC_N = envInt('CONC_N', 50, 1);
const PROFILE_RUNS = envInt('PROFILE_RUNS', 8, 0);
const MICRO_REPS = envInt('MICRO_REPS', 15, 0);
const CPUPROF_RUNS = envInt('CPUPROF_RUNS', 10, 0);
const DOCKERD_TRACE_RUNS = envInt('DOCKERD_TRACE_RUNS', 4, 0);
/** Diagnostics (strace, micro, CPU profile) are skipped once the run has taken this long. */
const BUDGET_S = envInt('BENCH_BUDGET_S', 480, 0);
const OUT = process.env.BENCH_OUT;
if (!OUT) throw new Error('BENCH_OUT (result JSON path) is not set; run through `node bench/run.mjs`');

const ROOT = new URL('..', import.meta.url).pathname;
const BRIDGE_SUBNET = '198.18.201.0/24';
const CILIUM_SUBNET = '198.18.202.0/24';
const IMAGE = 'bb';

/**
 * The "null" remote driver (bench/lib/null-driver.mjs): handlers that do no work, veths from a
 * pool created at its start, Docker's default IPAM. The floor any network plugin can reach here.
 */
const NULL_SUBNET = '198.18.203.0/24';
const NULL_DRIVER = 'nulldrv';
/** veth pairs the null driver creates at start (handed out round robin: serial runs only). */
const NULL_POOL = 60;

/**
 * `default` is Docker's default bridge (docker0 of the lab dockerd, `--bip` in DEFAULT_BRIDGE): the
 * only network besides none/host on which dockerd does not start its embedded DNS server.
 */
type ConfigKey = 'none' | 'default' | 'bridge' | 'null' | 'cilium';
const NETWORK: Record<ConfigKey, string> = {
  none: 'none',
  default: 'bridge',
  bridge: 'bench-br',
  null: 'nullnet',
  cilium: 'bench-cil',
};
const SERIAL_CONFIGS: ConfigKey[] = ['none', 'default', 'bridge', 'null', 'cilium'];
const DEFAULT_BRIDGE = '198.18.204.1/24';
const CONC_CONFIGS = (process.env.CONC_CONFIGS ?? 'bridge,cilium')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '') as ConfigKey[];
// Not `null`: its round-robin veth pool is for serial runs.
for (const c of CONC_CONFIGS)
  if (!(c in NETWORK) || c === 'null') throw new Error(`CONC_CONFIGS: unknown config "${c}" (none, bridge, cilium)`);

/** CPU ms spent by our daemon (incl. its `ip` children), dockerd and containerd. */
interface CpuDelta {
  daemon: number;
  daemonChildren: number;
  dockerd: number;
  containerd: number;
}

interface LatencySample {
  round: number;
  config: ConfigKey;
  position: number;
  ms: number;
  cpu: CpuDelta;
}

interface ConcurrentSample {
  round: number;
  config: ConfigKey;
  n: number;
  startMs: number;
  removeMs: number;
  failures: number;
  cpu: CpuDelta;
}

let host: DockerHost;
let daemon: CiliumDaemon;
let nullDriver: LabProcess | undefined;

/** Starts the null driver inside the lab host and waits for its plugin socket. */
async function startNullDriver(): Promise<LabProcess> {
  const script = new URL('./lib/null-driver.mjs', import.meta.url).pathname;
  const proc = host.spawn(
    [process.execPath, script, `/run/docker/plugins/${NULL_DRIVER}.sock`, String(NULL_POOL)],
    {},
    { logName: 'null-driver.log' },
  );
  const sock = join(host.pluginDir, `${NULL_DRIVER}.sock`);
  const deadline = Date.now() + 15_000;
  while (!existsSync(sock)) {
    if (proc.exited)
      throw new Error(`null driver exited at start: ${JSON.stringify(proc.exitStatus)}\n${proc.logTail(20)}`);
    if (Date.now() > deadline) throw new Error(`null driver: no ${sock} after 15 s\n${proc.logTail(20)}`);
    await sleep(50);
  }
  return proc;
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await host.docker(args, { timeoutMs });
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}\n--- daemon log ---\n` +
        `${daemon?.process?.logTail(20) ?? ''}`,
    );
  return r.stdout.trim();
}

function cpuSnapshot(): CpuDelta {
  const d = cpuMs(daemon.process?.pid);
  return {
    daemon: d?.self ?? NaN,
    daemonChildren: d?.children ?? NaN,
    dockerd: cpuMs(host.dockerdPid)?.self ?? NaN,
    containerd: cpuMs(host.containerdPid())?.self ?? NaN,
  };
}

function cpuSince(before: CpuDelta): CpuDelta {
  const now = cpuSnapshot();
  return {
    daemon: now.daemon - before.daemon,
    daemonChildren: now.daemonChildren - before.daemonChildren,
    dockerd: now.dockerd - before.dockerd,
    containerd: now.containerd - before.containerd,
  };
}

/** Failed `docker run`s: reported, and the run retried (a failure is a finding, not noise). */
interface RunFailure {
  phase: string;
  config: ConfigKey;
  at: string;
  error: string;
}
const failures: RunFailure[] = [];
const MAX_ATTEMPTS = 3;

function recordFailure(phase: string, config: ConfigKey, stderr: string): void {
  const error =
    stderr
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .pop() ?? '(no message)';
  failures.push({ phase, config, at: new Date().toISOString(), error });
  progress(`${phase}: a docker run on ${config} failed, retrying: ${error}`);
}

/** One `docker run --rm --network X bb true`, wall time in ms (of the attempt that succeeded). */
async function timedRun(config: ConfigKey, phase = 'latency'): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    const r = await host.docker(['run', '--rm', '--network', NETWORK[config], IMAGE, 'true'], { timeoutMs: 120_000 });
    const ms = performance.now() - t0;
    if (r.code === 0) return ms;
    recordFailure(phase, config, r.stderr);
    if (attempt >= MAX_ATTEMPTS)
      throw new Error(
        `docker run on ${config} failed ${attempt} times in a row: ${r.stderr.trim()}\n--- daemon log ---\n` +
          `${daemon.process?.logTail(20) ?? ''}`,
      );
    await sleep(500);
  }
}

/** Waits until our daemon has no endpoint and the host no lxc veth left (after a batch on cilium). */
async function settle(): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const links = await host.exec(['ip', '-o', 'link', 'show']);
    const lxc = (links.stdout.match(/ lxc[0-9a-f]{11}@/g) ?? []).length;
    const eps = await daemon.cli(['endpoint', 'list', '-o', 'json']);
    const n = eps.code === 0 ? (JSON.parse(eps.stdout) as unknown[]).length : -1;
    if (lxc === 0 && n === 0) return;
    if (Date.now() > deadline) throw new Error(`not settled after a batch: ${lxc} lxc veths, ${n} endpoints`);
    await sleep(250);
  }
}

async function latencyPhase(): Promise<{ samples: LatencySample[]; fromMs: number; toMs: number }> {
  for (let w = 0; w < WARMUP; w++) for (const c of SERIAL_CONFIGS) await timedRun(c, 'warm-up');
  const samples: LatencySample[] = [];
  const fromMs = Date.now();
  for (let r = 0; r < ROUNDS; r++) {
    const order = rotate(SERIAL_CONFIGS, r);
    for (const [position, config] of order.entries()) {
      const before = cpuSnapshot();
      const ms = await timedRun(config);
      samples.push({ round: r, config, position, ms, cpu: cpuSince(before) });
    }
    const last = samples
      .slice(-SERIAL_CONFIGS.length)
      .map((s) => `${s.config} ${s.ms.toFixed(0)}`)
      .join(', ');
    progress(`latency round ${r + 1}/${ROUNDS}: ${last} ms`);
  }
  return { samples, fromMs, toMs: Date.now() };
}

let batches = 0;

async function concurrentBatch(round: number, config: ConfigKey): Promise<ConcurrentSample> {
  const tag = `r${round}-${config}-${++batches}`;
  const names = Array.from({ length: CONC_N }, (_, i) => `cc-${tag}-${i}`);
  const before = cpuSnapshot();
  const t0 = performance.now();
  const runs = await Promise.all(
    names.map((name) =>
      host.docker(
        ['run', '-d', '--name', name, '--network', NETWORK[config], '-l', `bench.batch=${tag}`, IMAGE, 'sleep', '1000'],
        { timeoutMs: 300_000 },
      ),
    ),
  );
  const startMs = performance.now() - t0;
  const failed = runs.filter((r) => r.code !== 0);
  for (const f of failed) recordFailure('concurrent', config, f.stderr);
  const running = (await docker(['ps', '-q', '--filter', `label=bench.batch=${tag}`, '--filter', 'status=running']))
    .split('\n')
    .filter((s) => s !== '').length;
  const t1 = performance.now();
  const rm = await host.docker(['rm', '-f', ...names], { timeoutMs: 300_000 });
  const removeMs = performance.now() - t1;
  const cpu = cpuSince(before);
  // `docker rm -f` of a name whose start failed may complain that it does not exist.
  if (rm.code !== 0 && failed.length === 0) throw new Error(`docker rm -f of batch ${tag} failed: ${rm.stderr.trim()}`);
  if (config === 'cilium') await settle();
  await sleep(1_000);
  if (failed.length === 0 && running !== CONC_N)
    throw new Error(`batch ${tag}: ${running}/${CONC_N} containers running after all starts returned`);
  return { round, config, n: CONC_N, startMs, removeMs, failures: failed.length, cpu };
}

async function concurrentPhase(): Promise<{ samples: ConcurrentSample[]; fromMs: number; toMs: number }> {
  const samples: ConcurrentSample[] = [];
  const fromMs = Date.now();
  for (let r = 0; r < CONC_ROUNDS; r++) {
    for (const config of rotate(CONC_CONFIGS, r)) {
      let s = await concurrentBatch(r, config);
      // A batch with failed starts is not a valid timing: run it again once.
      if (s.failures > 0) s = await concurrentBatch(r, config);
      if (s.failures > 0)
        throw new Error(`concurrent round ${r + 1} on ${config}: ${s.failures}/${CONC_N} starts failed twice`);
      samples.push(s);
      progress(
        `concurrent round ${r + 1}/${CONC_ROUNDS} ${config}: ${CONC_N} started in ${s.startMs.toFixed(0)} ms, ` +
          `removed in ${s.removeMs.toFixed(0)} ms`,
      );
    }
  }
  return { samples, fromMs, toMs: Date.now() };
}

/** A few cilium runs with strace on the daemon: processes spawned and fsyncs per container. */
async function stracePhase(): Promise<
  (StraceResult & { runs: number; calls: ReturnType<typeof callProfile> }) | undefined
> {
  if (PROFILE_RUNS === 0) return undefined;
  const pid = daemon.process?.pid;
  if (pid === undefined) return undefined;
  let session: StraceSession;
  try {
    session = await StraceSession.attach(pid, join(tmpdir(), `bench-strace-${process.pid}.txt`));
  } catch (err) {
    progress(`strace phase skipped: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  const fromMs = Date.now();
  let failure: unknown;
  try {
    for (let i = 0; i < PROFILE_RUNS; i++) await timedRun('cilium', 'strace');
  } catch (err) {
    failure = err;
  }
  const result = await session.stop(process.env.BENCH_TRACE_FILE);
  if (failure !== undefined) throw failure;
  await sleep(300);
  const calls = callProfile(pluginCalls(daemon.log(), fromMs, Date.now()));
  progress(
    `strace: ${result.spawns.length} processes spawned and ${result.syncs.length} fsyncs ` +
      `over ${PROFILE_RUNS} containers`,
  );
  return { ...result, runs: PROFILE_RUNS, calls };
}

/**
 * A few serial runs of each network with strace on dockerd: the processes dockerd itself spawns
 * per container. On a user-defined network (our driver, the null driver and a user-defined
 * bridge alike) dockerd starts its embedded DNS server: a re-exec of itself (`setup-resolver`)
 * in the container's namespace that runs iptables 11 times. `--network none` and the default
 * bridge skip it (daemon/container_operations.go sets DisableResolution for them), and no
 * driver can turn it off: this phase shows how much of the gap to `none` that is.
 */
async function dockerdStracePhase(): Promise<
  Record<string, { runs: number; spawns: StraceResult['spawns'] }> | undefined
> {
  if (DOCKERD_TRACE_RUNS === 0) return undefined;
  const out: Record<string, { runs: number; spawns: StraceResult['spawns'] }> = {};
  const pid = host.dockerdPid;
  if (pid === undefined) return undefined;
  for (const config of SERIAL_CONFIGS) {
    let session: StraceSession;
    try {
      session = await StraceSession.attach(pid, join(tmpdir(), `bench-dockerd-strace-${process.pid}.txt`));
    } catch (err) {
      progress(`dockerd strace phase skipped: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    let failure: unknown;
    try {
      for (let i = 0; i < DOCKERD_TRACE_RUNS; i++) await timedRun(config, 'dockerd strace');
    } catch (err) {
      failure = err;
    }
    const result = await session.stop();
    if (failure !== undefined) throw failure;
    out[config] = { runs: DOCKERD_TRACE_RUNS, spawns: result.spawns };
    progress(`dockerd strace ${config}: ${result.spawns.length} processes over ${DOCKERD_TRACE_RUNS} containers`);
  }
  return out;
}

async function microPhase(ballastMiB: number): Promise<Record<string, unknown> | undefined> {
  if (MICRO_REPS === 0) return undefined;
  const script = new URL('./lib/micro.mjs', import.meta.url).pathname;
  const argv = [
    process.execPath,
    script,
    daemon.stateDir,
    String(MICRO_REPS),
    String(Math.round(ballastMiB)),
    `/run/netns/${host.name}`,
  ];
  const r = await host.exec(argv, { timeoutMs: 300_000 });
  if (r.code !== 0) {
    progress(`micro-benchmarks failed: ${r.stderr.trim()}`);
    return { error: r.stderr.trim() };
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

/**
 * Restarts the daemon under `node --cpu-prof`, runs CPUPROF_RUNS containers on our network and
 * summarises where the daemon's main thread was during those runs. Leaves the daemon stopped.
 */
async function cpuProfilePhase(): Promise<
  (ProfileSummary & { runs: number; wallMs: number; cpu: CpuDelta }) | undefined
> {
  if (CPUPROF_RUNS === 0) return undefined;
  const dir = join(host.dir, 'cpuprof');
  mkdirSync(dir, { recursive: true });
  await daemon.stop('SIGTERM');
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${saved ?? ''} --cpu-prof --cpu-prof-dir=${dir}`.trim();
  try {
    await daemon.start();
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
  await timedRun('cilium', 'cpu profile'); // warm-up after the restart
  const before = cpuSnapshot();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  let wall = 0;
  for (let i = 0; i < CPUPROF_RUNS; i++) wall += await timedRun('cilium', 'cpu profile');
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const cpu = cpuSince(before);
  await daemon.stop('SIGTERM'); // the profile is written at exit
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    progress('CPU profile: the daemon wrote no .cpuprofile');
    return undefined;
  }
  return { ...summariseCpuProfile(join(dir, file), fromUs, toUs), runs: CPUPROF_RUNS, wallMs: wall, cpu };
}

/** Calls the null driver answered, per call name: count and median handler ms (its stdout log). */
function nullDriverCalls(proc: LabProcess): Record<string, { n: number; medianMs: number }> {
  const byCall = new Map<string, number[]>();
  for (const line of proc.readLog().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const { call, ms } = JSON.parse(line) as { call: string; ms: number };
      byCall.set(call, [...(byCall.get(call) ?? []), ms]);
    } catch {
      /* not a call line */
    }
  }
  const out: Record<string, { n: number; medianMs: number }> = {};
  for (const [call, xs] of byCall) {
    const sorted = [...xs].sort((a, b) => a - b);
    out[call] = { n: xs.length, medianMs: sorted[Math.floor(sorted.length / 2)] ?? NaN };
  }
  return out;
}

function withinBudget(what: string): boolean {
  const elapsed = (performance.now() - t0) / 1000;
  if (elapsed <= BUDGET_S) return true;
  progress(`${what} skipped: ${elapsed.toFixed(0)} s elapsed, over BENCH_BUDGET_S=${BUDGET_S}`);
  skipped.push(what);
  return false;
}

const skipped: string[] = [];
const session = new LabSession();
const startedAt = new Date().toISOString();
const t0 = performance.now();
const loadBefore = machineLoad();
try {
  progress(`starting a lab host (load average ${loadBefore.load1} on ${loadBefore.cpus} CPUs)`);
  // The lab's dockerd runs with --bridge=none; the bench gives it a default bridge (no iptables).
  host = await startDockerHost(session, { extraDockerdArgs: ['--bridge=', `--bip=${DEFAULT_BRIDGE}`] });
  await ensureBusyboxImage(host, IMAGE);
  daemon = new CiliumDaemon(host);
  await daemon.start();
  await docker(['network', 'create', '-d', 'bridge', '--subnet', BRIDGE_SUBNET, NETWORK.bridge]);
  await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    CILIUM_SUBNET,
    NETWORK.cilium,
  ]);
  nullDriver = await startNullDriver();
  await docker(['network', 'create', '-d', NULL_DRIVER, '--subnet', NULL_SUBNET, NETWORK.null]);
  // The numbers mean nothing unless every network really gives the container an address.
  for (const [config, prefix] of [
    ['default', '198.18.204.'],
    ['bridge', '198.18.201.'],
    ['null', '198.18.203.'],
    ['cilium', '198.18.202.'],
  ] as const) {
    const addr = await docker([
      'run',
      '--rm',
      '--network',
      NETWORK[config],
      IMAGE,
      'ip',
      '-o',
      '-4',
      'addr',
      'show',
      'dev',
      'eth0',
    ]);
    if (!addr.includes(prefix)) throw new Error(`${config}: container has no ${prefix}x address: ${addr}`);
  }
  const versions = {
    dockerd: await docker(['version', '--format', '{{.Server.Version}}']),
    node: process.version,
    kernel: (await host.exec(['uname', '-r'])).stdout.trim(),
  };
  // What was measured: the tree is shared and rebuilt by others, so record it.
  const git = async (args: string[]): Promise<string> => (await runCommand('git', ['-C', ROOT, ...args])).stdout.trim();
  const status = await daemon
    .cliJson<{ datapath?: string; kvstore?: { backend?: string } }>(['status'])
    .catch(() => undefined);
  const code = {
    head: await git(['rev-parse', '--short', 'HEAD']),
    uncommittedSrcFiles: (await git(['status', '--porcelain', '--', 'src'])).split('\n').filter((l) => l !== '').length,
    distBuiltAt: statSync(join(ROOT, 'dist', 'main.js')).mtime.toISOString(),
    datapath: status?.datapath ?? '?',
    kvstore: status?.kvstore?.backend ?? '?',
  };

  progress(`latency: ${WARMUP} warm-up + ${ROUNDS} interleaved rounds of ${SERIAL_CONFIGS.join(', ')}`);
  const latency = await latencyPhase();
  progress(`concurrent: ${CONC_ROUNDS} rounds of ${CONC_N} x docker run -d on ${CONC_CONFIGS.join(', ')}`);
  const concurrent = await concurrentPhase();
  await sleep(500);
  const log = daemon.log();
  const profile = {
    latency: callProfile(pluginCalls(log, latency.fromMs, latency.toMs)),
    windows: callWindows(pluginCalls(log, latency.fromMs, latency.toMs)),
    concurrent: callProfile(pluginCalls(log, concurrent.fromMs, concurrent.toMs)),
  };
  const daemonRss = rssMiB(daemon.process?.pid);
  progress(
    `diagnostics: strace over ${PROFILE_RUNS} runs, micro-benchmarks x${MICRO_REPS}, ` +
      `CPU profile over ${CPUPROF_RUNS} runs`,
  );
  const strace = withinBudget('strace') ? await stracePhase() : undefined;
  const dockerdStrace = withinBudget('dockerd strace') ? await dockerdStracePhase() : undefined;
  const micro = withinBudget('micro-benchmarks') ? await microPhase(daemonRss ?? 0) : undefined;
  // Copied before the profiling restart, which starts a new log file.
  if (process.env.BENCH_DAEMON_LOG && daemon.process)
    copyFileSync(daemon.process.logPath, process.env.BENCH_DAEMON_LOG);
  const cpuProfile = withinBudget('CPU profile') ? await cpuProfilePhase() : undefined;

  const result = {
    bench: 'single-host',
    startedAt,
    durationS: (performance.now() - t0) / 1000,
    settings: {
      rounds: ROUNDS,
      warmup: WARMUP,
      concRounds: CONC_ROUNDS,
      concN: CONC_N,
      concConfigs: CONC_CONFIGS,
      profileRuns: PROFILE_RUNS,
      microReps: MICRO_REPS,
      cpuprofRuns: CPUPROF_RUNS,
      budgetS: BUDGET_S,
    },
    machine: { loadBefore, loadAfter: machineLoad(), versions, daemonRssMiB: daemonRss, stateDir: daemon.stateDir },
    code,
    networks: { bridge: BRIDGE_SUBNET, null: NULL_SUBNET, cilium: CILIUM_SUBNET },
    nullDriver: { pool: NULL_POOL, calls: nullDriverCalls(nullDriver) },
    latency: latency.samples,
    concurrent: concurrent.samples,
    profile,
    strace,
    dockerdStrace,
    micro,
    cpuProfile,
    skipped,
    failures,
  };
  writeFileSync(OUT, `${JSON.stringify(result, null, 1)}\n`);
  // The null network and driver go before the lab host does (its veths go with the lab netns).
  await docker(['network', 'rm', NETWORK.null]);
  await nullDriver.stop(5_000);
  progress(`done in ${result.durationS.toFixed(0)} s; stopping the lab host`);
} catch (err) {
  session.fail();
  process.exitCode = 1;
  process.stderr.write(
    `bench single-host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
} finally {
  await session.close();
}
