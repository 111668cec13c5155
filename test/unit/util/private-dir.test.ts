/**
 * The state directory: created 0700; an existing one we own that others can read is narrowed to
 * 0700; one another user owns, one others can write and a file are refused with ERR_CONFIG
 * naming the option, and left as they were.
 */
import t, { type Test } from 'tap';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPrivateDir, ensurePrivateDir } from '../../../src/util/private-dir.js';

const mode = (path: string) => statSync(path).mode & 0o7777;

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'private-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a missing directory is created 0700, parents too', async (t) => {
  const root = scratch(t);
  const dir = join(root, 'a', 'state');
  assertPrivateDir(dir, '--state-dir');
  t.same(ensurePrivateDir(dir, '--state-dir'), {}, 'nothing narrowed');
  t.equal(mode(dir), 0o700);
  t.equal(mode(join(root, 'a')), 0o700, 'created parent too');
});

t.test('an existing 0755 directory of ours is narrowed to 0700', async (t) => {
  const dir = join(scratch(t), 'state');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  t.same(ensurePrivateDir(dir, '--state-dir'), { narrowedFrom: '0755' });
  t.equal(mode(dir), 0o700);
  t.same(ensurePrivateDir(dir, '--state-dir'), {}, 'idempotent');
});

t.test('refused: owned by another user, writable by others, not a directory (as root)', async (t) => {
  const root = scratch(t);
  const foreign = join(root, 'foreign');
  mkdirSync(foreign, { mode: 0o700 });
  chownSync(foreign, 65534, 65534);
  t.throws(() => ensurePrivateDir(foreign, '--state-dir'), {
    code: 'ERR_CONFIG',
    message: /^--state-dir .*foreign is owned by uid 65534, not by this daemon's user \(uid 0\)/,
  });
  t.equal(statSync(foreign).uid, 65534, 'left as it was');

  const open = join(root, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  t.throws(() => assertPrivateDir(open, '--state-dir'), {
    code: 'ERR_CONFIG',
    message: /open is writable by other users \(mode 0777\)/,
  });
  t.throws(() => ensurePrivateDir(open, '--state-dir'), { code: 'ERR_CONFIG' });
  t.equal(mode(open), 0o777, 'not silently fixed');
  chmodSync(open, 0o770);
  t.throws(
    () => assertPrivateDir(open, '--state-dir'),
    { message: /writable by other users \(mode 0770\)/ },
    'group-writable too',
  );

  const file = join(root, 'file');
  writeFileSync(file, '');
  t.throws(() => assertPrivateDir(file, '--state-dir'), { code: 'ERR_CONFIG', message: /is not a directory/ });
});
