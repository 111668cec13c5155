/**
 * Benchmark 2, "datapath": what our eBPF datapath costs a container-to-container flow on one host,
 * against the raw limit, Docker's bridge driver and iptables at scale (baselines.md sections 1, 2),
 * plus how fast policy reaches the kernel.
 *
 * Configurations, all built side by side and measured in interleaved rounds (order rotated):
 *  a     raw routed veth pair: namespaces c1, c2, each a veth to a router namespace (ip_forward,
 *        /32 routes, no bridge, no netfilter) — the limit;
 *  b     Docker's bridge driver: two busybox containers on a user-defined bridge network of a lab
 *        dockerd, which runs with --iptables=false (the lab's setting): br_netfilter active
 *        (bridge-nf-call-iptables as the kernel/dockerd leave it, recorded) but no ruleset;
 *  bipt  the same with Docker's own ruleset: a second lab dockerd with --iptables=true
 *        --ip-masq=true, which installs its real filter/nat chains (baselines 1(e));
 *  c     ours: two labelled containers on a `cilium` network with our daemon, one policy (server
 *        app=srv allows ingress from app=cli on the iperf3 and tcprr ports);
 *  c0    (opt-in) ours without policy: two more containers in (c)'s host that no policy selects
 *        (the programs run; no policy lookup): separates the policy lookups from the rest;
 *  d     ours with DP_FILL_ENTRIES (50 000) more policy map entries for the measured endpoint
 *        (50 policies allowing app=cli on distinct ports), in a lab host of its own so that the
 *        map of (c) holds only (c)'s entries;
 *  e     (a)'s topology with DP_IPT_RULES (50 000) non-matching iptables rules in the router's
 *        FORWARD chain (iptables-restore, default nft backend), as baselines section 2.
 * Per round: one iperf3 run per config (TCP, 1 stream, DP_IPERF_S s, client CPU0, server CPU1),
 * then tcprr (64-byte ping-pong, both on CPU1) for DP_RR_S s per config, in DP_RR_SLICES passes
 * over the configs (alternating direction), combined per config.
 *
 * Then, unless turned off:
 *  - profile: per-run cost of our programs (kernel.bpf_stats_enabled switched on for the phase
 *    and restored) during one RR and one iperf3 run of (c) and (d);
 *  - perf (opt-in, DP_PERF=1): one iperf3 and one RR run per config under a system-wide
 *    `perf record -e cpu-clock`, folded into symbol families (bench/lib/perf-profile.ts);
 *  - install: (before the latency phase's containers exist) see below;
 *  - latency: DP_LAT_ENDPOINTS (100) containers on our networks (DP_LAT_NETWORKS, 4, of our
 *    driver: dockerd attaches to one network at a time); DP_LAT_IMPORTS times, import a
 *    policy selecting all of them and time until `GET /v1/policy/wait/<rev>` returns and until a
 *    probe flow (tcprr probe between two of them, on a port the policy does not allow) stops;
 *  - install: DP_INSTALL_ENTRIES (1 000 000) policy map entries written through
 *    src/datapath/bpf/ (bench/lib/policy-install.ts, inside the lab host's private bpffs).
 *
 * Run through bench/run.mjs (which compiles bench/bin/tcprr). Environment: DP_ROUNDS (5),
 * DP_CONFIGS ("a,b,bipt,c,d,e"), DP_IPERF_S (5), DP_RR_S (5), DP_RR_SLICES (5), DP_WARMUP_S (1; 0 = no warm-up),
 * DP_FILL_ENTRIES (50000), DP_IPT_RULES (50000), DP_BPF_STATS (1), DP_PERF (0), DP_STRIP_DOCKER_NAT (0),
 * DP_LAT_ENDPOINTS (100; 0 = skip), DP_LAT_IMPORTS (5), DP_LAT_NETWORKS (4), DP_INSTALL_ENTRIES (1000000; 0 = skip),
 * DP_INSTALL_REPS (3), BENCH_OUT, BENCH_DAEMON_LOG.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBusyboxImage, startDockerHost, type DockerHost } from '../test/lab/lab.js';
import { runCommand } from '../test/lab/exec.js';
import type { LabProcess } from '../test/lab/lab-process.js';
import { CiliumDaemon } from '../test/support/cilium-daemon.js';
import type { BpfEndpointPolicyModel, EndpointModel, PolicyRevisionModel, PolicyWaitModel } from '../src/api/models.js';
import { ContainerPair, reapStaleTopologies, RoutedTopology, type EndpointPair } from './lib/endpoint-pair.js';
import { envInt, LabSession, machineLoad, progress, sleep } from './lib/lab-session.js';
import {
  combineRr,
  IPERF_PORT,
  measureRr,
  measureThroughput,
  RR_PORT,
  startServers,
  TCPRR,
  waitListening,
  type RrSample,
  type ThroughputSample,
} from './lib/netperf.js';
import { fillerPolicies, ingressAllowPolicy } from './lib/policy-text.js';
import { StraceSession, type StraceResult } from './lib/strace.js';
import { profileDuring } from './lib/perf-profile.js';
import { stripDockerNat } from './lib/docker-nat.js';
import { costDuring, ourProgramIds, withBpfStats } from './lib/bpf-stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = envInt('DP_ROUNDS', 5, 1);
const IPERF_S = envInt('DP_IPERF_S', 5, 1);
const RR_S = envInt('DP_RR_S', 5, 1);
const RR_SLICES = envInt('DP_RR_SLICES', 5, 1);
const WARMUP_S = envInt('DP_WARMUP_S', 1, 0);
const FILL = envInt('DP_FILL_ENTRIES', 50_000, 0);
const IPT_RULES = envInt('DP_IPT_RULES', 50_000, 0);
const BPF_STATS = envInt('DP_BPF_STATS', 1, 0) !== 0;
const LAT_N = envInt('DP_LAT_ENDPOINTS', 100, 0);
const LAT_IMPORTS = envInt('DP_LAT_IMPORTS', 5, 1);
const LAT_NETWORKS = envInt('DP_LAT_NETWORKS', 4, 1);
const PERF_ON = envInt('DP_PERF', 0, 0) !== 0;
/** 1: remove dockerd's nat table (embedded-DNS DNAT) from every container's netns before the rounds. */
const STRIP_DOCKER_NAT = envInt('DP_STRIP_DOCKER_NAT', 0, 0) !== 0;
const INSTALL_ENTRIES = envInt('DP_INSTALL_ENTRIES', 1_000_000, 0);
const INSTALL_REPS = envInt('DP_INSTALL_REPS', 3, 1);
const OUT = process.env.BENCH_OUT;
if (!OUT) throw new Error('BENCH_OUT (result JSON path) is not set; run through `node bench/run.mjs`');
if (!existsSync(TCPRR)) throw new Error(`${TCPRR} is missing; run through \`node bench/run.mjs\`, which compiles it`);

