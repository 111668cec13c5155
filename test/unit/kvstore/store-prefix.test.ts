/**
 * The store prefix at start-up (src/kvstore/store-prefix.ts): `--kvstore-opt prefix` validation,
 * the old unprefixed layout refused (a cluster split otherwise) or moved with migrate-prefix —
 * unleased keys moved atomically one by one, leased ones left to expire, foreign keys untouched,
 * a key already under the prefix winning, a key rewritten during the move moved with its new
 * value, a half-done migration finished by the next — on the embedded store.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { KvStore, TxnCondition, TxnOperation, TxnResult } from '../../../src/kvstore/kvstore.js';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PrefixedKvStore } from '../../../src/kvstore/prefixed-store.js';
import { MAX_STORE_PREFIX_LENGTH, openPrefixedStore, parseStorePrefix } from '../../../src/kvstore/store-prefix.js';
import { STORE_LAYOUT_PREFIXES } from '../../../src/daemon/store-layout.js';
import type { Logger } from '../../../src/util/log.js';

const PREFIX = 'cilium/state/';
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** A fresh embedded store closed and removed when `t` ends. */
function openStore(t: Test): LocalKvStore {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-store-prefix-'));
  const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** A logger that keeps its warnings. */
function capturingLogger(): { log: Logger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const log = {
    warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ ...fields, msg }),
    info: () => undefined,
    debug: () => undefined,
  } as unknown as Logger;
  return { log, warnings };
}

/** Every key of the store, unprefixed view, with value. */
async function everything(store: KvStore): Promise<Record<string, string>> {
  return Object.fromEntries((await store.list('')).pairs.map((p) => [p.key, p.value]));
}

/** What an earlier version left: unleased cluster state, leased liveness keys, and another tool's key. */
async function seedOldLayout(store: KvStore): Promise<void> {
  await store.put('identities/v1/id/300', 'container:app=a');
  await store.put('identities/v1/labels/container:app=a', '300');
  await store.put('ipam/v1/pools/p1', '{"subnet":"198.18.44.0/24"}');
  await store.put('networks/v1/r2', '{"name":"r2"}');
  await store.put('policies/v1/repository', '{"revision":7}');
  await store.put('docker/v1/h1/endpoints/e1', '{}');
  await store.put('identities/v1/value/container:app=a/h1', '300', { leased: true });
  await store.put('ip/v1/198.18.44.2', '{"identity":300}', { leased: true });
  await store.put('nodes/v1/h1', '{}', { leased: true });
  await store.put('heartbeat/v1/h1', '2026-01-01T00:00:00Z', { leased: true });
  await store.put('other-tool/config', 'theirs');
}

const UNLEASED_OLD = [
  'docker/v1/h1/endpoints/e1',
  'identities/v1/id/300',
  'identities/v1/labels/container:app=a',
  'ipam/v1/pools/p1',
  'networks/v1/r2',
  'policies/v1/repository',
];
const LEASED_OLD = ['heartbeat/v1/h1', 'identities/v1/value/container:app=a/h1', 'ip/v1/198.18.44.2', 'nodes/v1/h1'];

