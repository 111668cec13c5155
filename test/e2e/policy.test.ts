/**
 * Identity policy in the eBPF datapath, end to end: labelled busybox containers in a lab host
 * with our daemon; TCP (httpd/wget), UDP (a tiny echo server in the container's netns), ICMP.
 * Allowed flows pass, everything else is dropped and shows in `cilium monitor` with labels and
 * reason; Docker-network isolation; CIDR with except towards a "world" host; entities; replies
 * of allowed connections; delete restores the default; enforcement modes; kill -9 of the daemon
 * under a TCP stream.
 */
import t from 'tap';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runCommand } from '../lab/exec.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, BpfEndpointPolicyModel } from '../../src/api/models.js';
import { vethNames } from '../../src/datapath/link/veth.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let host: DockerHost;
let daemon: CiliumDaemon;
const ip: Record<string, string> = {};
let worldNs = '';

async function docker(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n${daemon.process?.logTail(20)}`,
    );
  return r.stdout.trim();
}

/** HTTP GET from a container; true if the page came back. */
async function http(from: string, to: string, port: number): Promise<boolean> {
  const r = await host.docker(['exec', from, 'timeout', '3', 'wget', '-q', '-O', '-', `http://${to}:${port}/passwd`], {
    timeoutMs: 20_000,
  });
  return r.code === 0 && r.stdout.includes('root');
}

async function ping(from: string, to: string): Promise<boolean> {
  const r = await host.docker(['exec', from, 'ping', '-c', '1', '-W', '2', to], { timeoutMs: 20_000 });
  return r.code === 0;
}

const UDP_CLIENT = `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2)
s.sendto(b'ping',(sys.argv[1],int(sys.argv[2])))
try:
  d,a=s.recvfrom(100);sys.exit(0 if d==b'ping' else 1)
except Exception: sys.exit(1)`;
const UDP_SERVER = `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',5353))
while True:
  d,a=s.recvfrom(100);s.sendto(d,a)`;

const WHOAMI_SERVER = `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',7777))
while True:
  d,a=s.recvfrom(100);s.sendto(a[0].encode(),a)`;
const WHOAMI_CLIENT = `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3)
s.sendto(b'?',(sys.argv[1],int(sys.argv[2])));print(s.recvfrom(100)[0].decode())`;

async function udp(from: string, to: string, port = 5353): Promise<boolean> {
  const r = await host.execInContainerNetns(from, ['python3', '-c', UDP_CLIENT, to, String(port)], {
    timeoutMs: 20_000,
  });
  return r.code === 0;
}

async function importPolicy(yaml: string): Promise<number> {
  const r = await daemon.cli(['policy', 'import', '-', '-o', 'json'], yaml);
  if (r.code !== 0) throw new Error(`policy import failed: ${r.stderr}`);
  const revision = (JSON.parse(r.stdout) as { revision: number }).revision;
  const w = await daemon.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
  if (w.code !== 0) throw new Error(`policy wait ${revision} failed: ${w.stderr}`);
  return revision;
}

async function deleteAll(): Promise<void> {
  const r = await daemon.cli(['policy', 'delete', '--all', '-o', 'json']);
  if (r.code !== 0) throw new Error(`policy delete --all failed: ${r.stderr}`);
  const revision = (JSON.parse(r.stdout) as { revision: number }).revision;
  await daemon.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
}

/** `cilium monitor` running and subscribed (its process needs a moment to connect). */
async function startMonitor(types: string[]) {
  const mon = daemon.monitor(types);
  await new Promise((r) => setTimeout(r, 2000));
  return mon;
}

