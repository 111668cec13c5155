/**
 * The long-lived `ip -batch` worker against the real iproute2, inside a network namespace of its
 * own (the worker runs `ip -n <ns>` through a two-line wrapper script): answers in order under
 * pipelining, failures attributed to the right command, and the stale name cache of a link
 * deleted behind its back handled by a retry on a fresh process.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ipWorkerListenerCount, runInIpWorker, stopIpWorker } from '../../../src/datapath/link/ip-worker.js';
import { DatapathError } from '../../../src/util/errors.js';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : undefined;

const ns = `cdipw-${process.pid}`;
const ip = (...args: string[]) =>
  execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const link = (name: string) =>
  (
    JSON.parse(ip('-json', 'link', 'show', 'dev', name)) as Array<{ ifindex: number; ifname: string; flags: string[] }>
  )[0]!;

t.test('ip worker', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cdipw-'));
  const wrapper = join(dir, 'ip-in-ns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip -n ${ns} "$@"\n`);
  chmodSync(wrapper, 0o755);
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => {
    stopIpWorker();
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });
  const run = (commands: string[][]) => runInIpWorker(commands, wrapper);

  t.test('one request: create, raise, route and look up; shows answer in order', async (t) => {
    const [a, b] = await run([
      ['link', 'add', 'wka', 'type', 'veth', 'peer', 'name', 'wkb'],
      ['link', 'set', 'wka', 'up'],
      ['route', 'replace', '198.18.250.1/32', 'dev', 'wka', 'scope', 'link'],
      ['link', 'show', 'dev', 'wka'],
      ['link', 'show', 'dev', 'wkb'],
    ]);
    t.equal((a as Array<{ ifname: string }>)[0]!.ifname, 'wka');
    t.equal((b as Array<{ ifname: string }>)[0]!.ifname, 'wkb');
    t.ok(link('wka').flags.includes('UP'));
    t.match(ip('route', 'show', '198.18.250.1'), /dev wka/);
  });

  t.test('a failed command rejects with its own line and message; the rest of the request still ran', async (t) => {
    const err = await run([
      ['link', 'add', 'wka', 'type', 'veth', 'peer', 'name', 'wkb'],
      ['link', 'add', 'wkc', 'type', 'veth', 'peer', 'name', 'wkd'],
      ['link', 'show', 'dev', 'nosuch0'],
    ]).catch((e: unknown) => e);
    t.type(err, DatapathError);
    t.match((err as Error).message, /^ip link add wka type veth peer name wkb: .*File exists/);
    t.ok(link('wkc'), 'the next command ran');
    const missing = await run([['link', 'show', 'dev', 'nosuch0']]).catch((e: unknown) => e);
    t.match((missing as Error).message, /^ip link show dev nosuch0: Device "nosuch0" does not exist/);
  });

  t.test('30 pipelined requests each get their own answers', async (t) => {
    const names = Array.from({ length: 30 }, (_, i) => `wp${i}`);
    const results = await Promise.all(
      names.map((n, i) =>
        i % 7 === 3
          ? run([['link', 'show', 'dev', `missing${i}`]]).then(
              () => 'resolved',
              (e: Error) => e.message,
            )
          : run([
              ['link', 'add', n, 'type', 'veth', 'peer', 'name', `${n}p`],
              ['link', 'show', 'dev', `${n}p`],
              ['link', 'show', 'dev', n],
            ]),
      ),
    );
    results.forEach((r, i) => {
      if (i % 7 === 3) t.match(r, new RegExp(`missing${i}" does not exist`), `request ${i} failed alone`);
      else {
        const [peer, own] = r as Array<Array<{ ifname: string }>>;
        t.same([peer![0]!.ifname, own![0]!.ifname], [`wp${i}p`, `wp${i}`], `request ${i}`);
      }
    });
  });

  t.test('a link deleted and re-created behind its back: retried on a fresh worker', async (t) => {
    await run([
      ['link', 'add', 'wst', 'type', 'veth', 'peer', 'name', 'wstp'],
      ['link', 'set', 'wst', 'up'],
    ]);
    const before = link('wst').ifindex;
    ip('link', 'del', 'wst');
    ip('link', 'add', 'wst', 'type', 'veth', 'peer', 'name', 'wstp');
    t.not(link('wst').ifindex, before, 'new ifindex');
    // Requests pipelined behind it on the same worker are answered, not failed by its restart.
    const stale = run([['link', 'set', 'wst', 'up']]);
    const others = Array.from({ length: 8 }, (_, i) =>
      run([
        ['link', 'add', `wso${i}`, 'type', 'veth', 'peer', 'name', `wso${i}p`],
        ['link', 'show', 'dev', `wso${i}`],
      ]),
    );
    await stale;
    t.ok(link('wst').flags.includes('UP'), 'the re-created link was raised, not a stale index');
    const answered = await Promise.allSettled(others);
    t.same(
      answered.map((a) => a.status),
      Array(8).fill('fulfilled'),
      'the requests around it all succeeded',
    );
    ip('link', 'del', 'wst');
    const gone = await run([['link', 'del', 'wst']]).catch((e: unknown) => e);
    t.match((gone as Error).message, /Cannot find device "wst"/, 'a link really gone is reported as such');
  });

  t.test('the worker is restarted after it dies', async (t) => {
    stopIpWorker();
    const [lo] = await run([['link', 'show', 'dev', 'lo']]);
    t.equal((lo as Array<{ ifname: string }>)[0]!.ifname, 'lo');
  });

  t.test('idle cycles add no listeners (no MaxListenersExceededWarning)', async (t) => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    t.teardown(() => void process.off('warning', onWarning));
    stopIpWorker();
    // Each request refs the worker's pipes and its answer unrefs them again: one idle cycle.
    await run([['link', 'show', 'dev', 'lo']]);
    const first = ipWorkerListenerCount();
    for (let i = 0; i < 50; i++) await run([['link', 'show', 'dev', 'lo']]);
    t.equal(ipWorkerListenerCount(), first, `listeners after 51 idle cycles (${first} after the first)`);
    // process.emitWarning delivers on a later tick.
    await new Promise((resolve) => setImmediate(resolve));
    t.same(
      warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
      [],
      'no listener-leak warning',
    );
  });
});
