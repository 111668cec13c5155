/**
 * Cross-host throughput and RR over the overlay, interleaved, between two lab hosts on a shared
 * underlay (test/lab/underlay.ts; each host: own dockerd and daemon on one etcd):
 *
 *  - kernel-vxlan: the baseline, a plain kernel VXLAN device per host (`ip link add … type vxlan
 *    id 42 remote <peer> dstport 4789 dev ul0`), a namespace per side behind a veth, kernel
 *    routing (container-like MTU 1450);
 *  - ours: two containers on `docker network create -d cilium` across the hosts: lxc BPF ->
 *    bpf_skb_set_tunnel_key + bpf_redirect to cilium_vxlan -> from_overlay -> bpf_redirect_peer;
 *  - ours+policy: the same with a CiliumNetworkPolicy selecting the server (ingress from the
 *    client's labels on the two bench ports only), enforced on the receiving host.
 *
 * One round measures every config once (iperf3 single stream, then tcprr 64-byte RR), the order
 * rotated per round. `node bench/run.mjs overlay` runs it and renders the table with the targets;
 * run alone it writes bench/results/<stamp>-overlay.json and prints the table.
 * Settings: OV_ROUNDS (5), OV_SECONDS (5, iperf3 per sample), OV_RR_SECONDS (3).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startDockerHost, type DockerHost } from '../test/lab/docker-host.js';
import { ensureBusyboxImage } from '../test/lab/busybox-image.js';
import { runCommand, type CommandResult } from '../test/lab/exec.js';
import type { LabProcess } from '../test/lab/lab-process.js';
import { registerEmergencyCleanup } from '../test/lab/process-registry.js';
import { startUnderlay } from '../test/lab/underlay.js';
import { CiliumDaemon, eventually } from '../test/support/cilium-daemon.js';
import { sandboxOf, type EndpointPair } from './lib/endpoint-pair.js';
import { LabSession, envInt, progress, machineLoad } from './lib/lab-session.js';
import { measureRr, measureThroughput, startServers, IPERF_PORT, RR_PORT, type RrSample, type ThroughputSample } from './lib/netperf.js';
import { renderOverlay, type OverlayResult } from './lib/overlay-report.mjs';

const ROOT = new URL('../', import.meta.url).pathname;
const ROUNDS = envInt('OV_ROUNDS', 5, 1);
const SECONDS = envInt('OV_SECONDS', 5, 1);
const RR_SECONDS = envInt('OV_RR_SECONDS', 3, 1);

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
    await ip(['-n', h, 'link', 'add', 'vxlan42', 'type', 'vxlan', 'id', '42', 'remote', underlayIps[1 - i]!, 'local', underlayIps[i]!, 'dstport', '4789', 'dev', 'ul0']);
    await ip(['-n', h, 'addr', 'add', `198.18.131.${i + 1}/24`, 'dev', 'vxlan42']);
    await ip(['-n', h, 'link', 'set', 'vxlan42', 'up']);
    await ip(['-n', h, 'link', 'add', 'bov0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'ceth0', 'netns', ns, 'mtu', '1450']);
    await ip(['-n', h, 'addr', 'add', '198.18.132.254/32', 'dev', 'bov0']);
    await ip(['-n', h, 'link', 'set', 'bov0', 'up']);
    await ip(['-n', h, 'route', 'add', `${addr(i)}/32`, 'dev', 'bov0']);
    await ip(['-n', h, 'route', 'add', `${addr(1 - i)}/32`, 'via', `198.18.131.${2 - i}`, 'dev', 'vxlan42']);
    await ip(['-n', ns, 'addr', 'add', `${addr(i)}/32`, 'dev', 'ceth0']);
    await ip(['-n', ns, 'link', 'set', 'ceth0', 'up']);
    await ip(['-n', ns, 'route', 'add', '198.18.132.254/32', 'dev', 'ceth0', 'scope', 'link']);
    await ip(['-n', ns, 'route', 'add', 'default', 'via', '198.18.132.254', 'dev', 'ceth0']);
  }
  return new NetnsPair(addr(1), { host: hosts[0]!, netns: `/run/netns/${names[0]}` }, { host: hosts[1]!, netns: `/run/netns/${names[1]}` });
}

interface Sample {
  config: string;
  round: number;
  throughput: ThroughputSample;
  rr: RrSample;
}

async function main(): Promise<void> {
  const session = new LabSession();
  const started = new Date();
  const stamp = started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const samples: Sample[] = [];
  try {
    progress('overlay bench: underlay, etcd, 2 lab hosts with our daemon');
    const underlay = await startUnderlay(session);
    const etcd = await underlay.startEtcd();
    const hosts: DockerHost[] = [];
    const daemons: CiliumDaemon[] = [];
    const underlayIps: string[] = [];
    for (let i = 0; i < 2; i++) {
      const host = await startDockerHost(session);
      hosts.push(host);
      await ensureBusyboxImage(host, 'bb');
      underlayIps.push(await underlay.attach(host, i + 1));
      const d = new CiliumDaemon(host, { extraArgs: ['--kvstore', 'etcd', '--kvstore-opt', `etcd.address=${etcd}`, '--underlay-ip', underlayIps[i]!] });
      await d.start(60_000);
      daemons.push(d);
    }
    for (let h = 0; h < 2; h++) {
      const r = await hosts[h]!.docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.133.0/24', 'ovb'], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`network create on h${h}: ${r.stderr}`);
    }
    const container = async (h: number, name: string, label: string): Promise<{ netns: string; ip: string }> => {
      const r = await hosts[h]!.docker(['run', '-d', '--name', name, '--network', 'ovb', '-l', `app=${label}`, 'bb', 'sleep', '100000'], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`docker run ${name}: ${r.stderr}`);
      const addr = (await hosts[h]!.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ovb").IPAddress}}', name])).stdout.trim();
      return { netns: await sandboxOf(hosts[h]!, name), ip: addr };
    };
    const openClient = await container(0, 'open-client', 'bench-open');
    const openServer = await container(1, 'open-server', 'bench-open');
    const polClient = await container(0, 'pol-client', 'bench-client');
    const polServer = await container(1, 'pol-server', 'bench-server');
    const ours = new NetnsPair(openServer.ip, { host: hosts[0]!, netns: openClient.netns }, { host: hosts[1]!, netns: openServer.netns });
    const oursPolicy = new NetnsPair(polServer.ip, { host: hosts[0]!, netns: polClient.netns }, { host: hosts[1]!, netns: polServer.netns });
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

    const configs: Array<[string, EndpointPair]> = [['kernel-vxlan', baseline], ['ours', ours], ['ours+policy', oursPolicy]];
    for (const [name, pair] of configs) {
      await startServers(pair, name);
      // ICMP is not in the bench policy: the policy pair is checked by the first measurement.
      if (name !== 'ours+policy') await eventually(async () => (await pair.runInClient(['busybox', 'ping', '-c', '1', '-W', '1', pair.serverIp], 5_000)).code === 0, 20_000, `${name} reachable`);
    }
    const denied = await oursPolicy.runInClient(['timeout', '3', 'busybox', 'nc', '-z', oursPolicy.serverIp, '80'], 10_000);
    progress(`policy check: port 80 to the selected server ${denied.code === 0 ? 'OPEN (unexpected)' : 'refused by policy'}`);

    for (let round = 0; round < ROUNDS; round++) {
      const order = configs.map((_, i) => configs[(i + round) % configs.length]!);
      for (const [name, pair] of order) {
        const throughput = await measureThroughput(pair, SECONDS);
        const rr = await measureRr(pair, RR_SECONDS);
        samples.push({ config: name, round, throughput, rr });
        progress(`round ${round + 1}/${ROUNDS} ${name}: ${throughput.gbps.toFixed(2)} Gbit/s, RR p50 ${rr.p50.toFixed(1)} us`);
      }
    }
  } catch (err) {
    session.fail();
    throw err;
  } finally {
    await session.close();
  }

  const result: OverlayResult = { bench: 'overlay', started: started.toISOString(), rounds: ROUNDS, seconds: SECONDS, rrSeconds: RR_SECONDS, load: machineLoad(), samples };
  const out = process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results', `${stamp}-overlay.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 1));
  // Under bench/run.mjs the runner renders BENCH_OUT; run alone, print the table here.
  if (!process.env.BENCH_OUT) process.stdout.write(`${renderOverlay(result).markdown}\n`);
}

await main();
