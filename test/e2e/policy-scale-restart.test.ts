/**
 * Large CIDR policies across a crash, end to end (issue 15 item 2): a daemon restarted after
 * `kill -9` with a large CIDR policy in its store hung in the CIDR identity sync before opening
 * its sockets, so Docker's plugin calls went unanswered and the policy could not even be deleted.
 *
 * One lab host, one daemon, one network. Twice — a policy at the import limit (16 000 distinct
 * /32 `toCIDR`) imported through the CLI, and a policy over today's limits written to the store
 * directly, as an older version could have stored it (60 000 `toCIDRSet` entries with `except`,
 * 120 000 prefixes) — the daemon is killed with SIGKILL and started again, and then:
 * - the plugin socket answers `/Plugin.Activate` and a NetworkDriver call within seconds of the
 *   start, and keeps answering each call within seconds while the CIDR identities are synced;
 * - `docker run --network <ours>` gives a container a ready endpoint;
 * - `cilium policy delete` removes the policy.
 */
import t, { type Test } from 'tap';
import { request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import { LocalKvStore } from '../../src/kvstore/local/local-store.js';
import type { EndpointModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

const NETWORK = 'scale';
/** From the daemon's spawn to its plugin socket answering: node start-up, datapath init, restore. */
const SOCKET_OPEN_MS = 15_000;
/** One plugin call once the socket answers (Docker waits on each; generous for a loaded 2-core box). */
const PLUGIN_CALL_MS = 3_000;

let host: DockerHost;
let daemon: CiliumDaemon;

async function docker(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n${daemon.process?.logTail(20)}`,
    );
  return r.stdout.trim();
}

/** One call on the daemon's plugin socket, as dockerd makes it; rejects after `timeoutMs`. */
function pluginCall(
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const socketPath = join(host.pluginDir, `${daemon.driver}.sock`);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/vnd.docker.plugins.v1.2+json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
              ms: performance.now() - started,
            });
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${path}: no answer within ${timeoutMs} ms`)));
    req.end(payload);
  });
}

async function readyEndpoint(name: string): Promise<EndpointModel> {
  return eventually(
    async () => {
      const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
      const e = eps.find((x) => x.containerName === name);
      return e?.state === 'ready' ? e : undefined;
    },
    60_000,
    `${name} ready`,
  );
}

function address(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

function cidrPolicy(name: string, egress: unknown): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name },
    spec: { endpointSelector: {}, egress: [egress] },
  };
}

async function policyNames(): Promise<string[]> {
  const r = await daemon.cli(['policy', 'get', '-o', 'json']);
  if (r.code !== 0) throw new Error(`policy get failed: ${r.stderr}`);
  const parsed = JSON.parse(r.stdout) as { policies: Array<{ metadata: { name: string } }> };
  return parsed.policies.map((p) => p.metadata.name);
}

/**
 * Starts the daemon again and checks the plugin socket: open within SOCKET_OPEN_MS of the spawn,
 * then every call answered within PLUGIN_CALL_MS for `probeMs` (while the CIDR sync runs).
 */
async function restartAndProbe(t: Test, probeMs: number): Promise<void> {
  const spawned = performance.now();
  const api = daemon.start(SOCKET_OPEN_MS + 60_000);
  api.catch(() => undefined);
  let opened: number | undefined;
  while (opened === undefined) {
    if (daemon.process?.exited) throw new Error(`the daemon exited: ${daemon.process.logTail(30)}`);
    try {
      const r = await pluginCall('/Plugin.Activate', {}, PLUGIN_CALL_MS);
      if (r.status === 200) opened = performance.now() - spawned;
    } catch {
      /* not listening yet */
    }
    if (opened === undefined) {
      if (performance.now() - spawned > SOCKET_OPEN_MS) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.ok(
    opened !== undefined,
    `the plugin socket answers /Plugin.Activate within ${SOCKET_OPEN_MS} ms of the start ` +
      `(${opened?.toFixed(0) ?? 'no answer'} ms)`,
  );
  if (opened === undefined)
    throw new Error(`plugin socket closed ${SOCKET_OPEN_MS} ms after the start\n${daemon.process?.logTail(20)}`);
  await api;
  const probeEnd = performance.now() + probeMs;
  let slowest = 0;
  let calls = 0;
  let failure: string | undefined;
  do {
    for (const [path, body] of [
      ['/Plugin.Activate', {}],
      ['/NetworkDriver.GetCapabilities', {}],
    ] as const) {
      try {
        const r = await pluginCall(path, body, PLUGIN_CALL_MS);
        calls++;
        slowest = Math.max(slowest, r.ms);
        if (r.status !== 200) failure ??= `${path}: HTTP ${r.status}`;
      } catch (err) {
        failure ??= String(err);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  } while (performance.now() < probeEnd);
  t.comment(
    `socket open ${opened.toFixed(0)} ms after the spawn; ${calls} plugin calls in ${probeMs} ms, ` +
      `slowest ${slowest.toFixed(0)} ms`,
  );
  t.equal(
    failure,
    undefined,
    `every plugin call during the sync answered 200 within ${PLUGIN_CALL_MS} ms (slowest ${slowest.toFixed(0)} ms)`,
  );
  const caps = await pluginCall('/NetworkDriver.GetCapabilities', {}, PLUGIN_CALL_MS);
  t.match(caps.body, { Scope: 'local' }, 'a NetworkDriver call answers in the protocol');
}

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  daemon = new CiliumDaemon(host);
  await daemon.start();
  await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.131.0/24',
    NETWORK,
  ]);
  await docker(['run', '-d', '--name', 'c0', '--network', NETWORK, '-l', 'app=c0', 'bb', 'sleep', '100000']);
  await readyEndpoint('c0');
});

