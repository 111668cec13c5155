/**
 * Benchmark "ct-bounce": what a conntrack entry costs when the two directions of one flow run on
 * two CPUs at once, as they do in real traffic (data on the sender's CPU, ACKs or answers on the
 * receiver's), with and without the per-packet counters in the entry (cfg_ct_accounting).
 *
 * BPF_PROG_TEST_RUN, no network: bpf/lxc.bpf.o is loaded into a private pin root with two local
 * endpoints A and B (both behind ifindex 1: a test run's skb comes from loopback) and one
 * established TCP flow A -> B. Two child processes, pinned with taskset to CPU0 and CPU1, load the
 * same object on the same pin root (so they share its maps, that one conntrack entry included)
 * and run from_container `CT_REPEAT` (2 000 000) times each on A's packet (forward) and on B's
 * (the reply), each reporting the kernel's average ns per run:
 *
 *   fwd alone, rev alone   one child at a time: the entry stays in that CPU's cache
 *   fwd + rev together     both at once on the same entry: every write by one CPU takes the
 *                          line from the other
 *
 * for accounting on and off, `CT_ROUNDS` (6) interleaved rounds. "bounce" = together − alone.
 * Every run is checked to take its path (the verdict, and with accounting the entry's counters
 * advanced by exactly the repeats).
 *
 * Run through bench/run.mjs (`node bench/run.mjs ct-bounce`); needs root and 2 CPUs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../src/datapath/bpf/abi.js';
import { loadLxcDatapath, type LxcDatapath } from '../src/datapath/bpf/programs.js';
import { privateBpffs } from '../test/unit/datapath/fixtures/bpf-sandbox.js';
import { ipv4Packet, TCP_ACK, TCP_SYN } from '../test/unit/datapath/fixtures/packets.js';
import { envInt, machineLoad, progress } from './lib/lab-session.js';
import { renderCtBounce, type CtBounceResult, type CtBounceRow } from './lib/ct-bounce-report.mjs';

const REPEAT = envInt('CT_REPEAT', 2_000_000, 1);
const ROUNDS = envInt('CT_ROUNDS', 6, 1);
const SELF = fileURLToPath(import.meta.url);
const TC_ACT_REDIRECT = 7;

// The same test-run skb is reused for every repetition, so a local delivery's MAC rewrite stays
// in the frame: each side's lxc MAC (the rewritten source) is the other's container MAC, so the
// next repetition passes the sender's source-MAC check (as in bench/programs.ts).
const A = {
  ip: '198.18.7.2',
  ifindex: 1,
  epId: 21,
  identity: 3001,
  netId: 1,
  enforceIngress: false,
  enforceEgress: false,
  mac: '02:00:00:00:07:02',
  nodeMac: '02:00:00:00:07:03',
};
const B = {
  ip: '198.18.7.3',
  ifindex: 1,
  epId: 22,
  identity: 3002,
  netId: 1,
  enforceIngress: false,
  enforceEgress: false,
  mac: '02:00:00:00:07:03',
  nodeMac: '02:00:00:00:07:02',
};
const FLOW = { sport: 41000, dport: 80 };
const CT_KEY: abi.CtKey = { saddr: A.ip, daddr: B.ip, sport: FLOW.sport, dport: FLOW.dport, protocol: 6 };

type Direction = 'fwd' | 'rev';

function packet(direction: Direction, tcpFlags: number): Buffer {
  const [from, to] = direction === 'fwd' ? [A, B] : [B, A];
  const [sport, dport] = direction === 'fwd' ? [FLOW.sport, FLOW.dport] : [FLOW.dport, FLOW.sport];
  return ipv4Packet({
    srcMac: from.mac,
    dstMac: from.nodeMac,
    saddr: from.ip,
    daddr: to.ip,
    protocol: 'tcp',
    sport,
    dport,
    tcpFlags,
  });
}

function load(pinRoot: string, ctAccounting: boolean): Promise<LxcDatapath> {
  return loadLxcDatapath({ pinRoot, config: { ctAccounting } });
}

/** Child: loads on the parent's pin root, waits for "go" on stdin, runs, prints ns/run. */
async function worker(pinRoot: string, direction: Direction, ctAccounting: boolean): Promise<void> {
  const dp = await load(pinRoot, ctAccounting);
  const frame = packet(direction, TCP_ACK);
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  const run = dp.fromContainer.testRun(frame, REPEAT);
  const drops = (await dp.metrics.read())
    .filter((m) => m.reason !== abi.REASON_FORWARDED)
    .map((m) => `${abi.dropReasonName(m.reason)} ${m.direction} ${m.packets}`);
  dp.close();
  process.stdout.write(`${JSON.stringify({ retval: run.retval, ns: run.durationNs, drops })}\n`);
}

interface Child {
  result: Promise<{ retval: number; ns: number; drops: string[] }>;
  ready: Promise<void>;
  go(): void;
}

