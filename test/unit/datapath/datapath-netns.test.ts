/**
 * The container datapath with real traffic: two "containers" (network namespaces) joined by veth
 * pairs to a "host" namespace, from_container/to_container attached to the lxc ends, and the maps
 * deciding what passes: ping and TCP (busybox nc) between containers and from the host, drops
 * reported on the ring buffer with the right identities, replies let through by conntrack, and a
 * datapath reload (an agent restart) that keeps an established connection alive.
 *
 * tc attachment speaks netlink in the caller's network namespace, and Node cannot switch its own,
 * so this file runs twice: the first run (under tap) creates the host namespace and re-runs itself
 * inside it with nsenter; that inner run does the test and prints the TAP. The outer run deletes
 * every namespace afterwards, whatever happened. Addresses are in 198.18.0.0/15.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { bpfSkipReason, pinRoot, sh } from './fixtures/bpf-sandbox.js';

const HOST_NETNS_ENV = 'CDB_DATAPATH_HOST_NETNS';
const hostNetns = process.env[HOST_NETNS_ENV];

if (hostNetns) await runInsideHostNetns(hostNetns);
else await runOutside();

/** Creates the host namespace, re-runs this file inside it, removes every namespace afterwards. */
async function runOutside(): Promise<void> {
  const skip = bpfSkipReason() ?? missingTools();
  if (skip) {
    const { default: t } = await import('tap');
    t.test('container datapath in network namespaces', { skip }, () => {});
    return;
  }
  const prefix = `cdb-${process.pid}-`;
  const host = `${prefix}host`;
  sh('ip', ['netns', 'add', host]);
  try {
    const child = spawnSync(
      'nsenter',
      [`--net=/run/netns/${host}`, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)],
      {
        stdio: 'inherit',
        env: { ...process.env, [HOST_NETNS_ENV]: host },
      },
    );
    process.exitCode = child.status ?? 1;
  } finally {
    for (const line of sh('ip', ['netns', 'list']).split('\n')) {
      const name = line.split(' ')[0];
      if (name?.startsWith(prefix)) sh('ip', ['netns', 'del', name]);
    }
  }
}

