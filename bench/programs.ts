/**
 * Benchmark "programs": what one run of our BPF programs costs on each packet path, measured with
 * BPF_PROG_TEST_RUN (the addon's progTestRun, `BpfProgram.testRun(packet, repeat)`): the kernel
 * runs the program `PROG_REPEAT` (2 000 000) times on one skb and reports the average ns per run. No network,
 * no dockerd: bpf/lxc.bpf.o is loaded as the daemon loads it (loadLxcDatapath, default map sizes,
 * a tunnel ifindex load-time constant so that the overlay branch is compiled in) into private pin
 * roots cdbench-<pid>-* in a private bpffs (test/unit/datapath/fixtures/bpf-sandbox.ts), removed at the end, on failure
 * and on ^C/SIGTERM.
 *
 * Two datapaths with the same endpoints, ipcache and flows: `small` with 3 policy entries in all,
 * `large` with `PROG_FILL_ENTRIES` (50 000) more ingress entries for the enforcing destination C.
 * Every path is a TCP ACK of an established connection (the flow is opened first, SYN then the
 * SYN-ACK the other way), `PROG_PACKET_BYTES` (1450) bytes of IPv4 (a full segment at a 1450 MTU):
 *
 *   local          from_container A -> B, B not enforcing: redirect_peer into B
 *   local-policy   from_container A -> C, C enforces ingress with an allow entry (2 LPM lookups)
 *   reply          from_container A -> B as the reply of B's connection (2 ct lookups, no policy)
 *   encap          from_container A -> R, R in the ipcache behind tunnel endpoint 198.18.100.2
 *   stack          from_container A -> S, S in the ipcache without a tunnel endpoint (to the stack)
 *   to-container   to_container K -> D, K in the ipcache, D enforces ingress with an allow entry
 *   local-policy-50k, local-50k   the first two on the `large` datapath
 *   floor          to_container on an ARP frame (returns at the EtherType): harness + program entry
 *
 * The variants run in `PROG_ROUNDS` (12) interleaved rounds, the order rotated per round, after one
 * unrecorded warm-up pass. After every measurement the run is checked to have taken its path on
 * every repetition: the verdict of the last run, the flow's conntrack counter advanced by exactly
 * `repeat` in the expected direction, and no drop counter moved.
 *
 * from_overlay is not measurable here: its first helper, bpf_skb_get_tunnel_key, needs the tunnel
 * metadata a vxlan device's receive path attaches, and a test run's skb has none (ctx_in cannot
 * carry it). The bench runs it once to record that it drops with DROP_NO_TUNNEL_KEY.
 *
 * `PROG_PATHS=local,reply` measures only those paths (for `perf record -a` beside a run).
 *
 * Run through bench/run.mjs (`node bench/run.mjs programs`). Writes BENCH_OUT (JSON); the report
 * is rendered by bench/lib/programs-report.mjs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../src/datapath/bpf/abi.js';
import type { BpfProgram } from '../src/datapath/bpf/bpf-program.js';
import type { EndpointPolicyEntry } from '../src/datapath/bpf/maps.js';
import { defaultLxcObjectPath, loadLxcDatapath, type LxcDatapath } from '../src/datapath/bpf/programs.js';
import { arpRequest, ipv4Packet, TCP_ACK, TCP_SYN, type Ipv4Spec } from '../test/unit/datapath/fixtures/packets.js';
import { bpfSkipReason, privateBpffs } from '../test/unit/datapath/fixtures/bpf-sandbox.js';
import { envInt, machineLoad, progress } from './lib/lab-session.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REPEAT = envInt('PROG_REPEAT', 2_000_000, 1);
const ROUNDS = envInt('PROG_ROUNDS', 12, 1);
const WARMUP_REPEAT = envInt('PROG_WARMUP_REPEAT', 100_000, 0);
const PACKET_BYTES = envInt('PROG_PACKET_BYTES', 1450, 64);
const FILL_ENTRIES = envInt('PROG_FILL_ENTRIES', 50_000, 0);
/**
 * 0: hot cache (PROG_REPEAT runs per measurement). N: cold, N single runs each after COLD_MIB of memory is rewritten.
 */
