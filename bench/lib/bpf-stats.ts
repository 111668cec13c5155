/**
 * Per-run cost of our BPF programs: kernel.bpf_stats_enabled switched on for one phase only (it
 * adds two clock reads per program run, so timed rounds run without it), then run_cnt and
 * run_time_ns of each program read with bpftool before and after a measurement.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { DockerHost } from '../../test/lab/docker-host.js';
import { runCommand } from '../../test/lab/exec.js';
import { registerEmergencyCleanup } from '../../test/lab/process-registry.js';

const BPF_STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
const BPFTOOL = existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool';

interface ProgStats {
  id: number;
  name: string;
  runTimeNs: number;
  runCnt: number;
}

/** Runs and mean ns per run of each program between two readings. */
export type ProgramCost = Record<string, { runs: number; nsPerRun: number }>;

/** The ids of our tc programs attached in a lab host (bpftool net show), by program name. */
export async function ourProgramIds(host: DockerHost): Promise<Map<string, number>> {
  const r = await host.exec([BPFTOOL, '-j', 'net', 'show']);
  if (r.code !== 0) throw new Error(`bpftool net show in ${host.name}: ${r.stderr}`);
  const ids = new Map<string, number>();
  for (const entry of JSON.parse(r.stdout) as Array<{ tc?: Array<{ name?: string; prog_id?: number; id?: number }> }>) {
    for (const tc of entry.tc ?? []) {
      // bpftool names a tc filter "<prog name>:[<prog id>]".
      const id = tc.prog_id ?? tc.id ?? Number(/:\[(\d+)\]$/.exec(tc.name ?? '')?.[1]);
      const name = tc.name?.replace(/:\[\d+\]$/, '');
      if (name && Number.isInteger(id)) ids.set(name, id);
    }
  }
  return ids;
}

async function progStats(ids: Map<string, number>): Promise<ProgStats[]> {
  const out: ProgStats[] = [];
  for (const [name, id] of ids) {
    const r = await runCommand(BPFTOOL, ['-j', 'prog', 'show', 'id', String(id)], { timeoutMs: 10_000 });
    const j = JSON.parse(r.stdout) as { run_time_ns?: number; run_cnt?: number };
    out.push({ id, name, runTimeNs: j.run_time_ns ?? 0, runCnt: j.run_cnt ?? 0 });
  }
  return out;
}

function statsDelta(before: ProgStats[], after: ProgStats[]): ProgramCost {
  const out: ProgramCost = {};
  for (const a of after) {
    const b = before.find((x) => x.id === a.id);
    const runs = a.runCnt - (b?.runCnt ?? 0);
    out[a.name] = { runs, nsPerRun: runs > 0 ? (a.runTimeNs - (b?.runTimeNs ?? 0)) / runs : NaN };
  }
  return out;
}

/** Runs `measure` and returns its value with the cost of the programs in `ids` (one map per host). */
export async function costDuring<T>(
  ids: Array<Map<string, number>>,
  measure: () => Promise<T>,
): Promise<{ value: T; programs: ProgramCost[] }> {
  const before = await Promise.all(ids.map((m) => progStats(m)));
  const value = await measure();
  const after = await Promise.all(ids.map((m) => progStats(m)));
  return { value, programs: after.map((a, h) => statsDelta(before[h]!, a)) };
}

/** Runs `phase` with kernel.bpf_stats_enabled=1 and puts the previous value back, even on a crash. */
export async function withBpfStats<T>(phase: () => Promise<T>): Promise<T> {
  const previous = readFileSync(BPF_STATS_SYSCTL, 'utf8').trim();
  const restore = () => writeFileSync(BPF_STATS_SYSCTL, `${previous}\n`);
  const unregister = registerEmergencyCleanup(restore);
  try {
    writeFileSync(BPF_STATS_SYSCTL, '1\n');
    return await phase();
  } finally {
    restore();
    unregister();
  }
}