function missingTools(): string | undefined {
  for (const tool of ['nsenter', 'busybox', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed`;
  }
  return undefined;
}

/** One container: its namespace, address, and both ends of its veth. */
interface Container {
  netns: string;
  ip: string;
  mac: string;
  lxc: string;
  lxcIfindex: number;
  lxcMac: string;
}

interface Link {
  ifindex: number;
  address: string;
}

function link(name: string, netns?: string): Link {
  const args = netns ? ['-n', netns, '-j', 'link', 'show', name] : ['-j', 'link', 'show', name];
  return (JSON.parse(sh('ip', args)) as Link[])[0]!;
}

/** Everything below runs in the host namespace. */
async function runInsideHostNetns(host: string): Promise<void> {
  const { default: t } = await import('tap');
  const abi = await import('../../../src/datapath/bpf/abi.js');
  const { EventReader } = await import('../../../src/datapath/bpf/events.js');
  const { loadLxcDatapath } = await import('../../../src/datapath/bpf/programs.js');
  const { bpfNative } = await import('../../../src/datapath/bpf/native.js');
  type DatapathEvent = import('../../../src/datapath/bpf/abi.js').DatapathEvent;

  const prefix = host.replace(/host$/, '');
  const HOST_IP = '198.18.0.1';
  const GATEWAY = '198.18.1.1';
  const processes: ChildProcess[] = [];

  /**
   * Runs a command in a container (or the host namespace with netns undefined); resolves to its exit code and output.
   */
  const run = (netns: string | undefined, args: string[], stdin?: string) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(netns ? 'ip' : args[0]!, netns ? ['netns', 'exec', netns, ...args] : args.slice(1));
      processes.push(child);
      let stdout = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d));
      child.stdin!.on('error', () => {}); // the command may exit before reading its input
      child.stdin!.end(stdin ?? '');
      // 'close', not 'exit': output can still be in the pipe when 'exit' fires.
      child.on('close', (code) => resolve({ code, stdout }));
    });
  /** Starts a long-running command; kill it by PID at teardown (done for every process). */
  const start = (netns: string, args: string[]) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    processes.push(child);
    child.stdin!.on('error', () => {});
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    return { child, output: () => stdout };
  };
  /**
   * Waits until a TCP socket listens on port in container c (state 0A). busybox nc listens on an
   * IPv6 socket (IPv4 reaches it mapped), so the socket is in /proc/net/tcp6, not tcp.
   */
  const listening = async (c: Container, port: number) => {
    const entry = new RegExp(`:${port.toString(16).toUpperCase().padStart(4, '0')} 0+:0000 0A `);
    const found = await until(
      () => entry.test(sh('ip', ['netns', 'exec', c.netns, 'cat', '/proc/net/tcp', '/proc/net/tcp6'])),
      10_000,
    );
    if (!found) throw new Error(`nothing listens on TCP port ${port} in ${c.netns}`);
  };
  const ping = (from: string | undefined, to: string) =>
    run(from, ['busybox', 'ping', '-c', '1', '-W', '2', to]).then((r) => r.code === 0);
  /** One TCP exchange: a server in `to` answers "hello"; true when the client got it. */
  const tcp = async (from: Container, to: Container, port: number) => {
    const server = start(to.netns, ['busybox', 'nc', '-l', '-p', String(port), '-e', 'echo', 'hello']);
    await listening(to, port);
    // The client's stdin stays open: busybox nc quits at EOF on stdin, which could come before the
    // answer. It ends when the server closes (answered) or after -w 2 s without a connection;
    // 'close' (not 'exit') once its output is read.
    const client = start(from.netns, ['busybox', 'nc', '-w', '2', to.ip, String(port)]);
    const exited = new Promise<void>((resolve) => client.child.once('close', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
    clearTimeout(timer);
    client.child.stdin!.end();
    server.child.kill('SIGKILL');
    return client.output().includes('hello');
  };

  t.teardown(() => {
    for (const p of processes)
      if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  });

  // The host namespace: loopback with the host's address, no IPv6 chatter on new devices.
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['addr', 'add', `${HOST_IP}/32`, 'dev', 'lo']);
  sh('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.all.disable_ipv6=1']);

  const makeContainer = (name: string, ip: string): Container => {
    const netns = `${prefix}${name}`;
    const lxc = `lxc${name}`;
    sh('ip', ['netns', 'add', netns]);
    t.teardown(() => sh('ip', ['netns', 'del', netns]));
    sh('ip', [
      'netns',
      'exec',
      netns,
      'sysctl',
      '-qw',
      'net.ipv6.conf.default.disable_ipv6=1',
      'net.ipv6.conf.all.disable_ipv6=1',
    ]);
    sh('ip', ['link', 'add', lxc, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    sh('ip', ['link', 'set', lxc, 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0']);
    sh('ip', ['route', 'add', `${ip}/32`, 'dev', lxc, 'src', HOST_IP]);
    const host = link(lxc);
    return { netns, ip, mac: link('eth0', netns).address, lxc, lxcIfindex: host.ifindex, lxcMac: host.address };
  };
  const a = makeContainer('a', '198.18.1.2');
  const b = makeContainer('b', '198.18.1.3');
  const ID_A = 1001;
  const ID_B = 1002;
  const endpoint = (
    c: Container,
    epId: number,
    identity: number,
    enforce: { ingress?: boolean; egress?: boolean } = {},
  ) =>
    [
      c.ip,
      {
        ifindex: c.lxcIfindex,
        epId,
        identity,
        netId: 1,
        enforceIngress: enforce.ingress ?? false,
        enforceEgress: enforce.egress ?? false,
        mac: c.mac,
        nodeMac: c.lxcMac,
      },
    ] as const;

  const root = pinRoot(t);
  let dp = await loadLxcDatapath({ pinRoot: root });
  t.teardown(() => dp.close());
  const events: DatapathEvent[] = [];
  const reader = new EventReader(dp.events, (e) => events.push(e));
  t.teardown(() => reader.close());
  for (const c of [a, b]) dp.attachEndpoint(c.lxcIfindex);
  await dp.endpoints.setMany([endpoint(a, 1, ID_A), endpoint(b, 2, ID_B)]);
  await dp.ipcache.setMany([[`${HOST_IP}/32`, { identity: abi.Identity.Host, netId: 0 }]]);

  t.test('no policy, same network: containers and host reach each other', async (t: Test) => {
    t.ok(await ping(a.netns, b.ip), 'a pings b (ARP answered by the program, delivered by redirect)');
    t.ok(await ping(b.netns, a.ip), 'b pings a');
    t.ok(await ping(undefined, a.ip), 'the host pings a (through to_container)');
    t.ok(await tcp(a, b, 8080), 'TCP a -> b');
  });

  t.test("b's ingress policy: only a's TCP 8080; conntrack carries the replies", async (t: Test) => {
    // b enforces both directions and allows no egress at all: its replies pass only as replies.
    await dp.endpoints.setMany([endpoint(b, 2, ID_B, { ingress: true, egress: true })]);
    await dp.policy.syncEndpoint(2, [
      { direction: 'ingress', peer: ID_A, protocol: 6, dport: 8080, portPrefixLen: 16, verdict: 'allow', cookie: 42 },
    ]);
    events.length = 0;
    t.ok(await tcp(a, b, 8080), 'TCP a -> b:8080 passes, and b answers');
    t.notOk(await tcp(a, b, 9090), 'TCP a -> b:9090 is dropped');
    t.notOk(await ping(a.netns, b.ip), 'ping a -> b is dropped');
    const drop = await until(() => events.find((e) => e.type === 'drop' && e.protocol === 1), 10_000);
    t.match(
      drop,
      {
        type: 'drop',
        reason: abi.DropReason.Policy,
        epId: 2,
        direction: 'ingress',
        srcIdentity: ID_A,
        dstIdentity: ID_B,
        saddr: a.ip,
        daddr: b.ip,
        protocol: 1,
      },
      'the ICMP drop is reported with both identities',
    );
    t.ok(
      events.some((e) => e.type === 'drop' && e.protocol === 6 && e.dport === 9090 && e.srcIdentity === ID_A),
      'so is the TCP SYN to 9090',
    );
    t.ok(
      events.some(
        (e) =>
          e.type === 'policy-verdict' &&
          e.verdict === 'allow' &&
          e.dport === 8080 &&
          e.cookie === 42 &&
          e.match === 'l3-l4',
      ),
      'the allowed connection has a policy verdict with its cookie',
    );
    const metrics = await dp.metrics.read();
    t.ok(
      metrics.some((m) => m.reason === abi.DropReason.Policy && m.direction === 'ingress' && m.packets > 0n),
      'drops counted',
    );
  });

  t.test("a's ingress from the host: dropped until the host identity is allowed", async (t: Test) => {
    await dp.endpoints.setMany([endpoint(a, 1, ID_A, { ingress: true })]);
    events.length = 0;
    t.notOk(await ping(undefined, a.ip), 'host -> a dropped');
    t.match(await until(() => events.find((e) => e.type === 'drop'), 10_000), {
      reason: abi.DropReason.Policy,
      srcIdentity: abi.Identity.Host,
      dstIdentity: ID_A,
      epId: 1,
    });
    await dp.policy.syncEndpoint(1, [
      {
        direction: 'ingress',
        peer: abi.Identity.Host,
        protocol: 0,
        dport: 0,
        portPrefixLen: 0,
        verdict: 'allow',
        cookie: 1,
      },
    ]);
    t.ok(await ping(undefined, a.ip), 'host -> a allowed');
  });

  t.test('a datapath reload (agent restart) swaps the programs and keeps connections', async (t: Test) => {
    const server = start(b.netns, ['busybox', 'nc', '-l', '-p', '8080']);
    await listening(b, 8080);
    const client = start(a.netns, ['busybox', 'nc', b.ip, '8080']);
    client.child.stdin!.write('before\n');
    t.ok(await until(() => server.output().includes('before'), 10_000), 'a connection is established');

    const oldProgram = bpfNative().tcQuery(a.lxcIfindex, 'ingress', 1, 1);
    const next = await loadLxcDatapath({ pinRoot: root });
    t.same((await next.endpoints.list()).map(([ip]) => ip).sort(), [a.ip, b.ip], 'the new load reuses the pinned maps');
    for (const c of [a, b]) {
      const attached = next.attachEndpoint(c.lxcIfindex);
      t.equal(attached.fromContainer.query(), next.fromContainer.id, `${c.lxc}: the new from_container runs`);
      t.equal(attached.toContainer.query(), next.toContainer.id, `${c.lxc}: the new to_container runs`);
    }
    t.not(next.fromContainer.id, oldProgram, 'it is a different program');
    dp.close();
    dp = next;

    client.child.stdin!.write('after\n');
    t.ok(await until(() => server.output().includes('after'), 10_000), 'the established connection still carries data');
    t.notOk(await tcp(a, b, 9090), 'and the policy still holds');
  });
}

/** Polls check every 20 ms until it returns something truthy; undefined after ms. */
async function until<T>(check: () => T | undefined | false, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