const COLD = envInt('PROG_COLD', 0, 0);
const COLD_MIB = envInt('PROG_COLD_MIB', 32, 1);
/**
 * `PROG_OBJECTS=base=/tmp/a.o,variant=/tmp/b.o`: load each object (instead of bpf/lxc.bpf.o) and
 * measure every path on each, interleaved in every round, so that the ratios to the first object
 * come from measurements seconds apart (the machine's drift between runs is larger than most
 * changes worth measuring).
 */
const OBJECTS: Array<{ label: string; path: string }> = (() => {
  const spec = (process.env.PROG_OBJECTS ?? '').trim();
  if (spec === '') return [{ label: 'lxc.bpf.o', path: defaultLxcObjectPath }];
  return spec.split(',').map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`PROG_OBJECTS: "${item}" is not label=path`);
    return { label: item.slice(0, eq).trim(), path: item.slice(eq + 1).trim() };
  });
})();
const OUT = process.env.BENCH_OUT;
if (!OUT) throw new Error('BENCH_OUT (result JSON path) is not set; run through `node bench/run.mjs`');

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
/** A test run's skb comes from the loopback device: every local endpoint that sends or receives here has ifindex 1. */
const LOOPBACK_IFINDEX = 1;
/** cfg_tunnel_ifindex: only its being set matters (a test run does not carry out the redirect). */
const TUNNEL_IFINDEX = 4000;

type Endpoint = abi.EndpointInfo & { ip: string };

const endpoint = (ip: string, n: number, over: Partial<abi.EndpointInfo> = {}): Endpoint => ({
  ip,
  ifindex: LOOPBACK_IFINDEX,
  epId: 10 + n,
  identity: 1000 + n,
  netId: 1,
  enforceIngress: false,
  enforceEgress: false,
  mac: `02:00:00:00:00:0${n}`,
  nodeMac: `02:00:00:00:01:0${n}`,
  ...over,
});
/** The sender of the from_container paths (its container MAC is checked on every packet). */
const A = endpoint('198.18.1.2', 1);
// The same test-run skb is reused for every repetition, so the MAC rewrite of a local delivery
// stays in the frame: B's and C's lxc MAC (the new source MAC) is A's container MAC, so that the
// next repetition passes A's source-MAC check (the rewrite itself still happens on every run).
const B = endpoint('198.18.1.3', 2, { nodeMac: A.mac });
const C = endpoint('198.18.1.4', 3, { nodeMac: A.mac, enforceIngress: true });
const D = endpoint('198.18.1.5', 4, { enforceIngress: true });
/** A pod on another node (tunnel), a host the stack routes to, a client the stack delivers to D. */
const R = { ip: '198.19.5.5', identity: 2001, tunnelEndpoint: '198.18.100.2', netId: 1 };
const S = { ip: '198.19.7.7', identity: 2003, netId: 0 };
const K = { ip: '198.19.6.6', identity: 2002, netId: 0 };

const allowIngress = (peer: number, dport: number, cookie: number): EndpointPolicyEntry => ({
  direction: 'ingress',
  peer,
  protocol: 6,
  dport,
  portPrefixLen: 16,
  verdict: 'allow',
  cookie,
});

/** An IPv4 TCP frame of PACKET_BYTES bytes of IP (zero payload after the fixture's 16 bytes). */
function tcpFrame(spec: Partial<Ipv4Spec> & Pick<Ipv4Spec, 'saddr' | 'daddr' | 'srcMac' | 'dstMac'>): Buffer {
  const frame = ipv4Packet({ protocol: 'tcp', ...spec });
  const ipBytes = Math.max(PACKET_BYTES, frame.length - 14);
  const out = Buffer.concat([frame, Buffer.alloc(14 + ipBytes - frame.length)]);
  out.writeUInt16BE(ipBytes, 14 + 2);
  return out;
}

type ProgramName = 'from_container' | 'to_container';

/** One packet path to measure. */
interface Variant {
  key: string;
  datapath: 'small' | 'large';
  program: ProgramName;
  /** What the path does, for the report. */
  what: string;
  packet: Buffer;
  retval: number;
  /** The flow's conntrack entry and which of its counters this packet advances (none: no conntrack). */
  ct?: { key: abi.CtKey; direction: 'fwd' | 'rev' };
}