function startChild(cpu: number, pinRoot: string, direction: Direction, ctAccounting: boolean): Child {
  const child = spawn(
    'taskset',
    [
      '-c',
      String(cpu),
      process.execPath,
      ...process.execArgv,
      SELF,
      '--worker',
      pinRoot,
      direction,
      ctAccounting ? '1' : '0',
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: process.env,
    },
  );
  let out = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('ready\n')) onReady();
  });
  const result = new Promise<{ retval: number; ns: number; drops: string[] }>((resolve, reject) => {
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`ct-bounce worker (${direction} on CPU${cpu}) exited ${code}: ${out}`));
      else resolve(JSON.parse(line) as { retval: number; ns: number; drops: string[] });
    });
  });
  return { result, ready, go: () => child.stdin.end('go\n') };
}

/** Runs the given directions at once (each on its CPU); returns ns/run per direction. */
async function measure(
  pinRoot: string,
  parent: LxcDatapath,
  ctAccounting: boolean,
  directions: Direction[],
): Promise<Partial<Record<Direction, number>>> {
  const before = parent.ct.get(CT_KEY)!;
  const children = directions.map((d) => [d, startChild(d === 'fwd' ? 0 : 1, pinRoot, d, ctAccounting)] as const);
  await Promise.all(children.map(([, c]) => c.ready));
  for (const [, c] of children) c.go();
  const out: Partial<Record<Direction, number>> = {};
  for (const [d, c] of children) {
    const r = await c.result;
    if (r.retval !== TC_ACT_REDIRECT)
      throw new Error(
        `${d}: from_container returned ${r.retval}, ` +
          `expected ${TC_ACT_REDIRECT} (redirect_peer); drops: ${r.drops.join(', ')}`,
      );
    out[d] = r.ns;
  }
  const after = parent.ct.get(CT_KEY)!;
  const want = (d: Direction) => (ctAccounting && directions.includes(d) ? BigInt(REPEAT) : 0n);
  if (after.packetsFwd - before.packetsFwd !== want('fwd') || after.packetsRev - before.packetsRev !== want('rev')) {
    throw new Error(
      `conntrack counters moved by ${after.packetsFwd - before.packetsFwd}/${after.packetsRev - before.packetsRev}, ` +
        `expected ${want('fwd')}/${want('rev')}`,
    );
  }
  return out;
}

async function main(): Promise<void> {
  if (cpus().length < 2) throw new Error('ct-bounce needs 2 CPUs');
  const rows: CtBounceRow[] = [];
  const record = (
    accounting: boolean,
    scenario: 'alone' | 'together',
    direction: Direction,
    ns: number | undefined,
  ) => {
    let row = rows.find((r) => r.accounting === accounting && r.scenario === scenario && r.direction === direction);
    if (!row) {
      row = { accounting, scenario, direction, ns: [] };
      rows.push(row);
    }
    row.ns.push(ns!);
  };
  const started = new Date().toISOString();
  const loadBefore = machineLoad();
  const setups = new Map<boolean, { pinRoot: string; dp: LxcDatapath }>();
  try {
    for (const accounting of [true, false]) {
      const pinRoot = mkdtempSync(join(privateBpffs(), `cdbench-${process.pid}-ct${accounting ? 1 : 0}-`));
      const dp = await load(pinRoot, accounting);
      setups.set(accounting, { pinRoot, dp });
      await dp.endpoints.setMany([A, B].map(({ ip, ...info }) => [ip, info] as const));
      // Open the flow: SYN A -> B, SYN-ACK back; the entry is established with the reply seen.
      if (dp.fromContainer.testRun(packet('fwd', TCP_SYN)).retval !== TC_ACT_REDIRECT)
        throw new Error('SYN not forwarded');
      if (dp.fromContainer.testRun(packet('rev', TCP_SYN | TCP_ACK)).retval !== TC_ACT_REDIRECT)
        throw new Error('SYN-ACK not forwarded');
      if (!dp.ct.get(CT_KEY)?.replySeen) throw new Error('the flow has no established conntrack entry');
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const accounting of round % 2 ? [false, true] : [true, false]) {
        const { pinRoot, dp } = setups.get(accounting)!;
        const alone = {
          ...(await measure(pinRoot, dp, accounting, ['fwd'])),
          ...(await measure(pinRoot, dp, accounting, ['rev'])),
        };
        const together = await measure(pinRoot, dp, accounting, ['fwd', 'rev']);
        for (const d of ['fwd', 'rev'] as const) {
          record(accounting, 'alone', d, alone[d]);
          record(accounting, 'together', d, together[d]);
        }
      }
      progress(`ct-bounce round ${round + 1}/${ROUNDS}`);
    }
  } finally {
    for (const { pinRoot, dp } of setups.values()) {
      dp.close();
      rmSync(pinRoot, { recursive: true, force: true });
    }
  }
  const result: CtBounceResult = {
    bench: 'ct-bounce',
    started,
    repeat: REPEAT,
    rounds: ROUNDS,
    load: loadBefore,
    loadEnd: machineLoad(),
    rows,
  };
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${renderCtBounce(result).markdown}\n`);
}

if (process.argv[2] === '--worker') {
  await worker(process.argv[3]!, process.argv[4] as Direction, process.argv[5] === '1');
} else {
  await main();
}
