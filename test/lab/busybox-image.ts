// The container image every e2e test uses: busybox-static plus symlinks for its applets, built
// locally (no registry access) and cached as a tarball in /tmp, imported into each host.

import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { DockerHost } from './docker-host.js';
import { runCommand } from './exec.js';
import { labBinaries } from './preconditions.js';

/** Bump when the rootfs layout below changes, so stale cached tarballs are not reused. */
const ROOTFS_FORMAT = 1;
const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function appletPaths(busybox: string): Promise<string[]> {
  // --list-full gives each applet's usual directory (bin/sh, sbin/ip, usr/bin/wc, ...).
  const full = await runCommand(busybox, ['--list-full']);
  if (full.code === 0 && full.stdout.trim().length > 0) {
    return full.stdout.split('\n').filter((l) => l.length > 0);
  }
  const plain = await runCommand(busybox, ['--list'], { check: true });
  return plain.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((name) => `bin/${name}`);
}

async function buildRootfs(busybox: string, root: string): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'proc', 'sys', 'dev', 'var', 'run']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(busybox, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  // `busybox --install -s DIR` links to /proc/self/exe's path on the build machine; a foreign
  // root needs links to the busybox inside it, made here.
  for (const rel of await appletPaths(busybox)) {
    if (rel.includes('..') || rel.startsWith('/')) continue;
    const link = join(root, rel);
    if (existsSync(link) || rel === 'bin/busybox') continue;
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync('/bin/busybox', link);
  }
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/**
 * Path of the busybox rootfs tarball, building it on first use. Cached in /tmp by a hash of the
 * busybox binary, so every test (and test process) after the first reuses it; concurrent
 * builders are safe (write to a temporary name, then rename).
 */
export async function busyboxTarball(): Promise<string> {
  const { busybox, tar } = labBinaries();
  const hash = createHash('sha256').update(readFileSync(busybox)).update(`format ${ROOTFS_FORMAT}`);
  const cached = join('/tmp', `cdl-busybox-${hash.digest('hex').slice(0, 16)}.tar`);
  if (existsSync(cached)) return cached;
  const work = mkdtempSync(join('/tmp', 'cdl-busybox-build-'));
  try {
    const root = join(work, 'rootfs');
    mkdirSync(root);
    await buildRootfs(busybox, root);
    const partial = join(work, 'rootfs.tar');
    await runCommand(tar, ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', partial, '.'], {
      check: true,
    });
    renameSync(partial, cached); // same file system (/tmp): atomic
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return cached;
}

/**
 * Makes image `name` (default `bb`) exist on `host`: busybox with all applets on PATH, /etc/passwd,
 * /etc/group, /tmp, and `CMD ["/bin/sh"]`. Imported from the cached tarball; a no-op if the host
 * already has the image. Returns the image name.
 */
export async function ensureBusyboxImage(host: DockerHost, name = 'bb'): Promise<string> {
  const present = await host.docker(['image', 'inspect', '--format', '{{.Id}}', name]);
  if (present.code === 0) return name;
  const tarball = await busyboxTarball();
  await host.docker(
    ['import', '--change', 'CMD ["/bin/sh"]', '--change', `ENV PATH=${CONTAINER_PATH}`, tarball, name],
    { check: true },
  );
  return name;
}
