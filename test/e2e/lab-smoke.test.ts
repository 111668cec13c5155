// The lab itself: a private dockerd in a namespace host runs busybox containers, survives
// restarts, and leaves nothing behind.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import {
  cgroupMembers,
  ensureBusyboxImage,
  isProcessAlive,
  mountsUnder,
  reapStaleHosts,
  requireRoot,
  runCommand,
  startDockerHost,
  type DockerHost,
} from '../lab/lab.js';

/** statfs f_type of a bpffs, as `stat -f -c %t` prints it. */
const BPF_FS_MAGIC = 'cafe4a11';

function ms(since: number): string {
  return `${Math.round(performance.now() - since)} ms`;
}

async function netnsNames(): Promise<string[]> {
  const r = await runCommand('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.length > 0);
}

/** Everything stop() must have removed, checked from the outside. */
async function assertRemoved(t: Test, host: Pick<DockerHost, 'name' | 'dir'>, pids: readonly number[]): Promise<void> {
  t.notOk((await netnsNames()).includes(host.name), `netns ${host.name} deleted`);
  t.notOk(existsSync(host.dir), `${host.dir} removed`);
  t.same(mountsUnder(host.dir), [], 'nothing mounted under the host directory');
  t.same(
    pids.filter((p) => isProcessAlive(p)),
    [],
    `no lab process alive (dockerd, containerd, spawned: ${pids.join(' ')})`,
  );
  t.same(cgroupMembers(host.name), [], 'no process left in the host cgroup');
  const cgroupLeft = readdirSync('/sys/fs/cgroup').filter((c) => existsSync(join('/sys/fs/cgroup', c, host.name)));
  t.same(cgroupLeft, [], 'host cgroups removed');
}

t.test('a lab host runs busybox containers, restarts dockerd and cleans up', async (t) => {
  if (!requireRoot(t)) return;

  let start = performance.now();
  const host = await startDockerHost(t);
  t.comment(`startDockerHost: ${ms(start)}`);
  start = performance.now();
  t.equal(await ensureBusyboxImage(host), 'bb');
  t.comment(`ensureBusyboxImage: ${ms(start)}`);

  const info = await host.docker(['info', '--format', '{{.CgroupDriver}} {{json .Warnings}}']);
  t.equal(info.code, 0, 'docker info answers');
  t.match(info.stdout, /^cgroupfs /, 'dockerd uses the cgroupfs driver');
  t.comment(`docker info: ${info.stdout.trim()}`);

  start = performance.now();
  const hi = await host.docker(['run', '--rm', '--network', 'none', 'bb', 'sh', '-c', 'echo hi']);
  t.comment(`docker run --rm: ${ms(start)}`);
  t.equal(hi.code, 0, `docker run succeeds ${hi.stderr}`);
  t.equal(hi.stdout, 'hi\n', 'container prints hi');

  const links = await host.docker(['run', '--rm', '--network', 'none', 'bb', 'ls', '/sys/class/net']);
  t.equal(links.code, 0, links.stderr);
  t.same(links.stdout.split('\n').filter(Boolean), ['lo'], '--network none has only lo');

  t.test('the host namespaces', async (t) => {
    t.equal((await host.exec(['hostname'])).stdout.trim(), host.hostname, 'own hostname');
    const fwd = await host.exec(['cat', '/proc/sys/net/ipv4/ip_forward']);
    t.equal(fwd.stdout.trim(), '1', 'ip_forward on inside');
    const hostLinks = await host.exec(['ls', '/sys/class/net']);
    t.same(hostLinks.stdout.split('\n').filter(Boolean), ['lo'], 'host netns has only lo');
    writeFileSync(join(host.pluginDir, 'probe.spec'), 'unix:///nowhere.sock\n');
    const plugins = await host.exec(['ls', '/run/docker/plugins']);
    t.same(plugins.stdout.split('\n').filter(Boolean), ['probe.spec'], 'private /run/docker/plugins');
    t.notOk(existsSync('/run/docker/plugins/probe.spec'), 'root view of /run/docker/plugins untouched');
    // What the lab guarantees whatever the root namespace has at /sys/fs/bpf (a bpffs after a
    // `make run`, nothing on a fresh machine): the host's /sys/fs/bpf is a bpffs of its own.
    const fs = await host.exec(['stat', '-f', '-c', '%t', '/sys/fs/bpf']);
    t.equal(fs.stdout.trim(), BPF_FS_MAGIC, `/sys/fs/bpf is a bpffs inside the host ${fs.stderr}`);
    const dev = await host.exec(['stat', '-c', '%d', '/sys/fs/bpf']);
    t.not(
      dev.stdout.trim(),
      String(statSync('/sys/fs/bpf').dev),
      "not the root namespace's /sys/fs/bpf (another device)",
    );
    const probe = `/sys/fs/bpf/${host.name}-probe`;
    const made = await host.exec(['mkdir', probe]);
    t.equal(made.code, 0, `a directory can be made on it ${made.stderr}`);
    t.notOk(existsSync(probe), 'and it is invisible from the root namespace');
    const resolv = await host.exec(['cat', '/etc/resolv.conf']);
    t.match(resolv.stdout, /^nameserver 198\.18\./, 'resolv.conf points into the lab range');
  });

  const sleeper = host.spawn(['/bin/busybox', 'sh', '-c', 'echo started; exec sleep 1000']);
  t.test('spawn runs a process inside the host', async (t) => {
    for (let i = 0; i < 100 && !sleeper.readLog().includes('started'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    t.match(sleeper.readLog(), /started/, 'output goes to the log file');
    t.ok(isProcessAlive(sleeper.pid), 'still running');
  });

  const pids: number[] = [sleeper.pid];
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    t.test(`dockerd answers again after ${signal}`, async (t) => {
      const before = host.dockerdPid!;
      const containerd = host.containerdPid();
      t.ok(containerd, 'dockerd supervises a containerd');
      const s = performance.now();
      await host.restartDockerd({ signal });
      t.comment(`restartDockerd(${signal}): ${ms(s)}; containerd ${containerd} -> ${host.containerdPid()}`);
      t.not(host.dockerdPid, before, 'a new dockerd');
      t.notOk(isProcessAlive(before), 'the old dockerd is gone');
      const v = await host.docker(['version', '--format', '{{.Server.Version}}']);
      t.equal(v.code, 0, 'docker version answers');
      const run = await host.docker(['run', '--rm', '--network', 'none', 'bb', 'echo', 'again']);
      t.equal(run.stdout, 'again\n', `containers run after the restart ${run.stderr}`);
    });
  }

  t.test('stop removes everything', async (t) => {
    await host.docker(['run', '-d', '--network', 'none', 'bb', 'sleep', '1000'], { check: true });
    pids.push(...host.dockerdPidHistory, ...host.containerdPidHistory);
    const s = performance.now();
    await host.stop();
    t.comment(`stop: ${ms(s)}`);
    await assertRemoved(t, host, pids);
  });
});

t.test('with live-restore, containers and their sandboxes survive a dockerd restart', async (t) => {
  if (!requireRoot(t)) return;
  const host = await startDockerHost(t, { liveRestore: true });
  await ensureBusyboxImage(host);
  const id = (
    await host.docker(['run', '-d', '--network', 'none', 'bb', 'sleep', '1000'], { check: true })
  ).stdout.trim();
  await host.restartDockerd({ signal: 'SIGTERM' });
  const state = await host.docker(['inspect', '--format', '{{.State.Running}}', id]);
  t.equal(state.stdout.trim(), 'true', 'the container kept running');
  const links = await host.execInContainerNetns(id, ['ip', '-o', 'link', 'show']);
  t.equal(links.code, 0, `its sandbox netns is still reachable ${links.stderr}`);
  t.match(links.stdout, /^1: lo:/, 'and holds its lo');
});

t.test('two hosts run side by side without sharing anything', async (t) => {
  if (!requireRoot(t)) return;
  const start = performance.now();
  const [a, b] = await Promise.all([startDockerHost(t), startDockerHost(t)]);
  await Promise.all([ensureBusyboxImage(a), ensureBusyboxImage(b)]);
  t.comment(`two hosts in parallel, with images: ${ms(start)}`);
  t.not(a.name, b.name, 'distinct namespaces');
  t.not(a.containerdPid(), b.containerdPid(), 'each dockerd supervises its own containerd');
  t.not(a.defaultAddressPool, b.defaultAddressPool, 'distinct default address pools');
  const runs = await Promise.all(
    [a, b].map((h) => h.docker(['run', '--rm', '--network', 'none', 'bb', 'cat', '/etc/hostname'])),
  );
  t.same(
    runs.map((r) => r.code),
    [0, 0],
    'containers run on both hosts at once',
  );
  const names = await Promise.all([a, b].map((h) => h.exec(['hostname'])));
  t.same(
    names.map((r) => r.stdout.trim()),
    [a.hostname, b.hostname],
    'each host has its own hostname',
  );
  await a.stop();
  const still = await b.docker(['version', '--format', '{{.Server.Version}}']);
  t.equal(still.code, 0, 'stopping one host leaves the other running');
});

const orphanFixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'lab', 'fixtures', 'orphan-host.ts');

interface OrphanInfo {
  name: string;
  dir: string;
  pids: number[];
}

/** Runs fixtures/orphan-host.ts in a child Node process and resolves with what it started. */
function startOrphan(t: Test): Promise<{ info: OrphanInfo; kill: (s: NodeJS.Signals) => Promise<void> }> {
  // The child needs the TypeScript loader this process runs under.
  const loader = process.execArgv.filter((a) => a.includes('typescript') || a === '--enable-source-maps');
  const child = spawn(process.execPath, [...loader, orphanFixture], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  t.teardown(async () => {
    child.kill('SIGKILL');
    await exited;
    reapStaleHosts();
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`orphan fixture silent for 90 s: ${err}`)), 90_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      resolve({
        info: JSON.parse(out.split('\n')[0]!) as OrphanInfo,
        kill: async (signal) => {
          child.kill(signal);
          await exited;
        },
      });
    });
    void exited.then(() => reject(new Error(`orphan fixture exited early: ${err}`)));
  });
}