const ALL_CONFIGS = ['a', 'b', 'bipt', 'c', 'c0', 'd', 'e'] as const;
type ConfigKey = (typeof ALL_CONFIGS)[number];
/** c0 (ours, no policy selecting the pair: the programs run, the policy lookups do not) is opt-in. */
const DEFAULT_CONFIGS: readonly ConfigKey[] = ['a', 'b', 'bipt', 'c', 'd', 'e'];
const CONFIGS = (process.env.DP_CONFIGS ?? DEFAULT_CONFIGS.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '') as ConfigKey[];
for (const c of CONFIGS)
  if (!ALL_CONFIGS.includes(c)) throw new Error(`DP_CONFIGS: unknown config "${c}" (${ALL_CONFIGS.join(', ')})`);

const IMAGE = 'bb';
const NET = { b: '198.18.240.0/24', bipt: '198.18.241.0/24', c: '198.18.242.0/23', d: '198.18.244.0/24' } as const;
/** Every address the (e) rules match on: never a source of a measured flow (those are 198.18.221.x). */
const IPT_SOURCE_BASE = (198 << 24) | (19 << 16);

interface RoundSample {
  round: number;
  position: number;
  config: ConfigKey;
  tput: ThroughputSample;
  rr: RrSample;
}

const session = new LabSession();
const startedAt = new Date().toISOString();
const t0 = performance.now();
const logDir = mkdtempSync(join(tmpdir(), 'bench-datapath-'));
const pairs = new Map<ConfigKey, EndpointPair>();
const info: Record<string, unknown> = {};
const hosts: DockerHost[] = [];
let hostC: DockerHost | undefined;
let daemonC: CiliumDaemon | undefined;

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

const elapsedS = () => (performance.now() - t0) / 1000;