async function readyEndpoint(name: string): Promise<EndpointModel> {
  return eventually(
    async () => {
      const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
      const e = eps.find((x) => x.containerName === name);
      return e?.state === 'ready' ? e : undefined;
    },
    20_000,
    `${name} ready`,
  );
}

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  daemon = new CiliumDaemon(host);
  await daemon.start();
  await docker(['network', 'create', '-d', 'cilium', '--ipam-driver', 'cilium', '--subnet', '198.18.110.0/24', 'pn']);
  await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.111.0/24',
    'other',
  ]);
  const start = async (name: string, network: string, labels: string[], cmd: string[]) => {
    await docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      network,
      ...labels.flatMap((l) => ['-l', l]),
      'bb',
      ...cmd,
    ]);
    ip[name] = await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);
  };
  const serve = 'httpd -p 80 -h /etc; httpd -p 5432 -h /etc; httpd -p 8080 -h /etc; exec sleep 100000';
  await start('web', 'pn', ['app=web', 'tier=front'], ['sh', '-c', serve]);
  await start('db', 'pn', ['app=db'], ['sh', '-c', serve]);
  await start('client', 'pn', ['app=client'], ['sh', '-c', serve]);
  await start('stranger', 'other', ['app=client'], ['sh', '-c', serve]);
  for (const c of ['web', 'db', 'client', 'stranger']) await readyEndpoint(c);
  // UDP echo servers in web and db (python3 from the host, inside the container's netns).
  for (const c of ['web', 'db']) {
    const sandbox = await docker(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', c]);
    host.spawn(['nsenter', `--net=${sandbox}`, 'python3', '-c', UDP_SERVER], {}, { logName: `udp-${c}.log` });
  }
  // A "world" host: its own namespace behind the lab host, reached through the host's routing.
  worldNs = `${host.name}-w`;
  await runCommand('ip', ['netns', 'add', worldNs], { check: true });
  t.teardown(() => runCommand('ip', ['netns', 'del', worldNs]));
  await runCommand(
    'ip',
    ['link', 'add', 'cdw0', 'netns', host.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', worldNs],
    { check: true },
  );
  await host.exec(['ip', 'addr', 'add', '198.19.200.1/24', 'dev', 'cdw0'], { check: true });
  await host.exec(['ip', 'link', 'set', 'cdw0', 'up'], { check: true });
  for (const cmd of [
    ['ip', 'link', 'set', 'lo', 'up'],
    ['ip', 'addr', 'add', '198.19.200.10/24', 'dev', 'eth0'],
    ['ip', 'addr', 'add', '198.19.200.200/24', 'dev', 'eth0'],
    ['ip', 'link', 'set', 'eth0', 'up'],
  ])
    await runCommand('ip', ['-n', worldNs, ...cmd.slice(1)], { check: true });
  const world = spawn('ip', ['netns', 'exec', worldNs, 'python3', '-c', WHOAMI_SERVER], {
    stdio: 'ignore',
    detached: true,
  });
  t.teardown(() => {
    try {
      process.kill(-world.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  await eventually(
    async () => (await udp('client', ip.web!)) && (await ping('client', ip.web!)),
    15_000,
    'baseline connectivity',
  );
});

t.test('no policy: same network talks, other networks are isolated, world reachable (masqueraded)', async (t) => {
  t.ok(await http('client', ip.web!, 80), 'client -> web:80');
  t.ok(await http('web', ip.db!, 5432), 'web -> db:5432');
  t.ok(await udp('client', ip.web!), 'client -> web udp/5353');
  t.ok(await ping('client', ip.db!), 'client -> db icmp');
  const mon = await startMonitor(['drop']);
  t.teardown(() => mon.stop());
  t.notOk(await ping('stranger', ip.web!), 'container of another network cannot reach web');
  t.notOk(await http('stranger', ip.web!, 80), 'nor over TCP');
  const drop = await mon.waitFor((e) => e.saddr === ip.stranger && e.daddr === ip.web);
  t.match(
    drop,
    { type: 'drop', reason: 240, srcLabels: ['container:app=client', 'docker:network=other'] },
    'isolation drop in monitor with labels',
  );
  t.ok(await ping('client', '198.19.200.10'), 'world host reachable from a container');
  const whoami = await host.execInContainerNetns('client', ['python3', '-c', WHOAMI_CLIENT, '198.19.200.10', '7777'], {
    timeoutMs: 20_000,
  });
  t.equal(whoami.stdout.trim(), '198.19.200.1', 'the world sees the host address, not the container (masquerade)');
});

t.test('a new container gets no IPv6 from its host-side veth: no unsupported-L3 drops after it starts', async (t) => {
  const mon = await startMonitor(['drop']);
  t.teardown(() => mon.stop());
  await docker(['run', '-d', '--name', 'quiet', '--network', 'pn', 'bb', 'sleep', '100000']);
  t.teardown(() => docker(['rm', '-f', 'quiet']));
  const ep = await readyEndpoint('quiet');
  const veth = vethNames(ep.endpointId).host;
  const link = await host.exec(['ip', '-d', 'link', 'show', 'dev', veth], { check: true });
  t.match(link.stdout, /addrgenmode none/, `${veth}: no IPv6 address generation`);
  // Unquieted, the host sent MLD reports and router solicitations within 1-5 s of link up.
  await new Promise((r) => setTimeout(r, 6000));
  const stats = await host.exec(['ip', '-s', '-json', 'link', 'show', 'dev', veth], { check: true });
  const [info] = JSON.parse(stats.stdout) as Array<{ stats64: { tx: { packets: number } } }>;
  t.equal(info!.stats64.tx.packets, 0, `${veth}: the host sent nothing into the idle container`);
  t.same(
    mon.events.filter((e) => e.reasonName === 'Unsupported L3 protocol'),
    [],
    'no unsupported-L3 drops',
  );
});

t.test('L3+L4 ingress: web accepts only app=client on TCP 80', async (t) => {
  const mon = await startMonitor(['drop', 'policy-verdict']);
  t.teardown(() => mon.stop());
  await importPolicy(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-ingress }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: client } } ]
    toPorts: [ { ports: [ { port: "80", protocol: TCP } ] } ]
`);
  t.ok(await http('client', ip.web!, 80), 'client -> web:80 allowed (and its replies pass)');
  t.notOk(await http('client', ip.web!, 8080), 'client -> web:8080 dropped');
  t.notOk(await ping('client', ip.web!), 'client -> web icmp dropped');
  t.notOk(await udp('client', ip.web!), 'client -> web udp dropped');
  t.notOk(await http('db', ip.web!, 80), 'db -> web:80 dropped (wrong identity)');
  t.ok(await http('web', ip.db!, 5432), 'web egress is not enforced');
  const drop = await mon.waitFor((e) => e.type === 'drop' && e.saddr === ip.db && e.daddr === ip.web && e.dport === 80);
  t.match(drop, {
    reason: 133,
    reasonName: /policy/i,
    direction: 'ingress',
    srcLabels: ['container:app=db', 'docker:network=pn'],
    dstLabels: ['container:app=web', 'container:tier=front', 'docker:network=pn'],
  });
  const verdict = await mon.waitFor(
    (e) => e.type === 'policy-verdict' && e.saddr === ip.client && e.dport === 80 && e.verdict === 'allow',
  );
  t.equal(verdict.policy, 'web-ingress', 'verdict names the policy');
  const web = await daemon.cliJson<EndpointModel>(['endpoint', 'get', 'web']);
  const bpf = await daemon.cliJson<BpfEndpointPolicyModel>(['bpf', 'policy', 'get', 'web']);
  t.ok(bpf.enforceIngress && !bpf.enforceEgress, 'ingress enforced, egress not');
  t.ok(
    bpf.entries.some(
      (e) =>
        e.direction === 'ingress' &&
        e.dport === 80 &&
        e.protocol === 6 &&
        e.verdict === 'allow' &&
        e.labels.includes('container:app=client'),
    ),
    'map entry for client:80/TCP',
  );
  t.ok(web.policyRevision >= 2, `endpoint get shows revision ${web.policyRevision}`);
  const trace = await daemon.cli([
    'policy',
    'trace',
    '--src-labels',
    'app=client',
    '--dst-labels',
    'app=web,tier=front',
    '--dport',
    '80',
    '--protocol',
    'TCP',
  ]);
  t.match(trace.stdout, /Final verdict: ALLOWED/);
  const traceDeny = await daemon.cliJson<{ verdict: string }>([
    'policy',
    'trace',
    '--src-labels',
    'app=db',
    '--dst-labels',
    'app=web',
    '--dport',
    '80',
    '--protocol',
    'TCP',
  ]);
  t.equal(traceDeny.verdict, 'denied');
});

t.test('egress L3 with matchExpressions, L4-only ingress, replies of allowed connections', async (t) => {
  await importPolicy(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: client-egress }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
  - toEndpoints:
    - matchExpressions: [ { key: app, operator: In, values: [ web ] }, { key: tier, operator: Exists } ]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: db-l4 }
spec:
  endpointSelector: { matchLabels: { app: db } }
  ingress:
  - toPorts: [ { ports: [ { port: "5432", protocol: TCP }, { port: "5353", protocol: UDP } ] } ]
`);
  t.ok(await http('client', ip.web!, 80), 'client -> web allowed by egress + web-ingress, replies pass');
  t.notOk(await http('client', ip.db!, 5432), 'client -> db blocked by client egress');
  t.ok(await http('web', ip.db!, 5432), 'L4-only: any peer to db:5432');
  t.notOk(await http('web', ip.db!, 8080), 'db:8080 not allowed');
  t.ok(await udp('web', ip.db!), 'L4-only UDP 5353 allowed');
  t.notOk(await ping('web', ip.db!), 'icmp to db dropped');
  t.ok(
    await http('db', ip.client!, 80),
    'client ingress is not enforced; client replies pass its egress policy (conntrack)',
  );
  await deleteAll();
  t.ok(await http('client', ip.db!, 5432), 'policy delete restores the default');
  t.ok(await ping('web', ip.db!), 'icmp back');
});

