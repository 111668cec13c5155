/**
 * Cross-host throughput and RR over the overlay, interleaved, between two lab hosts on a shared
 * underlay (test/lab/underlay.ts; each host: own dockerd and daemon on one etcd):
 *
 *  - kernel-vxlan: the baseline, a plain kernel VXLAN device per host (`ip link add … type vxlan
 *    id 42 remote <peer> dstport 4789 dev ul0`), a namespace per side behind a veth, kernel
 *    routing (container-like MTU 1450);
 *  - ours: two containers on `docker network create -d cilium` across the hosts: from_container
 *    encapsulates (bpf_skb_adjust_room + outer headers) -> bpf_redirect_neigh to the underlay ->
 *    from_underlay on the receiver decapsulates -> bpf_redirect_peer (--tunnel-encap bpf, the
 *    default; the daemons' `--tunnel-encap device` would put cilium_vxlan on both ends);
 *  - ours+policy: the same with a CiliumNetworkPolicy selecting the server (ingress from the
 *    client's labels on the two bench ports only), enforced on the receiving host.
 *
 *  - routed: the limit, no tunnel at all: a namespace per side behind a veth at the overlay MTU
 *    (1450), routed host to host over the underlay;
 *  - docker-overlay: Docker's classic overlay driver without swarm, on two more lab hosts whose
 *    dockerd runs with `--cluster-store etcd://…` (a second etcd on the underlay with the v2 API)
 *    and `--cluster-advertise <underlay address>:2376` (serf + kernel VXLAN in dockerd's overlay sandbox).
 *
 * Then the policy-distribution latency over three hosts running our daemon: a tcprr connprobe
 * (a new TCP connection with one 64-byte request every ms) into a container on each of the
 * three hosts, each from a client on another host; a policy that selects the three servers and
 * allows only another port is imported on host 1; "enforced on host k" = the start of the first
 * probe connection that got no answer (within 300 ms) on host k, measured from the import call.
 * The figure is the max over the three hosts (all enforce), per import; also `policy wait REV`
 * on each daemon. Then the policy is deleted (waited for on all three) and the next import starts.
 * New connections by default; OV_PROBE=probe uses one established flow per host instead (one
 * request per ms on a single connection), which checks that a policy change cuts it too.
 *
 * One round measures every config once (iperf3 single stream, then tcprr 64-byte RR), the order
 * rotated per round and reversed every other round (so no config always follows the same one).
 * `node bench/run.mjs overlay` runs it and renders the table with the targets; run alone it writes
 * bench/results/<stamp>-overlay.json and prints the table. Settings: OV_ROUNDS (5), OV_SECONDS (5, iperf3 per sample),
 * OV_RR_SECONDS (3), OV_IMPORTS (20, 0 skips the 3-host phase and its third host), OV_CLASSIC (1; 0 skips
 * docker-overlay), OV_PROBE (connprobe | probe), OV_PROFILE (1: per-run cost of our programs on both hosts with
 * kernel.bpf_stats_enabled, after the rounds), OV_PERF (0; 1: `perf record -a` during one iperf3
 * and one RR run of every config, folded by symbol family), OV_STRIP_DOCKER_NAT (0; 1: dockerd's
 * embedded-DNS nat table removed from the containers' netns, as the kernel-vxlan and routed
 * namespaces have none).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startDockerHost, type DockerHost } from '../test/lab/docker-host.js';
import { ensureBusyboxImage } from '../test/lab/busybox-image.js';
import { runCommand, type CommandResult } from '../test/lab/exec.js';
import type { LabProcess } from '../test/lab/lab-process.js';
import { registerEmergencyCleanup } from '../test/lab/process-registry.js';
import { startUnderlay, type Underlay } from '../test/lab/underlay.js';
import type { PolicyRevisionModel, PolicyWaitModel } from '../src/api/models.js';
import { CiliumDaemon, eventually } from '../test/support/cilium-daemon.js';
import { sandboxOf, type EndpointPair } from './lib/endpoint-pair.js';
import { LabSession, envInt, progress, machineLoad, sleep } from './lib/lab-session.js';
import {
  measureRr,
  measureThroughput,
  startServers,
  waitListening,
  IPERF_PORT,
  RR_PORT,
  TCPRR,
  type RrSample,
  type ThroughputSample,
} from './lib/netperf.js';
import { ingressAllowPolicy } from './lib/policy-text.js';
import { renderOverlay, type ImportSample, type OverlayResult, type OverlayProfile } from './lib/overlay-report.mjs';
import { costDuring, ourProgramIds, withBpfStats } from './lib/bpf-stats.js';
import { profileDuring } from './lib/perf-profile.js';
import { stripDockerNat } from './lib/docker-nat.js';

const ROOT = new URL('../', import.meta.url).pathname;
const ROUNDS = envInt('OV_ROUNDS', 5, 1);
const SECONDS = envInt('OV_SECONDS', 5, 1);
const RR_SECONDS = envInt('OV_RR_SECONDS', 3, 1);
const IMPORTS = envInt('OV_IMPORTS', 20, 0);
const CLASSIC = envInt('OV_CLASSIC', 1, 0) > 0;
/** The import probe: `connprobe` (a new connection per request) or `probe` (one established flow). */
const PROBE = process.env.OV_PROBE ?? 'connprobe';
/** Per-run cost of our programs on both hosts during one RR and one iperf3 run (bpf_stats). */
const PROFILE = envInt('OV_PROFILE', 1, 0) > 0;
/** `perf record -a` during one iperf3 and one RR run of every config. */
const PERF = envInt('OV_PERF', 0, 0) > 0;
/** 1: dockerd's nat table (embedded-DNS DNAT) out of every container's netns (bench/lib/docker-nat.ts). */
const STRIP_DOCKER_NAT = envInt('OV_STRIP_DOCKER_NAT', 0, 0) > 0;
if (PROBE !== 'connprobe' && PROBE !== 'probe') throw new Error(`OV_PROBE=${PROBE}: expected connprobe or probe`);

