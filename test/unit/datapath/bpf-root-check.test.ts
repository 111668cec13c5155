/**
 * checkBpfRoot, the pre-flight check of --bpf-root: a root on a filesystem that is not bpffs is
 * refused (ERR_CONFIG naming the flag) before any link is made, and nothing is created; a root
 * under /sys/fs/bpf passes where no bpffs is mounted yet (the datapath mounts one). The check
 * passing on a mounted bpffs is covered by every e2e start (test/e2e/start-up-errors.test.ts).
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkBpfRoot } from '../../../src/datapath/bpf-loader.js';

const dir = mkdtempSync(join(tmpdir(), 'bpf-root-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a root on another filesystem is refused, and not created', async (t) => {
  const root = join(dir, 'not-bpffs', 'cilium');
  t.throws(() => checkBpfRoot(root), {
    code: 'ERR_CONFIG',
    message: new RegExp(`^--bpf-root ${root}: ${dir} is not a bpf filesystem`),
  });
  t.notOk(existsSync(join(dir, 'not-bpffs')), 'nothing created');
  writeFileSync(join(dir, 'file'), '');
  t.throws(() => checkBpfRoot(join(dir, 'file', 'cilium')), { code: 'ERR_CONFIG', message: /file is not a directory/ });
});

t.test('a root under /sys/fs/bpf passes', async (t) => {
  t.ok(existsSync('/sys/fs/bpf'), '/sys/fs/bpf exists (bpffs mounted or not)');
  t.doesNotThrow(() => checkBpfRoot('/sys/fs/bpf/cilium-check-test'));
  t.notOk(existsSync('/sys/fs/bpf/cilium-check-test'), 'nothing created');
});
