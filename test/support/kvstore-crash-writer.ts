/**
 * Child process of the local kvstore crash-safety test: opens the store file given as argv[2]
 * (lease TTL argv[3] ms), writes one leased key, then writes new keys forever. Each write is
 * acknowledged on stdout as one JSON line only after its promise resolved, so the parent knows
 * exactly which writes the store promised to keep when it SIGKILLs this process.
 */
import { writeSync } from 'node:fs';
import { LocalKvStore } from '../../src/kvstore/local/local-store.js';

const [path, leaseTtlMs] = [process.argv[2], Number(process.argv[3])];
if (!path || !Number.isFinite(leaseTtlMs)) {
  process.stderr.write('usage: kvstore-crash-writer <store path> <lease ttl ms>\n');
  process.exit(2);
}

const store = LocalKvStore.open({ path, leaseTtlMs });

function acknowledge(key: string, value: string, revision: bigint): void {
  // writeSync on fd 1 (not process.stdout, which queues in this process once the pipe is full and
  // this loop never yields): the line is in the pipe before the next write starts.
  writeSync(1, `${JSON.stringify({ key, value, revision: revision.toString() })}\n`);
}

const leasedValue = 'bound to the lease of a process about to die';
acknowledge('crash/leased', leasedValue, await store.put('crash/leased', leasedValue, { leased: true }));
for (let i = 0; ; i++) {
  const key = `crash/key-${String(i).padStart(6, '0')}`;
  const value = `value ${i} ${'x'.repeat(i % 64)}`;
  acknowledge(key, value, await store.put(key, value));
}