/** Runs argv in a network namespace reachable from the host's mount namespace. */
class NetnsPair implements EndpointPair {
  constructor(
    readonly serverIp: string,
    private readonly client: { host: DockerHost; netns: string },
    private readonly server: { host: DockerHost; netns: string },
  ) {}

  runInClient(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.client.host.exec(['nsenter', `--net=${this.client.netns}`, '--', ...argv], { timeoutMs });
  }

  runInServer(argv: readonly string[], timeoutMs: number): Promise<CommandResult> {
    return this.server.host.exec(['nsenter', `--net=${this.server.netns}`, '--', ...argv], { timeoutMs });
  }

  startInServer(argv: readonly string[], logName: string): LabProcess {
    return this.server.host.spawn(['nsenter', `--net=${this.server.netns}`, '--', ...argv], {}, { logName });
  }

  startInClient(argv: readonly string[], logName: string): LabProcess {
    return this.client.host.spawn(['nsenter', `--net=${this.client.netns}`, '--', ...argv], {}, { logName });
  }
}

async function ip(args: string[]): Promise<void> {
  await runCommand('ip', args, { check: true, timeoutMs: 30_000 });
}

/** The kernel-VXLAN baseline: vxlan42 on each host and a namespace behind a veth on each side. */
async function kernelVxlan(session: LabSession, hosts: DockerHost[], underlayIps: string[]): Promise<NetnsPair> {
  const names = hosts.map((_, i) => `bov${process.pid}-${i}`);
  const unregister = registerEmergencyCleanup(() => {
    for (const n of names) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    }
  });
  session.teardown(async () => {
    for (const n of names) await runCommand('ip', ['netns', 'del', n]);
    unregister();
  });
  const addr = (i: number) => `198.18.132.${i + 1}`;
  for (let i = 0; i < 2; i++) {
    const h = hosts[i]!.name;
    const ns = names[i]!;
    await ip(['netns', 'add', ns]);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip([
      '-n',
      h,
      'link',
      'add',
      'vxlan42',
      'type',
      'vxlan',
      'id',
      '42',
      'remote',
      underlayIps[1 - i]!,
      'local',
      underlayIps[i]!,
      'dstport',
      '4789',
      'dev',
      'ul0',
    ]);
    await ip(['-n', h, 'addr', 'add', `198.18.131.${i + 1}/24`, 'dev', 'vxlan42']);
    await ip(['-n', h, 'link', 'set', 'vxlan42', 'up']);
    await ip([
      '-n',
      h,
      'link',
      'add',
      'bov0',
      'mtu',
      '1450',
      'type',
      'veth',
      'peer',
      'name',
      'ceth0',
      'netns',
      ns,
      'mtu',
      '1450',
    ]);
    await ip(['-n', h, 'addr', 'add', '198.18.132.254/32', 'dev', 'bov0']);
    await ip(['-n', h, 'link', 'set', 'bov0', 'up']);
    await ip(['-n', h, 'route', 'add', `${addr(i)}/32`, 'dev', 'bov0']);
    await ip(['-n', h, 'route', 'add', `${addr(1 - i)}/32`, 'via', `198.18.131.${2 - i}`, 'dev', 'vxlan42']);
    await ip(['-n', ns, 'addr', 'add', `${addr(i)}/32`, 'dev', 'ceth0']);
    await ip(['-n', ns, 'link', 'set', 'ceth0', 'up']);
    await ip(['-n', ns, 'route', 'add', '198.18.132.254/32', 'dev', 'ceth0', 'scope', 'link']);
    await ip(['-n', ns, 'route', 'add', 'default', 'via', '198.18.132.254', 'dev', 'ceth0']);
  }
  return new NetnsPair(
    addr(1),
    { host: hosts[0]!, netns: `/run/netns/${names[0]}` },
    { host: hosts[1]!, netns: `/run/netns/${names[1]}` },
  );
}

