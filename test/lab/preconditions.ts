// What an e2e test needs from the machine, and the one change the lab makes to the root network
// namespace: a blackhole for the lab's address range, so nothing the lab addresses can leave
// the machine even if a test misroutes it.

import { accessSync, constants, existsSync } from 'node:fs';
import type { Test } from 'tap';
import { runCommand } from './exec.js';

/** Every address the lab or a test assigns lies inside this range (RFC 2544 benchmarking space). */
export const LAB_RANGE = '198.18.0.0/15';

/** Absolute paths of the binaries the lab runs. Overridable through `CDL_*` environment variables. */
export interface LabBinaries {
  dockerd: string;
  docker: string;
  busybox: string;
  ip: string;
  nsenter: string;
  unshare: string;
  tar: string;
  mount: string;
  umount: string;
}

function firstExecutable(candidates: readonly (string | undefined)[]): string | undefined {
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

const resolved = {
  // Debian's docker.io ships dockerd in /usr/sbin; other layouts use /usr/bin.
  dockerd: firstExecutable([process.env.CDL_DOCKERD, '/usr/bin/dockerd', '/usr/sbin/dockerd']),
  // /usr/local/bin/docker may be a newer CLI that refuses old daemons; the lab pins the distro one.
  docker: firstExecutable([process.env.CDL_DOCKER, '/usr/bin/docker']),
  busybox: firstExecutable([process.env.CDL_BUSYBOX, '/bin/busybox', '/usr/bin/busybox']),
  ip: firstExecutable(['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']),
  nsenter: firstExecutable(['/usr/bin/nsenter', '/bin/nsenter']),
  unshare: firstExecutable(['/usr/bin/unshare', '/bin/unshare']),
  tar: firstExecutable(['/usr/bin/tar', '/bin/tar']),
  mount: firstExecutable(['/usr/bin/mount', '/bin/mount']),
  umount: firstExecutable(['/usr/bin/umount', '/bin/umount']),
};

/**
 * Why the lab cannot run on this machine, or undefined when it can: root, dockerd, the docker
 * CLI, busybox, iproute2, util-linux (nsenter, unshare, mount) and tar must be present.
 */
export function labPreconditionFailure(): string | undefined {
  if (process.platform !== 'linux') return `e2e lab needs Linux (platform is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'e2e lab needs root (network namespaces, dockerd)';
  const missing = Object.entries(resolved)
    .filter(([, path]) => path === undefined)
    .map(([name]) => name);
  if (missing.length > 0) return `e2e lab binaries not found: ${missing.join(', ')}`;
  if (!existsSync('/proc/self/ns/mnt')) return 'e2e lab needs /proc with namespace files';
  return undefined;
}

/** The binaries' paths; throws when {@link labPreconditionFailure} would report a failure. */
export function labBinaries(): LabBinaries {
  const reason = labPreconditionFailure();
  if (reason !== undefined) throw new Error(reason);
  return resolved as LabBinaries;
}

/**
 * Checks the e2e preconditions for test `t`. When they hold, returns true. Otherwise the test
 * fails with the reason when `CI=true` (a CI runner must run the e2e suite), or is skipped with
 * the reason elsewhere; returns false and the caller should return at once:
 *
 *     if (!requireRoot(t)) return;
 */
export function requireRoot(t: Test): boolean {
  const reason = labPreconditionFailure();
  if (reason === undefined) return true;
  if (process.env.CI === 'true') {
    t.fail(`e2e preconditions not met on CI: ${reason}`);
    t.end();
  } else {
    t.plan(0, `skipped: ${reason}`);
  }
  return false;
}

/**
 * Adds `unreachable 198.18.0.0/15` to the root network namespace's main table unless a route
 * for exactly that prefix is already there. Never removes it: other tests on the machine may
 * rely on it. Throws when a route of another type holds the prefix.
 */
export async function ensureSafetyRoute(): Promise<void> {
  const ip = labBinaries().ip;
  const existing = async (): Promise<string | undefined> => {
    const r = await runCommand(ip, ['-json', 'route', 'show', 'exact', LAB_RANGE], { check: true });
    const routes = JSON.parse(r.stdout || '[]') as { type?: string }[];
    return routes.length === 0 ? undefined : (routes[0]!.type ?? 'unicast');
  };
  let type = await existing();
  if (type === undefined) {
    const add = await runCommand(ip, ['route', 'add', 'unreachable', LAB_RANGE]);
    // Another test process may have added it between the check and the add.
    if (add.code !== 0 && !/File exists/.test(add.stderr)) {
      throw new Error(`adding unreachable route for ${LAB_RANGE}: ${add.stderr.trim()}`);
    }
    type = await existing();
  }
  if (type !== 'unreachable') {
    throw new Error(`root namespace routes ${LAB_RANGE} as ${type}; the lab needs it unreachable`);
  }
}
