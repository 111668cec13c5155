/**
 * `/v1/kvstore` over a real embedded store, through the typed client: get (one key, a prefix,
 * bounded), set, delete (one key, a prefix, never everything), and the input bounds.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import {
  boundedEntries,
  kvstoreRoutes,
  MAX_KVSTORE_ENTRIES,
  MAX_KVSTORE_KEY_BYTES,
  MAX_KVSTORE_VALUE_BYTES,
} from '../../../src/api/kvstore-routes.js';
import { rawRequest, startApi } from './fixtures/api-harness.js';

async function setup(t: Parameters<typeof startApi>[0]) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-kvroutes-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = await startApi(t, { routes: [kvstoreRoutes(store)] });
  return { store, ...api };
}

t.test('get: one key with its revisions, or every key under a prefix in key order', async (t) => {
  const { store, client } = await setup(t);
  const revision = await store.put('identities/v1/id/40001', 'container:app=web');
  await store.put('identities/v1/id/40002', 'container:app=db', { leased: true });
  await store.put('ip/v1/198.18.0.2', '{"identity":40001}');

  const one = await client.kvstoreGet('identities/v1/id/40001');
  t.same(one, {
    entries: [
      {
        key: 'identities/v1/id/40001',
        value: 'container:app=web',
        createRevision: String(revision),
        modRevision: String(revision),
      },
    ],
    total: 1,
    truncated: false,
  });

  const prefix = await client.kvstoreGet('identities/v1/', { recursive: true });
  t.same(
    prefix.entries.map((e) => [e.key, e.value]),
    [
      ['identities/v1/id/40001', 'container:app=web'],
      ['identities/v1/id/40002', 'container:app=db'],
    ],
  );
  t.ok(prefix.entries[1]!.lease, 'a leased key shows its lease');
  t.same((await client.kvstoreGet('', { recursive: true })).total, 3, 'an empty prefix lists everything');
  t.same(await client.kvstoreGet('nothing/', { recursive: true }), { entries: [], total: 0, truncated: false });
  // Without recursive the key is one key, not a prefix.
  await t.rejects(client.kvstoreGet('identities/v1/'), {
    kind: 'NotFound',
    code: 'ERR_NOT_FOUND',
    message: /key "identities\/v1\/" not found/,
  });
});

t.test('get --recursive is bounded: ?limit and the reply byte cap', async (t) => {
  const { store, client } = await setup(t);
  for (let i = 0; i < 5; i++) await store.put(`k/${i}`, 'v'.repeat(100));
  const limited = await client.kvstoreGet('k/', { recursive: true, limit: 2 });
  t.same(
    limited.entries.map((e) => e.key),
    ['k/0', 'k/1'],
  );
  t.equal(limited.total, 5);
  t.equal(limited.truncated, true);
  await t.rejects(client.kvstoreGet('k/', { recursive: true, limit: MAX_KVSTORE_ENTRIES + 1 }), {
    kind: 'BadRequest',
    message: /limit must be a number of keys from 1 to 10000/,
  });
  await t.rejects(client.kvstoreGet('k/', { recursive: true, limit: 0 }), {
    kind: 'BadRequest',
    message: /limit must be/,
  });

  const pairs = (await store.list('k/')).pairs;
  const capped = boundedEntries(pairs, 100, 350);
  t.same(
    capped.entries.map((e) => e.key),
    ['k/0', 'k/1', 'k/2'],
    '3 x 103 bytes fit in 350, the 4th does not',
  );
  t.equal(capped.truncated, true);
  t.equal(boundedEntries(pairs, 100, 10).entries.length, 1, 'one key is always sent, however large');
});

t.test('set writes an unleased key and returns its revision; delete removes one key or a prefix', async (t) => {
  const { store, client } = await setup(t);
  const set = await client.kvstoreSet('operator/note', 'hello');
  const stored = await store.get('operator/note');
  t.same(set, { key: 'operator/note', revision: String(stored!.modRevision) });
  t.equal(stored!.value, 'hello');
  t.equal(stored!.lease, undefined, 'not leased: it outlives the daemon');

  await store.put('operator/a/1', 'x');
  await store.put('operator/a/2', 'y');
  await store.put('operator/b', 'z');
  t.same(await client.kvstoreDelete('operator/note'), { deleted: 1 });
  t.same(await client.kvstoreDelete('operator/note'), { deleted: 0 }, 'deleting a missing key is not an error');
  t.same(
    await client.kvstoreDelete('operator/a/'),
    { deleted: 0 },
    'without recursive a prefix is just a (missing) key',
  );
  t.same(await client.kvstoreDelete('operator/a/', { recursive: true }), { deleted: 2 });
  t.same(
    (await store.list('operator/')).pairs.map((p) => p.key),
    ['operator/b'],
  );
});

t.test('never the whole store, and bounded, well-formed input', async (t) => {
  const { store, client, socketPath } = await setup(t);
  await store.put('keep/me', '1');
  await t.rejects(client.kvstoreDelete('', { recursive: true }), { kind: 'BadRequest', message: /empty key/ });
  t.equal((await store.list('')).pairs.length, 1, 'nothing deleted');
  await t.rejects(client.kvstoreSet('', 'v'), { kind: 'BadRequest', message: /empty key/ });
  await t.rejects(client.kvstoreGet(''), { kind: 'BadRequest', message: /empty key/ });
  await t.rejects(client.kvstoreSet('a\nb', 'v'), { kind: 'BadRequest', message: /contains control characters/ });
  await t.rejects(client.kvstoreGet('x'.repeat(MAX_KVSTORE_KEY_BYTES + 1)), {
    kind: 'BadRequest',
    message: /longer than 4096 bytes/,
  });
  await t.rejects(client.kvstoreSet('big', 'v'.repeat(MAX_KVSTORE_VALUE_BYTES + 1)), {
    kind: 'BadRequest',
    message: /larger than 524288 bytes/,
  });
  t.equal(await store.get('big'), undefined);

  const badBodies: Array<[string, RegExp]> = [
    ['[]', /must be a JSON object/],
    ['{"key": "a"}', /value must be a string/],
    ['{"key": 5, "value": "v"}', /key must be given/],
    ['{"key": "a", "value": "v", "leased": true}', /unknown field "leased"/],
  ];
  for (const [body, message] of badBodies) {
    const reply = await rawRequest(socketPath, 'PUT', '/v1/kvstore', body);
    t.equal(reply.status, 400, body);
    t.match(JSON.parse(reply.text).error.message, message, body);
  }
  const twice = await rawRequest(socketPath, 'GET', '/v1/kvstore?key=a&key=b');
  t.equal(twice.status, 400);
  t.match(JSON.parse(twice.text).error.message, /"key" must be given once/);
  const notBool = await rawRequest(socketPath, 'GET', '/v1/kvstore?key=a&recursive=yes');
  t.equal(notBool.status, 400);
  t.match(JSON.parse(notBool.text).error.message, /"recursive" must be true or false/);
});

t.test('an unreachable store is a 503 with the store error', async (t) => {
  const { store, client } = await setup(t);
  await store.close();
  await t.rejects(client.kvstoreGet('a'), { kind: 'Unavailable', code: 'ERR_KV_UNAVAILABLE' });
});