/** Namespaces `<prefix>-<i>` deleted at teardown and by the emergency handler. */
function scratchNetns(session: LabSession, prefix: string, n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `${prefix}${process.pid}-${i}`);
  const unregister = registerEmergencyCleanup(() => {
    for (const name of names) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    }
  });
  session.teardown(async () => {
    for (const name of names) await runCommand('ip', ['netns', 'del', name]);
    unregister();
  });
  return names;
}

/**
 * (a) The limit: a namespace per side behind a veth at the overlay MTU (1450), routed host to
 * host over the underlay with no tunnel (198.18.135.<i+1> via the peer's ul0 address).
 */
async function routedUnderlay(session: LabSession, hosts: DockerHost[], underlayIps: string[]): Promise<NetnsPair> {
  const names = scratchNetns(session, 'bor', 2);
  const addr = (i: number) => `198.18.135.${i + 1}`;
  for (let i = 0; i < 2; i++) {
    const h = hosts[i]!.name;
    const ns = names[i]!;
    await ip(['netns', 'add', ns]);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip([
      '-n',
      h,
      'link',
      'add',
      'bor0',
      'mtu',
      '1450',
      'type',
      'veth',
      'peer',
      'name',
      'ceth0',
      'netns',
      ns,
      'mtu',
      '1450',
    ]);
    await ip(['-n', h, 'addr', 'add', '198.18.135.254/32', 'dev', 'bor0']);
    await ip(['-n', h, 'link', 'set', 'bor0', 'up']);
    await ip(['-n', h, 'route', 'add', `${addr(i)}/32`, 'dev', 'bor0']);
    await ip(['-n', h, 'route', 'add', `${addr(1 - i)}/32`, 'via', underlayIps[1 - i]!, 'dev', 'ul0']);
    await ip(['-n', ns, 'addr', 'add', `${addr(i)}/32`, 'dev', 'ceth0']);
    await ip(['-n', ns, 'link', 'set', 'ceth0', 'up']);
    await ip(['-n', ns, 'route', 'add', '198.18.135.254/32', 'dev', 'ceth0', 'scope', 'link']);
    await ip(['-n', ns, 'route', 'add', 'default', 'via', '198.18.135.254', 'dev', 'ceth0']);
  }
  return new NetnsPair(
    addr(1),
    { host: hosts[0]!, netns: `/run/netns/${names[0]}` },
    { host: hosts[1]!, netns: `/run/netns/${names[1]}` },
  );
}

