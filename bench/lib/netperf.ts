/**
 * Throughput and request/response measurements between the two ends of an EndpointPair, the way
 * baselines.md section 1 measured them:
 *
 *  - throughput: `iperf3 -c SERVER -t S -J`, one TCP stream, receiver-side bits/s; client pinned
 *    to CPU0, server to CPU1 (taskset);
 *  - RR "same-CPU": bench/bin/tcprr, 64-byte ping-pong over TCP_NODELAY for S seconds, client and
 *    server both pinned to CPU1; RTT p50/p90/p99 and transactions/s.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LabProcess } from '../../test/lab/lab-process.js';
import type { EndpointPair } from './endpoint-pair.js';
import { sleep } from './lab-session.js';

/** The RR tool bench/run.mjs compiles from bench/src/tcprr.c. */
export const TCPRR = fileURLToPath(new URL('../bin/tcprr', import.meta.url));
export const IPERF3 = process.env.IPERF3 ?? '/usr/bin/iperf3';
export const TASKSET = '/usr/bin/taskset';
export const IPERF_PORT = 5201;
export const RR_PORT = 7000;

/** Per-CPU jiffies from /proc/stat: [busy, total] for cpu0, cpu1, ... */
function cpuTimes(): Array<[number, number]> {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d+ /.test(l))
    .map((l) => {
      const [user, nice, system, idle, iowait, irq, softirq, steal] = l
        .trim()
        .split(/\s+/)
        .slice(1)
        .map(Number) as number[];
      const busy = user! + nice! + system! + irq! + softirq! + steal!;
      return [busy, busy + idle! + iowait!];
    });
}

/** PID of the softirq thread of CPU1 (ksoftirqd/1), where the RR pair runs. */
const KSOFTIRQD1 = ((): number | undefined => {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'ksoftirqd/1') return Number(pid);
    } catch {
      // gone
    }
  }
  return undefined;
})();

/** Context switches of ksoftirqd/1 so far: softirq work deferred to the thread instead of run inline. */
function ksoftirqdSwitches(): number {
  if (KSOFTIRQD1 === undefined) return NaN;
  try {
    const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${KSOFTIRQD1}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Busy % of each CPU over `fn` (every process on the machine, ours included). */
async function withCpuBusy<T>(fn: () => Promise<T>): Promise<[T, number[]]> {
  const before = cpuTimes();
  const value = await fn();
  const after = cpuTimes();
  return [
    value,
    after.map(([b, t], i) => (t - before[i]![1] > 0 ? (100 * (b - before[i]![0])) / (t - before[i]![1]) : NaN)),
  ];
}

/** One iperf3 run. */
export interface ThroughputSample {
  gbps: number;
  /** Sender-side retransmitted segments. */
  retransmits: number;
  /** iperf3's own CPU accounting, % of one CPU: sender (client) and receiver (server) totals. */
  cpuSender: number;
  cpuReceiver: number;
  /** Busy % of each CPU of the machine during the run (/proc/stat; everything, not only iperf3). */
  machineCpuBusy: number[];
}

/** One tcprr client run (or several combined, see combineRr). */
export interface RrSample {
  transactions: number;
  seconds: number;
  tps: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
  /** Busy % of each CPU during the run: CPU1 runs client and server, so CPU0's is other work. */
  machineCpuBusy: number[];
  /** Wake-ups of ksoftirqd/1 during the run (softirq work deferred to the thread: extra context switches). */
  ksoftirqd1Switches: number;
}

/** Waits until something listens on TCP `port` in the server's namespace (ss; logs are block-buffered). */
export async function waitListening(pair: EndpointPair, proc: LabProcess, port: number, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await pair.runInServer(['ss', '-Hltn', `sport = :${port}`], 10_000);
    if (r.code === 0 && r.stdout.trim() !== '') return;
    if (proc.exited) throw new Error(`${what} exited at start: ${proc.logTail(10)}`);
    if (Date.now() > deadline)
      throw new Error(`${what} does not listen on port ${port} after 15 s: ${proc.logTail(10)} ${r.stderr}`);
    await sleep(100);
  }
}

/** Starts the iperf3 and tcprr servers on the server side, both pinned to CPU1. */
export async function startServers(pair: EndpointPair, tag: string): Promise<LabProcess[]> {
  const iperf = pair.startInServer(
    [TASKSET, '-c', '1', IPERF3, '-s', '-p', String(IPERF_PORT)],
    `iperf3-server-${tag}.log`,
  );
  const rr = pair.startInServer(
    [TASKSET, '-c', '1', TCPRR, 'server', '-p', String(RR_PORT)],
    `tcprr-server-${tag}.log`,
  );
  await waitListening(pair, iperf, IPERF_PORT, `iperf3 server (${tag})`);
  await waitListening(pair, rr, RR_PORT, `tcprr server (${tag})`);
  return [iperf, rr];
}

interface Iperf3Json {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number };
    sum_sent?: { retransmits?: number };
    cpu_utilization_percent?: { host_total: number; remote_total: number };
  };
}

