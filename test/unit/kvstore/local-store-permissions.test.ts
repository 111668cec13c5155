/**
 * The local store's files hold every key: the database and its -wal are created 0600 (whatever
 * the umask: SQLite gives the -wal the database's mode), a missing directory 0700, and files an
 * older version left 0644 are narrowed to 0600 at open.
 */
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';

const mode = (path: string) => statSync(path).mode & 0o777;

t.test('a new store: directory 0700, database and -wal 0600, even with umask 000', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cilium-kv-perm-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const path = join(root, 'state', 'kvstore.db');
  const umask = process.umask(0);
  t.teardown(() => void process.umask(umask));
  const store = LocalKvStore.open({ path });
  t.teardown(() => store.close());
  await store.put('k', 'secret');
  t.equal(mode(join(root, 'state')), 0o700, 'directory');
  t.equal(mode(path), 0o600, 'database');
  t.equal(mode(`${path}-wal`), 0o600, '-wal');
});

t.test('files an older version left 0644 are narrowed at open', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cilium-kv-perm-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const path = join(root, 'kvstore.db');
  const first = LocalKvStore.open({ path });
  await first.put('k', 'secret');
  await first.close();
  chmodSync(path, 0o644);
  writeFileSync(`${path}-wal`, '');
  chmodSync(`${path}-wal`, 0o644);
  const again = LocalKvStore.open({ path });
  t.teardown(() => again.close());
  t.equal((await again.get('k'))?.value, 'secret', 'data kept');
  t.equal(mode(path), 0o600, 'database narrowed');
  t.equal(mode(`${path}-wal`), 0o600, '-wal narrowed');
});
