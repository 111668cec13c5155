/**
 * The identity allocation race between separate processes (issue 4: "3 daemons racing to
 * allocate identities for 3×1000 label sets against real etcd"), shared by the test
 * (test/unit/identity/identity-race.test.ts) and the benchmark (bench/identity.ts).
 *
 * {@link runIdentityRace} spawns one identity-race-worker.ts process per node, each with its own
 * etcd connection and IdentityAllocator, waits until all are connected, starts them at once and
 * collects what each saw. Label sets are generated from their index ({@link raceLabelSet}), so
 * the parent and the workers agree on them without passing thousands of them around.
 *
 * Only processes spawned here are signalled, by their own handle; all are killed when the race
 * fails or times out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { IdentityAllocatorStats } from '../../src/identity/allocator.js';
import { LabelSet } from '../../src/identity/labels.js';

/** What the parent tells a worker. */
export interface RaceWorkerConfig {
  etcd: string;
  /** Key namespace shared by the workers of one race. */
  namespace: string;
  node: string;
  /** Groups × perGroup label sets (see {@link raceLabelSet}). */
  groups: number;
  perGroup: number;
  concurrency: number;
  /** Transactions each worker sends before `ready` (connection, lease, JIT), outside `identities/`. */
  warmup: number;
}

/** What a worker prints when done. */
export interface RaceWorkerResult {
  node: string;
  /** canonical label set -> identity, for every label set of the race. */
  mapping: Record<string, number>;
  /** From `go` to the last acquisition. */
  elapsedMs: number;
  /** Per acquisition, in ms. */
  latenciesMs: number[];
  stats: IdentityAllocatorStats;
  /** Store calls by operation. */
  storeCalls: Record<string, number>;
  /** CPU time (user + system) the worker spent between `go` and its last acquisition. */
  cpuMs: number;
}

/** Label set `index` of a race: three labels, distinct per index, shared by every worker. */
export function raceLabelSet(index: number, perGroup: number): LabelSet {
  const group = Math.floor(index / perGroup);
  return LabelSet.parse([`app=race-${group}-${index % perGroup}`, `tier=t${group}`, 'docker:network=race']);
}

/** Options of one race. */
export interface IdentityRaceOptions {
  etcd: string;
  namespace: string;
  nodes: string[];
  groups: number;
  perGroup: number;
  /** Acquisitions in flight per worker. */
  concurrency: number;
  /** Warm-up transactions per worker before the start (default 20). */
  warmup?: number;
  /** The whole race (spawn to last result) must end within this. */
  timeoutMs: number;
}

/** What a race returned: each worker's result, and the wall time from `go` to the last result. */
export interface IdentityRaceOutcome {
  results: RaceWorkerResult[];
  wallMs: number;
  /** From the first spawn until every worker was connected and warmed up. */
  startupMs: number;
}

const WORKER = fileURLToPath(new URL('./identity-race-worker.ts', import.meta.url));
const HOOKS = new URL('./ts-resolve-hooks.mjs', import.meta.url).href;

/** Runs one race; rejects (after killing every worker) if a worker fails or the time runs out. */
export async function runIdentityRace(options: IdentityRaceOptions): Promise<IdentityRaceOutcome> {
  const children: ChildProcess[] = [];
  const spawned = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const workers = options.nodes.map((node) => {
      const config: RaceWorkerConfig = {
        etcd: options.etcd,
        namespace: options.namespace,
        node,
        groups: options.groups,
        perGroup: options.perGroup,
        concurrency: options.concurrency,
        warmup: options.warmup ?? 20,
      };
      // Node's own TypeScript transform, not tap's ts-node loader: three processes compiling the
      // tree through the TypeScript compiler cost ~10 s of CPU each on a 2-CPU machine.
      const child = spawn(
        process.execPath,
        [
          '--experimental-transform-types',
          '--disable-warning=ExperimentalWarning',
          `--import=${HOOKS}`,
          WORKER,
          JSON.stringify(config),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CILIUM_DOCKER_LOG_LEVEL: 'warn' } },
      );
      children.push(child);
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
      const lines = createInterface({ input: child.stdout! });
      let onReady: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => (onReady = resolve));
      const done = new Promise<RaceWorkerResult>((resolve, reject) => {
        lines.on('line', (line) => {
          if (line === 'ready') onReady();
          else if (line.startsWith('{')) resolve(JSON.parse(line) as RaceWorkerResult);
        });
        child.on('error', reject);
        child.on('exit', (code, signal) =>
          reject(new Error(`worker ${node} exited (${signal ?? code}) without a result: ${stderr}`)),
        );
      });
      return { child, ready, done };
    });
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`identity race did not finish within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
    });
    // A worker that dies before `ready` fails the race at once instead of at the timeout.
    await Promise.race([
      Promise.all(workers.map((w) => w.ready)),
      timedOut,
      ...workers.map((w) => w.done.then(() => undefined)),
    ]);
    const started = performance.now();
    for (const w of workers) w.child.stdin!.write('go\n');
    const results = await Promise.race([Promise.all(workers.map((w) => w.done)), timedOut]);
    return { results, wallMs: performance.now() - started, startupMs: started - spawned };
  } finally {
    clearTimeout(timer);
    // A worker exits by itself right after its result (closing its etcd connection); give it a
    // moment, then kill whatever is left (a failed or timed-out race).
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise<void>((resolve) => (grace = setTimeout(resolve, 2_000)))]);
        clearTimeout(grace);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }),
    );
  }
}
