/**
 * The lab outside tap: a stand-in for the tap `Test` the lab wants (teardowns run in reverse
 * order by `close()`), plus helpers shared by the benches. The lab's own emergency handlers still
 * remove hosts if the bench process is interrupted (SIGINT/SIGTERM/SIGHUP or exit).
 */
import { readFileSync } from 'node:fs';
import type { LabTest } from '../../test/lab/lab.js';

export class LabSession implements LabTest {
  private readonly teardowns: (() => unknown)[] = [];
  private failed = false;

  teardown(fn: () => unknown): void {
    this.teardowns.push(fn);
  }

  comment(...message: unknown[]): void {
    process.stderr.write(`# ${message.map(String).join(' ')}\n`);
  }

  passing(): boolean {
    return !this.failed;
  }

  /** Marks the run failed: the lab then prints log tails of its processes at stop. */
  fail(): void {
    this.failed = true;
  }

  /** Runs every teardown, newest first; errors are reported and do not stop the others. */
  async close(): Promise<void> {
    while (this.teardowns.length > 0) {
      const fn = this.teardowns.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench: teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
}

/** Progress line on stderr (stdout of a bench is reserved for nothing; results go to a file). */
export function progress(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t}] ${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Integer environment setting with a lower bound. */
export function envInt(name: string, def: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${raw}: expected an integer >= ${min}`);
  return n;
}

const CLK_TCK = 100; // USER_HZ on Linux

/**
 * CPU time of `pid` in ms: own user+system, and that of its waited-for children (for our daemon
 * that is every `ip` it spawned). Undefined if the process is gone.
 */
export function cpuMs(pid: number | undefined): { self: number; children: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised comm (which may contain spaces): state is field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tick = (i: number): number => Number(f[i - 3]) * (1000 / CLK_TCK);
    return { self: tick(14) + tick(15), children: tick(16) + tick(17) };
  } catch {
    return undefined;
  }
}

/** Resident set size of `pid` in MiB, if known. */
export function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** 1-minute load average and CPU count, to judge how noisy a run was. */
export function machineLoad(): { load1: number; load5: number; cpus: number } {
  const [l1, l5] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  const cpus = readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('processor')).length;
  return { load1: l1 ?? NaN, load5: l5 ?? NaN, cpus };
}
