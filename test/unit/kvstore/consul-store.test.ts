/**
 * ConsulKvStore: the shared KvStore contract, then what only the consul backend promises —
 * option parsing, sessions binding leased keys (and their loss deleting them), taking over keys
 * another session holds, outages failing fast and recovering, exact uint64 revisions, keys
 * Consul cannot hold, ACL tokens. It runs against the in-repo server that follows Consul's
 * documented HTTP API (test/support/consul-api-server.ts), since no Consul can be installed here.
 */
import { createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import type { KvStore, WatchEvent } from '../../../src/kvstore/kvstore.js';
import {
  ConsulKvStore,
  consulOptionsFromKvstoreOpts,
  type ConsulReconnectReason,
  type ConsulStoreOptions,
} from '../../../src/kvstore/consul/consul-store.js';
import { ConsulApiServer, type ConsulApiServerOptions } from '../../support/consul-api-server.js';
import { runKvStoreContract, type KvStoreFixture, type KvStoreOpenOptions } from './contract.js';
import { PREFIX, prefixedFixture, runKvStorePrefixChecks } from './prefix-contract.js';

/** A server closed when `t` ends; sessions may be as short as 1 s (session_ttl_min = 1s). */
async function serve(t: Test, options: ConsulApiServerOptions = {}): Promise<ConsulApiServer> {
  const server = await ConsulApiServer.listen({ sessionTtlMinMs: 1_000, ...options });
  t.teardown(() => server.close());
  return server;
}

/** A store on `server`, closed when `t` ends. */
async function openStore(
  t: Test,
  server: ConsulApiServer,
  options: Partial<ConsulStoreOptions> = {},
): Promise<ConsulKvStore> {
  const store = await ConsulKvStore.open({ address: server.address, ...options });
  t.teardown(() => store.close());
  return store;
}

/** The raw KV entry as Consul serves it (to check what the store really wrote). */
async function rawEntry(
  server: ConsulApiServer,
  key: string,
): Promise<{ Session?: string; LockIndex: number } | undefined> {
  const response = await fetch(`${server.address}/v1/kv/${key}`);
  if (response.status === 404) return undefined;
  return ((await response.json()) as { Session?: string; LockIndex: number }[])[0];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A fresh server per contract subtest. */
async function contractFixture({ leaseTtlMs }: KvStoreOpenOptions): Promise<KvStoreFixture> {
  const server = await ConsulApiServer.listen({ sessionTtlMinMs: 1_000 });
  const opened: KvStore[] = [];
  const open = async (ttl: number | undefined) => {
    const store = await ConsulKvStore.open({ address: server.address, ...(ttl !== undefined && { leaseTtlMs: ttl }) });
    opened.push(store);
    return store;
  };
  return {
    store: await open(leaseTtlMs),
    reopen: (options = {}) => open(options.leaseTtlMs),
    cleanup: async () => {
      for (const store of opened) await store.close();
      await server.close();
    },
  };
}

runKvStoreContract(t, 'ConsulKvStore', contractFixture, { leaseTtlMs: 1_000 });
runKvStoreContract(
  t,
  `ConsulKvStore under ${PREFIX}`,
  async (options) => prefixedFixture(await contractFixture(options)),
  { leaseTtlMs: 1_000 },
);

runKvStorePrefixChecks(t, 'ConsulKvStore', async () => {
  const server = await ConsulApiServer.listen({ sessionTtlMinMs: 1_000 });
  // Two clients (two sessions): two daemons of different clusters on one consul.
  const opened = [await ConsulKvStore.open({ address: server.address })];
  return {
    store: opened[0]!,
    second: async () => {
      opened.push(await ConsulKvStore.open({ address: server.address }));
      return opened.at(-1)!;
    },
    // Consul's HTTP API, not the backend: `?recurse` from the root with each entry's session.
    rawEntries: async () => {
      const response = await fetch(`${server.address}/v1/kv/?recurse`);
      if (response.status === 404) return [];
      const entries = (await response.json()) as Array<{ Key: string; Value: string | null; Session?: string }>;
      return entries.map((e) => ({
        key: e.Key,
        value: Buffer.from(e.Value ?? '', 'base64').toString(),
        leased: (e.Session ?? '') !== '',
      }));
    },
    cleanup: async () => {
      for (const store of opened) await store.close();
      await server.close();
    },
  };
});

t.test('consulOptionsFromKvstoreOpts parses the daemon options and names the bad one', async (t) => {
  t.same(
    consulOptionsFromKvstoreOpts({
      'consul.address': 'http://10.0.0.5:8500/',
      'consul.token': 'tok',
      'consul.lease-ttl': '15m',
    }),
    { address: 'http://10.0.0.5:8500', token: 'tok', leaseTtlMs: 900_000 },
  );
  t.same(
    consulOptionsFromKvstoreOpts({ 'consul.address': 'consul.internal:8500' }),
    { address: 'http://consul.internal:8500' },
    'a bare host:port gets http://',
  );
  t.same(consulOptionsFromKvstoreOpts({ 'consul.address': 'https://c:8501', 'consul.lease-ttl': '1h30m' }), {
    address: 'https://c:8501',
    leaseTtlMs: 5_400_000,
  });
  t.same(
    consulOptionsFromKvstoreOpts({ 'consul.address': 'http://c:8500', 'consul.token': '' }),
    { address: 'http://c:8500' },
    'an empty token is no token',
  );

  const bad: [Record<string, string>, RegExp][] = [
    [{}, /needs an agent address.*consul\.address=http:\/\/HOST:8500/],
    [{ 'consul.address': 'http://c:8500', 'etcd.address': 'x' }, /--kvstore-opt etcd\.address: not a consul option/],
    [{ 'consul.address': 'ftp://c:21' }, /consul\.address: "ftp:\/\/c:21" must be http/],
    [{ 'consul.address': 'http://c:8500/v1' }, /with no path/],
    [{ 'consul.address': 'http://[bad' }, /is not a URL/],
    [{ 'consul.address': 'http://c:8500', 'consul.lease-ttl': 'soon' }, /lease-ttl=soon: not a duration/],
    [{ 'consul.address': 'http://c:8500', 'consul.lease-ttl': '5s' }, /between 10s and 24h/],
    [{ 'consul.address': 'http://c:8500', 'consul.lease-ttl': '25h' }, /between 10s and 24h/],
  ];
  for (const [opts, message] of bad) {
    t.throws(() => consulOptionsFromKvstoreOpts(opts), { code: 'ERR_CONFIG', message }, JSON.stringify(opts));
  }
});

t.test('open fails fast with ERR_KV_UNAVAILABLE naming the address when consul is down or silent', async (t) => {
  const server = await serve(t);
  const address = server.address;
  await server.stop();
  const started = Date.now();
  await t.rejects(ConsulKvStore.open({ address }), {
    code: 'ERR_KV_UNAVAILABLE',
    message: new RegExp(`consul ${address.replace(/[.]/g, '\\.')}: read the raft leader failed: .*ECONNREFUSED`),
  });
  t.ok(Date.now() - started < 1_000, 'refused connections fail at once');

  // A server that accepts connections and never answers: the per-call deadline ends the wait.
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  const begun = Date.now();
  await t.rejects(ConsulKvStore.open({ address: `http://127.0.0.1:${port}`, requestTimeoutMs: 300 }), {
    code: 'ERR_KV_UNAVAILABLE',
    message: /got no answer within 300 ms/,
  });
  t.ok(Date.now() - begun < 1_500, 'bounded by requestTimeoutMs');

  await t.rejects(
    ConsulKvStore.open({ address: 'http://127.0.0.1:1', leaseTtlMs: 500 }),
    { code: 'ERR_CONFIG' },
    'a TTL under 1s',
  );
  await t.rejects(ConsulKvStore.open({ address: 'not a url at all' }), { code: 'ERR_CONFIG' });
});

t.test(
  'leased writes bind the key to the store session with acquire semantics; unleased writes release it',
  async (t) => {
    const server = await serve(t);
    const store = await openStore(t, server, { leaseTtlMs: 5_000 });
    t.equal((await store.status()).lease, undefined, 'no session before the first leased write');

    await store.put('bind/key', 'v1', { leased: true });
    const session = (await store.status()).lease?.id;
    t.ok(session, 'the first leased write created a session');
    t.same(server.sessionIds(), [session]);
    t.match(
      await rawEntry(server, 'bind/key'),
      { Session: session, LockIndex: 1 },
      'the key is held by the session (LockIndex 1)',
    );
    t.equal((await store.get('bind/key'))?.lease, session, 'get reports the lease');

    const created = await store.create('bind/created', 'v', { leased: true });
    t.ok(created.ok, 'leased create-only write');
    t.equal((await store.create('bind/created', 'again', { leased: true })).ok, false, 'is create-only');
    const revision = (await store.get('bind/created'))!.modRevision;
    t.equal(
      (await store.atomicPut('bind/created', 'v2', revision - 1n, { leased: true })).ok,
      false,
      'leased CAS with a stale revision fails',
    );
    t.ok(
      (await store.atomicPut('bind/created', 'v2', revision, { leased: true })).ok,
      'leased CAS with the current one succeeds',
    );
    t.equal((await rawEntry(server, 'bind/created'))?.Session, session);

    await store.put('bind/key', 'plain now');
    t.equal((await rawEntry(server, 'bind/key'))?.Session, undefined, 'an unleased put released the key');
    const current = (await store.get('bind/created'))!.modRevision;
    t.ok((await store.atomicPut('bind/created', 'plain', current)).ok);
    t.equal((await store.get('bind/created'))?.lease, undefined, 'an unleased CAS released it too');

    server.expireSession(session!);
    t.equal((await store.get('bind/key'))?.value, 'plain now', 'released keys survive the session');
  },
);

t.test(
  'losing the session deletes the leased keys; a new session is made and onReconnect lets the owner re-assert',
  async (t) => {
    const server = await serve(t);
    const store = await openStore(t, server, { leaseTtlMs: 1_000 });
    const reasons: ConsulReconnectReason[] = [];
    store.onReconnect((reason) => {
      reasons.push(reason);
      void store.put('eph/node', 're-asserted', { leased: true });
    });

    await store.put('eph/node', 'v', { leased: true });
    await store.put('eph/plain', 'v');
    const first = (await store.status()).lease!.id;
    const { revision } = await store.list('eph/');
    const events: WatchEvent[] = [];
    store.watch('eph/', revision, { onEvent: (event) => events.push(event) });

    t.ok(server.expireSession(first), 'the session is invalidated (as by a missed TTL)');
    await until(() => events.some((event) => event.type === 'delete'), 'the delete event');
    t.match(events[0], { type: 'delete', key: 'eph/node' }, 'the leased key was deleted, seen as a delete');
    t.equal((await store.get('eph/plain'))?.value, 'v', 'the unleased key stays');

    // The next renewal (TTL/3) finds the session gone, replaces it and tells the owner.
    await until(() => reasons.includes('session-replaced'), 'onReconnect(session-replaced)', 3_000);
    const second = (await store.status()).lease?.id;
    t.ok(second !== undefined && second !== first, 'a new session');
    await until(async () => (await store.get('eph/node'))?.value === 're-asserted', 'the re-asserted key');
    t.equal((await store.get('eph/node'))?.lease, second, 'bound to the new session');
    t.same(server.sessionIds(), [second]);
  },
);

t.test('a leased write takes over a key held by another session (a restarted daemon)', async (t) => {
  const server = await serve(t);
  const before = await openStore(t, server, { leaseTtlMs: 30_000 });
  await before.put('take/node', 'old run', { leased: true });
  const oldSession = (await before.status()).lease!.id;
  await before.close();

  const after = await openStore(t, server, { leaseTtlMs: 30_000 });
  await after.put('take/node', 'new run', { leased: true });
  const newSession = (await after.status()).lease!.id;
  t.not(newSession, oldSession);
  t.match(await after.get('take/node'), { value: 'new run', lease: newSession }, 're-bound to the new session');

  server.expireSession(oldSession);
  t.equal((await after.get('take/node'))?.value, 'new run', "the old session's expiry no longer deletes it");

  const revision = (await after.get('take/node'))!.modRevision;
  const third = await openStore(t, server, { leaseTtlMs: 30_000 });
  t.equal(
    (await third.atomicPut('take/node', 'x', revision - 1n, { leased: true })).ok,
    false,
    'a stale take-over CAS fails',
  );
  const swapped = await third.atomicPut('take/node', 'third', revision, { leased: true });
  t.ok(swapped.ok, 'a take-over CAS with the current revision succeeds');
  t.equal((await third.get('take/node'))?.lease, (await third.status()).lease?.id);
});

t.test(
  'an outage fails calls fast with ERR_KV_UNAVAILABLE; watches and sessions recover when consul returns',
  async (t) => {
    const server = await serve(t);
    const store = await openStore(t, server, { leaseTtlMs: 3_000 });
    const other = await openStore(t, server);
    await store.put('out/leased', 'v', { leased: true });
    const { revision } = await store.list('out/');
    const events: WatchEvent[] = [];
    const resyncs: string[] = [];
    store.watch('out/', revision, {
      onEvent: (event) => events.push(event),
      onResyncNeeded: (reason) => resyncs.push(reason),
    });
    const reasons: ConsulReconnectReason[] = [];
    store.onReconnect((reason) => reasons.push(reason));

    await server.stop();
    const calls: [string, () => Promise<unknown>][] = [
      ['get', () => store.get('out/leased')],
      ['list', () => store.list('out/')],
      ['put', () => store.put('out/x', 'v')],
      ['create', () => store.create('out/x', 'v', { leased: true })],
      ['delete', () => store.delete('out/leased')],
      ['deletePrefix', () => store.deletePrefix('out/')],
    ];
    for (const [what, call] of calls) {
      const started = Date.now();
      await t.rejects(
        call(),
        { code: 'ERR_KV_UNAVAILABLE', message: new RegExp(server.address.replace(/[.]/g, '\\.')) },
        `${what} names the address`,
      );
      t.ok(Date.now() - started < 1_000, `${what} failed fast`);
    }
    const down = await store.status();
    t.match(down, { backend: 'consul', healthy: false, detail: /ECONNREFUSED/ }, 'status shows the outage');

    await sleep(1_000); // shorter than the session's 2x TTL: it survives the outage
    await server.start();
    await other.put('out/after', 'written after the outage');
    await until(() => events.some((event) => event.key === 'out/after'), 'the watch to resume', 7_000);
    t.same(resyncs, [], 'no resync needed: the watch diffs against its last state');
    await until(() => reasons.includes('reconnected'), 'onReconnect(reconnected)');
    t.match(await store.status(), { healthy: true, detail: /leader 127\.0\.0\.1:8300/ });
    t.equal((await store.get('out/leased'))?.value, 'v', 'the session outlived a short outage, and so did its key');
  },
);

t.test('revisions are exact beyond 2^53', async (t) => {
  const server = await serve(t, { initialIndex: 2n ** 60n });
  const store = await openStore(t, server);
  const revision = await store.put('big/key', 'v');
  t.equal(revision, 2n ** 60n + 1n);
  const swapped = await store.atomicPut('big/key', 'v2', revision);
  t.same(swapped, { ok: true, revision: 2n ** 60n + 2n });
  t.equal((await store.list('big/')).revision, 2n ** 60n + 2n);
});

t.test('keys consul would refuse or rewrite are rejected with ERR_BAD_REQUEST before any call', async (t) => {
  const server = await serve(t);
  const store = await openStore(t, server);
  for (const key of ['', '/abs', 'a//b', 'a/./b', 'a/../b', 'a/..', ' padded', 'x\u0001y', 'enc/..%2Fetc']) {
    await t.rejects(store.put(key, 'v'), { code: 'ERR_BAD_REQUEST', message: /cannot be used/ }, JSON.stringify(key));
  }
  await t.rejects(store.list('a//'), { code: 'ERR_BAD_REQUEST' });
  t.equal(server.index, 10n, 'nothing reached consul');
  const odd = 'labels/container%3Aapp%3Dweb;k=v ü/node-1';
  await store.put(odd, 'v');
  t.equal((await store.get(odd))?.value, 'v', 'percent signs, semicolons, spaces inside and unicode are fine');
  t.same(
    (await store.list('labels/')).pairs.map((pair) => pair.key),
    [odd],
  );
});

t.test('a watch from a revision it has no baseline for asks for a resync once the prefix changed', async (t) => {
  const server = await serve(t);
  const writer = await openStore(t, server);
  const first = await writer.put('rs/a', '1');
  await writer.put('rs/b', '1');
  await writer.delete('rs/a');

  const fresh = await openStore(t, server);
  const resyncs: string[] = [];
  fresh.watch('rs/', first, { onEvent: () => t.fail('no events'), onResyncNeeded: (reason) => resyncs.push(reason) });
  await until(() => resyncs.length === 1, 'the resync');
  t.match(resyncs[0], /deletes since then cannot be known; re-list rs\//);

  const { revision, pairs } = await fresh.list('rs/');
  t.same(
    pairs.map((pair) => pair.key),
    ['rs/b'],
  );
  const events: WatchEvent[] = [];
  fresh.watch('rs/', revision, {
    onEvent: (event) => events.push(event),
    onResyncNeeded: () => t.fail('no resync after a list'),
  });
  await writer.delete('rs/b');
  await until(() => events.length === 1, 'the delete');
  t.match(events, [{ type: 'delete', key: 'rs/b' }]);
});

t.test('an agent that refuses the lease TTL gives a ConfigError naming consul.lease-ttl', async (t) => {
  const server = await serve(t, { sessionTtlMinMs: 10_000 });
  const store = await openStore(t, server, { leaseTtlMs: 2_000 });
  await t.rejects(store.put('ttl/key', 'v', { leased: true }), {
    code: 'ERR_CONFIG',
    message: /Invalid Session TTL.*consul\.lease-ttl/,
  });
  t.ok(await store.put('ttl/key', 'v'), 'unleased writes still work');
});

t.test('an ACL token is sent on every call; a missing one is a clear ERR_KV_UNAVAILABLE', async (t) => {
  const server = await serve(t, { token: 'agent-token' });
  const anonymous = await openStore(t, server);
  await t.rejects(anonymous.get('acl/key'), {
    code: 'ERR_KV_UNAVAILABLE',
    message: /403 Permission denied.*check consul\.token/,
  });
  const store = await openStore(t, server, { token: 'agent-token' });
  await store.put('acl/key', 'v', { leased: true });
  t.equal((await store.get('acl/key'))?.value, 'v');
});

t.test('status reports the consul backend, the leader and the session', async (t) => {
  const server = await serve(t);
  const store = await openStore(t, server, { leaseTtlMs: 60_000 });
  t.same(await store.status(), {
    backend: 'consul',
    healthy: true,
    detail: `${server.address}, leader 127.0.0.1:8300`,
  });
  await store.put('status/key', 'v', { leased: true });
  t.match(await store.status(), {
    backend: 'consul',
    healthy: true,
    lease: { id: server.sessionIds()[0], ttlSeconds: 60 },
  });
  await store.close();
  t.match(await store.status(), { healthy: false, detail: /closed/ });
});