/**
 * (c) Docker's classic overlay without swarm (docs: /work/shared/reference, "classic overlay
 * baseline"): a second etcd on the underlay with the v2 API (libkv speaks v2 only), two more lab
 * hosts whose dockerd has `--cluster-store` and `--cluster-advertise <underlay address>:2376` (the lab gives
 * each host its own hostname: serf needs distinct node names), one overlay network created on the
 * first and used from both.
 */
async function classicOverlay(session: LabSession, underlay: Underlay, firstIndex: number): Promise<NetnsPair> {
  const url = `http://${underlay.serviceIp}:23790`;
  const data = join(underlay.dir, 'etcd-v2');
  mkdirSync(data, { recursive: true });
  const etcd = underlay.spawn(
    [
      '/usr/bin/etcd',
      '--name=classic',
      `--data-dir=${data}`,
      '--enable-v2=true',
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      '--listen-peer-urls=http://127.0.0.1:23800',
      '--initial-advertise-peer-urls=http://127.0.0.1:23800',
      '--initial-cluster=classic=http://127.0.0.1:23800',
      '--log-level=warn',
    ],
    'etcd-v2.log',
  );
  await eventually(
    async () => {
      if (etcd.exited) throw new Error(`etcd exited: ${etcd.logTail(10)}`);
      return (
        await runCommand('ip', ['netns', 'exec', underlay.netns, 'busybox', 'wget', '-q', '-O', '-', `${url}/health`], {
          timeoutMs: 5_000,
        })
      ).stdout.includes('true');
    },
    20_000,
    'etcd (v2 API) healthy',
  );
  const hosts: DockerHost[] = [];
  for (let i = 0; i < 2; i++) {
    // The address, not `ul0`: dockerd rejects an interface that does not exist yet.
    const advertise = `${underlay.prefix}.${firstIndex + i}:2376`;
    const host = await startDockerHost(session, {
      extraDockerdArgs: ['--cluster-store', `etcd://${underlay.serviceIp}:23790`, '--cluster-advertise', advertise],
    });
    hosts.push(host);
    await underlay.attach(host, firstIndex + i);
    await ensureBusyboxImage(host, 'bb');
  }
  // dockerd started before its underlay address existed: restart it so serf binds that address.
  for (const host of hosts) await host.restartDockerd({ signal: 'SIGTERM' });
  const created = await hosts[0]!.docker(['network', 'create', '-d', 'overlay', '--subnet', '198.18.134.0/24', 'ovc'], {
    timeoutMs: 60_000,
  });
  if (created.code !== 0) throw new Error(`docker network create -d overlay: ${created.stderr}`);
  const container = async (h: number, name: string): Promise<{ netns: string; ip: string }> => {
    // The network reaches the second host through the store: retry until it resolves there.
    await eventually(
      async () => {
        const r = await hosts[h]!.docker(['run', '-d', '--name', name, '--network', 'ovc', 'bb', 'sleep', '100000'], {
          timeoutMs: 60_000,
        });
        if (r.code === 0) return true;
        await hosts[h]!.docker(['rm', '-f', name]);
        throw new Error(r.stderr.trim());
      },
      60_000,
      `docker run ${name} on the classic overlay`,
    );
    const addr = (
      await hosts[h]!.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ovc").IPAddress}}', name])
    ).stdout.trim();
    return { netns: await sandboxOf(hosts[h]!, name), ip: addr };
  };
  const client = await container(0, 'classic-client');
  const server = await container(1, 'classic-server');
  return new NetnsPair(server.ip, { host: hosts[0]!, netns: client.netns }, { host: hosts[1]!, netns: server.netns });
}

