/**
 * Benchmark "identity" (issue 4, "Benchmark"): identity allocation and resync against a real
 * etcd (test/support/etcd-server.ts: one member on loopback, data on the local disk, fsync on).
 * Needs neither root nor dockerd.
 *
 * Phases, each in its own key namespace of the one etcd:
 *  1. latency: one allocator (node `bench-a`, its own connection) acquires ID_NEW (1000) NEW
 *     label sets one at a time; then the same label sets again (already used on this node); then
 *     a second allocator (`bench-b`) acquires them (allocated in the cluster, new on that node).
 *     Per acquisition: wall time and store calls (counted by src/kvstore/instrumented-store.ts:
 *     one call = one round trip; a transaction is one call).
 *  2. race: ID_RACE_RUNS (2) times, 3 worker processes (test/support/identity-race-worker.ts,
 *     each its own node name, etcd connection and allocator) acquire the same
 *     ID_GROUPS × ID_PER_GROUP (3 × 1000) label sets in their own random orders, ID_CONC (32) in
 *     flight each, started at once: throughput across the 3, conflict rate (candidate collisions
 *     / allocation attempts), latency under contention, store calls per acquisition, worker CPU.
 *  3. resync: for each size in ID_RESYNC_SIZES (1000,10000) owned keys (half `ip/v1/` entries
 *     of local endpoints, half identity references held by the allocator), the real
 *     NodeSync.resync of src/cluster/node-sync.ts (node key, ip list + stale check, batched ip
 *     re-assert, identity references re-assert, then a re-list of `identities/v1/id/` standing
 *     in for the watchers' re-list): the first resync (ip keys not yet in etcd), ID_RESYNC_RUNS
 *     (3) steady ones, and one after every owned key was deleted behind the node's back (checked
 *     to be repaired). Time and store calls of each.
 *
 * Run through bench/run.mjs (`node bench/run.mjs identity`). Writes BENCH_OUT (JSON); the report
 * is rendered by bench/lib/identity-report.mjs.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EtcdKvStore } from '../src/kvstore/etcd/etcd-store.js';
import { InstrumentedKvStore } from '../src/kvstore/instrumented-store.js';
import type { KvStore } from '../src/kvstore/kvstore.js';
import { IdentityAllocator } from '../src/identity/allocator.js';
import { LabelSet } from '../src/identity/labels.js';
import { NodeSync } from '../src/cluster/node-sync.js';
import { IpPublisher, type LocalIpEntry } from '../src/cluster/ip-publisher.js';
import { log } from '../src/util/log.js';
import { EtcdTestServer, etcdUnavailableReason } from '../test/support/etcd-server.js';
import { runIdentityRace } from '../test/support/identity-race.js';
import { cpuMs, envInt, machineLoad, progress } from './lib/lab-session.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NEW = envInt('ID_NEW', 1000, 1);
const GROUPS = envInt('ID_GROUPS', 3, 1);
const PER_GROUP = envInt('ID_PER_GROUP', 1000, 1);
const CONC = envInt('ID_CONC', 32, 1);
const RACE_RUNS = envInt('ID_RACE_RUNS', 2, 0);
const RESYNC_RUNS = envInt('ID_RESYNC_RUNS', 3, 1);
const RESYNC_SIZES = (process.env.ID_RESYNC_SIZES ?? '1000,10000')
  .split(',')
  .filter((s) => s.trim() !== '')
  .map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 2) throw new Error(`ID_RESYNC_SIZES: "${s}" is not an integer >= 2`);
    return n;
  });
const OUT = process.env.BENCH_OUT;
if (!OUT) throw new Error('BENCH_OUT (result JSON path) is not set; run through `node bench/run.mjs`');

/** A store whose calls are counted per operation (every call is one round trip to etcd). */
interface CountedStore {
  store: InstrumentedKvStore;
  inner: EtcdKvStore;
  calls: Record<string, number>;
  total(): number;
}

async function countedStore(endpoint: string, namespace: string): Promise<CountedStore> {
  const inner = await EtcdKvStore.open({ endpoints: [endpoint], namespace });
  const calls: Record<string, number> = {};
  const store = new InstrumentedKvStore(inner, (action) => {
    calls[action] = (calls[action] ?? 0) + 1;
  });
  return { store, inner, calls, total: () => Object.values(calls).reduce((a, b) => a + b, 0) };
}