/** A TCP flow between two parties: frames in both directions and its conntrack key. */
function flow(
  client: { ip: string; mac: string; nodeMac: string },
  server: { ip: string; mac: string; nodeMac: string },
  sport: number,
  dport: number,
) {
  const fwd = (tcpFlags: number) =>
    tcpFrame({
      saddr: client.ip,
      daddr: server.ip,
      srcMac: client.mac,
      dstMac: client.nodeMac,
      sport,
      dport,
      tcpFlags,
    });
  const rev = (tcpFlags: number) =>
    tcpFrame({
      saddr: server.ip,
      daddr: client.ip,
      srcMac: server.mac,
      dstMac: server.nodeMac,
      sport: dport,
      dport: sport,
      tcpFlags,
    });
  return { fwd, rev, key: { saddr: client.ip, daddr: server.ip, sport, dport, protocol: 6 } };
}

/** Outside parties have no container MAC of their own: frames from the stack carry the lxc MAC pair. */
const outside = (ip: string) => ({ ip, mac: '02:00:00:00:02:01', nodeMac: '02:00:00:00:02:02' });

const flows = {
  local: flow(A, B, 40001, 80),
  policy: flow(A, C, 40002, 80),
  reply: flow(B, A, 50000, 80), // opened by B: A's packets are its replies
  encap: flow(A, outside(R.ip), 40004, 80),
  stack: flow(A, outside(S.ip), 40005, 80),
  toContainer: flow(outside(K.ip), D, 45000, 8080),
};

/**
 * Opens every flow on dp the way the connection would start, each step checked: SYN from the
 * client, SYN-ACK from the server, through the program that sees each direction.
 */
function openFlows(dp: LxcDatapath): void {
  const step = (program: BpfProgram, packet: Buffer, want: number, what: string) => {
    const { retval } = program.testRun(packet);
    if (retval !== want) throw new Error(`setup: ${what} through ${program.name} returned ${retval}, expected ${want}`);
  };
  const from = dp.fromContainer;
  const to = dp.toContainer;
  step(from, flows.local.fwd(TCP_SYN), TC_ACT_REDIRECT, 'A -> B SYN');
  step(from, flows.local.rev(TCP_SYN | TCP_ACK), TC_ACT_REDIRECT, 'B -> A SYN-ACK');
  step(from, flows.policy.fwd(TCP_SYN), TC_ACT_REDIRECT, 'A -> C SYN (C allows A on 80)');
  step(from, flows.policy.rev(TCP_SYN | TCP_ACK), TC_ACT_REDIRECT, 'C -> A SYN-ACK');
  step(from, flows.reply.fwd(TCP_SYN), TC_ACT_REDIRECT, 'B -> A SYN');
  step(from, flows.reply.rev(TCP_SYN | TCP_ACK), TC_ACT_REDIRECT, 'A -> B SYN-ACK');
  step(from, flows.encap.fwd(TCP_SYN), TC_ACT_REDIRECT, 'A -> R SYN (encapsulated)');
  step(to, flows.encap.rev(TCP_SYN | TCP_ACK), TC_ACT_OK, 'R -> A SYN-ACK');
  step(from, flows.stack.fwd(TCP_SYN), TC_ACT_OK, 'A -> S SYN (to the stack)');
  step(to, flows.stack.rev(TCP_SYN | TCP_ACK), TC_ACT_OK, 'S -> A SYN-ACK');
  step(to, flows.toContainer.fwd(TCP_SYN), TC_ACT_OK, 'K -> D SYN (D allows K on 8080)');
  step(from, flows.toContainer.rev(TCP_SYN | TCP_ACK), TC_ACT_OK, 'D -> K SYN-ACK');
}

