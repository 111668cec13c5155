/**
 * `cilium kvstore get|set|delete` as a child process against the real ApiServer over a real
 * embedded store: Cilium's `key => value` lines (control characters escaped), `-o json`, the
 * value given either way, and errors as one line with exit code 1.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { kvstoreRoutes } from '../../../src/api/kvstore-routes.js';
import type { KvstoreGetModel } from '../../../src/api/models.js';
import { renderKvstoreEntries } from '../../../src/cli/kvstore-commands.js';
import { startApi } from '../api/fixtures/api-harness.js';
import { runCli } from './fixtures/run-cli.js';

async function setup(t: Parameters<typeof startApi>[0]) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-kvcli-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = await startApi(t, { routes: [kvstoreRoutes(store)] });
  return { store, ...api };
}

t.test('key => value lines, escaped: a value cannot forge a line or reach the terminal', async (t) => {
  const model: KvstoreGetModel = {
    entries: [
      { key: 'k/1', value: 'v1', createRevision: '1', modRevision: '1' },
      { key: 'k/2', value: 'x\ny\x1b[2J\u009b\\', createRevision: '2', modRevision: '2' },
    ],
    total: 2,
    truncated: false,
  };
  t.equal(renderKvstoreEntries(model), 'k/1 => v1\nk/2 => x\\ny\\x1b[2J\\x9b\\\\\n');
});

t.test('set, get --recursive, get -o json, delete --recursive through the CLI', async (t) => {
  const { store, host } = await setup(t);
  const set = await runCli(['--host', host, 'kvstore', 'set', 'cilium/test/a', '{"x":1}']);
  t.equal(set.code, 0, set.stderr);
  t.match(set.stdout, /^cilium\/test\/a set at revision \d+\n$/);
  t.equal((await store.get('cilium/test/a'))?.value, '{"x":1}');
  await store.put('cilium/test/b', 'line1\nline2\x1b[2J');
  await store.put('cilium/other', 'not listed');

  const get = await runCli(['--host', host, 'kvstore', 'get', '--recursive', 'cilium/test/']);
  t.equal(get.code, 0, get.stderr);
  t.equal(get.stdout, 'cilium/test/a => {"x":1}\ncilium/test/b => line1\\nline2\\x1b[2J\n');

  const json = await runCli(['--host', host, 'kvstore', 'get', 'cilium/test/b', '-o', 'json']);
  t.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as KvstoreGetModel;
  t.match(parsed, { entries: [{ key: 'cilium/test/b', value: 'line1\nline2\x1b[2J' }], total: 1, truncated: false });

  const del = await runCli(['--host', host, 'kvstore', 'delete', '--recursive', 'cilium/test/']);
  t.equal(del.code, 0, del.stderr);
  t.equal(del.stdout, 'deleted 2 keys\n');
  t.same(
    (await store.list('cilium/')).pairs.map((p) => p.key),
    ['cilium/other'],
  );
});

t.test('errors: a missing key, and the value given twice', async (t) => {
  const { host } = await setup(t);
  const missing = await runCli(['--host', host, 'kvstore', 'get', 'no/such/key']);
  t.equal(missing.code, 1);
  t.equal(missing.stdout, '');
  t.match(missing.stderr, /^Error: key "no\/such\/key" not found in the kvstore; .* \(ERR_NOT_FOUND\)\n$/);
  const twice = await runCli(['--host', host, 'kvstore', 'set', 'k', 'v', '--value', 'w']);
  t.not(twice.code, 0);
  t.match(twice.stderr, /exactly one of them/);
});