/** One acquisition: wall time (ms) and store calls. */
interface Sample {
  ms: number;
  calls: number;
}

async function timedAcquire(allocator: IdentityAllocator, counted: CountedStore, labels: LabelSet): Promise<Sample> {
  const before = counted.total();
  const t0 = performance.now();
  await allocator.acquire(labels);
  return { ms: performance.now() - t0, calls: counted.total() - before };
}

function benchLabels(i: number): LabelSet {
  return LabelSet.parse([`app=bench-${i}`, 'tier=latency', 'docker:network=bench']);
}

async function latencyPhase(endpoint: string) {
  const a = await countedStore(endpoint, 'latency/');
  const b = await countedStore(endpoint, 'latency/');
  try {
    const allocA = new IdentityAllocator({ store: a.store, nodeName: 'bench-a', log });
    const allocB = new IdentityAllocator({ store: b.store, nodeName: 'bench-b', log });
    // Warm-up: connection, lease grant, JIT; not recorded.
    for (let i = 0; i < 20; i++) await allocA.acquire(LabelSet.parse([`app=warmup-${i}`]));
    const fresh: Sample[] = [];
    const held: Sample[] = [];
    const remote: Sample[] = [];
    for (let i = 0; i < NEW; i++) fresh.push(await timedAcquire(allocA, a, benchLabels(i)));
    progress(`latency: ${NEW} new label sets done`);
    for (let i = 0; i < NEW; i++) held.push(await timedAcquire(allocA, a, benchLabels(i)));
    for (let i = 0; i < NEW; i++) remote.push(await timedAcquire(allocB, b, benchLabels(i)));
    progress('latency: existing (this node) and existing (other node) done');
    const statsA = allocA.getStats();
    return { fresh, held, remote, statsA, statsB: allocB.getStats(), callsA: a.calls, callsB: b.calls };
  } finally {
    await a.store.close();
    await b.store.close();
  }
}

async function racePhase(server: EtcdTestServer, run: number) {
  const etcdCpuBefore = cpuMs(server.pid)?.self;
  const outcome = await runIdentityRace({
    etcd: server.clientUrl,
    namespace: `race-${run}/`,
    nodes: ['race-a', 'race-b', 'race-c'],
    groups: GROUPS,
    perGroup: PER_GROUP,
    concurrency: CONC,
    warmup: 200,
    timeoutMs: 300_000,
  });
  const etcdCpuAfter = cpuMs(server.pid)?.self;
  const total = GROUPS * PER_GROUP;
  const mappings = outcome.results.map((r) => JSON.stringify(Object.entries(r.mapping).sort()));
  const numbers = new Set(Object.values(outcome.results[0]!.mapping));
  return {
    wallMs: outcome.wallMs,
    // etcd's CPU over the whole race, start-up and warm-up of the workers included: an upper bound.
    etcdCpuMs: etcdCpuBefore !== undefined && etcdCpuAfter !== undefined ? etcdCpuAfter - etcdCpuBefore : undefined,
    acquisitions: total * outcome.results.length,
    agree: mappings.every((m) => m === mappings[0]),
    distinctNumbers: numbers.size,
    labelSets: total,
    workers: outcome.results.map((r) => ({
      node: r.node,
      elapsedMs: r.elapsedMs,
      cpuMs: r.cpuMs,
      stats: r.stats,
      storeCalls: r.storeCalls,
      // Latencies are kept as a sorted sample of at most 2000 per worker (quantiles stay exact enough).
      latenciesMs: thin(
        r.latenciesMs.sort((x, y) => x - y),
        2000,
      ),
    })),
  };
}

function thin(sorted: number[], max: number): number[] {
  if (sorted.length <= max) return sorted;
  return Array.from({ length: max }, (_, i) => sorted[Math.round((i * (sorted.length - 1)) / (max - 1))]!);
}