const variants: Variant[] = [
  {
    key: 'local',
    datapath: 'small',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.local.fwd(TCP_ACK),
    ct: { key: flows.local.key, direction: 'fwd' },
    what: 'local destination, established, destination not enforcing',
  },
  {
    key: 'local-policy',
    datapath: 'small',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.policy.fwd(TCP_ACK),
    ct: { key: flows.policy.key, direction: 'fwd' },
    what: 'local destination enforcing ingress, allow entry (3 entries in the map)',
  },
  {
    key: 'reply',
    datapath: 'small',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.reply.rev(TCP_ACK),
    ct: { key: flows.reply.key, direction: 'rev' },
    what: 'local destination, reply direction (ct entry reversed)',
  },
  {
    key: 'encap',
    datapath: 'small',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.encap.fwd(TCP_ACK),
    ct: { key: flows.encap.key, direction: 'fwd' },
    what: 'remote endpoint via the ipcache, tunnel endpoint set: encapsulate',
  },
  {
    key: 'stack',
    datapath: 'small',
    program: 'from_container',
    retval: TC_ACT_OK,
    packet: flows.stack.fwd(TCP_ACK),
    ct: { key: flows.stack.key, direction: 'fwd' },
    what: 'ipcache entry without tunnel endpoint: to the stack (masquerade mark)',
  },
  {
    key: 'to-container',
    datapath: 'small',
    program: 'to_container',
    retval: TC_ACT_OK,
    packet: flows.toContainer.fwd(TCP_ACK),
    ct: { key: flows.toContainer.key, direction: 'fwd' },
    what: 'from the stack, source in the ipcache, destination enforcing ingress, allow entry',
  },
  {
    key: 'local-policy-50k',
    datapath: 'large',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.policy.fwd(TCP_ACK),
    ct: { key: flows.policy.key, direction: 'fwd' },
    what: `local-policy with ${FILL_ENTRIES} more entries for the destination`,
  },
  {
    key: 'local-50k',
    datapath: 'large',
    program: 'from_container',
    retval: TC_ACT_REDIRECT,
    packet: flows.local.fwd(TCP_ACK),
    ct: { key: flows.local.key, direction: 'fwd' },
    what: 'local on the large datapath (control: no policy lookup)',
  },
  {
    key: 'floor',
    datapath: 'small',
    program: 'to_container',
    retval: TC_ACT_OK,
    packet: arpRequest(outside(K.ip).mac, K.ip, D.ip),
    what: 'ARP frame: returns after the EtherType (test-run harness + program entry)',
  },
];