/** One iperf3 client run of `seconds`; retried once (iperf3's server can be briefly busy between tests). */
export async function measureThroughput(pair: EndpointPair, seconds: number): Promise<ThroughputSample> {
  const argv = [TASKSET, '-c', '0', IPERF3, '-c', pair.serverIp, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'];
  let last = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const [r, busy] = await withCpuBusy(() => pair.runInClient(argv, (seconds + 30) * 1000));
    let parsed: Iperf3Json | undefined;
    try {
      parsed = JSON.parse(r.stdout) as Iperf3Json;
    } catch {
      parsed = undefined;
    }
    const end = parsed?.end;
    if (r.code === 0 && end?.sum_received) {
      return {
        gbps: end.sum_received.bits_per_second / 1e9,
        retransmits: end.sum_sent?.retransmits ?? NaN,
        cpuSender: end.cpu_utilization_percent?.host_total ?? NaN,
        cpuReceiver: end.cpu_utilization_percent?.remote_total ?? NaN,
        machineCpuBusy: busy,
      };
    }
    last = `exit ${r.code}: ${parsed?.error ?? (r.stderr.trim() || r.stdout.slice(0, 300))}`;
    await sleep(1_000);
  }
  throw new Error(`iperf3 to ${pair.serverIp} failed: ${last}`);
}

interface TcprrJson {
  transactions: number;
  seconds: number;
  tps: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  mean_us: number;
  max_us: number;
}

/** One tcprr client run of `seconds` (after `warmupMs` unrecorded), pinned to CPU1. */
export async function measureRr(pair: EndpointPair, seconds: number, warmupMs = 200): Promise<RrSample> {
  const argv = [
    TASKSET,
    '-c',
    '1',
    TCPRR,
    'client',
    '-H',
    pair.serverIp,
    '-p',
    String(RR_PORT),
    '-t',
    String(seconds),
    '-w',
    String(warmupMs),
    '-j',
  ];
  const softirqBefore = ksoftirqdSwitches();
  const [r, busy] = await withCpuBusy(() => pair.runInClient(argv, (seconds + 30) * 1000));
  const ksoftirqd1Switches = ksoftirqdSwitches() - softirqBefore;
  if (r.code !== 0) throw new Error(`tcprr to ${pair.serverIp} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout.trim()) as TcprrJson;
  return {
    transactions: j.transactions,
    seconds: j.seconds,
    tps: j.tps,
    p50: j.p50_us,
    p90: j.p90_us,
    p99: j.p99_us,
    mean: j.mean_us,
    max: j.max_us,
    machineCpuBusy: busy,
    ksoftirqd1Switches,
  };
}

/**
 * Several short RR runs of one config as one sample: percentiles are the median of the runs'
 * percentiles, transactions/s the total over the total time, CPU busy the mean.
 */
export function combineRr(slices: readonly RrSample[]): RrSample & { slices: RrSample[] } {
  const med = (f: (x: RrSample) => number): number => {
    const v = slices.map(f).sort((a, b) => a - b);
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  const transactions = slices.reduce((a, x) => a + x.transactions, 0);
  const seconds = slices.reduce((a, x) => a + x.seconds, 0);
  const cpus = slices[0]?.machineCpuBusy.length ?? 0;
  return {
    transactions,
    seconds,
    tps: transactions / seconds,
    p50: med((x) => x.p50),
    p90: med((x) => x.p90),
    p99: med((x) => x.p99),
    mean: slices.reduce((a, x) => a + x.mean * x.transactions, 0) / transactions,
    max: Math.max(...slices.map((x) => x.max)),
    machineCpuBusy: Array.from(
      { length: cpus },
      (_, i) => slices.reduce((a, x) => a + x.machineCpuBusy[i]!, 0) / slices.length,
    ),
    ksoftirqd1Switches: slices.reduce((a, x) => a + x.ksoftirqd1Switches, 0),
    slices: [...slices],
  };
}
