/**
 * Per-call profile from the daemon's debug log: pino JSON lines, one `"msg":"plugin call"` per
 * successful plugin call with its handler time in `ms` (measured inside the daemon, from the
 * decoded request to the reply object; HTTP and JSON framing are not included), and
 * `"msg":"plugin call failed"` for failures.
 */
import { summarize } from './stats.mjs';

export interface PluginCallLine {
  time: number;
  call: string;
  ms: number;
  failed: boolean;
}

export interface CallProfileRow {
  call: string;
  n: number;
  failed: number;
  median: number;
  p90: number;
  max: number;
  /** Sum of all samples, ms. */
  total: number;
}

/** Plugin-call lines of a pino log whose `time` lies in [fromMs, toMs]. */
export function pluginCalls(log: string, fromMs = -Infinity, toMs = Infinity): PluginCallLine[] {
  const out: PluginCallLine[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"plugin call')) continue;
    let rec: { time?: number; call?: string; ms?: number; msg?: string };
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    if (rec.msg !== 'plugin call' && rec.msg !== 'plugin call failed') continue;
    if (typeof rec.time !== 'number' || rec.time < fromMs || rec.time > toMs) continue;
    out.push({ time: rec.time, call: String(rec.call), ms: Number(rec.ms), failed: rec.msg === 'plugin call failed' });
  }
  return out;
}

/** Order in which the calls happen in a container's life (others sort after, by name). */
const LIFECYCLE = [
  'IpamDriver.RequestAddress',
  'NetworkDriver.CreateEndpoint',
  'NetworkDriver.Join',
  'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.RevokeExternalConnectivity',
  'NetworkDriver.Leave',
  'NetworkDriver.DeleteEndpoint',
  'IpamDriver.ReleaseAddress',
];

export interface WindowSample {
  /** Wall time from the first call's start to the last call's end, ms. */
  windowMs: number;
  /** Sum of the plugin handler times inside the window, ms. */
  pluginMs: number;
}

/**
 * For serial runs (one container at a time): splits the call sequence into containers and
 * measures two windows per container, from the start of the first call to the end of the last
 * (start = log time - ms; the log time has 1 ms resolution):
 *   setup    RequestAddress ... Join (+ ProgramExternalConnectivity)
 *   teardown RevokeExternalConnectivity/Leave ... ReleaseAddress
 * Window minus plugin time = dockerd's own work between the calls plus the HTTP round trips.
 */
export function callWindows(lines: PluginCallLine[]): { setup: WindowSample[]; teardown: WindowSample[] } {
  const setup: WindowSample[] = [];
  const teardown: WindowSample[] = [];
  const sorted = [...lines].sort((a, b) => a.time - a.ms - (b.time - b.ms));
  let open: { kind: 'setup' | 'teardown'; start: number; end: number; plugin: number } | undefined;
  const close = (): void => {
    if (open)
      (open.kind === 'setup' ? setup : teardown).push({ windowMs: open.end - open.start, pluginMs: open.plugin });
    open = undefined;
  };
  for (const l of sorted) {
    const start = l.time - l.ms;
    const call = l.call.split('.')[1];
    if (
      call === 'RequestAddress' ||
      call === 'RevokeExternalConnectivity' ||
      (call === 'Leave' && open?.kind !== 'teardown')
    ) {
      close();
      open = { kind: call === 'RequestAddress' ? 'setup' : 'teardown', start, end: l.time, plugin: 0 };
    }
    if (!open) continue;
    open.end = Math.max(open.end, l.time);
    open.plugin += l.ms;
    if (
      (open.kind === 'setup' && call === 'ProgramExternalConnectivity') ||
      (open.kind === 'teardown' && call === 'ReleaseAddress')
    )
      close();
  }
  close();
  return { setup, teardown };
}

/** Per-call n / median / p90 / max / total, in lifecycle order. */
export function callProfile(lines: PluginCallLine[]): CallProfileRow[] {
  const by = new Map<string, PluginCallLine[]>();
  for (const l of lines) {
    const list = by.get(l.call) ?? [];
    list.push(l);
    by.set(l.call, list);
  }
  const rank = (c: string): number => {
    const i = LIFECYCLE.indexOf(c);
    return i < 0 ? LIFECYCLE.length : i;
  };
  return [...by.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([call, ls]) => {
      const s = summarize(ls.map((l) => l.ms));
      return {
        call,
        n: ls.length,
        failed: ls.filter((l) => l.failed).length,
        median: s.median,
        p90: s.p90,
        max: s.max,
        total: s.mean * s.n,
      };
    });
}
