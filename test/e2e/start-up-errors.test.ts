/**
 * Start-up that fails leaves the host as it found it. The real daemon binary, in one lab host,
 * started with one bad setting at a time: each exits non-zero with a message naming the setting,
 * and afterwards no cilium_host/cilium_net/cilium_vxlan link, no pin under the bpf root, no socket
 * file and no masquerade rule is left. Errors the daemon can only meet half-way (a corrupt state
 * record, iptables failing) are undone in reverse; an earlier agent's datapath is left alone. A
 * good start afterwards creates those things (so the checks can see them) with a private state
 * directory (0700, store files 0600).
 */
import t, { type Test } from 'tap';
import { chownSync, mkdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { requireRoot } from '../lab/preconditions.js';
import { CiliumDaemon } from '../support/cilium-daemon.js';
import { LocalKvStore } from '../../src/kvstore/local/local-store.js';
import { nodeRecordPrefix } from '../../src/kvstore/store-scopes.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const BPF_ROOT = '/sys/fs/bpf/cilium';
const MASQUERADE_COMMENT = 'cilium-docker: masquerade to world';

let host: DockerHost;
let daemon: CiliumDaemon;
let runs = 0;

/** What a daemon may leave in the host: links, pins, socket files, the masquerade rule. */
async function leftovers(bpfRoots: string[] = [BPF_ROOT]): Promise<string[]> {
  const script = [
    'ip -o link show',
    'echo @@',
    ...bpfRoots.map((r) => `[ -d ${r} ] && find ${r} -mindepth 1 | head -3 | sed 's|^|pin |'`),
    'find /run/docker/plugins /run/cilium -type s | sed "s|^|socket |"',
    'echo @@',
    'iptables -w 5 -t nat -S POSTROUTING',
  ].join('; ');
  const [links = '', files = '', nat = ''] = (await host.exec(['sh', '-c', script])).stdout.split('@@\n');
  const found: string[] = [];
  for (const name of ['cilium_host', 'cilium_net', 'cilium_vxlan'])
    if (new RegExp(`^\\d+: ${name}[@:]`, 'm').test(links)) found.push(`link ${name}`);
  const pins = files.split('\n').filter((l) => l.startsWith('pin '));
  if (pins.length > 0) found.push(`pins: ${pins.map((p) => p.slice(4)).join(' ')}`);
  const sockets = files.split('\n').filter((l) => l.startsWith('socket '));
  if (sockets.length > 0) found.push(`sockets: ${sockets.map((p) => p.slice(7)).join(' ')}`);
  if (!/^-P POSTROUTING/m.test(nat)) throw new Error(`iptables -t nat -S failed in ${host.name}: ${nat}`);
  if (nat.includes(MASQUERADE_COMMENT)) found.push('masquerade rule');
  return found;
}

/** Removes whatever a failed start left, so that each case is judged on its own. */
async function wipe(bpfRoots: string[] = [BPF_ROOT]): Promise<void> {
  await host.exec([
    'sh',
    '-c',
    [
      'for l in cilium_vxlan cilium_host cilium_net; do ip link del $l 2>/dev/null; done',
      ...bpfRoots.map((r) => `rm -rf ${r}`),
      'find /run/docker/plugins /run/cilium -type s -delete',
      'while iptables -w 5 -t nat -D POSTROUTING -m mark --mark 0xc00/0xf00 -m comment --comment ' +
        `'${MASQUERADE_COMMENT}' -j MASQUERADE 2>/dev/null; do :; done`,
    ].join('; '),
  ]);
}

/** Runs the daemon with `extraArgs` on top of the e2e defaults; resolves with its exit code and log. */
async function startFails(
  extraArgs: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; log: string }> {
  const argv = [...daemon.argv(), ...extraArgs];
  const p = host.spawn(argv, { CILIUM_DOCKER_LOG_LEVEL: 'info', ...env }, { logName: `bad-start-${++runs}.log` });
  try {
    const exit = await p.wait(15_000);
    return { code: exit.code, log: p.readLog() };
  } finally {
    if (!p.exited) await p.stop(2_000);
  }
}

interface BadStart {
  name: string;
  args: string[];
  env?: Record<string, string>;
  /** What the message on stderr must say. */
  message: RegExp;
  prepare?: () => Promise<void> | void;
}

let busy: Server | undefined;

t.before(async () => {
  host = await startDockerHost(t);
  // An underlay address, so that a start gets as far as creating cilium_vxlan.
  await host.exec(
    [
      'sh',
      '-c',
      'ip link add ul0 type veth peer name ul0p && ip addr add 198.18.250.1/24 dev ul0 && ip link ' +
        'set ul0p up && ip link set ul0 up',
    ],
    { check: true },
  );
  daemon = new CiliumDaemon(host, { extraArgs: ['--underlay-ip', '198.18.250.1'] });
});

t.teardown(() => {
  busy?.close();
});

function checkRefusal(t: Test, c: BadStart, result: { code: number | null; log: string }): void {
  t.not(result.code, 0, 'exits non-zero');
  t.not(result.code, null, 'exits by itself (not by a signal)');
  const stderr = result.log
    .split('\n')
    .filter((l) => l.startsWith('cilium-docker: '))
    .join('\n');
  t.match(stderr, c.message, 'says what is wrong');
  t.notMatch(result.log, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace');
}

t.test('bad settings are refused before anything on the host is touched', async (t) => {
  t.same(await leftovers(), [], 'a fresh host has nothing of ours');
  const notBpffs = join(host.dir, 'not-bpffs', 'cilium');
  const cases: BadStart[] = [
    {
      name: 'metrics port out of range',
      args: ['--metrics-address', '127.0.0.1:99999'],
      message: /--metrics-address: "127\.0\.0\.1:99999".*port/,
    },
    {
      name: 'metrics address of no interface',
      args: ['--metrics-address', '198.18.99.1:9962'],
      message: /--metrics-address 198\.18\.99\.1:9962: cannot listen/,
    },
    {
      name: 'DNS address of no interface',
      args: ['--dns-address', '198.18.99.1'],
      message: /--dns-address 198\.18\.99\.1:53: cannot listen/,
    },
    {
      name: 'a directory as the plugin socket',
      args: ['--plugin-socket', '/run/docker/plugins/dir.sock'],
      prepare: () => void mkdirSync(join(host.pluginDir, 'dir.sock')),
      message: /--plugin-socket: .*dir\.sock exists and is not a socket/,
    },
    {
      name: 'a live listener on the plugin socket',
      args: ['--plugin-socket', '/run/docker/plugins/busy.sock'],
      prepare: () =>
        new Promise<void>((resolve) => {
          busy = createServer((c) => c.end()).listen(join(host.pluginDir, 'busy.sock'), resolve);
        }),
      message: /--plugin-socket: another process is listening/,
    },
    {
      name: 'a bpf root on no bpf filesystem',
      args: ['--bpf-root', notBpffs],
      message: /--bpf-root .*not-bpffs\/cilium.* not a bpf filesystem/,
    },
    {
      name: 'a state directory owned by another user',
      args: ['--state-dir', join(host.dir, 'foreign-state')],
      prepare: () => {
        mkdirSync(join(host.dir, 'foreign-state'), { mode: 0o700 });
        chownSync(join(host.dir, 'foreign-state'), 65534, 65534);
      },
      message: /--state-dir .*foreign-state is owned by uid 65534/,
    },
  ];
  for (const c of cases) await c.prepare?.();
  // Side by side (they share nothing but the host): each must fail without making anything.
  const results = await Promise.all(cases.map((c) => startFails(c.args, c.env)));
  await new Promise((r) => (busy ? busy.close(r) : r(undefined)));
  busy = undefined;
  for (const [i, c] of cases.entries()) t.test(c.name, async (t) => checkRefusal(t, c, results[i]!));
  t.same(await leftovers([BPF_ROOT, notBpffs]), [], 'nothing left behind by any of them');
  await wipe([BPF_ROOT, notBpffs]);
});

t.test('a start that fails half-way undoes what it did', async (t) => {
  const cases: BadStart[] = [
    {
      // Met after the datapath is up: the corrupt record is read when endpoints are restored.
      name: 'a corrupt network record in the state',
      args: ['--state-dir', join(host.dir, 'corrupt-state')],
      prepare: async () => {
        const store = LocalKvStore.open({ path: join(host.dir, 'corrupt-state', 'kvstore.db') });
        await store.put(`${nodeRecordPrefix(host.name)}networks/n1`, '{not json');
        await store.close();
      },
      message: /JSON/,
    },
    {
      // Met inside the datapath's own start: links and pins exist, the rule cannot be installed.
      name: 'iptables failing',
      args: ['--state-dir', join(host.dir, 'iptables-state')],
      env: { CILIUM_DOCKER_IPTABLES: '/bin/false' },
      message: /masquerade rule/,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      await c.prepare?.();
      checkRefusal(t, c, await startFails(c.args, c.env));
      t.same(await leftovers(), [], 'nothing left behind');
      await wipe();
    });
  }
});

t.test('a good start creates them, with a private state directory', async (t) => {
  await daemon.start();
  const found = await leftovers();
  for (const thing of ['link cilium_host', 'link cilium_net', 'link cilium_vxlan', 'masquerade rule'])
    t.ok(found.includes(thing), `${thing} exists while the daemon runs`);
  t.ok(
    found.some((f) => f.startsWith('pins:')),
    'pins exist',
  );
  t.ok(
    found.some((f) => f.startsWith('sockets:')),
    'sockets exist',
  );
  t.equal(statSync(daemon.stateDir).mode & 0o777, 0o700, 'state directory 0700');
  for (const file of ['kvstore.db', 'kvstore.db-wal'])
    t.equal(statSync(join(daemon.stateDir, file)).mode & 0o777, 0o600, `${file} 0600`);
  await daemon.stop();
});

t.test("a failed start leaves an earlier agent's datapath in place", async (t) => {
  // The clean stop above left the datapath for the containers (sockets go with the process).
  const before = await leftovers();
  t.ok(before.includes('link cilium_host'), 'datapath of the earlier run is there');
  const { code } = await startFails([], { CILIUM_DOCKER_IPTABLES: '/bin/false' });
  t.not(code, 0, 'exits non-zero');
  t.same(await leftovers(), before, 'links, pins and rule of the earlier run untouched');
});