interface ProbeLine {
  stalled: boolean;
  answered: number;
  lastAnsweredSentUs?: number;
  unansweredSentUs?: number;
}

async function waitForLine(proc: LabProcess, pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = proc
      .readLog()
      .split('\n')
      .find((l) => pattern.test(l));
    if (m) return m;
    if (proc.exited || Date.now() > deadline) return undefined;
    await sleep(20);
  }
}

/**
 * Policy import on host 1 -> enforced on all three hosts, IMPORTS times. Probe flows: into
 * `pimp-srv-k` on host k from `pimp-cli-<k+1>` on host k+1 (mod 3), all across the overlay.
 */
async function importLatency(hosts: DockerHost[], daemons: CiliumDaemon[]): Promise<ImportSample[]> {
  const out: ImportSample[] = [];
  const ep = async (h: number, name: string, role: string): Promise<{ netns: string; ip: string }> => {
    const r = await hosts[h]!.docker(
      ['run', '-d', '--name', name, '--network', 'ovb', '-l', `pimp=${role}`, 'bb', 'sleep', '100000'],
      { timeoutMs: 60_000 },
    );
    if (r.code !== 0) throw new Error(`docker run ${name}: ${r.stderr}`);
    const addr = (
      await hosts[h]!.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ovb").IPAddress}}', name])
    ).stdout.trim();
    return { netns: await sandboxOf(hosts[h]!, name), ip: addr };
  };
  const servers: Array<{ netns: string; ip: string }> = [];
  const clients: Array<{ netns: string; ip: string }> = [];
  for (let k = 0; k < 3; k++) servers.push(await ep(k, `pimp-srv-${k}`, 'srv'));
  for (let k = 0; k < 3; k++) clients.push(await ep(k, `pimp-cli-${k}`, 'cli'));
  const pairs = [0, 1, 2].map((k) => {
    const c = (k + 1) % 3;
    return new NetnsPair(
      servers[k]!.ip,
      { host: hosts[c]!, netns: clients[c]!.netns },
      { host: hosts[k]!, netns: servers[k]!.netns },
    );
  });
  const rrServers = pairs.map((p, k) =>
    p.startInServer([TCPRR, 'server', '-p', String(RR_PORT)], `pimp-server-${k}.log`),
  );
  try {
    for (const [k, p] of pairs.entries())
      await waitListening(p, rrServers[k]!, RR_PORT, `probe server on host ${k + 1}`);
    // Each pair's first packets teach the hosts the peers' identities (ipcache via the store).
    for (const [k, p] of pairs.entries())
      await eventually(
        async () => (await p.runInClient(['busybox', 'ping', '-c', '1', '-W', '1', p.serverIp], 5_000)).code === 0,
        30_000,
        `probe path into host ${k + 1}`,
      );
    const text = ingressAllowPolicy('bench-import', { pimp: 'srv' }, { pimp: 'cli' }, [{ port: RR_PORT + 1 }]);
    for (let i = 0; i < IMPORTS; i++) {
      const probes = pairs.map((p, k) =>
        p.startInClient(
          [TCPRR, PROBE, '-H', p.serverIp, '-p', String(RR_PORT), '-i', '1000', '-S', '300', '-t', '120'],
          `pimp-probe-${i}-${k}.log`,
        ),
      );
      try {
        for (const [k, probe] of probes.entries())
          if (!(await waitForLine(probe, /"ready"/, 10_000)))
            throw new Error(`probe into host ${k + 1} did not connect: ${probe.logTail(5)}`);
        await sleep(300);
        for (const [k, probe] of probes.entries())
          if (probe.exited) throw new Error(`probe into host ${k + 1} ended before the import: ${probe.logTail(5)}`);
        const wallStartUs = (performance.timeOrigin + performance.now()) * 1000;
        const t0 = performance.now();
        const { revision } = await daemons[0]!.api.call<PolicyRevisionModel>(
          'POST',
          '/v1/policy',
          { text },
          { timeoutMs: 60_000 },
        );
        const postMs = performance.now() - t0;
        const waitMs = await Promise.all(
          daemons.map(async (d) => {
            await d.api.call<PolicyWaitModel>('GET', `/v1/policy/wait/${revision}?timeout=60000`, undefined, {
              timeoutMs: 90_000,
            });
            return performance.now() - t0;
          }),
        );
        const dropMs = await Promise.all(
          probes.map(async (probe) => {
            const line = await waitForLine(probe, /"stalled"/, 15_000);
            const p = line ? (JSON.parse(line) as ProbeLine) : undefined;
            return p?.stalled && p.unansweredSentUs ? (p.unansweredSentUs - wallStartUs) / 1000 : NaN;
          }),
        );
        out.push({ revision, postMs, waitMs, dropMs, allWaitMs: Math.max(...waitMs), allDropMs: Math.max(...dropMs) });
        progress(
          `import ${i + 1}/${IMPORTS}: probes dropped on hosts 1-3 at ${dropMs.map((x) => x.toFixed(0)).join('/')} ` +
            `ms, policy wait returned at ${waitMs.map((x) => x.toFixed(0)).join('/')} ms`,
        );
      } finally {
        for (const probe of probes) probe.kill('SIGKILL');
      }
      const { revision: del } = await daemons[0]!.api.call<PolicyRevisionModel>(
        'DELETE',
        '/v1/policy/bench-import',
        undefined,
        { timeoutMs: 60_000 },
      );
      for (const d of daemons)
        await d.api.call<PolicyWaitModel>('GET', `/v1/policy/wait/${del}?timeout=60000`, undefined, {
          timeoutMs: 90_000,
        });
      await sleep(300);
    }
  } finally {
    for (const s of rrServers) s.kill('SIGTERM');
  }
  return out;
}

