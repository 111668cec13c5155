/**
 * The in-repo Consul API server against Consul's documented HTTP API, so the consul backend's
 * tests run against something trustworthy: CAS and delete-CAS semantics, acquire/release, the
 * index rules (monotonic, prefix index moved by deletes), blocking queries waking and timing out,
 * TTL sessions deleting or releasing their keys, lock-delay, transactions, ACL tokens, outages.
 */
import t, { type Test } from 'tap';
import { ConsulApiServer, type ConsulApiServerOptions } from '../../support/consul-api-server.js';

/** A server closed when `t` ends. */
async function serve(t: Test, options: ConsulApiServerOptions = {}): Promise<ConsulApiServer> {
  const server = await ConsulApiServer.listen(options);
  t.teardown(() => server.close());
  return server;
}

interface Reply {
  status: number;
  index: bigint | undefined;
  text: string;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: Consul's JSON replies, read field by field by the assertions.
  json(): any;
}

/** One HTTP call; the body is sent as-is (strings) or as JSON (anything else). */
async function call(
  server: ConsulApiServer,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const response = await fetch(`${server.address}${path}`, {
    method,
    headers,
    redirect: 'manual',
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  const index = response.headers.get('x-consul-index');
  return {
    status: response.status,
    index: index === null ? undefined : BigInt(index),
    text,
    headers: response.headers,
    // Exact uint64 indexes, the way the consul backend parses them.
    json: () =>
      JSON.parse(text, (key, value: unknown, context?: { source?: string }) =>
        /Index$/.test(key) && typeof value === 'number' ? BigInt(context!.source!) : value,
      ),
  };
}

const put = (server: ConsulApiServer, key: string, value: string, query = '') =>
  call(server, 'PUT', `/v1/kv/${key}${query}`, value);
const get = (server: ConsulApiServer, key: string, query = '') => call(server, 'GET', `/v1/kv/${key}${query}`);

async function createSession(server: ConsulApiServer, body: Record<string, unknown>): Promise<string> {
  const reply = await call(server, 'PUT', '/v1/session/create', body);
  if (reply.status !== 200) throw new Error(`session create: ${reply.status} ${reply.text}`);
  return (reply.json() as { ID: string }).ID;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

t.test('PUT stores the raw body; GET returns it base64 with its indexes and X-Consul-Index', async (t) => {
  const server = await serve(t);
  const written = await put(server, 'app/config', 'hello ✓');
  t.same([written.status, written.text], [200, 'true'], 'a plain PUT answers true');

  const read = await get(server, 'app/config');
  t.equal(read.status, 200);
  const [entry] = read.json();
  t.match(entry, { Key: 'app/config', Flags: 0n, LockIndex: 0n, CreateIndex: BigInt, ModifyIndex: BigInt });
  t.equal(Buffer.from(entry.Value, 'base64').toString('utf8'), 'hello ✓', 'Value is the base64 of the raw body');
  t.equal(entry.Session, undefined, 'no Session field on an unlocked key');
  t.equal(read.index, entry.ModifyIndex, "a single key's X-Consul-Index is its ModifyIndex");
  t.equal(read.headers.get('x-consul-knownleader'), 'true');

  const raw = await get(server, 'app/config', '?raw');
  t.equal(raw.text, 'hello ✓', '?raw returns the bare value');

  await put(server, 'app/empty', '');
  t.equal((await get(server, 'app/empty')).json()[0].Value, null, 'an empty value reads as null');

  const missing = await get(server, 'app/missing');
  t.equal(missing.status, 404, 'a missing key is a 404');
  t.ok(missing.index !== undefined && missing.index >= entry.ModifyIndex, 'with X-Consul-Index (the KV table index)');

  t.equal((await get(server, '')).status, 400, 'GET without a key name (and without ?recurse) is a 400');
  t.equal((await put(server, '', 'x')).status, 400, 'PUT without a key name is a 400');
  t.equal((await get(server, 'a//b')).status, 301, 'a non-canonical path is redirected, as by Go’s ServeMux');
});

t.test('indexes: every write gets a higher one; CreateIndex stays; an identical rewrite changes nothing', async (t) => {
  const server = await serve(t);
  const indexes: bigint[] = [];
  const modifyIndex = async (key: string) => (await get(server, key)).json()[0].ModifyIndex as bigint;
  await put(server, 'i/a', '1');
  indexes.push(await modifyIndex('i/a'));
  await put(server, 'i/b', '1');
  indexes.push(await modifyIndex('i/b'));
  await put(server, 'i/a', '2');
  indexes.push(await modifyIndex('i/a'));
  for (let i = 1; i < indexes.length; i++) t.ok(indexes[i]! > indexes[i - 1]!, `write ${i} is after write ${i - 1}`);
  t.equal((await get(server, 'i/a')).json()[0].CreateIndex, indexes[0], 'CreateIndex kept across updates');

  await put(server, 'i/a', '2');
  t.equal(await modifyIndex('i/a'), indexes[2], 'writing the same value again keeps the ModifyIndex (kvsSetTxn)');
  t.ok(server.index > indexes[2]!, 'but the raft index moved');
});

t.test(
  'PUT ?cas: 0 is create-only, N must equal the ModifyIndex; cas, acquire and release do not combine',
  async (t) => {
    const server = await serve(t);
    t.equal((await put(server, 'c/k', 'v1', '?cas=0')).text, 'true', 'cas=0 creates a missing key');
    t.equal((await put(server, 'c/k', 'v2', '?cas=0')).text, 'false', 'cas=0 fails once the key exists');
    const index = (await get(server, 'c/k')).json()[0].ModifyIndex as bigint;
    t.equal((await put(server, 'c/k', 'v2', `?cas=${index + 1n}`)).text, 'false', 'a wrong index fails');
    t.equal((await put(server, 'c/k', 'v2', `?cas=${index}`)).text, 'true', 'the current index succeeds');
    t.equal((await put(server, 'c/k', 'v3', `?cas=${index}`)).text, 'false', 'the old index is now stale');
    t.equal((await put(server, 'c/missing', 'v', '?cas=5')).text, 'false', 'cas=N on a missing key fails');
    t.equal(Buffer.from((await get(server, 'c/k')).json()[0].Value, 'base64').toString(), 'v2');

    const conflicting = await put(server, 'c/k', 'x', '?cas=0&acquire=abc');
    t.equal(conflicting.status, 400, 'cas with acquire is rejected');
    t.match(conflicting.text, /Conflicting flags/);
  },
);

t.test('DELETE: plain, ?cas (a missing key counts as deleted) and ?recurse', async (t) => {
  const server = await serve(t);
  await put(server, 'd/a', 'v');
  const index = (await get(server, 'd/a')).json()[0].ModifyIndex as bigint;
  t.equal(
    (await call(server, 'DELETE', `/v1/kv/d/a?cas=${index - 1n}`)).text,
    'false',
    'a stale index does not delete',
  );
  t.equal((await get(server, 'd/a')).status, 200);
  t.equal((await call(server, 'DELETE', `/v1/kv/d/a?cas=${index}`)).text, 'true', 'the current index deletes');
  t.equal((await get(server, 'd/a')).status, 404);
  t.equal(
    (await call(server, 'DELETE', '/v1/kv/d/a?cas=1')).text,
    'true',
    'DELETE ?cas of a missing key answers true (kvsDeleteCASTxn)',
  );
  t.equal((await call(server, 'DELETE', '/v1/kv/d/never')).text, 'true', 'a plain DELETE always answers true');

  for (const key of ['d/t/1', 'd/t/2/x', 'd/t2', 'd/u']) await put(server, key, 'v');
  t.equal((await call(server, 'DELETE', '/v1/kv/d/t/?recurse')).text, 'true');
  t.same((await call(server, 'GET', '/v1/kv/d/?keys')).json(), ['d/t2', 'd/u'], 'only the keys under d/t/ went');
  t.equal((await call(server, 'DELETE', '/v1/kv/d/u?recurse&cas=1')).status, 400, 'recurse and cas do not combine');
});

t.test('?recurse and ?keys list a string prefix, sorted, with the prefix index; deletes move it forward', async (t) => {
  const server = await serve(t);
  for (const key of ['p/b', 'p/a/2', 'p/a/1', 'p/a1', 'q/x']) await put(server, key, key);
  const listed = await get(server, 'p/a', '?recurse');
  t.same(
    listed.json().map((entry: { Key: string }) => entry.Key),
    ['p/a/1', 'p/a/2', 'p/a1'],
    'a string prefix, not a path: p/a matches p/a1 too',
  );
  const newest = (await get(server, 'p/a1')).json()[0].ModifyIndex as bigint;
  t.equal(listed.index, newest, "the list's index is the highest ModifyIndex under the prefix");
  t.ok(server.index > newest, 'not the global index (q/x was written later)');

  t.same(
    (await get(server, 'p/', '?keys&separator=/')).json(),
    ['p/a/', 'p/a1', 'p/b'],
    '?keys with a separator folds sub-folders',
  );
  t.same((await get(server, '', '?keys')).json(), ['p/a/1', 'p/a/2', 'p/a1', 'p/b', 'q/x'], 'the root lists every key');

  await call(server, 'DELETE', '/v1/kv/p/a/2');
  const afterDelete = await get(server, 'p/a', '?recurse');
  t.ok(afterDelete.index! > newest, 'a delete under the prefix moves its index forward (tombstone)');
  t.equal(afterDelete.index, server.index);

  const empty = await get(server, 'nothing/', '?recurse');
  t.equal(empty.status, 404, 'an empty prefix is a 404');
  t.ok(empty.index !== undefined && empty.index > 0n, 'still with an index (the KV table index)');
});

t.test('a blocking query waits for a change under its prefix, then answers with the new index', async (t) => {
  const server = await serve(t);
  await put(server, 'b/x', '1');
  const first = await get(server, 'b/', '?recurse');
  const started = Date.now();
  const blocked = get(server, 'b/', `?recurse&index=${first.index}&wait=5s`);
  let answered = false;
  void blocked.then(() => (answered = true));
  await sleep(100);
  t.notOk(answered, 'still waiting while nothing changed');
  await put(server, 'elsewhere/y', '1');
  await sleep(100);
  t.notOk(answered, 'a write outside the prefix does not answer it');
  await put(server, 'b/y', '2');
  const reply = await blocked;
  t.ok(Date.now() - started < 2_000, 'answered at the change, long before the wait ran out');
  t.ok(reply.index! > first.index!, 'with a higher index');
  t.same(
    reply.json().map((e: { Key: string }) => e.Key),
    ['b/x', 'b/y'],
  );

  const deleted = get(server, 'b/', `?recurse&index=${reply.index}&wait=5s`);
  await sleep(50);
  await call(server, 'DELETE', '/v1/kv/b/x');
  const afterDelete = await deleted;
  t.ok(afterDelete.index! > reply.index!, 'a delete wakes it too');
  t.same(
    afterDelete.json().map((e: { Key: string }) => e.Key),
    ['b/y'],
  );

  const stale = await get(server, 'b/', '?recurse&index=1&wait=5s');
  t.equal(stale.index, afterDelete.index, 'an index already passed answers at once');
});

t.test('a blocking query times out after wait (plus at most wait/16 jitter) with the same index', async (t) => {
  const server = await serve(t);
  await put(server, 'w/x', '1');
  const { index } = await get(server, 'w/x');
  const started = Date.now();
  const reply = await get(server, 'w/x', `?index=${index}&wait=300ms`);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 290 && elapsed < 300 * (1 + 1 / 16) + 150, `answered after the wait (${elapsed} ms)`);
  t.equal(reply.status, 200);
  t.equal(reply.index, index, 'the index did not change');
  t.equal((await get(server, 'w/x', `?index=${index}&wait=bogus`)).status, 400, 'a malformed wait is a 400');
});

t.test('sessions: create validates TTL and Behavior; renew, info and destroy', async (t) => {
  const server = await serve(t);
  const tooShort = await call(server, 'PUT', '/v1/session/create', { TTL: '5s' });
  t.equal(tooShort.status, 500, 'a TTL under session_ttl_min is refused (an RPC error, so 500)');
  t.match(tooShort.text, /Invalid Session TTL '5000000000', must be between \[10s=24h0m0s\]/);
  t.equal((await call(server, 'PUT', '/v1/session/create', { TTL: '25h' })).status, 500, 'over 24h is refused');
  t.equal((await call(server, 'PUT', '/v1/session/create', { TTL: 'soon' })).status, 400, 'a malformed TTL is a 400');
  t.equal((await call(server, 'PUT', '/v1/session/create', { Behavior: 'explode' })).status, 500);

  const id = await createSession(server, { Name: 'test', TTL: '15s', Behavior: 'delete', LockDelay: '0s' });
  const info = await call(server, 'GET', `/v1/session/info/${id}`);
  t.match(info.json(), [{ ID: id, Name: 'test', TTL: '15s', Behavior: 'delete', LockDelay: 0n, Node: 'consul-test' }]);
  t.ok(info.index !== undefined);
  const renewed = await call(server, 'PUT', `/v1/session/renew/${id}`);
  t.equal(renewed.status, 200);
  t.match(renewed.json(), [{ ID: id, TTL: '15s' }], 'renew answers with the session');
  t.equal((await call(server, 'GET', `/v1/session/renew/${id}`)).status, 405, 'renew is a PUT');

  t.equal((await call(server, 'PUT', `/v1/session/destroy/${id}`)).text, 'true');
  t.same((await call(server, 'GET', `/v1/session/info/${id}`)).json(), [], 'a destroyed session has no info');
  const gone = await call(server, 'PUT', `/v1/session/renew/${id}`);
  t.equal(gone.status, 404, 'renewing a destroyed session is a 404');
  t.match(gone.text, /Session id '.*' not found/);

  const defaults = await createSession(server, {});
  t.match((await call(server, 'GET', `/v1/session/info/${defaults}`)).json(), [
    { Behavior: 'release', LockDelay: 15_000_000_000n, TTL: '' },
  ]);
});

t.test('acquire binds a key to a session; only the holder releases; a plain PUT keeps the holder', async (t) => {
  const server = await serve(t);
  const owner = await createSession(server, { TTL: '30s', Behavior: 'delete' });
  const other = await createSession(server, { TTL: '30s', Behavior: 'delete' });

  t.equal((await put(server, 'l/k', 'mine', `?acquire=${owner}`)).text, 'true', 'acquire of a missing key creates it');
  t.match((await get(server, 'l/k')).json(), [{ Session: owner, LockIndex: 1n }]);
  t.equal((await put(server, 'l/k', 'again', `?acquire=${owner}`)).text, 'true', 'the holder may acquire again');
  t.match((await get(server, 'l/k')).json(), [{ Session: owner, LockIndex: 1n }], 'without a new LockIndex');
  t.equal((await put(server, 'l/k', 'theirs', `?acquire=${other}`)).text, 'false', 'another session cannot');
  t.equal((await put(server, 'l/k', 'x', `?release=${other}`)).text, 'false', 'nor release it');

  await put(server, 'l/k', 'plain write');
  t.match((await get(server, 'l/k')).json(), [{ Session: owner }], 'a plain PUT does not unbind the key');
  await put(server, 'l/plain', 'v');
  const withSession = await call(server, 'PUT', `/v1/kv/l/plain`, 'v2', {});
  t.equal(withSession.text, 'true');
  t.equal((await get(server, 'l/plain')).json()[0].Session, undefined, 'and a plain PUT never binds one');

  t.equal((await put(server, 'l/k', 'released', `?release=${owner}`)).text, 'true', 'the holder releases');
  const released = (await get(server, 'l/k')).json()[0];
  t.equal(released.Session, undefined, 'no holder any more');
  t.equal(Buffer.from(released.Value, 'base64').toString(), 'released', 'release writes the body too');

  const invalid = await put(server, 'l/k', 'v', '?acquire=00000000-0000-0000-0000-000000000000');
  t.equal(invalid.status, 500, 'acquire with an unknown session is an error');
  t.match(invalid.text, /invalid session/);
});

t.test('invalidating a delete-behaviour session deletes every key it holds (ephemeral keys)', async (t) => {
  const server = await serve(t);
  const session = await createSession(server, { TTL: '30s', Behavior: 'delete', LockDelay: '0s' });
  await put(server, 'e/held1', 'v', `?acquire=${session}`);
  await put(server, 'e/held2', 'v', `?acquire=${session}`);
  await put(server, 'e/plain', 'v');
  const before = await get(server, 'e/', '?recurse');
  const watching = get(server, 'e/', `?recurse&index=${before.index}&wait=5s`);

  t.ok(server.expireSession(session), 'expireSession knows the session');
  const woken = await watching;
  t.same(
    woken.json().map((e: { Key: string }) => e.Key),
    ['e/plain'],
    'both held keys were deleted',
  );
  t.ok(woken.index! > before.index!, 'at a new index, seen by a blocking query');
  t.equal((await call(server, 'PUT', `/v1/session/renew/${session}`)).status, 404, 'the session is gone');
  t.notOk(server.expireSession(session), 'expiring it twice is a no-op');

  const next = await createSession(server, { TTL: '30s', Behavior: 'delete' });
  t.equal(
    (await put(server, 'e/held1', 'v', `?acquire=${next}`)).text,
    'true',
    'LockDelay 0s: free to acquire at once',
  );
});

t.test('invalidating a release-behaviour session releases its keys and starts the lock-delay', async (t) => {
  const server = await serve(t);
  const session = await createSession(server, { TTL: '30s', Behavior: 'release' });
  await put(server, 'r/held', 'v', `?acquire=${session}`);
  const heldIndex = (await get(server, 'r/held')).json()[0].ModifyIndex as bigint;
  t.equal((await call(server, 'PUT', `/v1/session/destroy/${session}`)).text, 'true');
  const after = (await get(server, 'r/held')).json()[0];
  t.equal(after.Session, undefined, 'released, not deleted');
  t.ok(after.ModifyIndex > heldIndex, 'the release is a write');

  const other = await createSession(server, { TTL: '30s' });
  t.equal(
    (await put(server, 'r/held', 'v', `?acquire=${other}`)).text,
    'false',
    'the default 15 s lock-delay refuses acquire',
  );
  const txn = await call(server, 'PUT', '/v1/txn', [
    { KV: { Verb: 'lock', Key: 'r/held', Value: '', Session: other } },
  ]);
  t.equal(txn.status, 409);
  t.match(txn.json(), { Errors: [{ OpIndex: 0, What: /due to lock delay/ }] });
});

t.test('a TTL session expires after twice its TTL without renewal, and lives while renewed', async (t) => {
  const server = await serve(t, { sessionTtlMinMs: 100 });
  const renewed = await createSession(server, { TTL: '300ms', Behavior: 'delete', LockDelay: '0s' });
  const abandoned = await createSession(server, { TTL: '300ms', Behavior: 'delete', LockDelay: '0s' });
  await put(server, 'ttl/renewed', 'v', `?acquire=${renewed}`);
  await put(server, 'ttl/abandoned', 'v', `?acquire=${abandoned}`);
  const renewer = setInterval(() => void call(server, 'PUT', `/v1/session/renew/${renewed}`).catch(() => {}), 100);
  t.teardown(() => clearInterval(renewer));

  await sleep(400);
  t.equal(
    (await get(server, 'ttl/abandoned')).status,
    200,
    'past the TTL but within 2x TTL: still there (TTL is a lower bound)',
  );
  await sleep(400);
  t.equal((await get(server, 'ttl/abandoned')).status, 404, 'gone after 2x TTL');
  t.equal((await get(server, 'ttl/renewed')).status, 200, 'the renewed session kept its key');
  t.same(server.sessionIds(), [renewed]);
});

t.test('/v1/txn is all-or-nothing and reports each failed operation', async (t) => {
  const server = await serve(t);
  await put(server, 'x/a', 'a');
  const aIndex = (await get(server, 'x/a')).json()[0].ModifyIndex as bigint;
  const b64 = (text: string) => Buffer.from(text).toString('base64');

  const rolledBack = await call(server, 'PUT', '/v1/txn', [
    { KV: { Verb: 'set', Key: 'x/new', Value: b64('n') } },
    { KV: { Verb: 'check-index', Key: 'x/a', Index: Number(aIndex) + 1 } },
    { KV: { Verb: 'cas', Key: 'x/a', Value: b64('z'), Index: 0 } },
  ]);
  t.equal(rolledBack.status, 409);
  t.match(rolledBack.json(), { Results: null, Errors: [{ OpIndex: 1 }, { OpIndex: 2, What: /index is stale/ }] });
  t.equal((await get(server, 'x/new')).status, 404, 'the set in the failed transaction was rolled back');

  const committed = await call(server, 'PUT', '/v1/txn', [
    { KV: { Verb: 'check-index', Key: 'x/a', Index: Number(aIndex) } },
    { KV: { Verb: 'set', Key: 'x/a', Value: b64('a2') } },
    { KV: { Verb: 'cas', Key: 'x/b', Value: b64('b'), Index: 0 } },
    { KV: { Verb: 'get-tree', Key: 'x/' } },
  ]);
  t.equal(committed.status, 200);
  const { Results, Errors } = committed.json();
  t.equal(Errors, null);
  t.equal(Results[1].KV.Value, null, 'write results carry no value');
  t.equal(Results[1].KV.ModifyIndex, Results[2].KV.ModifyIndex, 'one index for the whole transaction');
  t.ok(Results[1].KV.ModifyIndex > aIndex);
  t.same(
    Results.slice(3).map((r: { KV: { Key: string; Value: string } }) => [
      r.KV.Key,
      Buffer.from(r.KV.Value, 'base64').toString(),
    ]),
    [
      ['x/a', 'a2'],
      ['x/b', 'b'],
    ],
    'get-tree sees the writes before it',
  );

  const deleted = await call(server, 'PUT', '/v1/txn', [
    { KV: { Verb: 'get', Key: 'x/a' } },
    { KV: { Verb: 'delete', Key: 'x/a' } },
  ]);
  t.equal(deleted.status, 200);
  t.equal(deleted.json().Results.length, 1, 'deletes add no result');
  const missing = await call(server, 'PUT', '/v1/txn', [
    { KV: { Verb: 'get', Key: 'x/a' } },
    { KV: { Verb: 'delete', Key: 'x/a' } },
  ]);
  t.match(
    missing.json(),
    { Errors: [{ OpIndex: 0, What: /doesn't exist/ }] },
    'get of a missing key fails the transaction',
  );
});

t.test('an ACL token, when configured, is required on everything but /v1/status', async (t) => {
  const server = await serve(t, { token: 's3cret' });
  const anonymous = await put(server, 'acl/k', 'v');
  t.same([anonymous.status, anonymous.text], [403, 'Permission denied']);
  const wrong = await call(server, 'GET', '/v1/kv/acl/k', undefined, { 'X-Consul-Token': 'nope' });
  t.same([wrong.status, wrong.text], [403, 'ACL not found']);
  t.equal((await call(server, 'PUT', '/v1/kv/acl/k', 'v', { 'X-Consul-Token': 's3cret' })).text, 'true');
  t.equal((await call(server, 'GET', '/v1/kv/acl/k', undefined, { Authorization: 'Bearer s3cret' })).status, 200);
  t.equal((await call(server, 'GET', '/v1/kv/acl/k?token=s3cret')).status, 200);
  t.equal((await call(server, 'PUT', '/v1/session/create', {})).status, 403, 'sessions too');
  const leader = await call(server, 'GET', '/v1/status/leader');
  t.same([leader.status, leader.json()], [200, '127.0.0.1:8300'], 'status needs no token');
});

t.test(
  'stop() is an outage on the same port: connections refused, blocked queries cut; start() recovers with state',
  async (t) => {
    const server = await serve(t);
    await put(server, 'o/k', 'kept');
    const { index } = await get(server, 'o/k');
    const blocked = get(server, 'o/k', `?index=${index}&wait=30s`);
    await sleep(50);
    const port = server.port;
    await server.stop();
    await t.rejects(blocked, 'the pending blocking query fails');
    await t.rejects(
      fetch(`${server.address}/v1/status/leader`),
      { cause: { code: 'ECONNREFUSED' } },
      'new connections are refused',
    );
    await server.start();
    t.equal(server.port, port, 'same port');
    t.equal((await get(server, 'o/k', '?raw')).text, 'kept', 'state survived');
  },
);

t.test('indexes beyond 2^53 are written exactly', async (t) => {
  const server = await serve(t, { initialIndex: 2n ** 60n });
  await put(server, 'big/k', 'v');
  const reply = await get(server, 'big/k');
  t.match(reply.text, `"ModifyIndex":${2n ** 60n + 1n}`, 'the raw JSON number is exact');
  t.equal(reply.index, 2n ** 60n + 1n);
});