/** `PROG_PATHS` (comma separated keys): measure only these paths (e.g. under `perf record`). */
const selected = (() => {
  const keys = (process.env.PROG_PATHS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  const unknown = keys.filter((k) => !variants.some((v) => v.key === k));
  if (unknown.length > 0)
    throw new Error(
      `PROG_PATHS: unknown path(s) ${unknown.join(', ')}; known: ${variants.map((v) => v.key).join(', ')}`,
    );
  return keys.length === 0 ? variants : variants.filter((v) => keys.includes(v.key));
})();

/** One loaded datapath in its own pin root. */
interface Instance {
  dp: LxcDatapath;
  pinRoot: string;
  policyEntries: number;
}

async function loadInstance(
  name: string,
  fill: number,
  objectPath: string,
  cleanups: Array<() => void>,
): Promise<Instance> {
  const pinRoot = mkdtempSync(join(privateBpffs(), `cdbench-${process.pid}-${name}-`));
  cleanups.push(() => rmSync(pinRoot, { recursive: true, force: true }));
  // As the daemon loads it (src/datapath/bpf-loader.ts): default map sizes, the tunnel ifindex.
  const dp = await loadLxcDatapath({ pinRoot, objectPath, config: { tunnelIfindex: TUNNEL_IFINDEX } });
  cleanups.push(() => dp.close());
  await dp.endpoints.setMany([A, B, C, D].map(({ ip, ...info }) => [ip, info] as const));
  await dp.ipcache.setMany([
    [`${R.ip}/32`, { identity: R.identity, tunnelEndpoint: R.tunnelEndpoint, netId: R.netId }],
    [`${S.ip}/32`, { identity: S.identity, netId: S.netId }],
    [`${K.ip}/32`, { identity: K.identity, netId: K.netId }],
  ]);
  const cEntries = [allowIngress(A.identity, 80, 1), allowIngress(R.identity, 443, 2)];
  // The fill: peers 3000, 3001, ... each allowed on 1000 TCP ports, as a big rule set would be.
  for (let i = 0; i < fill; i++) cEntries.push(allowIngress(3000 + Math.floor(i / 1000), 1000 + (i % 1000), 100 + i));
  const written =
    (await dp.policy.syncEndpoint(C.epId, cEntries)).written +
    (await dp.policy.syncEndpoint(D.epId, [allowIngress(K.identity, 8080, 3)])).written;
  let inMap = 0;
  for await (const batch of dp.policy.map.batches(8192)) inMap += batch.count;
  if (inMap !== written || inMap !== 3 + fill)
    throw new Error(`${name}: policy map holds ${inMap} entries, wrote ${written}, expected ${3 + fill}`);
  openFlows(dp);
  return { dp, pinRoot, policyEntries: inMap };
}

/** Sum of every drop counter (every reason but forwarded and events-lost). */
async function drops(dp: LxcDatapath): Promise<bigint> {
  let sum = 0n;
  for (const s of await dp.metrics.read())
    if (s.reason !== abi.REASON_FORWARDED && s.reason !== abi.REASON_EVENTS_LOST) sum += s.packets;
  return sum;
}

function ctPackets(dp: LxcDatapath, v: Variant): bigint {
  if (!v.ct) return 0n;
  const entry = dp.ct.get(v.ct.key);
  if (!entry) throw new Error(`${v.key}: conntrack entry ${JSON.stringify(v.ct.key)} is missing`);
  return v.ct.direction === 'fwd' ? entry.packetsFwd : entry.packetsRev;
}

/** Rewritten before every cold run: evicts the maps' entries and the program from the caches and the TLB. */
const thrash = COLD > 0 ? Buffer.alloc(COLD_MIB << 20) : Buffer.alloc(0);

/**
 * Runs v in the kernel, `repeat` times in one test run (hot), or, with PROG_COLD=N, N test runs of
 * one repetition each, right after `thrash` was rewritten (cold: the median). Returns ns per run
 * after checking every run took the path.
 */
async function measure(inst: Instance, v: Variant, repeat: number): Promise<number> {
  const program = v.program === 'from_container' ? inst.dp.fromContainer : inst.dp.toContainer;
  const dropsBefore = await drops(inst.dp);
  const ctBefore = ctPackets(inst.dp, v);
  const runs = COLD > 0 ? COLD : 1;
  const perRun = COLD > 0 ? 1 : repeat;
  const durations: number[] = [];
  let retval = v.retval;
  for (let i = 0; i < runs; i++) {
    if (COLD > 0) thrash.fill(i & 0xff);
    const run = program.testRun(v.packet, perRun);
    durations.push(run.durationNs);
    if (run.retval !== v.retval) retval = run.retval;
  }
  const total = runs * perRun;
  const ctDelta = ctPackets(inst.dp, v) - ctBefore;
  const dropDelta = (await drops(inst.dp)) - dropsBefore;
  if (retval !== v.retval) throw new Error(`${v.key}: ${v.program} returned ${retval}, expected ${v.retval}`);
  if (dropDelta !== 0n) throw new Error(`${v.key}: ${dropDelta} packets dropped during ${total} runs`);
  if (v.ct && ctDelta !== BigInt(total))
    throw new Error(`${v.key}: conntrack ${v.ct.direction} counter advanced by ${ctDelta}, expected ${total}`);
  durations.sort((a, b) => a - b);
  return durations[Math.floor(durations.length / 2)]!;
}

/** Runs from_overlay once on a frame from R to A: records what a test run without tunnel metadata does. */
async function probeFromOverlay(inst: Instance) {
  const before = new Map((await inst.dp.metrics.read()).map((s) => [`${s.reason}/${s.direction}`, s.packets]));
  const run = inst.dp.fromOverlay.testRun(flows.encap.rev(TCP_ACK));
  const moved = (await inst.dp.metrics.read()).filter(
    (s) => s.packets !== (before.get(`${s.reason}/${s.direction}`) ?? 0n),
  );
  return {
    key: 'from-overlay',
    program: 'from_overlay',
    retval: run.retval,
    dropReasons: moved.map((s) => abi.dropReasonName(s.reason)),
    reason:
      'bpf_skb_get_tunnel_key needs the tunnel metadata (skb dst of a collect_md vxlan device); ' +
      'a BPF_PROG_TEST_RUN skb has none, so the program drops at its first helper',
    dropsAsExpected: run.retval === TC_ACT_SHOT && moved.some((s) => s.reason === abi.DropReason.NoTunnelKey),
  };
}

function git(args: string[]): string {
  return execFileSync('git', ['-C', ROOT, ...args])
    .toString()
    .trim();
}

/** When bpf/lxc.bpf.o was built and whether a source is newer (scripts/build-bpf.sh rebuilds it). */
function objectState() {
  const built = statSync(defaultLxcObjectPath).mtimeMs;
  const sources = git(['ls-files', 'bpf'])
    .split('\n')
    .filter((f) => f.endsWith('.c') || f.endsWith('.h'));
  const newer = sources.filter((f) => statSync(join(ROOT, f)).mtimeMs > built);
  return { path: defaultLxcObjectPath, built: new Date(built).toISOString(), sourcesNewer: newer };
}

async function main(): Promise<void> {
  const skip = bpfSkipReason();
  if (skip) throw new Error(`cannot run BPF programs here: ${skip}`);
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const cleanups: Array<() => void> = [];
  const cleanup = () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch (err) {
        progress(`clean-up: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  try {
    const loadBefore = machineLoad();
    const needLarge = selected.some((v) => v.datapath === 'large');
    const loaded: Array<Record<Variant['datapath'], Instance>> = [];
    for (const [i, o] of OBJECTS.entries()) {
      const small = await loadInstance(`o${i}-small`, 0, o.path, cleanups);
      loaded.push({
        small,
        large: needLarge ? await loadInstance(`o${i}-large`, FILL_ENTRIES, o.path, cleanups) : small,
      });
    }
    const instances = loaded[0]!;
    progress(
      `loaded ${OBJECTS.map((o) => o.label).join(', ')}: ` +
        `policy maps with ${instances.small.policyEntries} and ${instances.large.policyEntries} entries; flows open`,
    );
    const fromOverlay = await probeFromOverlay(instances.small);

    if (WARMUP_REPEAT > 0 && COLD === 0)
      for (const inst of loaded) for (const v of selected) await measure(inst[v.datapath], v, WARMUP_REPEAT);
    const samples: Array<{ variant: string; object?: string; round: number; nsPerRun: number }> = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = selected.map((_, i) => selected[(i + round) % selected.length]!);
      for (const v of order) {
        for (let k = 0; k < OBJECTS.length; k++) {
          const o = (k + round) % OBJECTS.length;
          const nsPerRun = await measure(loaded[o]![v.datapath], v, REPEAT);
          samples.push({ variant: v.key, ...(OBJECTS.length > 1 && { object: OBJECTS[o]!.label }), round, nsPerRun });
        }
      }
      const line = selected
        .map(
          (v) =>
            `${v.key} ${samples
              .filter((s) => s.round === round && s.variant === v.key)
              .map((s) => s.nsPerRun)
              .join('/')}`,
        )
        .join(', ');
      progress(`round ${round + 1}/${ROUNDS} (ns/run): ${line}`);
    }

    const result = {
      bench: 'programs',
      startedAt,
      durationS: (performance.now() - t0) / 1000,
      settings: {
        cold: COLD,
        coldMib: COLD_MIB,
        repeat: REPEAT,
        rounds: ROUNDS,
        warmupRepeat: WARMUP_REPEAT,
        packetBytes: PACKET_BYTES,
        fillEntries: FILL_ENTRIES,
        tunnelIfindex: TUNNEL_IFINDEX,
      },
      machine: { loadBefore, loadAfter: machineLoad(), kernel: release(), node: process.version },
      code: {
        head: git(['rev-parse', '--short', 'HEAD']),
        uncommittedFiles: git(['status', '--porcelain', '--', 'bpf', 'src', 'native'])
          .split('\n')
          .filter((l) => l !== '').length,
        object: objectState(),
      },
      policyEntries: { small: instances.small.policyEntries, large: instances.large.policyEntries },
      variants: selected.map(({ key, datapath, program, what, packet, retval }) => ({
        key,
        datapath,
        program,
        what,
        frameBytes: packet.length,
        retval,
      })),
      ...(OBJECTS.length > 1 && { objects: OBJECTS }),
      samples: OBJECTS.length > 1 ? samples.filter((x) => x.object === OBJECTS[0]!.label) : samples,
      objectSamples: OBJECTS.length > 1 ? samples : undefined,
      notMeasured: [fromOverlay],
    };
    writeFileSync(OUT!, `${JSON.stringify(result, null, 1)}\n`);
  } finally {
    cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`programs bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
