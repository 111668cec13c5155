/**
 * NodeSync against the real embedded store: this node's keys are published, keys deleted behind
 * its back are repaired by the next resync (interval shortened to 1 s), stale entries of ours are
 * removed, other nodes' entries are left alone, resyncs never overlap, and intervals that do not
 * fit a cron schedule are refused.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { NodeSync } from '../../../src/cluster/node-sync.js';
import { IpPublisher, type LocalIpEntry } from '../../../src/cluster/ip-publisher.js';
import { cronExpressionFor } from '../../../src/cluster/resync-schedule.js';
import { log } from '../../../src/util/log.js';

async function waitFor(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('publishes, repairs within one interval, removes stale entries, never overlaps', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-sync-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  let ips: LocalIpEntry[] = [{ ip: '198.18.7.2', identity: 300, endpoint: 1 }];
  let relists = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const publisher = new IpPublisher({ store, nodeName: 'node-a', log, localIps: () => ips });
  const sync = new NodeSync({
    store,
    nodeName: 'node-a',
    log,
    intervalMs: 1000,
    heartbeatIntervalMs: 200,
    ips: publisher,
    reassertIdentities: async () => undefined,
    relist: async () => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await new Promise((r) => setTimeout(r, 1500)); // slower than the interval
      relists++;
      concurrent--;
    },
  });
  t.teardown(async () => {
    sync.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.put('ip/v1/198.18.7.99', JSON.stringify({ identity: 301, node: 'node-a', endpoint: 9 }));
  await store.put('ip/v1/198.18.9.5', JSON.stringify({ identity: 302, node: 'node-b', endpoint: 3 }));
  await sync.start();
  t.same(
    JSON.parse((await store.get('ip/v1/198.18.7.2'))!.value),
    { identity: 300, node: 'node-a', endpoint: 1 },
    'local ip published',
  );
  t.notOk(await store.get('ip/v1/198.18.7.99'), 'stale entry of ours removed at start');
  t.ok(await store.get('ip/v1/198.18.9.5'), "another node's entry left alone");
  t.ok(await store.get('nodes/v1/node-a'), 'node record written');
  await waitFor(async () => (await store.get('heartbeat/v1/node-a')) !== undefined, 3000, 'heartbeat');

  // Behind our back.
  await store.delete('ip/v1/198.18.7.2');
  await store.delete('nodes/v1/node-a');
  const deletedAt = Date.now();
  await waitFor(
    async () =>
      (await store.get('ip/v1/198.18.7.2')) !== undefined && (await store.get('nodes/v1/node-a')) !== undefined,
    6000,
    'repair',
  );
  t.comment(`repaired after ${Date.now() - deletedAt} ms`);
  t.pass('deleted keys repaired by the resync');

  ips = [{ ip: '198.18.7.3', identity: 300, endpoint: 2 }];
  await publisher.publish();
  t.notOk(await store.get('ip/v1/198.18.7.2'), 'entry of a removed endpoint deleted');
  t.ok(await store.get('ip/v1/198.18.7.3'), 'new endpoint published');
  await waitFor(async () => relists >= 3, 10_000, 'three resyncs');
  t.equal(maxConcurrent, 1, 'resyncs never overlap even when slower than the interval');
  t.match(sync.getStatus(), { intervalMs: 1000, lastResyncAt: /T/, lastHeartbeatAt: /T/ });
});

t.test('resync intervals map onto cron expressions', async (t) => {
  t.equal(cronExpressionFor(300_000), '*/5 * * * *');
  t.equal(cronExpressionFor(1000), '*/1 * * * * *');
  t.equal(cronExpressionFor(30_000), '*/30 * * * * *');
  t.throws(() => cronExpressionFor(7000), { code: 'ERR_CONFIG' });
  t.throws(() => cronExpressionFor(90_000), { code: 'ERR_CONFIG' });
});