/** One ICMP timestamp request (type 13) from a raw socket; exit 0 when its reply (type 14) arrives. */
const ICMP_TIMESTAMP = `import os,socket,struct,sys,time
def csum(b):
  t=sum(struct.unpack('!%dH'%(len(b)//2),b));t=(t>>16)+(t&0xffff);t+=t>>16;return ~t&0xffff
ident=os.getpid()&0xffff
m=struct.pack('!BBHHHIII',13,0,0,ident,1,0,0,0);m=m[:2]+struct.pack('!H',csum(m))+m[4:]
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP);s.settimeout(0.5)
s.sendto(m,(sys.argv[1],0));end=time.time()+2
while time.time()<end:
  try: d=s.recv(200)
  except socket.timeout: continue
  h=(d[0]&15)*4
  if d[h]==14 and struct.unpack('!H',d[h+4:h+6])[0]==ident: sys.exit(0)
sys.exit(1)`;

async function icmpTimestamp(from: string, to: string): Promise<boolean> {
  const r = await host.execInContainerNetns(from, ['python3', '-c', ICMP_TIMESTAMP, to], { timeoutMs: 20_000 });
  return r.code === 0;
}

t.test(
  'icmps in a bare rule list with labels: echo allowed, other types dropped; get and delete by labels',
  async (t) => {
    t.ok(await icmpTimestamp('web', ip.db!), 'baseline: db answers an ICMP timestamp request');
    const rules = readFileSync(new URL('../fixtures/cilium-policies/icmp-e2e.json', import.meta.url), 'utf8');
    await importPolicy(rules);
    t.ok(
      await ping('web', ip.db!),
      "web -> db echo allowed by icmps; the reply passes web's enforced ingress by conntrack",
    );
    t.notOk(await icmpTimestamp('web', ip.db!), 'web -> db timestamp request (type 13) dropped');
    t.notOk(await ping('client', ip.db!), 'client -> db echo dropped (peer not in the rule)');
    t.notOk(await http('web', ip.db!, 5432), 'icmps allow no TCP');
    const got = await daemon.cliJson<{ policies: Array<{ metadata: { name: string } }> }>([
      'policy',
      'get',
      'name=icmp-e2e',
    ]);
    t.equal(got.policies.length, 1, 'policy get by labels');
    t.match(got.policies[0]!.metadata.name, /^icmp-e2e-[0-9a-f]{8}$/);
    const reimport = await importPolicy(rules);
    t.equal(
      (await daemon.cliJson<{ policies: unknown[] }>(['policy', 'get'])).policies.length,
      1,
      `re-import (revision ${reimport}) replaced the rules with the same labels`,
    );
    const del = await daemon.cli(['policy', 'delete', 'unspec:name=icmp-e2e', '-o', 'json']);
    t.equal(del.code, 0, `policy delete by labels: ${del.stderr}`);
    const revision = (JSON.parse(del.stdout) as { revision: number }).revision;
    await daemon.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
    t.same((await daemon.cliJson<{ policies: unknown[] }>(['policy', 'get'])).policies, [], 'nothing left');
    const again = await daemon.cli(['policy', 'delete', 'name=icmp-e2e']);
    t.not(again.code, 0, 'deleting labels nothing carries fails');
    t.match(again.stderr, /no policy has rules labelled any:name=icmp-e2e/);
    t.ok(await icmpTimestamp('web', ip.db!), 'after delete: timestamp answered again');
    t.ok(await ping('client', ip.db!), 'and client reaches db');
  },
);