async function docker(host: DockerHost, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await host.docker(args, { timeoutMs });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed on ${host.name} (${r.code}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** One value of /proc/sys inside the lab host's network namespace. */
async function hostSysctl(host: DockerHost, path: string): Promise<string> {
  const r = await host.exec(['cat', `/proc/sys/${path}`]);
  return r.code === 0 ? r.stdout.trim() : `unreadable (${r.stderr.trim()})`;
}

/**
 * A lab host with its dockerd (appending `--iptables=true --ip-masq=true` when asked), the
 * image and, when `ours`, our daemon.
 */
async function labHost(
  what: string,
  opts: { iptables?: boolean; ours?: boolean },
): Promise<{ host: DockerHost; daemon?: CiliumDaemon }> {
  const host = await startDockerHost(
    session,
    opts.iptables ? { extraDockerdArgs: ['--iptables=true', '--ip-masq=true'] } : {},
  );
  hosts.push(host);
  await ensureBusyboxImage(host, IMAGE);
  let daemon: CiliumDaemon | undefined;
  if (opts.ours) {
    daemon = new CiliumDaemon(host);
    await daemon.start();
  }
  progress(`${what}: lab host ${host.name} up${daemon ? ' with our daemon' : ''}`);
  return { host, daemon };
}

async function runSleepers(
  host: DockerHost,
  network: string,
  specs: Array<{ name: string; labels: string[] }>,
): Promise<void> {
  for (const s of specs)
    await docker(host, [
      'run',
      '-d',
      '--name',
      s.name,
      '--network',
      network,
      ...s.labels.flatMap((l) => ['-l', l]),
      IMAGE,
      'sleep',
      '10000000',
    ]);
}

async function readyEndpoints(
  daemon: CiliumDaemon,
  names: readonly string[],
  timeoutMs = 120_000,
): Promise<EndpointModel[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const eps = await daemon.api.call<EndpointModel[]>('GET', '/v1/endpoint');
    const ready = names.map((n) => eps.find((e) => e.containerName === n && e.state === 'ready'));
    if (ready.every((e) => e !== undefined)) return ready as EndpointModel[];
    if (Date.now() > deadline)
      throw new Error(
        `endpoints not ready after ${timeoutMs} ms: ${names.filter((_, i) => !ready[i]).join(', ')}\n` +
          `${daemon.process?.logTail(20)}`,
      );
    await sleep(200);
  }
}

/** Imports policy text and waits until every endpoint applied it; returns revision and timings. */
async function importAndWait(
  daemon: CiliumDaemon,
  text: string,
  timeoutMs = 300_000,
): Promise<{ revision: number; postMs: number; totalMs: number; endpoints: number }> {
  const s = performance.now();
  const { revision } = await daemon.api.call<PolicyRevisionModel>('POST', '/v1/policy', { text }, { timeoutMs });
  const postMs = performance.now() - s;
  const w = await daemon.api.call<PolicyWaitModel>(
    'GET',
    `/v1/policy/wait/${revision}?timeout=${timeoutMs}`,
    undefined,
    { timeoutMs: timeoutMs + 30_000 },
  );
  return { revision, postMs, totalMs: performance.now() - s, endpoints: w.endpoints };
}

// ---- building the configurations ---------------------------------------------------------

async function buildRouted(tag: 'a' | 'e', octet: number): Promise<RoutedTopology> {
  const topo = await RoutedTopology.create(tag, octet, logDir);
  session.teardown(() => topo.destroy());
  return topo;
}

/** (e): N rules `-s <198.19.x.y>/32 -d <server>/32 -p tcp --dport 5201 -j DROP` then ACCEPT, in r's FORWARD. */
async function loadIptablesRules(topo: RoutedTopology, n: number): Promise<Record<string, unknown>> {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = 0; i < n; i++) {
    const a = IPT_SOURCE_BASE + i;
    const src = `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
    lines.push(`-A FORWARD -s ${src}/32 -d ${topo.serverIp}/32 -p tcp -m tcp --dport ${IPERF_PORT} -j DROP`);
  }
  lines.push('-A FORWARD -j ACCEPT', 'COMMIT', '');
  const s = performance.now();
  const r = await topo.runIn(topo.router, ['iptables-restore'], 300_000, lines.join('\n'));
  const restoreMs = performance.now() - s;
  if (r.code !== 0) throw new Error(`iptables-restore in ${topo.router} failed: ${r.stderr.trim()}`);
  const version = await topo.runIn(topo.router, ['iptables', '--version'], 10_000);
  const count = await topo.runIn(topo.router, ['iptables', '-S', 'FORWARD'], 120_000);
  const rules = count.stdout.split('\n').filter((l) => l.startsWith('-A FORWARD')).length;
  if (rules !== n + 1) throw new Error(`${topo.router}: ${rules} FORWARD rules after restoring ${n + 1}`);
  return { rules: n, restoreMs, iptables: version.stdout.trim(), checkedRules: rules };
}

async function buildBridge(key: 'b' | 'bipt'): Promise<void> {
  const { host } = await labHost(key, { iptables: key === 'bipt' });
  await docker(host, ['network', 'create', '-d', 'bridge', '--subnet', NET[key], `bench-${key}`]);
  await runSleepers(host, `bench-${key}`, [
    { name: `${key}-cli`, labels: [] },
    { name: `${key}-srv`, labels: [] },
  ]);
  const pair = await ContainerPair.of(host, `${key}-cli`, `${key}-srv`, `bench-${key}`);
  const save = await host.exec(['iptables-save']);
  info[key] = {
    host: host.name,
    dockerdArgs:
      key === 'bipt'
        ? "--iptables=true --ip-masq=true (after the lab's --iptables=false)"
        : 'lab default: --iptables=false --ip-masq=false',
    bridgeNfCallIptables: await hostSysctl(host, 'net/bridge/bridge-nf-call-iptables'),
    iptablesRules: save.stdout.split('\n').filter((l) => l.startsWith('-A ')).length,
    iptablesSave: key === 'bipt' ? save.stdout : undefined,
  };
  if (key === 'bipt' && !/DOCKER-ISOLATION/.test(save.stdout))
    throw new Error(`bipt: dockerd installed no Docker ruleset:\n${save.stdout}`);
  pairs.set(key, pair);
}

/** Host for (c) (also used by the latency and install phases) or (d). */
async function buildOurs(key: 'c' | 'd'): Promise<void> {
  const { host, daemon } = await labHost(key, { ours: true });
  if (!daemon) throw new Error('no daemon');
  if (key === 'c') {
    hostC = host;
    daemonC = daemon;
  }
  await docker(host, [
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    NET[key],
    `bench-${key}`,
  ]);
  if (key === 'c' && CONFIGS.includes('c0')) {
    await runSleepers(host, 'bench-c', [
      { name: 'c0-cli', labels: ['app=cli0'] },
      { name: 'c0-srv', labels: ['app=srv0'] },
    ]);
    await readyEndpoints(daemon, ['c0-cli', 'c0-srv']);
    const map = await daemon.api.call<BpfEndpointPolicyModel>('GET', '/v1/bpf/policy/c0-srv');
    if (map.enforceIngress || map.enforceEgress)
      throw new Error('c0-srv: a policy selects it; c0 must run without one');
    info.c0 = { host: host.name, srvPolicyMapEntries: map.entries.length, srvEnforceIngress: map.enforceIngress };
    pairs.set('c0', await ContainerPair.of(host, 'c0-cli', 'c0-srv', 'bench-c'));
  }
  if (!CONFIGS.includes(key)) return;
  await runSleepers(host, `bench-${key}`, [
    { name: `${key}-cli`, labels: ['app=cli'] },
    { name: `${key}-srv`, labels: ['app=srv'] },
  ]);
  await readyEndpoints(daemon, [`${key}-cli`, `${key}-srv`]);
  const base = await importAndWait(
    daemon,
    ingressAllowPolicy('bench-srv', { app: 'srv' }, { app: 'cli' }, [{ port: IPERF_PORT }, { port: RR_PORT }]),
  );
  let fill: Record<string, unknown> | undefined;
  if (key === 'd' && FILL > 0) {
    const policies = 50;
    const text = fillerPolicies('bench-fill', { app: 'srv' }, { app: 'cli' }, FILL, policies, 10_000);
    progress(`d: importing ${policies} policies making ${FILL} policy map entries for d-srv`);
    const r = await importAndWait(daemon, text, 600_000);
    fill = { policies, entries: FILL, textBytes: Buffer.byteLength(text), importToWaitMs: r.totalMs, postMs: r.postMs };
    progress(`d: imported and applied in ${r.totalMs.toFixed(0)} ms`);
  }
  const map = await daemon.api.call<BpfEndpointPolicyModel>('GET', `/v1/bpf/policy/${key}-srv`, undefined, {
    timeoutMs: 120_000,
  });
  if (!map.enforceIngress) throw new Error(`${key}-srv: ingress enforcement is off after importing its policy`);
  if (key === 'd' && map.entries.length < FILL)
    throw new Error(`d-srv holds ${map.entries.length} policy map entries, expected >= ${FILL}`);
  info[key] = {
    host: host.name,
    basePolicy: { importToWaitMs: base.totalMs },
    fill,
    srvPolicyMapEntries: map.entries.length,
    srvEnforceIngress: map.enforceIngress,
    bridgeNfCallIptables: await hostSysctl(host, 'net/bridge/bridge-nf-call-iptables'),
  };
  progress(`${key}: ${key}-srv has ${map.entries.length} entries in the kernel policy map (ingress enforced)`);
  pairs.set(key, await ContainerPair.of(host, `${key}-cli`, `${key}-srv`, `bench-${key}`));
}

// ---- rounds --------------------------------------------------------------------------------

/** DP_STRIP_DOCKER_NAT=1: dockerd's nat table out of every container's netns (bench/lib/docker-nat.ts). */
async function stripContainersNat(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [key, pair] of pairs)
    if (pair instanceof ContainerPair) out[key] = { natRulesRemoved: await stripDockerNat(pair, key) };
  return out;
}

async function roundsPhase(): Promise<RoundSample[]> {
  const servers: LabProcess[] = [];
  if (STRIP_DOCKER_NAT) info.strippedDockerNat = await stripContainersNat();
  for (const c of CONFIGS) servers.push(...(await startServers(pairs.get(c)!, c)));
  if (WARMUP_S > 0) {
    for (const c of CONFIGS) {
      await measureThroughput(pairs.get(c)!, WARMUP_S);
      await measureRr(pairs.get(c)!, WARMUP_S);
    }
    progress(`warm-up done (${WARMUP_S} s iperf3 + ${WARMUP_S} s RR per config, not recorded)`);
  }
  const samples: RoundSample[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = rotate(CONFIGS, r);
    const tputs = new Map<ConfigKey, ThroughputSample>();
    for (const config of order) tputs.set(config, await measureThroughput(pairs.get(config)!, IPERF_S));
    // RR in DP_RR_SLICES passes over the configs (forward, backward, ...): this VM has slow
    // phases lasting seconds (+7 µs RTT whatever the config, CPU0 idle), which a config measured
    // in one 5 s block catches or misses by luck; in slices they hit every config alike.
    const slices = new Map<ConfigKey, RrSample[]>(order.map((c) => [c, []]));
    for (let pass = 0; pass < RR_SLICES; pass++) {
      for (const config of pass % 2 === 0 ? order : [...order].reverse())
        slices.get(config)!.push(await measureRr(pairs.get(config)!, RR_S / RR_SLICES, 100));
    }
    for (const [position, config] of order.entries())
      samples.push({ round: r, position, config, tput: tputs.get(config)!, rr: combineRr(slices.get(config)!) });
    const line = samples
      .filter((s) => s.round === r)
      .map((s) => `${s.config} ${s.tput.gbps.toFixed(2)} Gbit/s ${s.rr.p50.toFixed(1)} µs`)
      .join(' | ');
    progress(`round ${r + 1}/${ROUNDS}: ${line}`);
  }
  for (const s of servers) s.kill('SIGTERM');
  return samples;
}

// ---- perf: where the CPUs go (opt-in) --------------------------------------------------------

/** One iperf3 and one RR run per config under `perf record -e cpu-clock -a` (DP_PERF=1). */
async function perfPhase(): Promise<Record<string, unknown> | undefined> {
  if (!PERF_ON) return undefined;
  const out: Record<string, unknown> = {};
  const servers: LabProcess[] = [];
  try {
    for (const c of CONFIGS) {
      const pair = pairs.get(c)!;
      servers.push(...(await startServers(pair, `${c}-perf`)));
      const tput = await profileDuring(() => measureThroughput(pair, IPERF_S), IPERF_S);
      const rr = await profileDuring(() => measureRr(pair, RR_S), RR_S);
      out[c] = {
        tput: { gbps: tput.value.gbps, ...tput.profile },
        rr: { p50: rr.value.p50, tps: rr.value.tps, ...rr.profile },
      };
      progress(`perf ${c}: iperf3 ${tput.value.gbps.toFixed(2)} Gbit/s, RR p50 ${rr.value.p50.toFixed(1)} µs profiled`);
    }
  } finally {
    for (const s of servers) s.kill('SIGTERM');
  }
  return out;
}

// ---- profile: per-run cost of our programs --------------------------------------------------

/**
 * One RR and one iperf3 run of (c) and (d) with kernel.bpf_stats_enabled on (it adds two clock
 * reads per program run, so the rounds above run without it): ns per program run.
 */
async function profilePhase(): Promise<Record<string, unknown> | undefined> {
  const keys = (['c', 'c0', 'd'] as const).filter((k) => pairs.has(k));
  if (!BPF_STATS || keys.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  const servers: LabProcess[] = [];
  try {
    await withBpfStats(async () => {
      for (const k of keys) {
        const pair = pairs.get(k)! as ContainerPair;
        servers.push(...(await startServers(pair, `${k}-profile`)));
        const ids = await ourProgramIds(pair.host);
        if (!ids.has('from_container'))
          throw new Error(`no from_container program found in ${pair.host.name}: ${JSON.stringify([...ids])}`);
        const rr = await costDuring([ids], () => measureRr(pair, RR_S));
        const tput = await costDuring([ids], () => measureThroughput(pair, IPERF_S));
        const rrStats = rr.programs[0]!;
        out[k] = {
          programIds: Object.fromEntries(ids),
          rr: rr.value,
          rrPrograms: rrStats,
          rrRunsPerTransaction: (rrStats.from_container?.runs ?? 0) / rr.value.transactions,
          tput: tput.value,
          tputPrograms: tput.programs[0],
        };
        progress(
          `profile ${k}: from_container ${rrStats.from_container?.nsPerRun.toFixed(0)} ns/run during RR ` +
            `(${((rrStats.from_container?.runs ?? 0) / rr.value.transactions).toFixed(2)} runs per transaction)`,
        );
      }
    });
  } finally {
    for (const s of servers) s.kill('SIGTERM');
  }
  return out;
}

// ---- latency: import -> enforced on 100 endpoints -------------------------------------------

interface ProbeResult {
  stalled: boolean;
  answered: number;
  lastAnsweredSentUs?: number;
  unansweredSentUs?: number;
}

async function waitForLine(proc: LabProcess, pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = proc
      .readLog()
      .split('\n')
      .find((l) => pattern.test(l));
    if (m) return m;
    if (proc.exited || Date.now() > deadline) return undefined;
    await sleep(20);
  }
}

async function latencyPhase(): Promise<Record<string, unknown> | undefined> {
  if (LAT_N < 2 || !hostC || !daemonC) return undefined;
  const host = hostC;
  const daemon = daemonC;
  const names = Array.from({ length: LAT_N }, (_, i) => `lat-${i}`);
  // dockerd attaches containers to one network one at a time (a per-network lock around our
  // CreateEndpoint + Join, ~1-2 s each on a busy machine): spread them over a few of our
  // networks so that starting them does not dominate the bench.
  const networks = Array.from({ length: Math.min(LAT_NETWORKS, LAT_N) }, (_, k) => `bench-lat${k}`);
  for (const [k, n] of networks.entries())
    await docker(host, [
      'network',
      'create',
      '-d',
      'cilium',
      '--ipam-driver',
      'cilium',
      '--subnet',
      `198.18.${246 + k}.0/24`,
      n,
    ]);
  const networkOf = (i: number) => networks[i % networks.length]!;
  const started = performance.now();
  const runs = await Promise.all(
    names.map((n, i) =>
      host.docker(
        [
          'run',
          '-d',
          '--name',
          n,
          '--network',
          networkOf(i),
          '-l',
          'group=lat',
          '-l',
          `idx=${i}`,
          IMAGE,
          'sleep',
          '10000000',
        ],
        { timeoutMs: 600_000 },
      ),
    ),
  );
  const bad = runs.find((r) => r.code !== 0);
  if (bad) throw new Error(`starting latency containers: ${bad.stderr.trim()}`);
  await readyEndpoints(daemon, names, 300_000);
  const startMs = performance.now() - started;
  progress(`latency: ${LAT_N} containers on ${networks.length} networks ready in ${(startMs / 1000).toFixed(1)} s`);
  // The probe's two ends share a network (across networks, Docker's isolation would drop it
  // before any policy): lat-0 and the last container started on its network.
  let last = LAT_N - 1;
  while (networkOf(last) !== networkOf(0)) last--;
  const probePair = await ContainerPair.of(host, names[0]!, names[last]!, networkOf(0));
  const server = probePair.startInServer([TCPRR, 'server', '-p', String(RR_PORT)], 'probe-server.log');
  const imports: Array<Record<string, unknown>> = [];
  try {
    await waitListening(probePair, server, RR_PORT, 'probe server');
    for (let k = 0; k < LAT_IMPORTS; k++) {
      // No policy selects group=lat now: the probe flows. The policy allows only RR_PORT + 1.
      const probe = probePair.startInClient(
        [TCPRR, 'probe', '-H', probePair.serverIp, '-p', String(RR_PORT), '-i', '1000', '-S', '300', '-t', '120'],
        `probe-${k}.log`,
      );
      if (!(await waitForLine(probe, /"ready"/, 10_000)))
        throw new Error(`probe ${k} did not connect: ${probe.logTail(5)}`);
      await sleep(300);
      if (probe.exited) throw new Error(`probe ${k} ended before the import: ${probe.logTail(5)}`);
      const text = ingressAllowPolicy('bench-lat', { group: 'lat' }, { group: 'lat' }, [{ port: RR_PORT + 1 }]);
      const wallStartUs = (performance.timeOrigin + performance.now()) * 1000;
      const r = await importAndWait(daemon, text, 120_000);
      const line = await waitForLine(probe, /"stalled"/, 30_000);
      const p = line ? (JSON.parse(line) as ProbeResult) : undefined;
      probe.kill('SIGKILL');
      const probeMs = p?.stalled && p.unansweredSentUs ? (p.unansweredSentUs - wallStartUs) / 1000 : NaN;
      const probeLowerMs = p?.stalled && p.lastAnsweredSentUs ? (p.lastAnsweredSentUs - wallStartUs) / 1000 : NaN;
      const del = performance.now();
      const { revision } = await daemon.api.call<PolicyRevisionModel>('DELETE', '/v1/policy/bench-lat');
      await daemon.api.call<PolicyWaitModel>('GET', `/v1/policy/wait/${revision}?timeout=120000`, undefined, {
        timeoutMs: 150_000,
      });
      const deleteToWaitMs = performance.now() - del;
      const regen = regenerations(daemon.log(), wallStartUs / 1000, wallStartUs / 1000 + r.totalMs);
      imports.push({
        revision: r.revision,
        postMs: r.postMs,
        importToWaitMs: r.totalMs,
        endpoints: r.endpoints,
        probeDroppedMs: probeMs,
        probeLastAnsweredMs: probeLowerMs,
        probeStalled: p?.stalled ?? false,
        deleteToWaitMs,
        regenerations: regen,
      });
      progress(
        `latency import ${k + 1}/${LAT_IMPORTS}: wait returned after ${r.totalMs.toFixed(0)} ms (${r.endpoints} ` +
          `endpoints), probe dropped at ${probeMs.toFixed(0)} ms`,
      );
      await sleep(500);
    }
  } finally {
    server.kill('SIGTERM');
  }
  const diagnostic = await tracedImport(daemon);
  return {
    endpoints: LAT_N,
    networks: networks.length,
    containersStartMs: startMs,
    probe: `${names[0]} -> ${names[last]}:${RR_PORT}`,
    imports,
    diagnostic,
  };
}

/** `"msg":"endpoint regenerated"` lines of the daemon log in [fromMs, toMs]: count and `ms` each. */
function regenerations(
  log: string,
  fromMs: number,
  toMs: number,
): { count: number; totalMs: number; medianMs: number; maxMs: number } {
  const ms: number[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"endpoint regenerated"')) continue;
    try {
      const j = JSON.parse(line) as { time: number; ms: number };
      if (j.time >= fromMs && j.time <= toMs + 50) ms.push(j.ms);
    } catch {
      // not JSON
    }
  }
  ms.sort((a, b) => a - b);
  return {
    count: ms.length,
    totalMs: ms.reduce((a, b) => a + b, 0),
    medianMs: ms.length ? ms[Math.floor(ms.length / 2)]! : NaN,
    maxMs: ms.at(-1) ?? NaN,
  };
}

/**
 * One more import (not in the figures above) with `strace -f` on the daemon: the processes it
 * spawns and the fsyncs it makes to apply a policy to every endpoint.
 */
async function tracedImport(daemon: CiliumDaemon): Promise<Record<string, unknown> | undefined> {
  const pid = daemon.process?.pid;
  if (pid === undefined) return undefined;
  let trace: StraceSession;
  try {
    trace = await StraceSession.attach(pid, join(logDir, 'strace-import.txt'));
  } catch (err) {
    progress(`traced import skipped: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  let r: Awaited<ReturnType<typeof importAndWait>>;
  let result: StraceResult;
  try {
    r = await importAndWait(
      daemon,
      ingressAllowPolicy('bench-lat', { group: 'lat' }, { group: 'lat' }, [{ port: RR_PORT + 1 }]),
      120_000,
    );
  } finally {
    result = await trace.stop();
  }
  const { revision } = await daemon.api.call<PolicyRevisionModel>('DELETE', '/v1/policy/bench-lat');
  await daemon.api.call<PolicyWaitModel>('GET', `/v1/policy/wait/${revision}?timeout=120000`, undefined, {
    timeoutMs: 150_000,
  });
  const byCommand = new Map<string, number[]>();
  for (const sp of result.spawns) byCommand.set(sp.command, [...(byCommand.get(sp.command) ?? []), sp.totalMs]);
  const spawns = [...byCommand]
    .map(([command, ms]) => ({ command, count: ms.length, totalMs: ms.reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.totalMs - a.totalMs);
  const diag = {
    importToWaitMs: r.totalMs,
    endpoints: r.endpoints,
    spawns,
    syncs: result.syncs.length,
    syncMs: result.syncs.reduce((a, b) => a + b.ms, 0),
  };
  progress(
    `traced import: ${result.spawns.length} processes spawned, ` +
      `${result.syncs.length} fsyncs (${diag.syncMs.toFixed(0)} ms) for ${r.endpoints} endpoints`,
  );
  return diag;
}

// ---- install rate through bpf-napi ---------------------------------------------------------

async function installPhase(): Promise<Record<string, unknown> | undefined> {
  if (INSTALL_ENTRIES === 0 || !hostC) return undefined;
  const loader = process.execArgv.find((a) => a.startsWith('--import='));
  const pinRoot = `/sys/fs/bpf/bench-install-${process.pid}`;
  const argv = [
    process.execPath,
    ...(loader ? [loader] : []),
    join(ROOT, 'bench/lib/policy-install.ts'),
    pinRoot,
    String(INSTALL_ENTRIES),
    String(INSTALL_REPS),
  ];
  const r = await hostC.exec(argv, { timeoutMs: 600_000, env: { TS_NODE_TRANSPILE_ONLY: '1' }, cwd: ROOT });
  process.stderr.write(r.stderr);
  if (r.code !== 0) throw new Error(`policy-install failed (exit ${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

// ---- main ----------------------------------------------------------------------------------

const loadBefore = machineLoad();
try {
  const reaped = reapStaleTopologies();
  if (reaped.length > 0) progress(`removed namespaces of dead bench runs: ${reaped.join(', ')}`);
  progress(
    `datapath: configs ${CONFIGS.join(', ')}; ${ROUNDS} rounds of iperf3 ${IPERF_S} s + RR ${RR_S} s (load average ` +
      `${loadBefore.load1} on ${loadBefore.cpus} CPUs)`,
  );
  if (loadBefore.cpus < 2) throw new Error('the pinning (CPU0, CPU1) needs at least 2 CPUs');
  const builds: Array<Promise<void>> = [];
  if (CONFIGS.includes('a')) builds.push(buildRouted('a', 220).then((t) => void pairs.set('a', t)));
  if (CONFIGS.includes('e'))
    builds.push(
      buildRouted('e', 221).then(async (t) => {
        info.e = { router: t.router, ...(await loadIptablesRules(t, IPT_RULES)) };
        pairs.set('e', t);
      }),
    );
  if (CONFIGS.includes('b')) builds.push(buildBridge('b'));
  if (CONFIGS.includes('bipt')) builds.push(buildBridge('bipt'));
  if (CONFIGS.includes('c') || CONFIGS.includes('c0') || LAT_N > 0 || INSTALL_ENTRIES > 0) builds.push(buildOurs('c'));
  if (CONFIGS.includes('d')) builds.push(buildOurs('d'));
  const settled = await Promise.allSettled(builds);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  if (CONFIGS.includes('a')) {
    const a = pairs.get('a') as RoutedTopology;
    info.a = {
      router: a.router,
      client: a.c1,
      server: a.c2,
      iptablesInRouter: (await a.runIn(a.router, ['iptables-save'], 30_000)).stdout
        .split('\n')
        .filter((l) => l.startsWith('-A ')).length,
    };
  }
  // What was measured: the tree is shared and rebuilt by others, so record it (as single-host does).
  const git = async (args: string[]): Promise<string> => (await runCommand('git', ['-C', ROOT, ...args])).stdout.trim();
  const status = daemonC
    ? await daemonC.api
        .call<{ datapath?: string; kvstore?: { backend?: string } }>('GET', '/v1/status')
        .catch(() => undefined)
    : undefined;
  const code = {
    head: await git(['rev-parse', '--short', 'HEAD']),
    uncommittedSrcFiles: (await git(['status', '--porcelain', '--', 'src'])).split('\n').filter((l) => l !== '').length,
    distBuiltAt: statSync(join(ROOT, 'dist', 'main.js')).mtime.toISOString(),
    bpfObjectBuiltAt: statSync(join(ROOT, 'bpf', 'lxc.bpf.o')).mtime.toISOString(),
    datapath: status?.datapath ?? '?',
    kvstore: status?.kvstore?.backend ?? '?',
  };
  const versions = {
    kernel: execFileSync('uname', ['-r']).toString().trim(),
    iperf3: execFileSync('iperf3', ['--version']).toString().split('\n')[0]?.trim(),
    node: process.version,
  };
  progress(`setup done in ${elapsedS().toFixed(0)} s`);

  const phases: Record<string, number> = { setup: elapsedS() };
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const from = elapsedS();
    try {
      return await fn();
    } finally {
      phases[name] = elapsedS() - from;
    }
  };
  const samples = CONFIGS.length > 0 ? await timed('rounds', roundsPhase) : [];
  const profile = await timed('profile', profilePhase);
  const perf = await timed('perf', perfPhase);
  // Before the latency phase: the 100 containers are not there yet to share the CPUs.
  const install = await timed('install', installPhase);
  const latency = await timed('latency', latencyPhase);
  if (process.env.BENCH_DAEMON_LOG && daemonC?.process)
    copyFileSync(daemonC.process.logPath, process.env.BENCH_DAEMON_LOG);

  const result = {
    bench: 'datapath',
    startedAt,
    durationS: elapsedS(),
    phases,
    settings: {
      configs: CONFIGS,
      rounds: ROUNDS,
      iperfS: IPERF_S,
      rrS: RR_S,
      rrSlices: RR_SLICES,
      warmupS: WARMUP_S,
      fill: FILL,
      iptRules: IPT_RULES,
      bpfStats: BPF_STATS,
      latEndpoints: LAT_N,
      latImports: LAT_IMPORTS,
      latNetworks: LAT_NETWORKS,
      installEntries: INSTALL_ENTRIES,
      installReps: INSTALL_REPS,
    },
    machine: { loadBefore, loadAfter: machineLoad(), versions },
    code,
    configs: info,
    samples,
    profile,
    perf,
    latency,
    install,
  };
  writeFileSync(OUT, `${JSON.stringify(result, null, 1)}\n`);
  progress(`done in ${result.durationS.toFixed(0)} s; removing lab hosts and namespaces`);
  // All hosts at once (the session would stop them one after the other); stop() is idempotent.
  await Promise.allSettled(hosts.map((h) => h.stop()));
} catch (err) {
  session.fail();
  process.exitCode = 1;
  process.stderr.write(`bench datapath failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
} finally {
  await session.close();
  if (session.passing()) rmSync(logDir, { recursive: true, force: true });
  else process.stderr.write(`bench datapath: logs of the servers in the raw namespaces kept in ${logDir}\n`);
}
