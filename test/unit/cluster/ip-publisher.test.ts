/**
 * IpPublisher against the real embedded store: endpoint changes are published coalesced (one
 * publish at a time, one more queued however many changes arrive, reading the addresses afresh),
 * a failed publish is logged and the next one works, stale entries of this node are released
 * (only while they still name it), other nodes' entries are left alone, and `ip/v1/` values of
 * other nodes are read only when they have the fields readers rely on.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import type { KvStore } from '../../../src/kvstore/kvstore.js';
import { IP_PREFIX, IpPublisher, parseIpEntry, type LocalIpEntry } from '../../../src/cluster/ip-publisher.js';
import { log } from '../../../src/util/log.js';

function openStore(t: Test): LocalKvStore {
  const dir = mkdtempSync(join(tmpdir(), 'cd-ip-publisher-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

async function stored(store: KvStore): Promise<Record<string, unknown>> {
  const { pairs } = await store.list(IP_PREFIX);
  return Object.fromEntries(pairs.map((p) => [p.key.slice(IP_PREFIX.length), JSON.parse(p.value)]));
}

t.test('publish writes, rewrites and releases this node’s entries only', async (t) => {
  const store = openStore(t);
  let ips: LocalIpEntry[] = [
    { ip: '198.18.7.2', identity: 300, endpoint: 1 },
    { ip: '198.18.7.3', identity: 301, endpoint: 2, name: 'web', aliases: [], network: 'front' },
  ];
  const publisher = new IpPublisher({ store, nodeName: 'node-a', log, localIps: () => ips });
  await publisher.publish();
  t.same(
    await stored(store),
    {
      '198.18.7.2': { identity: 300, node: 'node-a', endpoint: 1 },
      '198.18.7.3': { identity: 301, node: 'node-a', endpoint: 2, name: 'web', network: 'front' },
    },
    'every local address, no empty aliases',
  );

  // 198.18.7.3 moved to another node meanwhile: its entry is not ours to delete.
  await store.put(`${IP_PREFIX}198.18.7.3`, JSON.stringify({ identity: 500, node: 'node-b', endpoint: 9 }));
  ips = [{ ip: '198.18.7.2', identity: 302, endpoint: 1, aliases: ['db'] }];
  await publisher.publish();
  t.same(
    await stored(store),
    {
      '198.18.7.2': { identity: 302, node: 'node-a', endpoint: 1, aliases: ['db'] },
      '198.18.7.3': { identity: 500, node: 'node-b', endpoint: 9 },
    },
    'changed entry rewritten; the address another node took is left to it',
  );

  ips = [];
  await publisher.publish();
  t.same(
    await stored(store),
    { '198.18.7.3': { identity: 500, node: 'node-b', endpoint: 9 } },
    'entry of a removed endpoint released',
  );
});

t.test('scheduled publishes are coalesced and never overlap', async (t) => {
  const store = openStore(t);
  let inFlight = 0;
  let maxInFlight = 0;
  let failNext = false;
  // The store's transactions (the batched puts) take 100 ms: publishes would overlap if they could.
  const slow = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'transaction') return Reflect.get(target, prop, receiver) as unknown;
      return async (...args: Parameters<KvStore['transaction']>) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await new Promise((r) => setTimeout(r, 100));
          if (failNext) {
            failNext = false;
            throw new Error('store unavailable');
          }
          return await target.transaction(...args);
        } finally {
          inFlight--;
        }
      };
    },
  });
  let reads = 0;
  let ips: LocalIpEntry[] = [{ ip: '198.18.7.2', identity: 300, endpoint: 1 }];
  const publisher = new IpPublisher({
    store: slow,
    nodeName: 'node-a',
    log,
    localIps: () => {
      reads++;
      return ips;
    },
  });
  publisher.schedule();
  for (let i = 3; i < 10; i++) {
    ips = [...ips, { ip: `198.18.7.${i}`, identity: 300 + i, endpoint: i }];
    publisher.schedule();
  }
  await publisher.idle();
  t.equal(reads, 2, 'eight changes: the running publish and one more');
  t.equal(maxInFlight, 1, 'publishes never overlap');
  t.same(Object.keys(await stored(store)).sort(), ips.map((e) => e.ip).sort(), 'the last addresses are published');

  failNext = true;
  ips = [...ips, { ip: '198.18.7.20', identity: 320, endpoint: 20 }];
  publisher.schedule();
  await publisher.idle();
  t.notOk(await store.get(`${IP_PREFIX}198.18.7.20`), 'a failed publish writes nothing and rejects nothing');
  publisher.schedule();
  await publisher.idle();
  t.ok(await store.get(`${IP_PREFIX}198.18.7.20`), 'the next publish writes it');
});

t.test('republish releases stale entries of this node and repairs deleted ones', async (t) => {
  const store = openStore(t);
  const ips: LocalIpEntry[] = [{ ip: '198.18.7.2', identity: 300, endpoint: 1 }];
  const publisher = new IpPublisher({ store, nodeName: 'node-a', log, localIps: () => ips });
  await publisher.publish();
  // Left by an earlier run of this node, another node's entry, and one that is no entry at all.
  await store.put(`${IP_PREFIX}198.18.7.99`, JSON.stringify({ identity: 301, node: 'node-a', endpoint: 9 }));
  await store.put(`${IP_PREFIX}198.18.9.5`, JSON.stringify({ identity: 302, node: 'node-b', endpoint: 3 }));
  await store.put(`${IP_PREFIX}198.18.9.6`, '{not json');
  await store.delete(`${IP_PREFIX}198.18.7.2`);
  await publisher.publish();
  t.notOk(
    await store.get(`${IP_PREFIX}198.18.7.2`),
    'a publish trusts what it wrote: the deleted entry is not rewritten',
  );

  await publisher.republish();
  t.ok(await store.get(`${IP_PREFIX}198.18.7.2`), 'entry deleted behind the node’s back repaired');
  t.notOk(await store.get(`${IP_PREFIX}198.18.7.99`), 'stale entry of this node released');
  t.ok(await store.get(`${IP_PREFIX}198.18.9.5`), "another node's entry left alone");
  t.equal(
    (await store.get(`${IP_PREFIX}198.18.9.6`))?.value,
    '{not json',
    'a value that does not parse is no one’s: left alone, and the resync goes on',
  );
});

t.test('parseIpEntry reads only entries with an identity and a node', async (t) => {
  t.same(
    parseIpEntry(`${IP_PREFIX}198.18.7.2`, JSON.stringify({ identity: 300, node: 'node-b', endpoint: 1, name: 'web' })),
    { ip: '198.18.7.2', identity: 300, node: 'node-b' },
  );
  t.equal(parseIpEntry(`${IP_PREFIX}198.18.7.2`, '{not json'), undefined, 'not JSON');
  t.equal(parseIpEntry(`${IP_PREFIX}198.18.7.2`, 'null'), undefined, 'null');
  t.equal(
    parseIpEntry(`${IP_PREFIX}198.18.7.2`, JSON.stringify({ identity: '300', node: 'node-b' })),
    undefined,
    'identity not a number',
  );
  t.equal(parseIpEntry(`${IP_PREFIX}198.18.7.2`, JSON.stringify({ identity: 300 })), undefined, 'no node');
  t.equal(
    parseIpEntry('nodes/v1/node-b', JSON.stringify({ identity: 300, node: 'node-b' })),
    undefined,
    'outside the prefix',
  );
});