t.test('CIDR with except and entities', async (t) => {
  await importPolicy(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: client-world }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
  - toCIDRSet: [ { cidr: 198.19.200.0/24, except: [ 198.19.200.128/25 ] } ]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-host }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEntities: [ host ]
`);
  t.ok(await ping('client', '198.19.200.10'), '198.19.200.10 inside the CIDR: allowed');
  t.notOk(await ping('client', '198.19.200.200'), '198.19.200.200 in except: dropped');
  t.notOk(await ping('client', ip.web!), 'other containers are not in the CIDR: dropped');
  const fromHost = await host.exec(['busybox', 'ping', '-c', '1', '-W', '2', ip.web!]);
  t.equal(fromHost.code, 0, 'host entity may reach web');
  t.notOk(await ping('db', ip.web!), 'containers may not reach web');
  const ipc = await daemon.cliJson<Array<{ prefix: string; identity: number }>>(['bpf', 'ipcache', 'list']);
  t.ok(
    ipc.some((e) => e.prefix.startsWith('198.19.200.') && e.identity >= 16777216),
    'CIDR identities in the ipcache',
  );
  await deleteAll();
  t.ok(await ping('client', '198.19.200.200'), 'after delete: world reachable again');
});

t.test('import while traffic flows takes effect without restarting anything', async (t) => {
  const flow = host.docker(['exec', 'client', 'ping', '-c', '150', '-i', '0.1', '-W', '1', ip.db!], {
    timeoutMs: 90_000,
  });
  await new Promise((r) => setTimeout(r, 1500));
  await importPolicy(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: db-deny-icmp }
spec:
  endpointSelector: { matchLabels: { app: db } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: web } } ]
`);
  const r = await flow;
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout);
  t.ok(m && Number(m[2]) > 0 && Number(m[2]) < Number(m[1]), `some replies before, none after the import (${m?.[0]})`);
  t.notOk(await ping('client', ip.db!), 'now dropped');
  t.ok(await ping('web', ip.db!), 'web still allowed');
});

