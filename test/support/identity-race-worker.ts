/**
 * One "daemon" of the identity allocation race (test/unit/identity/identity-race.test.ts and
 * bench/identity.ts): its own process, node name, etcd connection and IdentityAllocator.
 *
 * Started by runIdentityRace (identity-race.ts); argv[2] is a JSON RaceWorkerConfig. The worker
 * connects, prints `ready`, waits for a `go` line on stdin (so that every worker starts at once),
 * acquires every label set of the race in its own random order with `concurrency` acquisitions
 * in flight, prints one JSON RaceWorkerResult line and exits.
 */
import { createInterface } from 'node:readline';
import { EtcdKvStore } from '../../src/kvstore/etcd/etcd-store.js';
import { InstrumentedKvStore } from '../../src/kvstore/instrumented-store.js';
import { IdentityAllocator } from '../../src/identity/allocator.js';
import { log } from '../../src/util/log.js';
import { raceLabelSet, type RaceWorkerConfig, type RaceWorkerResult } from './identity-race.js';

/** A small seeded PRNG (mulberry32), so each worker's order differs but runs are reproducible. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as RaceWorkerConfig;
  const storeCalls: Record<string, number> = {};
  const inner = await EtcdKvStore.open({ endpoints: [config.etcd], namespace: config.namespace });
  const store = new InstrumentedKvStore(inner, (action) => {
    storeCalls[action] = (storeCalls[action] ?? 0) + 1;
  });
  const allocator = new IdentityAllocator({ store, nodeName: config.node, log });

  const total = config.groups * config.perGroup;
  const order = Array.from({ length: total }, (_, i) => i);
  const random = seededRandom([...config.node].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261));
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const labelSets = order.map((i) => raceLabelSet(i, config.perGroup));

  // Warm up like a running daemon would be: connection, lease, JIT of the client's call path.
  // Outside `identities/` so the race's key space stays exactly what the allocators wrote.
  for (let i = 0; i < config.warmup; i++) {
    await store.transaction([], [{ op: 'put', key: `warmup/${config.node}`, value: String(i), leased: true }]);
  }
  for (const key of Object.keys(storeCalls)) delete storeCalls[key];

  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === 'go') break;

  const mapping: Record<string, number> = {};
  const latenciesMs: number[] = [];
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < labelSets.length) {
      const labels = labelSets[next++]!;
      const t0 = performance.now();
      mapping[labels.toCanonical()] = await allocator.acquire(labels);
      latenciesMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: config.concurrency }, worker));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const result: RaceWorkerResult = {
    node: config.node,
    mapping,
    elapsedMs,
    latenciesMs,
    stats: allocator.getStats(),
    storeCalls,
    cpuMs,
  };
  // A pipe write of this size completes asynchronously: exit only once it is flushed.
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(`${JSON.stringify(result)}\n`, (err) => (err ? reject(err) : resolve())),
  );
  lines.close();
  await store.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `identity race worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
