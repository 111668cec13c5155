/**
 * Summary of a V8 `.cpuprofile` (node --cpu-prof) of our daemon over a time window: where its main
 * thread was, by cause. V8 samples the thread on a timer whether it runs or is blocked in a
 * synchronous call, so a bucket is "main-thread time" (the event loop could do nothing else):
 * CPU, plus waits inside synchronous calls (fork() in child_process.spawn, fsync in a
 * node:sqlite commit). Idle time (the loop waiting for I/O) is left out.
 *
 * Profile timestamps are CLOCK_MONOTONIC microseconds, the clock of process.hrtime(), so the
 * window can be given from the bench process.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileBucket {
  bucket: string;
  ms: number;
}

export interface ProfileSummary {
  /** Main-thread busy time in the window (not idle), ms. */
  busyMs: number;
  windowMs: number;
  buckets: ProfileBucket[];
  /** Functions with the most self time (leaf frames), `name (file:line)`. */
  topSelf: ProfileBucket[];
}

/** First matching rule (in this order) over the sample's whole stack names the bucket. */
const RULES: readonly [string, (f: CallFrame) => boolean][] = [
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  [
    'spawning processes (child_process: fork + exec setup, pipes)',
    (f) => /^node:(internal\/)?child_process$/.test(f.url),
  ],
  ['store: SQLite commits incl. fsync (src/kvstore)', (f) => f.url.includes('/dist/kvstore/')],
  [
    'logging (pino)',
    (f) =>
      f.url.includes('/node_modules/pino') ||
      f.url.includes('/node_modules/sonic-boom') ||
      f.url.includes('/dist/util/log'),
  ],
  [
    'Docker watcher (dockerode, events, inspect)',
    (f) => /\/node_modules\/(dockerode|docker-modem)\//.test(f.url) || f.url.includes('/dist/docker/'),
  ],
  ['module loading', (f) => f.url.startsWith('node:internal/modules/')],
  [
    'plugin/API HTTP + JSON (express, http)',
    (f) =>
      /\/node_modules\/(express|body-parser|router|raw-body|finalhandler|send|on-finished)\//.test(f.url) ||
      /^node:_http_/.test(f.url) ||
      f.url.includes('/dist/util/http-server'),
  ],
  ['daemon logic (endpoint, IPAM, identity, datapath, plugin handlers)', (f) => f.url.includes('/dist/')],
];

function label(f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${f.functionName || '(anonymous)'}${file ? ` (${file}:${f.lineNumber + 1})` : ''}`;
}

/** Summarises `file` over [fromUs, toUs] (CLOCK_MONOTONIC µs). */
export function summariseCpuProfile(file: string, fromUs: number, toUs: number): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const bucketOf = new Map<number, string>();
  const classify = (id: number): string => {
    const cached = bucketOf.get(id);
    if (cached) return cached;
    const stack: CallFrame[] = [];
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) stack.push(byId.get(x)!.callFrame);
    let bucket = 'other (Node internals: streams, timers, microtasks)';
    for (const [name, match] of RULES) {
      if (stack.some(match)) {
        bucket = name;
        break;
      }
    }
    if (stack[0]?.functionName === '(program)') bucket = '(program: native, not attributed)';
    bucketOf.set(id, bucket);
    return bucket;
  };
  const buckets = new Map<string, number>();
  const self = new Map<string, number>();
  let busy = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0; // the time until the next sample is this sample's
    if (t < fromUs || t > toUs) continue;
    const node = byId.get(p.samples[i]!)!;
    if (node.callFrame.functionName === '(idle)') continue;
    busy += dt;
    const b = classify(node.id);
    buckets.set(b, (buckets.get(b) ?? 0) + dt);
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + dt);
  }
  const sortDesc = (m: Map<string, number>): ProfileBucket[] =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([bucket, us]) => ({ bucket, ms: us / 1000 }));
  return {
    busyMs: busy / 1000,
    windowMs: (Math.min(toUs, p.endTime) - Math.max(fromUs, p.startTime)) / 1000,
    buckets: sortDesc(buckets),
    topSelf: sortDesc(self).slice(0, 12),
  };
}
