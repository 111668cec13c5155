// Forceful, synchronous removal of a lab host: kill every process inside its namespaces and its
// cgroup, remove the cgroups, unmount its namespace files, delete the netns, delete its
// directory. Used as the last step of DockerHost.stop(), from the emergency registry on process
// exit, and by the reaper for hosts whose test process died without cleaning up.
//
// Processes are found by membership (namespace inode or cgroup), not by name, so only what the
// lab put there is touched: nothing enters a lab namespace or cgroup except through the lab.

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { labBinaries } from './preconditions.js';

/** Where every lab host keeps its files: `<LAB_RUN_DIR>/cdl-<id>`. */
export const LAB_RUN_DIR = '/run';

/** The facts needed to remove a host without the process that created it; saved as lab.json. */
export interface HostRecord {
  id: string;
  /** Network namespace name (`cdl-<id>`), under /run/netns. */
  netns: string;
  /** The host's directory (`/run/cdl-<id>`). */
  dir: string;
  /** Holds the persistent mount and UTS namespace files (`mnt`, `uts`); a private mount. */
  nsDir: string;
  /** cgroup name dockerd puts containers under (`--cgroup-parent /<cgroupName>`). */
  cgroupName: string;
  ownerPid: number;
  ownerStartTime: string;
}

const RECORD_FILE = 'lab.json';

/** Writes `record` to its directory so a later reaper can find it. */
export function saveHostRecord(record: HostRecord): void {
  writeFileSync(join(record.dir, RECORD_FILE), JSON.stringify(record, null, 2));
}

/** The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), or undefined if gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses; fields after it are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // dead, awaiting reaping
    return fields[19];
  } catch {
    return undefined;
  }
}

/** True if `pid` exists and is not a zombie. */
export function isProcessAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

/** Blocks the thread for `ms` (only for the synchronous clean-up path). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function decodeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points in this process's mount namespace, in mount order. */
export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => decodeMountPath(l.split(' ')[4]!));
}

/** Mount points at or below `dir` in this process's mount namespace. */
export function mountsUnder(dir: string): string[] {
  return mountPoints().filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/**
 * The `/proc/<pid>/ns/*` link text (`net:[4026532…]`) of the namespace bound at `file`, or
 * undefined when `file` is not a live namespace mount (then its inode number means nothing).
 */
export function namespaceId(file: string, kind: 'net' | 'mnt' | 'uts'): string | undefined {
  if (!mountPoints().includes(file)) return undefined;
  try {
    return `${kind}:[${statSync(file).ino}]`;
  } catch {
    return undefined;
  }
}

/** PIDs (other than this process) whose net or mnt namespace is one of `ids`. */
export function namespaceMembers(ids: readonly string[]): number[] {
  if (ids.length === 0) return [];
  const wanted = new Set(ids);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    for (const kind of ['net', 'mnt']) {
      try {
        if (wanted.has(readlinkSync(`/proc/${pid}/ns/${kind}`))) {
          found.push(pid);
          break;
        }
      } catch {
        // exited, or a kernel thread
      }
    }
  }
  return found;
}

/** Existing cgroup directories named `name` at the top of every mounted hierarchy (v1 and v2). */
export function cgroupDirs(name: string): string[] {
  const roots = ['/sys/fs/cgroup'];
  try {
    for (const e of readdirSync('/sys/fs/cgroup', { withFileTypes: true })) {
      if (e.isDirectory()) roots.push(join('/sys/fs/cgroup', e.name));
    }
  } catch {
    return [];
  }
  return roots.map((r) => join(r, name)).filter((d) => existsSync(join(d, 'cgroup.procs')));
}

function cgroupTree(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) out.push(...cgroupTree(join(dir, e.name)));
    }
  } catch {
    return out;
  }
  out.push(dir); // children first: rmdir order
  return out;
}

/** PIDs in cgroup `name` or below it, in any hierarchy. */
export function cgroupMembers(name: string): number[] {
  const pids = new Set<number>();
  for (const root of cgroupDirs(name)) {
    for (const d of cgroupTree(root)) {
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) {
          if (l) pids.add(Number(l));
        }
      } catch {
        // removed meanwhile
      }
    }
  }
  pids.delete(process.pid);
  return [...pids];
}