t.test('daemon kill -9 under a TCP stream: stream survives, forbidden stays forbidden', async (t) => {
  // db-deny-icmp is in force: only web may reach db.
  const stream = host.docker(
    [
      'exec',
      'web',
      'sh',
      '-c',
      `i=0; while [ $i -lt 60 ]; do timeout 3 wget -q -O /dev/null http://${ip.db}:5432/passwd || exit ` +
        '1; i=$((i+1)); sleep 0.1; done',
    ],
    { timeoutMs: 90_000 },
  );
  await docker(['exec', '-d', 'db', 'sh', '-c', 'sleep 1000 | nc -l -p 9000 > /tmp/recv']);
  await new Promise((r) => setTimeout(r, 300));
  const established = host.docker(
    [
      'exec',
      'web',
      'sh',
      '-c',
      `(i=0; while [ $i -lt 80 ]; do echo line$i; i=$((i+1)); sleep 0.1; done) | nc ${ip.db} 9000; echo rc=$?`,
    ],
    { timeoutMs: 90_000 },
  );
  await new Promise((r) => setTimeout(r, 1000));
  await daemon.stop('SIGKILL');
  t.notOk(await ping('client', ip.db!), 'forbidden flow still dropped while the daemon is down');
  t.ok(await http('web', ip.db!, 5432), 'allowed flow works while the daemon is down');
  await new Promise((r) => setTimeout(r, 1500));
  await daemon.start();
  const s = await stream;
  t.equal(s.code, 0, `60 requests web -> db across the crash all succeeded ${s.stderr}`);
  const e = await established;
  t.match(e.stdout, /rc=0/, 'the sender finished without error');
  const received = await docker(['exec', 'db', 'sh', '-c', 'wc -l < /tmp/recv']);
  t.equal(
    received.trim(),
    '80',
    `an established TCP connection carried every line across the crash and restart (got ${received.trim()})`,
  );
  t.notOk(await ping('client', ip.db!), 'still forbidden after restart (adopted, not flushed)');
  const bpf = await daemon.cliJson<BpfEndpointPolicyModel>(['bpf', 'policy', 'get', 'db']);
  t.ok(bpf.enforceIngress, 'db still enforced after restart');
  await deleteAll();
});