t.test('16 000 /32 toCIDR (the import limit): kill -9, restart, plugin calls, docker run, delete', async (t) => {
  const n = 16_000;
  const text = JSON.stringify(
    cidrPolicy('many-hosts', { toCIDR: Array.from({ length: n }, (_, i) => `${address(65_536 + i)}/32`) }),
  );
  const imported = await daemon.cli(['policy', 'import', '-', '-o', 'json'], text);
  t.equal(imported.code, 0, `imported (${imported.stderr.trim()})`);
  const revision = (JSON.parse(imported.stdout) as { revision: number }).revision;
  const waited = await daemon.cli(['policy', 'wait', String(revision), '--timeout', '60s']);
  t.equal(waited.code, 0, `enforced on c0 (${waited.stderr.trim()})`);

  await daemon.stop('SIGKILL');
  await restartAndProbe(t, 4_000);
  await docker(['run', '-d', '--name', 'c1', '--network', NETWORK, '-l', 'app=c1', 'bb', 'sleep', '100000']);
  t.ok((await readyEndpoint('c1')).identity >= 256, 'docker run --network scale: c1 has a ready endpoint');
  t.same(await policyNames(), ['many-hosts'], 'the policy was reloaded from the store');
  const deleted = await daemon.cli(['policy', 'delete', 'many-hosts']);
  t.equal(deleted.code, 0, `cilium policy delete many-hosts (${deleted.stderr.trim()})`);
  t.same(await policyNames(), [], 'no policy left');
  await docker(['rm', '-f', 'c1']);
});

t.test(
  '60 000 toCIDRSet with except stored by an older version (over the limits): starts, serves, deletes',
  async (t) => {
    await daemon.stop('SIGKILL');
    // The daemon is down: write the repository key (wherever this version keeps it) directly.
    const store = LocalKvStore.open({ path: join(daemon.stateDir, 'kvstore.db') });
    try {
      const keys = (await store.list('')).pairs.map((p) => p.key).filter((k) => k.endsWith('policies/v1/repository'));
      t.equal(keys.length, 1, `one repository key in the store (${keys.join(', ')})`);
      const current = JSON.parse((await store.get(keys[0]!))!.value) as { revision: number };
      const n = 60_000;
      const sets = Array.from({ length: n }, (_, i) => ({
        cidr: `${address(65_536 + i * 4)}/30`,
        except: [`${address(65_536 + i * 4 + 1)}/32`],
      }));
      const revision = current.revision + 1;
      await store.put(
        keys[0]!,
        JSON.stringify({
          revision,
          policies: [{ name: 'many-sets', revision, document: cidrPolicy('many-sets', { toCIDRSet: sets }) }],
        }),
      );
    } finally {
      await store.close();
    }
    await restartAndProbe(t, 6_000);
    await docker(['run', '-d', '--name', 'c2', '--network', NETWORK, '-l', 'app=c2', 'bb', 'sleep', '100000']);
    t.ok((await readyEndpoint('c2')).identity >= 256, 'docker run --network scale: c2 has a ready endpoint');
    t.same(await policyNames(), ['many-sets'], 'the stored over-limit policy is loaded');
    const deleted = await daemon.cli(['policy', 'delete', 'many-sets']);
    t.equal(deleted.code, 0, `cilium policy delete many-sets (${deleted.stderr.trim()})`);
    t.same(await policyNames(), [], 'no policy left');
    // And a restart after the delete has nothing left to sync.
    await daemon.stop('SIGKILL');
    await restartAndProbe(t, 500);
    t.same(await policyNames(), [], 'still none after another restart');
  },
);