t.test(
  'parseStorePrefix: printable path segments, no leading /, a trailing /, bounded, apart from the old layout',
  async (t) => {
    for (const good of ['cilium/state/', 'a/', 'cluster-1/cilium.v2/state_x~/', 'ipx/', ''])
      t.equal(parseStorePrefix(good, STORE_LAYOUT_PREFIXES), good, `accepts "${good}"`);
    t.equal(
      parseStorePrefix(`${'a/'.repeat(MAX_STORE_PREFIX_LENGTH / 2)}`, STORE_LAYOUT_PREFIXES).length,
      MAX_STORE_PREFIX_LENGTH,
      'accepts the longest',
    );
    const refusals: Array<[string, RegExp]> = [
      ['/cilium/state/', /cannot begin with '\/'/],
      ['cilium/state', /must end with '\/', e\.g\. cilium\/state\//],
      ['cilium//state/', /single '\/'/],
      ['/', /cannot begin/],
      ['cilium/../', /no '\.' or '\.\.' segment/],
      ['./', /no '\.' or '\.\.' segment/],
      ['a b/', /no spaces/],
      [' cilium/', /no spaces/],
      ['ünï/', /letters, digits/],
      ['x\n/', /letters, digits/],
      ['x%2e%2e/', /letters, digits/],
      [`${'a/'.repeat(MAX_STORE_PREFIX_LENGTH / 2)}b/`, /longer than 128 characters/],
      ['ipam/', /overlaps ipam\/v1\//],
      ['ip/', /overlaps ip\/v1\//],
      ['identities/v1/x/', /overlaps identities\/v1\//],
    ];
    for (const [bad, message] of refusals) {
      t.throws(
        () => parseStorePrefix(bad, STORE_LAYOUT_PREFIXES),
        { code: 'ERR_CONFIG', message },
        `refuses ${JSON.stringify(bad)}`,
      );
    }
    t.throws(
      () => parseStorePrefix('x\n/', STORE_LAYOUT_PREFIXES),
      { message: /prefix=x\\n\// },
      'the message escapes what it quotes',
    );
  },
);

t.test('the old layout list covers every <name>/vN/ key prefix the sources write', async (t) => {
  // A new top-level prefix is new-layout only and need not be listed; add it here if so.
  const newLayoutOnly: string[] = [];
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts'))
        for (const m of readFileSync(path, 'utf8').matchAll(/[`'"]([a-z][a-z0-9-]*\/v[0-9]+\/)/g)) found.add(m[1]!);
    }
  };
  walk(SRC);
  t.ok(found.has('identities/v1/') && found.has('ipam/v1/'), `the scan finds the layout (${[...found].join(', ')})`);
  t.same(
    [...found].filter((p) => !STORE_LAYOUT_PREFIXES.includes(p) && !newLayoutOnly.includes(p)),
    [],
    'no prefix missing',
  );
});

t.test('a fresh store: nothing to check, every key goes under the prefix', async (t) => {
  const backend = openStore(t);
  const { log, warnings } = capturingLogger();
  const { store, report } = await openPrefixedStore(backend, {
    prefix: PREFIX,
    migrate: false,
    layout: STORE_LAYOUT_PREFIXES,
    backend: '--kvstore etcd',
    log,
  });
  t.ok(store instanceof PrefixedKvStore);
  t.same(report, { legacyKeys: 0, moved: 0, left: 0 });
  await store.put('identities/v1/id/300', 'x');
  t.same(Object.keys(await everything(backend)), ['cilium/state/identities/v1/id/300']);
  t.same(warnings, []);
});

t.test('the old layout alone, without migrate-prefix: refused with what to do, nothing touched', async (t) => {
  const backend = openStore(t);
  await seedOldLayout(backend);
  const before = await everything(backend);
  const { log } = capturingLogger();
  await t.rejects(
    openPrefixedStore(backend, {
      prefix: PREFIX,
      migrate: false,
      layout: STORE_LAYOUT_PREFIXES,
      backend: '--kvstore etcd',
      log,
    }),
    {
      code: 'ERR_KV_LAYOUT',
      message: new RegExp(
        /^--kvstore etcd: the store holds 10 keys of the unprefixed layout of earlier versions /.source +
          /\(.*identities\/v1\/.*\) and none under --kvstore-opt prefix=cilium\/state\/; .*split the /.source +
          /cluster.*--kvstore-opt migrate-prefix=true.*--kvstore-opt prefix= \(empty\)/.source,
      ),
    },
  );
  t.same(await everything(backend), before, 'the store is as it was');

  // Leased keys alone count too: old nodes running with nothing allocated yet.
  const live = openStore(t);
  await live.put('nodes/v1/h2', '{}', { leased: true });
  await t.rejects(
    openPrefixedStore(live, {
      prefix: PREFIX,
      migrate: false,
      layout: STORE_LAYOUT_PREFIXES,
      backend: '--kvstore etcd',
      log,
    }),
    { code: 'ERR_KV_LAYOUT', message: /holds 1 keys .*nodes\/v1\// },
  );
});

t.test('prefix= (empty) keeps the old layout: the backend as it is, no check', async (t) => {
  const backend = openStore(t);
  await seedOldLayout(backend);
  const { log } = capturingLogger();
  const { store } = await openPrefixedStore(backend, {
    prefix: '',
    migrate: false,
    layout: STORE_LAYOUT_PREFIXES,
    backend: '--kvstore etcd',
    log,
  });
  t.equal(store, backend);
  t.equal((await store.get('identities/v1/id/300'))?.value, 'container:app=a');
});

t.test(
  'migrate-prefix moves the unleased keys, leaves leased and foreign ones; the next start accepts the store',
  async (t) => {
    const backend = openStore(t);
    await seedOldLayout(backend);
    const before = await everything(backend);
    const { log, warnings } = capturingLogger();
    const { store, report } = await openPrefixedStore(backend, {
      prefix: PREFIX,
      migrate: true,
      layout: STORE_LAYOUT_PREFIXES,
      backend: '--kvstore etcd',
      log,
    });
    t.same(report, { legacyKeys: 10, moved: 6, left: 4 });
    const after = await everything(backend);
    for (const key of UNLEASED_OLD) {
      t.equal(after[PREFIX + key], before[key], `${key} moved with its value`);
      t.notOk(key in after, `${key} gone from the old place`);
    }
    for (const key of LEASED_OLD) {
      t.equal(after[key], before[key], `${key} (leased) left to expire with its lease`);
      t.notOk(PREFIX + key in after, `${key} not copied`);
    }
    t.equal(after['other-tool/config'], 'theirs', "another tool's key untouched");
    t.equal(Object.keys(after).length, Object.keys(before).length, 'nothing lost, nothing duplicated');
    t.equal((await store.get('identities/v1/id/300'))?.value, 'container:app=a', 'the daemon reads it where it was');
    t.match(
      warnings,
      [{ moved: 6, leasedLeft: 4, notMoved: 0, msg: /moved the keys of the unprefixed layout/ }],
      'logged',
    );

    // The other nodes then start without migrate-prefix: the prefix has keys, the leased leftovers are only reported.
    const next = capturingLogger();
    const again = await openPrefixedStore(backend, {
      prefix: PREFIX,
      migrate: false,
      layout: STORE_LAYOUT_PREFIXES,
      backend: '--kvstore etcd',
      log: next.log,
    });
    t.same(again.report, { legacyKeys: 4, moved: 0, left: 4 });
    t.match(next.warnings, [{ legacyKeys: 4, leased: 4, msg: /remain next to the prefixed ones/ }]);
  },
);

t.test(
  'migrate-prefix: many keys in batches, a key already under the prefix wins, a half-done migration is finished',
  async (t) => {
    const backend = openStore(t);
    for (let i = 0; i < 40; i++) await backend.put(`ipam/v1/addresses/p1/198.18.44.${i}`, `{"n":${i}}`);
    // A half-done earlier run: moved already (old key gone) ...
    await backend.put(`${PREFIX}ipam/v1/pools/p1`, 'moved before');
    // ... and a key under the prefix that an old one must not overwrite.
    await backend.put(`${PREFIX}networks/v1/r2`, 'new');
    await backend.put('networks/v1/r2', 'old');
    const { log } = capturingLogger();
    const { report } = await openPrefixedStore(backend, {
      prefix: PREFIX,
      migrate: true,
      layout: STORE_LAYOUT_PREFIXES,
      backend: '--kvstore local',
      log,
    });
    t.same(report, { legacyKeys: 41, moved: 40, left: 1 });
    const after = await everything(backend);
    t.equal(
      Object.keys(after).filter((k) => k.startsWith(`${PREFIX}ipam/v1/addresses/`)).length,
      40,
      'every address moved',
    );
    t.equal(after[`${PREFIX}ipam/v1/addresses/p1/198.18.44.39`], '{"n":39}');
    t.equal(after[`${PREFIX}networks/v1/r2`], 'new', 'the key under the prefix kept its value');
    t.equal(after['networks/v1/r2'], 'old', 'the old one stays, reported');
    t.equal(after[`${PREFIX}ipam/v1/pools/p1`], 'moved before');
  },
);

t.test('migrate-prefix: a key rewritten during the move is moved with its new value', async (t) => {
  const inner = openStore(t);
  await inner.put('policies/v1/repository', '{"revision":7}');
  await inner.put('identities/v1/id/300', 'container:app=a');
  let interfered = false;
  // An old daemon writes between the listing and the first move transaction.
  const backend = new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'transaction') {
        return async (conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> => {
          if (!interfered) {
            interfered = true;
            await target.put('policies/v1/repository', '{"revision":8}');
          }
          return target.transaction(conditions, operations);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const { log } = capturingLogger();
  const { report } = await openPrefixedStore(backend, {
    prefix: PREFIX,
    migrate: true,
    layout: STORE_LAYOUT_PREFIXES,
    backend: '--kvstore local',
    log,
  });
  t.ok(interfered);
  t.same(report, { legacyKeys: 2, moved: 2, left: 0 });
  t.same(
    await everything(inner),
    { [`${PREFIX}identities/v1/id/300`]: 'container:app=a', [`${PREFIX}policies/v1/repository`]: '{"revision":8}' },
    'the newer value moved; no old key left',
  );
});