t.test('enforcement modes always and never', async (t) => {
  const restartWith = async (args: string[]) => {
    await daemon.stop('SIGTERM');
    daemon = new CiliumDaemon(host, { extraArgs: args });
    await daemon.start();
  };
  await restartWith(['--enable-policy', 'always']);
  await eventually(async () => !(await ping('client', ip.web!)), 15_000, 'always: default deny without any rule');
  t.pass('always: no rule selects web, yet it is default-deny');
  await restartWith(['--enable-policy', 'never']);
  await importPolicy(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: deny-all-web }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress: [ {} ]
`);
  t.ok(await ping('db', ip.web!), 'never: a default-deny policy is not enforced');
  await restartWith(['--metrics-address', '127.0.0.1:19962']);
  t.notOk(await ping('db', ip.web!), 'default mode again: the same policy is enforced');
  await deleteAll();
  t.ok(await ping('db', ip.web!), 'and lifted by delete');
});

t.test('metrics', async (t) => {
  const r = await host.exec(['busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:19962/metrics']);
  t.equal(r.code, 0, r.stderr);
  const body = r.stdout;
  for (const name of [
    'cilium_endpoint{',
    'cilium_identity ',
    'cilium_policy ',
    'cilium_policy_max_revision',
    'cilium_drop_count_total{',
    'cilium_forward_count_total{',
    'cilium_endpoint_regeneration_time_stats_seconds',
    'cilium_kvstore_operations_duration_seconds',
  ]) {
    t.ok(body.includes(name), `metric ${name.trim()}`);
  }
  t.match(body, /cilium_drop_count_total\{reason="[^"]+",direction="(INGRESS|EGRESS)"\} [1-9]/, 'drops counted');
});

t.test('cleanup removes programs, pins and veths', async (t) => {
  for (const c of ['web', 'db', 'client', 'stranger']) await docker(['rm', '-f', c]);
  const r = await daemon.cli(['cleanup']);
  t.equal(r.code, 0, r.stderr);
  const pins = await host.exec(['sh', '-c', 'ls /sys/fs/bpf/cilium 2>/dev/null | wc -l']);
  t.equal(pins.stdout.trim(), '0', 'no pins left');
  const links = await host.exec(['ip', '-o', 'link', 'show']);
  t.notMatch(links.stdout, /cilium_host|lxc[0-9a-f]{11}/, 'no devices left');
  const nat = await host.exec(['iptables', '-t', 'nat', '-S', 'POSTROUTING']);
  t.notMatch(nat.stdout, /0xc00/, 'masquerade rule removed');
});