interface Sample {
  config: string;
  round: number;
  throughput: ThroughputSample;
  rr: RrSample;
}

/**
 * One RR and one iperf3 run of each of our configs with kernel.bpf_stats_enabled on: runs and ns
 * per run of every program on the sending host (0) and the receiving host (1).
 */
async function bpfCostPhase(
  configs: Array<[string, EndpointPair]>,
  hosts: DockerHost[],
): Promise<OverlayProfile['bpf']> {
  const out: NonNullable<OverlayProfile['bpf']> = {};
  await withBpfStats(async () => {
    const ids = await Promise.all(hosts.slice(0, 2).map((h) => ourProgramIds(h)));
    for (const [name, pair] of configs.filter(([n]) => n.startsWith('ours'))) {
      const { value: rr, programs: rrPrograms } = await costDuring(ids, () => measureRr(pair, RR_SECONDS));
      const { value: tput, programs: tputPrograms } = await costDuring(ids, () => measureThroughput(pair, SECONDS));
      out[name] = {
        rr: { p50: rr.p50, transactions: rr.transactions },
        rrPrograms,
        tput: { gbps: tput.gbps, seconds: SECONDS },
        tputPrograms,
      };
      progress(
        `bpf cost ${name}: RR from_container ${rrPrograms[0]!.from_container?.nsPerRun.toFixed(0)} ns, ` +
          `from_underlay ${rrPrograms[1]!.from_underlay?.nsPerRun.toFixed(0)} ns, ` +
          `from_overlay ${rrPrograms[1]!.from_overlay?.nsPerRun.toFixed(0)} ns; iperf3 from_underlay ` +
          `${tputPrograms[1]!.from_underlay?.runs} runs, from_overlay ${tputPrograms[1]!.from_overlay?.runs}`,
      );
    }
  });
  return out;
}

