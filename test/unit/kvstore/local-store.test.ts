/**
 * LocalKvStore: the shared KvStore contract, then what only the embedded file store promises —
 * persistence across reopen, lease expiry of a dead process, crash safety under SIGKILL, the
 * bounded watch history, and one open client per file.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { KvStore, WatchEvent } from '../../../src/kvstore/kvstore.js';
import type { DatabaseSync } from 'node:sqlite';
import {
  LocalKvStore,
  localOptionsFromKvstoreOpts,
  type LocalKvStoreOptions,
} from '../../../src/kvstore/local/local-store.js';
import { runKvStoreContract, type KvStoreFixture, type KvStoreOpenOptions } from './contract.js';
import { PREFIX, prefixedFixture, runKvStorePrefixChecks } from './prefix-contract.js';

/** A fresh directory for one store file, removed when `t` ends. */
function storePath(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-kv-local-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'nested', 'store.db');
}

/** Opens a store on `path` that is closed when `t` ends (close is idempotent). */
function openStore(t: Test, options: LocalKvStoreOptions): LocalKvStore {
  const store = LocalKvStore.open(options);
  t.teardown(() => store.close());
  return store;
}

/** A fresh store file per contract subtest. */
async function contractFixture({ leaseTtlMs }: KvStoreOpenOptions): Promise<KvStoreFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-kv-contract-'));
  const path = join(dir, 'store.db');
  const opened: KvStore[] = [LocalKvStore.open({ path, leaseTtlMs })];
  return {
    store: opened[0]!,
    reopen: async (options = {}) => {
      const store = LocalKvStore.open({ path, ...options });
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of opened) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

runKvStoreContract(t, 'LocalKvStore', contractFixture);
runKvStoreContract(t, `LocalKvStore under ${PREFIX}`, async (options) =>
  prefixedFixture(await contractFixture(options)),
);

runKvStorePrefixChecks(t, 'LocalKvStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-kv-prefix-'));
  const path = join(dir, 'store.db');
  const store = LocalKvStore.open({ path });
  return {
    store,
    // One client per file: both prefixes share it.
    second: async () => store,
    // The open store holds the file's lock exclusively (no second reader), so the backend's own
    // unprefixed view stands in for a raw client here.
    rawEntries: async () =>
      (await store.list('')).pairs.map((p) => ({ key: p.key, value: p.value, leased: p.lease !== undefined })),
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

t.test('reopen keeps keys and the revision, which never goes backwards after deletes', async (t) => {
  const path = storePath(t);
  const first = openStore(t, { path });
  const kept = await first.put('keep/a', 'a');
  await first.put('keep/b', 'b');
  await first.put('keep/c', 'c');
  t.equal(await first.deletePrefix('keep/b'), 1);
  const { revision } = await first.list('');
  await first.close();

  const second = openStore(t, { path });
  t.match(await second.get('keep/a'), { value: 'a', createRevision: kept, modRevision: kept });
  t.equal(await second.get('keep/b'), undefined, 'the delete was kept too');
  t.equal((await second.list('')).revision, revision, 'the revision survived, including the delete');
  t.ok((await second.put('keep/d', 'd')) > revision, 'new writes continue after it');
});

t.test('keys of a lease that a dead process stopped renewing expire after the TTL', async (t) => {
  const path = storePath(t);
  const dead = openStore(t, { path, leaseTtlMs: 300 });
  await dead.put('lease/owned', 'v', { leased: true });
  await dead.put('lease/plain', 'v');
  await dead.close();

  const withinTtl = openStore(t, { path });
  t.ok(await withinTtl.get('lease/owned'), 'still there within the TTL (a quick restart keeps leased keys)');
  const { revision: beforeExpiry } = await withinTtl.list('');
  await withinTtl.close();

  await sleep(400);
  const afterTtl = openStore(t, { path });
  t.equal(await afterTtl.get('lease/owned'), undefined, 'expired at open, without waiting for a sweep');
  t.equal((await afterTtl.get('lease/plain'))?.value, 'v', 'unleased keys stay');
  t.ok((await afterTtl.list('')).revision > beforeExpiry, 'the expiry consumed a revision');

  const events: WatchEvent[] = [];
  afterTtl.watch('lease/', beforeExpiry, { onEvent: (event) => events.push(event) });
  await sleep(10);
  t.match(events, [{ type: 'delete', key: 'lease/owned' }], 'a watch from before the open sees the expiry');
});

t.test('the sweeper deletes expired keys while the store is open and tells watchers', async (t) => {
  const path = storePath(t);
  const dead = openStore(t, { path, leaseTtlMs: 200 });
  await dead.put('sweep/owned', 'v', { leased: true });
  await dead.close();

  const live = openStore(t, { path, sweepIntervalMs: 50 });
  const { pairs, revision } = await live.list('sweep/');
  t.equal(pairs.length, 1, 'still there right after reopen');
  const events: WatchEvent[] = [];
  live.watch('sweep/', revision, { onEvent: (event) => events.push(event) });
  await sleep(500);
  t.match(events, [{ type: 'delete', key: 'sweep/owned' }]);
  t.equal(await live.get('sweep/owned'), undefined);
});

t.test('a put without leased detaches the key from the lease', async (t) => {
  const path = storePath(t);
  const store = openStore(t, { path, leaseTtlMs: 200 });
  await store.put('detach/key', 'leased', { leased: true });
  await store.put('detach/key', 'plain');
  t.equal((await store.get('detach/key'))?.lease, undefined);
  await store.close();
  await sleep(300);
  const reopened = openStore(t, { path });
  t.equal((await reopened.get('detach/key'))?.value, 'plain', 'survives its old lease');
});

t.test('status reports the local backend, the file and the lease once there is one', async (t) => {
  const path = storePath(t);
  const store = openStore(t, { path, leaseTtlMs: 60_000 });
  t.same(await store.status(), { backend: 'local', healthy: true, detail: path });
  await store.put('status/key', 'v', { leased: true });
  const status = await store.status();
  t.match(status, { backend: 'local', healthy: true, detail: path, lease: { id: String, ttlSeconds: 60 } });
  await store.close();
  t.match(await store.status(), { healthy: false });
});

t.test('prefixes with edge-case code points list and delete exactly their keys', async (t) => {
  const store = openStore(t, { path: storePath(t) });
  // Code point (= UTF-8 byte, etcd's) order; JavaScript's default UTF-16 sort would put the
  // astral U+10FFFF before U+E000.
  const keys = ['u/', 'u/\uD7FFq', 'u/\uE000', 'u/\u{10FFFF}', 'u/\u{10FFFF}z', 'u0', 'v'];
  for (const key of [...keys].reverse()) await store.put(key, 'v');
  const listed = async (prefix: string) => (await store.list(prefix)).pairs.map((pair) => pair.key);
  t.same(await listed(''), keys, 'the empty prefix lists everything, in code point order');
  t.same(await listed('u/\u{10FFFF}'), ['u/\u{10FFFF}', 'u/\u{10FFFF}z'], 'a prefix ending in U+10FFFF');
  t.same(await listed('u/\uD7FF'), ['u/\uD7FFq'], 'a prefix ending just below the surrogates');
  t.equal(await store.deletePrefix('u/\u{10FFFF}'), 2);
  t.equal(await store.deletePrefix(''), 5, 'the empty prefix deletes everything');
});

t.test('a watch from before the retained history asks for a resync', async (t) => {
  const store = openStore(t, { path: storePath(t), historyLimit: 5 });
  const first = await store.put('h/0', 'v');
  for (let i = 1; i < 10; i++) await store.put(`h/${i}`, 'v');

  // Five events kept: revisions first+5 .. first+9, so history covers watches from first+4 on.
  const watchFrom = (revision: bigint) => {
    const seen = { events: [] as string[], resyncs: [] as string[] };
    store.watch('h/', revision, {
      onEvent: (event) => seen.events.push(event.key),
      onResyncNeeded: (reason) => seen.resyncs.push(reason),
    });
    return seen;
  };
  const oldest = watchFrom(first);
  const justTooOld = watchFrom(first + 3n);
  const oldestRetained = watchFrom(first + 4n);
  t.equal(oldest.resyncs.length, 0, 'the resync is not reported synchronously');
  await sleep(10);
  t.same([oldest.events, oldest.resyncs.length], [[], 1], 'a watch from long ago gets one resync and no events');
  t.same([justTooOld.events, justTooOld.resyncs.length], [[], 1], 'so does one from just before the history');
  t.match(oldest.resyncs[0], /older than/, 'the reason says why');
  t.same(
    oldestRetained,
    { events: ['h/5', 'h/6', 'h/7', 'h/8', 'h/9'], resyncs: [] },
    'the oldest retained start replays it',
  );
});

t.test('a watch from before this open asks for a resync', async (t) => {
  const path = storePath(t);
  const first = openStore(t, { path });
  await first.put('old/key', 'v');
  await first.close();
  const second = openStore(t, { path });
  const resyncs: string[] = [];
  second.watch('old/', 0n, {
    onEvent: () => t.fail('no events expected'),
    onResyncNeeded: (reason) => resyncs.push(reason),
  });
  await sleep(10);
  t.equal(resyncs.length, 1);
});

t.test('events not yet delivered when the store closes are dropped', async (t) => {
  const store = openStore(t, { path: storePath(t) });
  const seen: string[] = [];
  store.watch('pc/', 0n, { onEvent: (event) => seen.push(event.key) });
  // The write commits synchronously inside the call; its event waits for a microtask that runs
  // only after close() has returned.
  const written = store.put('pc/key', 'v');
  await store.close();
  await written;
  await sleep(10);
  t.same(seen, []);
});

t.test('a second open of a file in use fails with ERR_KV_UNAVAILABLE', async (t) => {
  const path = storePath(t);
  const store = openStore(t, { path });
  await store.put('lock/key', 'v');
  t.throws(() => LocalKvStore.open({ path }), { code: 'ERR_KV_UNAVAILABLE', message: /locked by another process/ });
  t.equal((await store.get('lock/key'))?.value, 'v', 'the first store is unaffected');
});

t.test('a handler that throws does not stop delivery to itself or others', async (t) => {
  const store = openStore(t, { path: storePath(t) });
  const seen: string[] = [];
  store.watch('th/', 0n, {
    onEvent: (event) => {
      seen.push(event.key);
      throw new Error('handler failure under test');
    },
  });
  await store.put('th/1', 'v');
  await store.put('th/2', 'v');
  await sleep(10);
  t.same(seen, ['th/1', 'th/2']);
});

t.test('SIGKILL at an arbitrary write loses no acknowledged write', async (t) => {
  const path = storePath(t);
  const leaseTtlMs = 1_000;
  const writer = fileURLToPath(new URL('../../support/kvstore-crash-writer.ts', import.meta.url));
  // The child needs the same TypeScript loader tap runs this file with.
  const loader = import.meta.resolve('@tapjs/typescript/import');
  const child = spawn(process.execPath, [`--import=${loader}`, writer, path, String(leaseTtlMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });

  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(signal ?? code));
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.split('\n').length > 200) child.kill('SIGKILL');
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const ending = await exited;
  clearTimeout(timeout);

  // Only complete lines are acknowledgements; anything after the last newline was cut by the kill.
  const acknowledged = stdout
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as { key: string; value: string; revision: string });
  t.equal(ending, 'SIGKILL', `the writer was killed, not exited on its own (stderr: ${stderr.slice(-2000)})`);
  t.ok(acknowledged.length >= 200, `at least 200 writes acknowledged (got ${acknowledged.length})`);

  const reopened = openStore(t, { path });
  const missing: string[] = [];
  for (const { key, value, revision } of acknowledged) {
    if (key === 'crash/leased') continue; // its lease may or may not have expired yet; checked below
    const pair = await reopened.get(key);
    if (pair?.value !== value || pair.modRevision !== BigInt(revision)) missing.push(key);
  }
  t.same(missing, [], 'every acknowledged key is present with its value and revision');
  const newest = acknowledged.reduce((max, ack) => (BigInt(ack.revision) > max ? BigInt(ack.revision) : max), 0n);
  t.ok((await reopened.list('')).revision >= newest, 'the store revision did not go backwards');
  t.ok((await reopened.put('crash/after', 'v')) > newest, 'the reopened store takes new writes');
  await reopened.close();

  await sleep(leaseTtlMs + 100);
  const afterTtl = openStore(t, { path });
  t.equal(await afterTtl.get('crash/leased'), undefined, "the killed process's leased key expired");
  t.ok(await afterTtl.get('crash/key-000000'), 'its unleased keys did not');
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

t.test('local.sync picks the SQLite synchronous mode; bad names and values are ConfigErrors', async (t) => {
  t.same(localOptionsFromKvstoreOpts({}), {});
  t.same(localOptionsFromKvstoreOpts({ 'local.sync': 'full', 'etcd.address': 'http://x:2379' }), { sync: 'full' });
  t.throws(() => localOptionsFromKvstoreOpts({ 'local.sync': 'fast' }), {
    code: 'ERR_CONFIG',
    message: /local\.sync=fast.*normal.*full/,
  });
  t.throws(() => localOptionsFromKvstoreOpts({ 'local.path': '/x' }), { code: 'ERR_CONFIG', message: /local\.path/ });
  for (const [sync, expected] of [
    [undefined, 1n],
    ['normal', 1n],
    ['full', 2n],
  ] as const) {
    const path = storePath(t);
    const store = LocalKvStore.open({ path, sync });
    await store.put('k', 'v');
    // The mode is per connection: ask SQLite through the store's own handle.
    const db = (store as unknown as { db: DatabaseSync }).db;
    t.equal(
      (db.prepare('PRAGMA synchronous').get() as { synchronous: bigint }).synchronous,
      expected,
      `sync ${sync ?? '(default)'}`,
    );
    await store.close();
  }
});
