/**
 * EtcdKvStore: option parsing, then — against a real etcd on 127.0.0.1 — the shared KvStore
 * contract and what only the etcd backend promises: bigint revisions end to end, compaction ->
 * resync, lease keepalive and lease loss, and outages that fail fast and recover.
 *
 * Without etcd installed the etcd-backed tests are skipped with the reason (failed when CI=true).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { KvStore, WatchEvent } from '../../../src/kvstore/kvstore.js';
import {
  EtcdKvStore,
  etcdOptionsFromKvstoreOpts,
  type EtcdConnectionEvent,
  type EtcdStoreOptions,
} from '../../../src/kvstore/etcd/etcd-store.js';
import { EtcdTestServer, etcdUnavailableReason } from '../../support/etcd-server.js';
import { runKvStoreContract, type KvStoreFixture, type KvStoreOpenOptions } from './contract.js';
import { PREFIX, prefixedFixture, runKvStorePrefixChecks, type RawEntry } from './prefix-contract.js';

t.test('etcdOptionsFromKvstoreOpts', async (t) => {
  t.test('etcd.address: one or several endpoints; a bare host:port gets http://', async (t) => {
    t.same(etcdOptionsFromKvstoreOpts({ 'etcd.address': 'http://10.0.0.1:2379' }), {
      endpoints: ['http://10.0.0.1:2379'],
    });
    t.same(etcdOptionsFromKvstoreOpts({ 'etcd.address': 'http://a:2379/, b:2379 ,http://c:2379' }).endpoints.length, 3);
    t.same(etcdOptionsFromKvstoreOpts({ 'etcd.address': 'a:2379,b:2379' }).endpoints, [
      'http://a:2379',
      'http://b:2379',
    ]);
    t.equal(
      etcdOptionsFromKvstoreOpts({ 'etcd.address': 'a:2379' }).leaseTtlMs,
      undefined,
      'no lease-ttl: the 15 min default applies at open',
    );
  });

  t.test('etcd.lease-ttl takes Go durations of at least 1s', async (t) => {
    const ttl = (value: string) =>
      etcdOptionsFromKvstoreOpts({ 'etcd.address': 'a:2379', 'etcd.lease-ttl': value }).leaseTtlMs;
    t.equal(ttl('15m'), 15 * 60_000);
    t.equal(ttl('1h30m'), 90 * 60_000);
    t.equal(ttl('25s'), 25_000);
    t.equal(ttl('1500ms'), 1_500);
    for (const bad of ['', '15', 'fifteen', '10x', '5m garbage', '500ms']) {
      t.throws(() => ttl(bad), { code: 'ERR_CONFIG', message: /etcd\.lease-ttl/ }, `rejects "${bad}"`);
    }
  });

  t.test('etcd.config: endpoints, TLS files and credentials from an etcd client config file', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cilium-etcd-config-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'etcd.config');
    writeFileSync(
      file,
      [
        '---',
        'endpoints:',
        '- https://192.168.33.11:2379',
        '- https://192.168.33.12:2379',
        "trusted-ca-file: '/var/lib/etcd-secrets/etcd-client-ca.crt'",
        'key-file: /var/lib/etcd-secrets/etcd-client.key',
        'cert-file: /var/lib/etcd-secrets/etcd-client.crt',
        'username: cilium',
        'password: "s3cret"',
        '',
      ].join('\n'),
    );
    t.same(etcdOptionsFromKvstoreOpts({ 'etcd.config': file, 'etcd.lease-ttl': '30s' }), {
      endpoints: ['https://192.168.33.11:2379', 'https://192.168.33.12:2379'],
      tls: {
        caFile: '/var/lib/etcd-secrets/etcd-client-ca.crt',
        certFile: '/var/lib/etcd-secrets/etcd-client.crt',
        keyFile: '/var/lib/etcd-secrets/etcd-client.key',
      },
      auth: { username: 'cilium', password: 's3cret' },
      leaseTtlMs: 30_000,
    });
    t.same(
      etcdOptionsFromKvstoreOpts({ 'etcd.config': file, 'etcd.address': 'https://override:2379' }).endpoints,
      ['https://override:2379'],
      'etcd.address wins over the file’s endpoints; TLS still comes from the file',
    );

    const flowList = join(dir, 'flow.yaml');
    writeFileSync(flowList, 'endpoints: [http://127.0.0.1:2379]\n');
    t.same(etcdOptionsFromKvstoreOpts({ 'etcd.config': flowList }), { endpoints: ['http://127.0.0.1:2379'] });

    const certOnly = join(dir, 'cert-only.yaml');
    writeFileSync(certOnly, 'endpoints: [https://h:2379]\ncert-file: /c.crt\n');
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.config': certOnly }), {
      code: 'ERR_CONFIG',
      message: /cert-file and key-file/,
    });
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.config': join(dir, 'missing.yaml') }), {
      code: 'ERR_CONFIG',
      message: /etcd\.config=.*missing\.yaml/,
    });
  });

  t.test('rejects unknown names, missing endpoints and bad URLs with ERR_CONFIG', async (t) => {
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.adress': 'a:2379' }), {
      code: 'ERR_CONFIG',
      message: /etcd\.adress.*etcd\.address/,
    });
    t.throws(() => etcdOptionsFromKvstoreOpts({}), { code: 'ERR_CONFIG', message: /needs endpoints/ });
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.address': ' , ' }), { code: 'ERR_CONFIG' });
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.address': 'unix:///run/etcd.sock' }), {
      code: 'ERR_CONFIG',
      message: /http/,
    });
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.address': 'http://a:2379,https://b:2379' }), {
      code: 'ERR_CONFIG',
      message: /mix/,
    });
    t.throws(() => etcdOptionsFromKvstoreOpts({ 'etcd.address': 'http://a:2379/v3' }), {
      code: 'ERR_CONFIG',
      message: /no path/,
    });
  });
});

const missing = etcdUnavailableReason();
if (missing !== undefined) {
  if (process.env.CI === 'true') t.fail(`etcd is required when CI=true: ${missing}`);
  else t.test('EtcdKvStore against a real etcd', { skip: missing }, async () => undefined);
} else {
  const server = await EtcdTestServer.start();
  t.teardown(() => server.cleanup());
  /** A client without a namespace, for cleaning up after contract fixtures. */
  const admin = await EtcdKvStore.open({ endpoints: [server.clientUrl] });
  t.teardown(() => admin.close());

  let fixtures = 0;
  const contractFixture = async ({ leaseTtlMs }: KvStoreOpenOptions): Promise<KvStoreFixture> => {
    // A fresh key namespace per subtest on the shared member.
    const namespace = `contract-${++fixtures}/`;
    const base: EtcdStoreOptions = { endpoints: [server.clientUrl], namespace };
    const opened: KvStore[] = [await EtcdKvStore.open({ ...base, ...(leaseTtlMs !== undefined && { leaseTtlMs }) })];
    return {
      store: opened[0]!,
      reopen: async (options = {}) => {
        const store = await EtcdKvStore.open({ ...base, ...options });
        opened.push(store);
        return store;
      },
      cleanup: async () => {
        for (const store of opened) await store.close();
        await admin.deletePrefix(namespace);
      },
    };
  };
  runKvStoreContract(t, 'EtcdKvStore', contractFixture);
  runKvStoreContract(t, `EtcdKvStore under ${PREFIX}`, async (options) =>
    prefixedFixture(await contractFixture(options)),
  );

  /** Every key under `namespace` as etcd's JSON gateway returns it (no client code of ours), without the namespace. */
  const rawEntries = async (namespace: string): Promise<RawEntry[]> => {
    const b64 = (b: Buffer) => b.toString('base64');
    const end = Buffer.from(namespace);
    end[end.length - 1]! += 1;
    const response = await fetch(`${server.clientUrl}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: b64(Buffer.from(namespace)), range_end: b64(end) }),
    });
    const body = (await response.json()) as { kvs?: Array<{ key: string; value?: string; lease?: string }> };
    return (body.kvs ?? []).map((kv) => ({
      key: Buffer.from(kv.key, 'base64').toString().slice(namespace.length),
      value: Buffer.from(kv.value ?? '', 'base64').toString(),
      leased: (kv.lease ?? '0') !== '0',
    }));
  };
  runKvStorePrefixChecks(t, 'EtcdKvStore', async () => {
    const namespace = `prefix-${++fixtures}/`;
    // Two clients: two daemons of different clusters on one etcd.
    const opened = [await EtcdKvStore.open({ endpoints: [server.clientUrl], namespace })];
    return {
      store: opened[0]!,
      second: async () => {
        opened.push(await EtcdKvStore.open({ endpoints: [server.clientUrl], namespace }));
        return opened.at(-1)!;
      },
      rawEntries: () => rawEntries(namespace),
      cleanup: async () => {
        for (const store of opened) await store.close();
        await admin.deletePrefix(namespace);
      },
    };
  });

  t.test('revisions are bigint end to end, int64 values included', async (t) => {
    const store = await openStore(t, { endpoints: [server.clientUrl], namespace: 'bigint/' });
    const put = await store.put('k', 'v');
    t.type(put, 'bigint');
    const pair = await store.get('k');
    t.type(pair?.createRevision, 'bigint');
    t.type(pair?.modRevision, 'bigint');
    const { revision, pairs } = await store.list('');
    t.type(revision, 'bigint');
    t.type(pairs[0]?.modRevision, 'bigint');
    const created = await store.create('c', 'v');
    t.type(created.ok && created.revision, 'bigint');

    // Above 2^53 a number would round (2^53 + 1 -> 2^53); int64 max must reach etcd exactly.
    const int64Max = 2n ** 63n - 1n;
    t.same(
      await store.atomicPut('k', 'x', int64Max),
      { ok: false, current: pair },
      'CAS with int64 max is a clean mismatch',
    );
    t.equal(await store.atomicDelete('k', 2n ** 53n + 1n), false);
    t.equal(await store.atomicDelete('k', 0n), false, 'revision 0 never matches an existing key');
    t.same(
      await store.atomicPut('absent', 'x', 0n),
      { ok: false, current: undefined },
      'nor does it act like "absent"',
    );

    const events: WatchEvent[] = [];
    const resyncs: string[] = [];
    const farFuture = store.watch('', 2n ** 62n, {
      onEvent: (e) => events.push(e),
      onResyncNeeded: (r) => resyncs.push(r),
    });
    t.teardown(() => farFuture.close());
    const live = record(t, store, '', put);
    await store.put('after', 'v');
    await live.waitForKey('after');
    t.type(live.events[0]!.modRevision, 'bigint');
    const first = live.events[0]!;
    t.type(first.type === 'put' && first.createRevision, 'bigint');
    await sleep(200);
    t.same([events, resyncs], [[], []], 'a watch from a far-future revision waits quietly');
  });

  t.test('list pages through more keys than one range answer holds, all at one revision', async (t) => {
    const store = await openStore(t, { endpoints: [server.clientUrl], namespace: 'paged/' });
    const keys = Array.from({ length: 2_345 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 200)
      await Promise.all(keys.slice(i, i + 200).map((key) => store.put(key, key)));
    await store.put('k0', 'sibling outside the prefix');
    const { pairs, revision } = await store.list('k/');
    t.equal(pairs.length, keys.length, 'every key, across three pages');
    t.same(
      pairs.map((p) => p.key),
      keys,
      'sorted, no duplicates at page boundaries',
    );
    t.ok(
      pairs.every((p) => p.value === p.key && p.modRevision <= revision),
      'values intact, none newer than the list',
    );
  });

  t.test('keys live under the namespace and come back without it', async (t) => {
    const a = await openStore(t, { endpoints: [server.clientUrl], namespace: 'ns-a/' });
    const b = await openStore(t, { endpoints: [server.clientUrl], namespace: 'ns-b/' });
    const recorder = record(t, a, '', (await a.list('')).revision);
    await a.put('key', 'in a');
    await b.put('key', 'in b');
    t.equal((await admin.get('ns-a/key'))?.value, 'in a', 'stored under the namespace');
    t.same(
      (await a.list('')).pairs.map((p) => [p.key, p.value]),
      [['key', 'in a']],
      'a sees only its own keys',
    );
    await recorder.waitForKey('key');
    t.same(
      recorder.events.map((e) => e.key),
      ['key'],
      'watch keys are stripped and other namespaces unseen',
    );
    t.equal(await b.deletePrefix(''), 1, 'deletePrefix("") stays inside the namespace');
    t.equal((await a.get('key'))?.value, 'in a');
  });

  t.test('a watch from before a compaction asks for a resync; one from the compaction point does not', async (t) => {
    const store = await openStore(t, { endpoints: [server.clientUrl], namespace: 'compact/' });
    const old = await store.put('a', '1');
    await store.put('a', '2');
    const compactAt = await store.put('b', '1');
    await server.compact(compactAt);

    const resyncs: string[] = [];
    const events: WatchEvent[] = [];
    store.watch('', old, { onEvent: (e) => events.push(e), onResyncNeeded: (reason) => resyncs.push(reason) });
    await waitUntil(() => resyncs.length > 0, 5_000, 'a resync for a compacted start');
    t.match(resyncs, [/compacted .* revision \d+/], 'the reason names the compaction');
    t.same(events, [], 'no partial history');

    const fresh = record(t, store, '', compactAt);
    await store.put('c', '1');
    await fresh.waitForKey('c');
    await sleep(100);
    t.equal(resyncs.length, 1, 'the closed watch reports once');
  });

  t.test('lease keepalive keeps leased keys alive well past the TTL', async (t) => {
    const store = await openStore(t, { endpoints: [server.clientUrl], namespace: 'keepalive/', leaseTtlMs: 1_000 });
    const events = connectionEvents(t, store);
    const revision = await store.put('k', 'v', { leased: true });
    const lease = (await store.get('k'))?.lease;
    t.match(lease, /^\d+$/, 'the lease id is the decimal int64');
    await sleep(3_500);
    t.match(await store.get('k'), { modRevision: revision, lease }, 'still there after 3.5 TTLs');
    t.match(await store.status(), { healthy: true, lease: { id: lease, ttlSeconds: 1 } });
    t.same(events, [], 'no lease loss, no reconnect');

    const defaultTtl = await openStore(t, { endpoints: [server.clientUrl], namespace: 'keepalive-default/' });
    await defaultTtl.put('k', 'v', { leased: true });
    t.equal((await defaultTtl.status()).lease?.ttlSeconds, 15 * 60, 'the default TTL is 15 minutes');
  });

  t.test('a lost lease is reported and replaced, and leased writes use the new one', async (t) => {
    const store = await openStore(t, { endpoints: [server.clientUrl], namespace: 'lost/', leaseTtlMs: 1_000 });
    const events = connectionEvents(t, store);
    await store.put('k', 'v', { leased: true });
    const oldLease = (await store.get('k'))!.lease!;

    // The keepalive learns of the revocation (TTL -1 from etcd) within a renewal interval.
    await server.revokeLease(oldLease);
    t.equal(await store.get('k'), undefined, 'revoking the lease deleted its key');
    await waitUntil(() => events.length > 0, 3_000, 'a lease-lost report');
    t.match(events, [{ kind: 'lease-lost', lease: oldLease, reason: String }]);
    t.equal((await store.status()).lease, undefined, 'no lease until the next leased write');

    await store.put('k', 'again', { leased: true });
    const newLease = (await store.get('k'))!.lease!;
    t.not(newLease, oldLease, 'the re-assertion was granted a new lease');

    // Revoked behind the keepalive's back and written at once: the write meets "lease not
    // found", reports the loss and retries with a fresh lease.
    await server.revokeLease(newLease);
    await store.put('k2', 'v', { leased: true });
    const third = (await store.get('k2'))!.lease!;
    t.not(third, newLease);
    await sleep(500);
    t.same(
      events.map((e) => (e.kind === 'lease-lost' ? e.lease : e.kind)),
      [oldLease, newLease],
      'each lost lease reported exactly once',
    );
    await sleep(2_000);
    t.equal((await store.get('k2'))?.lease, third, 'the replacement lease is kept alive');
  });

  t.test('open fails fast with ERR_KV_UNAVAILABLE naming the endpoint when nothing listens', async (t) => {
    const endpoint = 'http://127.0.0.1:1';
    const started = Date.now();
    await t.rejects(EtcdKvStore.open({ endpoints: [endpoint], dialTimeoutMs: 2_000 }), {
      code: 'ERR_KV_UNAVAILABLE',
      message: /127\.0\.0\.1:1/,
    });
    t.ok(Date.now() - started < 3_000, 'within the dial timeout');
  });

  t.test(
    'outage: calls reject fast; after etcd returns the store recovers, the watch resumes, the lost lease is replaced',
    async (t) => {
      const outage = await EtcdTestServer.start();
      t.teardown(() => outage.cleanup());
      const store = await openStore(t, { endpoints: [outage.clientUrl], requestTimeoutMs: 2_000, leaseTtlMs: 1_000 });
      const events = connectionEvents(t, store);
      const resyncs: string[] = [];
      const watched: WatchEvent[] = [];
      store.watch('o/', (await store.list('o/')).revision, {
        onEvent: (e) => watched.push(e),
        onResyncNeeded: (reason) => resyncs.push(reason),
      });
      await store.put('o/before', 'v');
      await store.put('o/leased', 'v', { leased: true });
      const oldLease = (await store.get('o/leased'))!.lease!;
      await waitUntil(() => watched.length === 2, 5_000, 'the events before the outage');

      await outage.stop();
      const port = new URL(outage.clientUrl).port;
      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => store.get('o/before')],
        ['list', () => store.list('o/')],
        ['put', () => store.put('o/x', 'v')],
        ['leased put', () => store.put('o/x', 'v', { leased: true })],
        ['create', () => store.create('o/y', 'v')],
        ['atomicPut', () => store.atomicPut('o/before', 'v', 1n)],
        ['delete', () => store.delete('o/before')],
        ['atomicDelete', () => store.atomicDelete('o/before', 1n)],
        ['deletePrefix', () => store.deletePrefix('o/')],
      ];
      for (const [what, call] of calls) {
        const started = Date.now();
        await t.rejects(
          call(),
          {
            code: 'ERR_KV_UNAVAILABLE',
            message: new RegExp(`127\\.0\\.0\\.1:${port}.*\\b${what.split(' ').at(-1)}\\b.*failed`),
          },
          what,
        );
        t.ok(Date.now() - started < 2_500, `${what} rejected within the request timeout (${Date.now() - started} ms)`);
      }
      const down = await store.status();
      t.match(
        down,
        { backend: 'etcd', healthy: false, detail: new RegExp(port) },
        'status reports unhealthy, naming the endpoint',
      );

      // No keepalive for 2 TTLs: the client gives the lease up (etcd would expire it).
      await waitUntil(() => events.some((e) => e.kind === 'lease-lost'), 5_000, 'the lease to be reported lost');
      t.match(events, [{ kind: 'lease-lost', lease: oldLease, reason: /keepalive/ }]);

      await outage.resume();
      const after = await eventually(() => store.put('o/after', 'v'), 20_000, 'a put after etcd returned');
      await waitUntil(
        () => watched.some((e) => e.key === 'o/after') || resyncs.length > 0,
        15_000,
        'the watch to resume',
      );
      if (resyncs.length > 0) t.pass(`the watch asked for a resync instead (${resyncs[0]})`);
      else {
        // The old lease, no longer renewed, expires about a TTL after etcd restarts: that delete
        // happened while the watch was down or reconnecting, and must be delivered too.
        await waitUntil(() => watched.some((e) => e.type === 'delete'), 5_000, 'the expiry of the lost lease’s key');
        t.match(
          watched.slice(0, 2),
          [{ key: 'o/before' }, { key: 'o/leased', type: 'put' }],
          'events before the outage',
        );
        t.same(
          watched
            .slice(2)
            .map((e) => [e.type, e.key])
            .sort(),
          [
            ['delete', 'o/leased'],
            ['put', 'o/after'],
          ],
          'the watch resumed: the expiry and the write after recovery, each once',
        );
        t.equal(watched.find((e) => e.key === 'o/after')?.modRevision, after);
        t.ok(
          watched.every((e, i) => i === 0 || e.modRevision > watched[i - 1]!.modRevision),
          'in revision order',
        );
      }
      t.match(events.at(-1), { kind: 'reconnected', downMs: Number }, 'listeners heard of the reconnect');

      await store.put('o/leased', 'reasserted', { leased: true });
      const newLease = (await store.get('o/leased'))!.lease;
      t.not(newLease, oldLease, 'the re-asserted key has a new lease');
      t.match(await store.status(), { healthy: true, lease: { id: newLease } });
    },
  );
}

/** Opens a store that is closed when `t` ends. */
async function openStore(t: Test, options: EtcdStoreOptions): Promise<EtcdKvStore> {
  const store = await EtcdKvStore.open(options);
  t.teardown(() => store.close());
  return store;
}

/** Collects a store's connection events. */
function connectionEvents(t: Test, store: EtcdKvStore): EtcdConnectionEvent[] {
  const events: EtcdConnectionEvent[] = [];
  t.teardown(store.onReconnect((event) => events.push(event)));
  return events;
}

/** Collects a watch's events; closes it when `t` ends. */
function record(t: Test, store: KvStore, prefix: string, fromRevision: bigint) {
  const events: WatchEvent[] = [];
  const watcher = store.watch(prefix, fromRevision, {
    onEvent: (event) => events.push(event),
    onResyncNeeded: (reason) => t.fail(`unexpected resync: ${reason}`),
  });
  t.teardown(() => watcher.close());
  return {
    events,
    waitForKey: (key: string) => waitUntil(() => events.some((e) => e.key === key), 5_000, `an event for ${key}`),
  };
}

/** Polls `done` every 20 ms; throws after `timeoutMs`. */
async function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Retries `attempt` every 200 ms until it resolves; rethrows its last error after `timeoutMs`. */
async function eventually<T>(attempt: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what} still failing after ${timeoutMs} ms: ${(err as Error).message}`);
      await sleep(200);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