/** Kills, with SIGKILL, every process in the host's namespaces or cgroup until none is left. */
export function killHostProcessesSync(record: HostRecord, timeoutMs = 10_000): number[] {
  const ids = [namespaceId(`/run/netns/${record.netns}`, 'net'), namespaceId(join(record.nsDir, 'mnt'), 'mnt')].filter(
    (x): x is string => x !== undefined,
  );
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = new Set([...namespaceMembers(ids), ...cgroupMembers(record.cgroupName)]);
    if (pids.size === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // gone already
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`processes of ${record.netns} survive SIGKILL: ${[...pids].join(' ')}`);
    }
    sleepSync(20);
  }
  return [...killed];
}

function removeCgroupsSync(name: string): void {
  for (let attempt = 0; ; attempt++) {
    const left: string[] = [];
    for (const root of cgroupDirs(name)) {
      for (const d of cgroupTree(root)) {
        try {
          rmdirSync(d);
        } catch {
          left.push(d);
        }
      }
    }
    if (left.length === 0) return;
    if (attempt >= 50) throw new Error(`cannot remove cgroups: ${left.join(' ')}`);
    sleepSync(20); // a killed task leaves its cgroup asynchronously
  }
}

function run(file: string, args: string[]): void {
  execFileSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

/**
 * Removes everything of the host described by `record`, synchronously. Idempotent. Keeps the
 * directory (and so the record) if the network namespace or a mount could not be removed, so
 * that a later reaper can retry; throws in that case.
 */
export function cleanupHostSync(record: HostRecord): void {
  const errors: string[] = [];
  const attempt = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  attempt('killing processes', () => killHostProcessesSync(record));
  attempt('removing cgroups', () => removeCgroupsSync(record.cgroupName));
  // Deepest first: the namespace files, then the private bind of their directory, then any
  // stray mount. Lazy, since a mount may still be busy for a moment after its users died.
  for (const m of mountsUnder(record.dir).reverse()) {
    attempt(`unmounting ${m}`, () => run(labBinaries().umount, ['-l', m]));
  }
  const netnsFile = `/run/netns/${record.netns}`;
  if (existsSync(netnsFile)) {
    attempt(`deleting netns ${record.netns}`, () => run(labBinaries().ip, ['netns', 'delete', record.netns]));
  }
  const remainingMounts = mountsUnder(record.dir);
  if (!existsSync(netnsFile) && remainingMounts.length === 0) {
    attempt(`removing ${record.dir}`, () => rmSync(record.dir, { recursive: true, force: true }));
  } else if (remainingMounts.length > 0) {
    errors.push(`still mounted: ${remainingMounts.join(' ')}`);
  }
  if (errors.length > 0) {
    throw new Error(`clean-up of lab host ${record.netns} incomplete:\n  ${errors.join('\n  ')}`);
  }
}

/**
 * Removes lab hosts whose owning test process is gone (killed with SIGKILL, or a crash the exit
 * handler could not cover). Hosts of live processes, including other test runs on the machine,
 * are left alone. Returns the names of the hosts removed.
 */
export function reapStaleHosts(): string[] {
  const reaped: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(LAB_RUN_DIR).filter((e) => /^cdl-[0-9a-z]+$/.test(e));
  } catch {
    return reaped;
  }
  for (const entry of entries) {
    const dir = join(LAB_RUN_DIR, entry);
    const recordPath = join(dir, RECORD_FILE);
    let record: HostRecord;
    try {
      record = JSON.parse(readFileSync(recordPath, 'utf8')) as HostRecord;
    } catch {
      continue; // being created right now, or not ours
    }
    if (processStartTime(record.ownerPid) === record.ownerStartTime) continue;
    // Claim it: only one reaper wins the rename.
    const claimed = join(dir, `${RECORD_FILE}.reaping-${process.pid}`);
    try {
      renameSync(recordPath, claimed);
    } catch {
      continue;
    }
    try {
      cleanupHostSync(record);
      reaped.push(record.netns);
    } catch {
      // Leave it for the next reaper.
      try {
        renameSync(claimed, recordPath);
      } catch {
        // directory partly gone; nothing more to do
      }
    }
  }
  return reaped;
}