t.test('a test process that dies still leaves nothing behind', async (t) => {
  if (!requireRoot(t)) return;
  if (!process.execArgv.some((a) => a.includes('typescript'))) {
    t.plan(0, 'needs the TypeScript loader of the tap runner to start the fixture');
    return;
  }

  // Both children start at once: most of their time is the TypeScript loader's start-up.
  const [term, killed] = await Promise.all([startOrphan(t), startOrphan(t)]);
  t.equal(term.info.pids.filter((p) => isProcessAlive(p)).length, 4, 'dockerd, containerd, container, spawned');

  t.test('SIGTERM: the exit handler removes the host', async (t) => {
    const s = performance.now();
    await term.kill('SIGTERM');
    t.comment(`emergency clean-up on SIGTERM: ${ms(s)}`);
    await assertRemoved(t, term.info, term.info.pids);
  });

  t.test('SIGKILL: the next lab start reaps the host', async (t) => {
    await killed.kill('SIGKILL');
    t.ok((await netnsNames()).includes(killed.info.name), 'nothing could clean up yet');
    const s = performance.now();
    t.ok(reapStaleHosts().includes(killed.info.name), "the reaper claims the dead process's host");
    t.comment(`reaping: ${ms(s)}`);
    await assertRemoved(t, killed.info, killed.info.pids);
  });
});
