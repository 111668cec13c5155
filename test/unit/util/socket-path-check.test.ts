/**
 * checkUnixSocketPath, the pre-flight check of --plugin-socket and --api-socket: it changes
 * nothing, passes a missing path or a stale socket, and refuses a directory, a path under a file
 * and a socket a live process listens on.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkUnixSocketPath } from '../../../src/util/http-server.js';

const dir = mkdtempSync(join(tmpdir(), 'socket-path-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('missing (even its directory) and stale pass, and stay as they are', async (t) => {
  t.equal(await checkUnixSocketPath(join(dir, 'missing', 'a.sock')), 'absent');
  t.notOk(existsSync(join(dir, 'missing')), 'no directory created');
  // A socket file nobody listens on, as a killed daemon leaves it (bound, never listening).
  const dead = join(dir, 'dead.sock');
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', dead]);
  t.equal(await checkUnixSocketPath(dead), 'stale');
  t.ok(existsSync(dead), 'the stale socket is left for the listener to remove');
});

t.test('refused: a directory, a path under a file, a live socket', async (t) => {
  mkdirSync(join(dir, 'dir.sock'));
  await t.rejects(checkUnixSocketPath(join(dir, 'dir.sock')), {
    code: 'ERR_SOCKET_PATH',
    message: /dir\.sock exists and is not a socket/,
  });
  writeFileSync(join(dir, 'file'), '');
  await t.rejects(checkUnixSocketPath(join(dir, 'file', 'x', 'a.sock')), {
    code: 'ERR_SOCKET_PATH',
    message: /file is not a directory/,
  });
  const live = join(dir, 'live.sock');
  const s = createServer((c) => c.end());
  await new Promise<void>((r) => s.listen(live, r));
  t.teardown(() => void s.close());
  await t.rejects(checkUnixSocketPath(live), {
    code: 'ERR_SOCKET_IN_USE',
    message: /another process is listening on .*live\.sock/,
  });
});