/** `perf record -a` (both CPUs) during one iperf3 and one RR run of every config. */
async function perfPhase(configs: Array<[string, EndpointPair]>): Promise<OverlayProfile['perf']> {
  const out: NonNullable<OverlayProfile['perf']> = {};
  for (const [name, pair] of configs) {
    const tput = await profileDuring(() => measureThroughput(pair, SECONDS), SECONDS);
    const rr = await profileDuring(() => measureRr(pair, RR_SECONDS), RR_SECONDS);
    out[name] = { tput: { gbps: tput.value.gbps, ...tput.profile }, rr: { p50: rr.value.p50, ...rr.profile } };
    progress(`perf ${name}: ${tput.value.gbps.toFixed(2)} Gbit/s, RR p50 ${rr.value.p50.toFixed(1)} us profiled`);
  }
  return out;
}

async function main(): Promise<void> {
  const session = new LabSession();
  const started = new Date();
  const stamp = started
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const samples: Sample[] = [];
  let imports: ImportSample[] = [];
  const stripped: Record<string, number[]> = {};
  let loadDuringRounds: ReturnType<typeof machineLoad> | undefined;
  const profile: OverlayProfile = {};
  try {
    progress('overlay bench: underlay, etcd, 2 lab hosts with our daemon');
    const underlay = await startUnderlay(session);
    const etcd = await underlay.startEtcd();
    const hosts: DockerHost[] = [];
    const daemons: CiliumDaemon[] = [];
    const underlayIps: string[] = [];
    const nOurs = IMPORTS > 0 ? 3 : 2;
    for (let i = 0; i < nOurs; i++) {
      const host = await startDockerHost(session);
      hosts.push(host);
      await ensureBusyboxImage(host, 'bb');
      underlayIps.push(await underlay.attach(host, i + 1));
      const d = new CiliumDaemon(host, {
        extraArgs: ['--kvstore', 'etcd', '--kvstore-opt', `etcd.address=${etcd}`, '--underlay-ip', underlayIps[i]!],
      });
      await d.start(60_000);
      daemons.push(d);
    }
    for (let h = 0; h < nOurs; h++) {
      const r = await hosts[h]!.docker(
        ['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.133.0/24', 'ovb'],
        { timeoutMs: 60_000 },
      );
      if (r.code !== 0) throw new Error(`network create on h${h}: ${r.stderr}`);
    }
    const container = async (h: number, name: string, label: string): Promise<{ netns: string; ip: string }> => {
      const r = await hosts[h]!.docker(
        ['run', '-d', '--name', name, '--network', 'ovb', '-l', `app=${label}`, 'bb', 'sleep', '100000'],
        { timeoutMs: 60_000 },
      );
      if (r.code !== 0) throw new Error(`docker run ${name}: ${r.stderr}`);
      const addr = (
        await hosts[h]!.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ovb").IPAddress}}', name])
      ).stdout.trim();
      return { netns: await sandboxOf(hosts[h]!, name), ip: addr };
    };
    const openClient = await container(0, 'open-client', 'bench-open');
    const openServer = await container(1, 'open-server', 'bench-open');
    const polClient = await container(0, 'pol-client', 'bench-client');
    const polServer = await container(1, 'pol-server', 'bench-server');
    const ours = new NetnsPair(
      openServer.ip,
      { host: hosts[0]!, netns: openClient.netns },
      { host: hosts[1]!, netns: openServer.netns },
    );
    const oursPolicy = new NetnsPair(
      polServer.ip,
      { host: hosts[0]!, netns: polClient.netns },
      { host: hosts[1]!, netns: polServer.netns },
    );
    const policy = [
      'apiVersion: cilium.io/v2',
      'kind: CiliumNetworkPolicy',
      'metadata:',
      '  name: bench-server',
      'spec:',
      '  endpointSelector:',
      '    matchLabels:',
      '      app: bench-server',
      '  ingress:',
      '  - fromEndpoints:',
      '    - matchLabels:',
      '        app: bench-client',
      '    toPorts:',
      '    - ports:',
      `      - port: "${IPERF_PORT}"`,
      '        protocol: TCP',
      `      - port: "${RR_PORT}"`,
      '        protocol: TCP',
      '',
    ].join('\n');
    const imported = await daemons[0]!.cli(['policy', 'import', '-', '-o', 'json'], policy);
    if (imported.code !== 0) throw new Error(`policy import: ${imported.stderr}`);
    const revision = (JSON.parse(imported.stdout) as { revision: number }).revision;
    for (const d of daemons) await d.cli(['policy', 'wait', String(revision), '--timeout', '30s']);
    const baseline = await kernelVxlan(session, hosts, underlayIps);
    const routed = await routedUnderlay(session, hosts, underlayIps);

    const configs: Array<[string, EndpointPair]> = [
      ['routed', routed],
      ['kernel-vxlan', baseline],
    ];
    if (CLASSIC) {
      progress('overlay bench: 2 more lab hosts with Docker classic overlay (--cluster-store)');
      configs.push(['docker-overlay', await classicOverlay(session, underlay, nOurs + 1)]);
    }
    configs.push(['ours', ours], ['ours+policy', oursPolicy]);
    for (const [name, pair] of configs) {
      await startServers(pair, name);
      // ICMP is not in the bench policy: the policy pair is checked by the first measurement.
      if (name !== 'ours+policy')
        await eventually(
          async () =>
            (await pair.runInClient(['busybox', 'ping', '-c', '1', '-W', '1', pair.serverIp], 5_000)).code === 0,
          20_000,
          `${name} reachable`,
        );
    }
    if (STRIP_DOCKER_NAT)
      for (const [name, pair] of configs)
        if (name === 'docker-overlay' || name.startsWith('ours')) stripped[name] = await stripDockerNat(pair, name);
    const denied = await oursPolicy.runInClient(
      ['timeout', '3', 'busybox', 'nc', '-z', oursPolicy.serverIp, '80'],
      10_000,
    );
    progress(
      `policy check: port 80 to the selected server ${denied.code === 0 ? 'OPEN (unexpected)' : 'refused by policy'}`,
    );

    for (let round = 0; round < ROUNDS; round++) {
      // Rotated, and reversed every other round: each config changes its position and the config
      // measured just before it (a strict rotation always put docker-overlay before ours).
      const rotated = configs.map((_, i) => configs[(i + round) % configs.length]!);
      const order = round % 2 === 1 ? rotated.reverse() : rotated;
      for (const [name, pair] of order) {
        const throughput = await measureThroughput(pair, SECONDS);
        const rr = await measureRr(pair, RR_SECONDS);
        samples.push({ config: name, round, throughput, rr });
        progress(
          `round ${round + 1}/${ROUNDS} ${name}: ${throughput.gbps.toFixed(2)} Gbit/s, RR p50 ${rr.p50.toFixed(1)} us`,
        );
      }
    }
    loadDuringRounds = machineLoad();
    if (PROFILE) profile.bpf = await bpfCostPhase(configs, hosts);
    if (PERF) profile.perf = await perfPhase(configs);
    if (IMPORTS > 0) {
      progress(`policy import on host 1 -> enforced on 3 hosts, ${IMPORTS} imports`);
      imports = await importLatency(hosts, daemons);
    }
  } catch (err) {
    session.fail();
    throw err;
  } finally {
    await session.close();
  }

  const result: OverlayResult = {
    bench: 'overlay',
    probe: PROBE,
    started: started.toISOString(),
    rounds: ROUNDS,
    seconds: SECONDS,
    rrSeconds: RR_SECONDS,
    load: loadDuringRounds,
    loadEnd: machineLoad(),
    samples,
    imports,
    profile,
    strippedDockerNat: STRIP_DOCKER_NAT ? stripped : undefined,
  };
  const out = process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results', `${stamp}-overlay.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 1));
  // Under bench/run.mjs the runner renders BENCH_OUT; run alone, print the table here.
  if (!process.env.BENCH_OUT) process.stdout.write(`${renderOverlay(result).markdown}\n`);
}

await main();
