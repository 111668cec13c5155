/**
 * Attaches `strace -f` to a running process (all its threads and every child it forks) for a
 * while, and turns the trace into counts and durations of what matters for a plugin call:
 * processes spawned (fork/clone -> exit, with the command line) and fsync/fdatasync calls.
 *
 * Only the syscalls named in TRACED are stopped on, so the traced process slows down less than
 * under a full trace; the counts are exact, the durations somewhat inflated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { registerEmergencyCleanup } from '../../test/lab/lab.js';
import { sleep } from './lab-session.js';

const TRACED = 'trace=clone,clone3,fork,vfork,execve,fsync,fdatasync,sync_file_range';

export interface SpawnRecord {
  /** Normalised command line (`ip link add DEV ...`). */
  command: string;
  /** From the start of the parent's fork/clone to the child's exit, ms. */
  totalMs: number;
  /** Duration of the fork/clone syscall in the parent, ms (the parent's event loop is blocked). */
  forkMs: number;
  forkSyscall: string;
}

export interface SyncRecord {
  syscall: string;
  ms: number;
}

export interface StraceResult {
  spawns: SpawnRecord[];
  syncs: SyncRecord[];
}

/** A running `strace -f -p PID`; stop() detaches and parses. */
export class StraceSession {
  private readonly proc: ChildProcess;
  private readonly out: string;
  private readonly unregister: () => void;
  private exited: Promise<void>;

  private constructor(proc: ChildProcess, out: string) {
    this.proc = proc;
    this.out = out;
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    const pid = proc.pid!;
    this.unregister = registerEmergencyCleanup(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
  }

  /** Attaches to `pid` (all threads, and children from now on), writing the trace to `outFile`. */
  static async attach(pid: number, outFile: string): Promise<StraceSession> {
    const proc = spawn('strace', ['-f', '-ttt', '-T', '-s', '200', '-e', TRACED, '-o', outFile, '-p', String(pid)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const s = new StraceSession(proc, outFile);
    // strace prints "Process N attached" per thread once it is in place.
    for (let i = 0; i < 100 && !/attached/.test(stderr); i++) {
      if (proc.exitCode !== null) throw new Error(`strace exited: ${stderr.trim()}`);
      await sleep(20);
    }
    if (!/attached/.test(stderr)) {
      await s.stop();
      throw new Error(`strace did not attach to ${pid}: ${stderr.trim()}`);
    }
    await sleep(100);
    return s;
  }

  /** Detaches (SIGINT) and parses the trace; the trace file is moved to `keepAs`, else removed. */
  async stop(keepAs?: string): Promise<StraceResult> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGINT');
    await Promise.race([this.exited, sleep(5_000)]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    this.unregister();
    let text = '';
    try {
      text = readFileSync(this.out, 'utf8');
    } catch {
      /* nothing traced */
    }
    if (keepAs && text !== '') writeFileSync(keepAs, text);
    rmSync(this.out, { force: true });
    return parseStrace(text);
  }
}

/** Replaces the per-container parts of a command line by placeholders so calls group. */
export function normaliseCommand(argv: string[]): string {
  const base = (argv[0] ?? '?').split('/').pop()!;
  const rest = argv.slice(1).map((a) => {
    if (/^(lxc|tmp)[0-9a-f]{6,}$/.test(a)) return 'DEV';
    if (/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(a)) return 'IP';
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(a)) return 'MAC';
    return a;
  });
  return [base, ...rest].join(' ');
}

/** Parses `strace -f -ttt -T` output (see TRACED). */
export function parseStrace(text: string): StraceResult {
  const forkStart = new Map<number, { ts: number; syscall: string; ms: number }>(); // child pid -> fork info
  const unfinished = new Map<string, { ts: number; text: string }>(); // `${pid} ${syscall}` -> start
  const argvOf = new Map<number, string[]>();
  const exitTs = new Map<number, number>();
  const syncs: SyncRecord[] = [];
  const lineRe = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
  for (const line of text.split('\n')) {
    const m = lineRe.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    const ts = Number(m[2]);
    const rest = m[3]!;
    if (rest.startsWith('+++ exited') || rest.startsWith('+++ killed')) {
      exitTs.set(pid, ts);
      continue;
    }
    let syscall: string;
    let start = ts;
    let tail = rest;
    let head = rest; // the call with its arguments (from the unfinished line when split)
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      syscall = resumed[1]!;
      tail = resumed[2]!;
      const u = unfinished.get(`${pid} ${syscall}`);
      start = u?.ts ?? ts;
      head = u?.text ?? '';
      unfinished.delete(`${pid} ${syscall}`);
    } else {
      const call = /^(\w+)\(/.exec(rest);
      if (!call) continue;
      syscall = call[1]!;
      if (rest.endsWith('<unfinished ...>')) {
        unfinished.set(`${pid} ${syscall}`, { ts, text: rest });
        continue;
      }
    }
    const result = /\)\s+=\s+(-?\d+)(?:[^<]*)<(\d+\.\d+)>\s*$/.exec(tail);
    if (!result) continue;
    const ret = Number(result[1]);
    const durMs = Number(result[2]) * 1000;
    const end = resumed ? ts + durMs / 1000 : start + durMs / 1000;
    if (['clone', 'clone3', 'fork', 'vfork'].includes(syscall)) {
      if (ret > 0) forkStart.set(ret, { ts: start, syscall, ms: Math.max(durMs, (end - start) * 1000) });
    } else if (syscall === 'execve') {
      const args = /^execve\("[^"]*", \[(.*?)\](?:\.\.\.)?, /.exec(head);
      if (ret === 0 && args)
        argvOf.set(
          pid,
          [...args[1]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!),
        );
    } else if (syscall === 'fsync' || syscall === 'fdatasync' || syscall === 'sync_file_range') {
      syncs.push({ syscall, ms: durMs });
    }
  }
  const spawns: SpawnRecord[] = [];
  for (const [child, f] of forkStart) {
    const argv = argvOf.get(child);
    const exit = exitTs.get(child);
    if (!argv || exit === undefined) continue; // a thread, or a child that never exec'd/exited
    spawns.push({
      command: normaliseCommand(argv),
      totalMs: (exit - f.ts) * 1000,
      forkMs: f.ms,
      forkSyscall: f.syscall,
    });
  }
  return { spawns, syncs };
}