/** An address per local endpoint: inside 198.18.0.0/15 (only a string in the store here). */
function endpointIp(i: number): string {
  return `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

async function resyncPhase(endpoint: string, size: number) {
  const namespace = `resync-${size}/`;
  const counted = await countedStore(endpoint, namespace);
  const admin = await EtcdKvStore.open({ endpoints: [endpoint], namespace });
  try {
    const ipCount = Math.floor(size / 2);
    const identityCount = size - ipCount;
    const allocator = new IdentityAllocator({ store: counted.store, nodeName: 'resync-node', log });
    // Set-up (not measured): this node holds `identityCount` identities, 32 allocations at a time.
    const ids: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < identityCount) {
          const i = next++;
          ids[i] = await allocator.acquire(LabelSet.parse([`app=resync-${i}`, 'docker:network=bench']));
        }
      }),
    );
    const endpoints: LocalIpEntry[] = Array.from({ length: ipCount }, (_, i) => ({
      ip: endpointIp(i),
      identity: ids[i % identityCount]!,
      endpoint: i + 1,
    }));
    const sync = new NodeSync({
      store: counted.store as KvStore,
      nodeName: 'resync-node',
      log,
      intervalMs: 5 * 60_000,
      ips: new IpPublisher({
        store: counted.store as KvStore,
        nodeName: 'resync-node',
        log,
        localIps: () => endpoints,
      }),
      reassertIdentities: () => allocator.reassertReferences(),
      // The daemon re-lists its watched prefixes here; the identities are the big one.
      relist: async () => {
        await counted.store.list('identities/v1/id/');
      },
    });
    const measure = async (kind: string) => {
      const before = { ...counted.calls };
      const t0 = performance.now();
      await sync.resync(kind);
      const ms = performance.now() - t0;
      const calls: Record<string, number> = {};
      for (const [k, v] of Object.entries(counted.calls)) if (v - (before[k] ?? 0) > 0) calls[k] = v - (before[k] ?? 0);
      return { kind, ms, calls };
    };
    const owned = async () => ({
      ip: (await admin.list('ip/v1/')).pairs.length,
      references: (await admin.list('identities/v1/value/')).pairs.length,
    });
    const runs = [await measure('first')];
    for (let i = 0; i < RESYNC_RUNS; i++) runs.push(await measure('steady'));
    // Everything this node owns deleted behind its back (an operator, a lost lease).
    await admin.deletePrefix('ip/v1/');
    await admin.deletePrefix('identities/v1/value/');
    const afterDelete = await owned();
    runs.push(await measure('repair'));
    const afterRepair = await owned();
    progress(`resync ${size}: ${runs.map((r) => `${r.kind} ${Math.round(r.ms)} ms`).join(', ')}`);
    return { size, ipKeys: ipCount, identityReferences: identityCount, runs, afterDelete, afterRepair };
  } finally {
    await counted.store.close();
    await admin.close();
  }
}

async function main(): Promise<void> {
  const missing = etcdUnavailableReason();
  if (missing !== undefined) throw new Error(missing);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const loadBefore = machineLoad();
  const server = await EtcdTestServer.start();
  const onSignal = () => {
    void server.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const etcdVersion = execFileSync(process.env.ETCD_BIN ?? '/usr/bin/etcd', ['--version'])
      .toString()
      .split('\n')[0]
      ?.trim();
    progress(`etcd ${server.clientUrl} (data in ${server.dataDir})`);
    const latency = await latencyPhase(server.clientUrl);
    const races = [];
    for (let run = 0; run < RACE_RUNS; run++) {
      races.push(await racePhase(server, run));
      const r = races.at(-1)!;
      progress(`race ${run + 1}/${RACE_RUNS}: ${r.acquisitions} acquisitions in ${Math.round(r.wallMs)} ms`);
    }
    const resync = [];
    for (const size of RESYNC_SIZES) resync.push(await resyncPhase(server.clientUrl, size));
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']).toString().trim();
    const uncommitted = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'])
      .toString()
      .split('\n')
      .filter((l) => l !== '').length;
    const result = {
      bench: 'identity',
      startedAt,
      durationS: (performance.now() - t0) / 1000,
      settings: {
        new: NEW,
        groups: GROUPS,
        perGroup: PER_GROUP,
        concurrency: CONC,
        raceRuns: RACE_RUNS,
        resyncRuns: RESYNC_RUNS,
        resyncSizes: RESYNC_SIZES,
      },
      machine: { loadBefore, loadAfter: machineLoad(), versions: { etcd: etcdVersion, node: process.version } },
      code: { head, uncommittedSrcFiles: uncommitted },
      latency,
      races,
      resync,
    };
    writeFileSync(OUT!, `${JSON.stringify(result, null, 1)}\n`);
  } finally {
    await server.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`identity bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
