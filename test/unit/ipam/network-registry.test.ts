/**
 * Network names across hosts (`networks/v1/<name>`): two nodes, each with its own Ipam and
 * NetworkRegistry, over one store — the embedded store, and a real etcd with one client (and
 * lease) per node. The same scenarios run against both: same name + subnet agree, a name without
 * --subnet gets the cluster's subnet, a conflicting definition is a clear error (at RequestPool,
 * at CreateNetwork, and when the name is learnt from Docker), the last user removes the record,
 * and the resync repairs and sweeps.
 *
 * Without etcd installed the etcd half is skipped with the reason (failed when CI=true).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { KvStore } from '../../../src/kvstore/kvstore.js';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { EtcdKvStore } from '../../../src/kvstore/etcd/etcd-store.js';
import { Ipam } from '../../../src/ipam/ipam.js';
import { NetworkRegistry } from '../../../src/ipam/network-registry.js';
import type { RequestPoolRequest } from '../../../src/ipam/types.js';
import { log } from '../../../src/util/log.js';
import { EtcdTestServer, etcdUnavailableReason } from '../../support/etcd-server.js';

/** One simulated host: its IPAM and its registry. */
interface Node {
  name: string;
  store: KvStore;
  ipam: Ipam;
  networks: NetworkRegistry;
}

/** Two stores (possibly the same) that two nodes use, and how to get rid of them. */
interface Cluster {
  storeA: KvStore;
  storeB: KvStore;
  /** A client that sees every key (for checks and for deleting keys behind the nodes' backs). */
  admin: KvStore;
}

type OpenCluster = (t: Test) => Promise<Cluster>;

function node(store: KvStore, name: string): Node {
  const ipam = new Ipam({
    store,
    nodeName: name,
    defaultPool: '198.18.64.0/20',
    defaultPoolPrefixLength: 24,
    blockPrefixLength: 26,
  });
  return {
    name,
    store,
    ipam,
    networks: new NetworkRegistry({
      store,
      nodeName: name,
      ipam,
      log: log.child({ component: 'networks', node: name }),
    }),
  };
}

function pool(subnet = '', ipRange = ''): RequestPoolRequest {
  return { pool: subnet, subPool: ipRange, options: {}, v6: false };
}

const details = (gateway: string, internal = false) => ({ gateway, internal });

/** Polls `read` until it returns `want` (about 10 s at most); returns the last value. */
async function soon<T>(read: () => T | Promise<T>, want: T): Promise<T> {
  let value = await read();
  for (let i = 0; i < 200 && value !== want; i++) {
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

function scenarios(t: Test, backend: string, open: OpenCluster): void {
  const twoNodes = async (t: Test) => {
    const cluster = await open(t);
    return { ...cluster, a: node(cluster.storeA, 'node-a'), b: node(cluster.storeB, 'node-b') };
  };

  t.test(`${backend}: the same name and subnet on two nodes agree on one record and one pool`, async (t) => {
    const { a, b, admin } = await twoNodes(t);
    const pa = await a.networks.requestPool('app', pool('198.18.40.0/24'));
    t.equal(await a.networks.networkCreated('net-a-app', pa.pool, details('198.18.40.1')), 'app');
    const pb = await b.networks.requestPool('app', pool('198.18.40.0/24'));
    t.equal(pb.poolId, pa.poolId, 'one pool');
    t.equal(await b.networks.networkCreated('net-b-app', pb.pool, details('198.18.40.1')), 'app');
    const [info] = await a.networks.list();
    t.match(info, {
      record: {
        name: 'app',
        subnet: '198.18.40.0/24',
        createdBy: 'node-a',
        details: { gateway: '198.18.40.1', internal: false },
      },
    });
    t.same(
      info!.users.map((u) => [u.node, u.networkId]),
      [
        ['node-a', 'net-a-app'],
        ['node-b', 'net-b-app'],
      ],
    );
    t.ok(await admin.get('networks/v1/app'), 'record at networks/v1/<name>');
    t.equal((await admin.get('networks/v1/app/users/node-b'))?.lease !== undefined, true, 'user keys are leased');
    t.doesNotThrow(() => b.networks.check('net-b-app'));
  });

  t.test(
    `${backend}: a name without --subnet gets the cluster's subnet (and --ip-range) on the second node`,
    async (t) => {
      const { a, b } = await twoNodes(t);
      const pa = await a.networks.requestPool('web', pool());
      t.match(pa.pool, /^198\.18\.6[4-9]\.0\/24$/, 'carved from the default pool');
      await a.networks.networkCreated('net-a-web', pa.pool, details(pa.pool.replace(/0\/24$/, '1')));
      const pb = await b.networks.requestPool('web', pool());
      t.equal(pb.pool, pa.pool, 'same subnet');
      t.equal(pb.poolId, pa.poolId);

      const pr = await a.networks.requestPool('ranged', pool('198.18.44.0/24', '198.18.44.128/25'));
      const pr2 = await b.networks.requestPool('ranged', pool());
      t.equal(pr2.pool, pr.pool);
      t.equal((await b.ipam.getPool(pr2.poolId))?.subPool, '198.18.44.128/25', 'joined with the range');
    },
  );

  t.test(`${backend}: two nodes creating one name without --subnet at the same time end on one subnet`, async (t) => {
    const { a, b } = await twoNodes(t);
    const [pa, pb] = await Promise.all([
      a.networks.requestPool('race', pool()),
      b.networks.requestPool('race', pool()),
    ]);
    t.equal(pb.pool, pa.pool);
    t.equal((await a.ipam.listPools()).length, 1, 'the loser released the subnet it carved');
  });

  t.test(`${backend}: a different --subnet for a known name fails RequestPool with ERR_NETWORK_CONFLICT`, async (t) => {
    const { a, b } = await twoNodes(t);
    const pa = await a.networks.requestPool('app', pool('198.18.40.0/24'));
    await a.networks.networkCreated('net-a-app', pa.pool, details('198.18.40.1'));
    await t.rejects(b.networks.requestPool('app', pool('198.18.41.0/24')), {
      code: 'ERR_NETWORK_CONFLICT',
      message: new RegExp(
        /^network "app" conflicts with the cluster record networks\/v1\/app \(created by node node-a /.source +
          /at .+\): subnet 198\.18\.40\.0\/24 in the cluster, 198\.18\.41\.0\/24 on node node-b; create /.source +
          /it with the cluster's definition \(--subnet 198\.18\.40\.0\/24 --gateway 198\.18\.40\.1, or /.source +
          /without --subnet and with --ipam-opt cilium\.network=app\) or choose another network name$/.source,
      ),
    });
    await t.rejects(b.networks.requestPool('app', pool('198.18.40.0/24', '198.18.40.0/25')), {
      code: 'ERR_NETWORK_CONFLICT',
      message: /--ip-range \(none\) in the cluster, 198\.18\.40\.0\/25 on node node-b/,
    });
    t.same(
      (await b.ipam.listPools()).map((p) => p.pool),
      ['198.18.40.0/24'],
      'nothing left behind by the refused requests',
    );
    t.same(
      (await a.networks.list())[0]?.users.map((u) => u.node),
      ['node-a'],
    );
  });

  t.test(`${backend}: the same subnet under another name is a conflict`, async (t) => {
    const { a, b } = await twoNodes(t);
    await a.networks.requestPool('app', pool('198.18.40.0/24'));
    for (const subnet of ['198.18.40.0/24', '198.18.40.0/25']) {
      await t.rejects(b.networks.requestPool('other', pool(subnet)), {
        code: 'ERR_NETWORK_CONFLICT',
        message: new RegExp(
          /^network "other" conflicts with the cluster record networks\/v1\/app \(.*its subnet /.source +
            /198\.18\.40\.0\/2[45] overlaps 198\.18\.40\.0\/24 of network "app" in the cluster/.source,
        ),
      });
    }
    const claim = await b.networks.nameLearned('net-b-other', 'other', {
      subnet: '198.18.40.0/24',
      details: details('198.18.40.1'),
    });
    t.equal(claim.status, 'conflict', 'also when the name is learnt from Docker');
  });

  t.test(
    `${backend}: a different gateway or --internal fails CreateNetwork; the reservation goes with ReleasePool`,
    async (t) => {
      const { a, b } = await twoNodes(t);
      const pa = await a.networks.requestPool('app', pool('198.18.40.0/24'));
      await a.networks.networkCreated('net-a-app', pa.pool, details('198.18.40.1'));
      const pb = await b.networks.requestPool('app', pool('198.18.40.0/24'));
      await t.rejects(b.networks.networkCreated('net-b-app', pb.pool, details('198.18.40.1', true)), {
        code: 'ERR_NETWORK_CONFLICT',
        message: /not --internal in the cluster, --internal on node node-b/,
      });
      await t.rejects(
        b.networks.networkCreated('net-b-app', pb.pool, { gateway: '198.18.40.1', internal: false, mtu: 1400 }),
        { message: /mtu \(default\) in the cluster, 1400 on node node-b/ },
      );
      await b.ipam.releasePool(pb.poolId);
      await b.networks.poolReleased(pb.poolId);
      t.same(
        (await a.networks.list())[0]?.users.map((u) => u.node),
        ['node-a'],
      );
    },
  );

  t.test(
    `${backend}: a name learnt from Docker is registered, or its conflict recorded and endpoints refused`,
    async (t) => {
      const { a, b } = await twoNodes(t);
      await a.ipam.requestPool(pool('198.18.42.0/24'));
      await b.ipam.requestPool(pool('198.18.43.0/24'));
      const claimA = await a.networks.nameLearned('net-a-db', 'db', {
        subnet: '198.18.42.0/24',
        details: details('198.18.42.1'),
      });
      t.equal(claimA.status, 'agreed');
      const claimB = await b.networks.nameLearned('net-b-db', 'db', {
        subnet: '198.18.43.0/24',
        details: details('198.18.43.1'),
      });
      t.equal(claimB.status, 'conflict');
      t.match(
        claimB.detail,
        new RegExp(
          /subnet 198\.18\.42\.0\/24 in the cluster, 198\.18\.43\.0\/24 on node node-b; gateway /.source +
            /198\.18\.42\.1 in the cluster, 198\.18\.43\.1 on node node-b; remove this network \(docker /.source +
            /network rm\) and create it again with the cluster's definition \(--subnet 198\.18\.42\.0\/24 /.source +
            /--gateway 198\.18\.42\.1\)/.source,
        ),
      );
      t.throws(() => b.networks.check('net-b-db'), { code: 'ERR_NETWORK_CONFLICT', message: /created by node node-a/ });
      t.doesNotThrow(() => a.networks.check('net-a-db'));
      t.same(
        (await a.networks.list())[0]?.users.map((u) => u.node),
        ['node-a'],
        'a conflicting node holds no user key',
      );

      // The agreeing definition goes away: the conflicting node's resync registers its own.
      await a.networks.networkDeleted('net-a-db');
      t.same(await a.networks.list(), [], 'last user removed the record');
      await b.networks.reassert();
      t.equal(b.networks.claimOf('net-b-db')?.status, 'agreed');
      t.match((await b.networks.list())[0]?.record, { name: 'db', subnet: '198.18.43.0/24', createdBy: 'node-b' });
      t.doesNotThrow(() => b.networks.check('net-b-db'));
    },
  );

  t.test(
    `${backend}: with the watch, a conflict clears and a deleted record returns without waiting for the resync`,
    async (t) => {
      const { a, b, admin } = await twoNodes(t);
      await b.networks.start();
      t.teardown(() => b.networks.stop());
      await a.ipam.requestPool(pool('198.18.42.0/24'));
      await b.ipam.requestPool(pool('198.18.43.0/24'));
      await a.networks.nameLearned('net-a-db', 'db', { subnet: '198.18.42.0/24', details: details('198.18.42.1') });
      t.equal(
        (await b.networks.nameLearned('net-b-db', 'db', { subnet: '198.18.43.0/24', details: details('198.18.43.1') }))
          .status,
        'conflict',
      );
      await a.networks.networkDeleted('net-a-db');
      t.equal(
        await soon(() => b.networks.claimOf('net-b-db')?.status, 'agreed'),
        'agreed',
        'the conflict cleared once the other definition was gone',
      );
      t.match(JSON.parse((await admin.get('networks/v1/db'))!.value), {
        subnet: '198.18.43.0/24',
        createdBy: 'node-b',
      });

      await admin.delete('networks/v1/db');
      t.ok(
        await soon(async () => (await admin.get('networks/v1/db')) !== undefined, true),
        'a deleted record is re-created by the watching node',
      );
      t.match(JSON.parse((await admin.get('networks/v1/db'))!.value), { subnet: '198.18.43.0/24' });
    },
  );

  t.test(`${backend}: the last node that removes its network removes the record`, async (t) => {
    const { a, b, admin } = await twoNodes(t);
    for (const n of [a, b]) {
      const p = await n.networks.requestPool('app', pool('198.18.40.0/24'));
      await n.networks.networkCreated(`net-${n.name}`, p.pool, details('198.18.40.1'));
    }
    // `docker network rm` on node-a: ReleasePool, then DeleteNetwork.
    await a.ipam.releasePool('198.18.40.0-24');
    await a.networks.poolReleased('198.18.40.0-24');
    await a.networks.networkDeleted('net-node-a');
    t.ok(await admin.get('networks/v1/app'), 'still used by node-b');
    t.notOk(await admin.get('networks/v1/app/users/node-a'));
    await b.networks.networkDeleted('net-node-b');
    t.notOk(await admin.get('networks/v1/app'), 'record gone with its last user');
    t.same((await admin.list('networks/v1/')).pairs, []);
  });

  t.test(`${backend}: the resync re-creates deleted keys and sweeps records nobody uses`, async (t) => {
    const { a, b, admin } = await twoNodes(t);
    const p = await a.networks.requestPool('app', pool('198.18.40.0/24'));
    await a.networks.networkCreated('net-a-app', p.pool, details('198.18.40.1'));
    await admin.deletePrefix('networks/v1/');
    await a.networks.reassert();
    t.match(JSON.parse((await admin.get('networks/v1/app'))!.value), {
      name: 'app',
      subnet: '198.18.40.0/24',
      details: { gateway: '198.18.40.1' },
    });
    t.ok(await admin.get('networks/v1/app/users/node-a'));

    // A node whose lease expired left a record without users: any node's resync removes it.
    await admin.put(
      'networks/v1/ghost',
      JSON.stringify({
        name: 'ghost',
        subnet: '198.18.50.0/24',
        createdBy: 'node-z',
        createdAt: new Date().toISOString(),
      }),
    );
    await admin.put('networks/v1/garbage', 'not json');
    await b.networks.reassert();
    t.notOk(await admin.get('networks/v1/ghost'), 'orphan swept');
    t.ok(await admin.get('networks/v1/app'), 'used record kept');
    t.ok(await admin.get('networks/v1/garbage'), 'an unreadable key is skipped, not fatal, and not touched');
    t.same(
      (await a.networks.list()).map((n) => n.record.name),
      ['app'],
    );
  });

  t.test(`${backend}: a restarted node adopts its networks and re-registers them at the resync`, async (t) => {
    const { a, admin, storeA } = await twoNodes(t);
    const p = await a.networks.requestPool('app', pool('198.18.40.0/24'));
    await a.networks.networkCreated('net-a-app', p.pool, details('198.18.40.1'));
    await admin.delete('networks/v1/app/users/node-a');
    const restarted = node(storeA, 'node-a');
    restarted.networks.adopt('net-a-app', 'app', true, { subnet: '198.18.40.0/24', details: details('198.18.40.1') });
    t.equal(restarted.networks.claimOf('net-a-app')?.status, 'unregistered');
    await restarted.networks.reassert();
    t.equal(restarted.networks.claimOf('net-a-app')?.status, 'agreed');
    t.ok(await admin.get('networks/v1/app/users/node-a'));
  });

  // Issue 16: the node's network record keeps subnet, gateway, --internal and -o options, not
  // --ip-range (CreateNetwork does not carry it); the restarted registry must read it from the pool
  // again, or it claims "no --ip-range" against its own record and refuses every new container.
  t.test(
    `${backend}: a restart claims exactly the definition each network had (--ip-range, gateway, --internal, ` +
      'mtu; implicit and explicit names)',
    async (t) => {
      const { a, admin, storeA } = await twoNodes(t);
      const ranged = { gateway: '198.18.44.129', internal: true, mtu: 1400 };
      const pr = await a.ipam.requestPool(pool('198.18.44.0/24', '198.18.44.128/25'));
      t.equal((await a.networks.nameLearned('net-a-r2', 'r2', { subnet: pr.pool, details: ranged })).status, 'agreed');
      const pe = await a.networks.requestPool('r3', pool('198.18.45.0/24', '198.18.45.64/26'));
      t.equal(await a.networks.networkCreated('net-a-r3', pe.pool, details('198.18.45.1')), 'r3');
      const pp = await a.ipam.requestPool(pool('198.18.46.0/24'));
      t.equal(
        (await a.networks.nameLearned('net-a-plain', 'plain', { subnet: pp.pool, details: details('198.18.46.1') }))
          .status,
        'agreed',
      );
      const before = await Promise.all(
        ['r2', 'r3', 'plain'].map(
          async (n) => JSON.parse((await admin.get(`networks/v1/${n}`))?.value ?? 'null') as unknown,
        ),
      );
      t.match(before[0], { subnet: '198.18.44.0/24', ipRange: '198.18.44.128/25', details: ranged });
      t.match(before[1], { subnet: '198.18.45.0/24', ipRange: '198.18.45.64/26' });

      for (const restart of ['first', 'second']) {
        // What EndpointManager.restore passes: the definition rebuilt from the node's network record.
        const restarted = node(storeA, 'node-a');
        restarted.networks.adopt('net-a-r2', 'r2', false, { subnet: '198.18.44.0/24', details: ranged });
        restarted.networks.adopt('net-a-r3', 'r3', true, { subnet: '198.18.45.0/24', details: details('198.18.45.1') });
        restarted.networks.adopt('net-a-plain', 'plain', false, {
          subnet: '198.18.46.0/24',
          details: details('198.18.46.1'),
        });
        await restarted.networks.reassert();
        for (const id of ['net-a-r2', 'net-a-r3', 'net-a-plain']) {
          const claim = restarted.networks.claimOf(id);
          t.equal(claim?.status, 'agreed', `${restart} restart: ${id} agrees with its record ${claim?.detail ?? ''}`);
          t.doesNotThrow(() => restarted.networks.check(id), `${restart} restart: ${id} takes new endpoints`);
        }
        t.same(restarted.networks.claimOf('net-a-r2')?.definition, {
          subnet: '198.18.44.0/24',
          ipRange: '198.18.44.128/25',
          details: ranged,
        });
        t.equal(restarted.networks.claimOf('net-a-r3')?.definition.ipRange, '198.18.45.64/26');
        t.equal(
          restarted.networks.claimOf('net-a-plain')?.definition.ipRange,
          undefined,
          'no range where there was none',
        );
        const after = await Promise.all(
          ['r2', 'r3', 'plain'].map(
            async (n) => JSON.parse((await admin.get(`networks/v1/${n}`))?.value ?? 'null') as unknown,
          ),
        );
        t.same(after, before, `${restart} restart: the records are unchanged`);
      }
    },
  );

  t.test(
    `${backend}: a restart whose pool read fails leaves the claim unregistered (never "no --ip-range")`,
    async (t) => {
      const { a, admin, storeA } = await twoNodes(t);
      const pr = await a.ipam.requestPool(pool('198.18.44.0/24', '198.18.44.128/25'));
      await a.networks.nameLearned('net-a-r2', 'r2', { subnet: pr.pool, details: details('198.18.44.129') });
      const before = (await admin.get('networks/v1/r2'))?.value;
      const ipam = new Ipam({
        store: storeA,
        nodeName: 'node-a',
        defaultPool: '198.18.64.0/20',
        defaultPoolPrefixLength: 24,
        blockPrefixLength: 26,
      });
      let failures = 1;
      const flaky = new Proxy(ipam, {
        get: (target, prop) =>
          prop === 'getPool' && failures-- > 0
            ? () => Promise.reject(new Error('store unreachable'))
            : (Reflect.get(target, prop) as (...a: unknown[]) => unknown).bind(target),
      });
      const networks = new NetworkRegistry({
        store: storeA,
        nodeName: 'node-a',
        ipam: flaky,
        log: log.child({ component: 'networks', node: 'node-a' }),
      });
      networks.adopt('net-a-r2', 'r2', false, { subnet: '198.18.44.0/24', details: details('198.18.44.129') });
      await networks.reassert();
      t.match(
        networks.claimOf('net-a-r2'),
        { status: 'unregistered', detail: /store unreachable/ },
        'not registered while the range is unknown',
      );
      t.doesNotThrow(() => networks.check('net-a-r2'));
      t.equal((await admin.get('networks/v1/r2'))?.value, before, 'record untouched');
      await networks.reassert();
      t.match(
        networks.claimOf('net-a-r2'),
        { status: 'agreed', definition: { ipRange: '198.18.44.128/25' } },
        'the next resync reads the range and agrees',
      );
    },
  );

  t.test(`${backend}: malformed names are refused`, async (t) => {
    const { a } = await twoNodes(t);
    await t.rejects(a.networks.requestPool('bad/name', pool()), {
      code: 'ERR_BAD_REQUEST',
      message: /cilium\.network="bad\/name" is not a network name/,
    });
  });
}

scenarios(t, 'local store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-networks-'));
  const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { storeA: store, storeB: store, admin: store };
});

const missing = etcdUnavailableReason();
if (missing !== undefined) {
  if (process.env.CI === 'true') t.fail(`etcd is required when CI=true: ${missing}`);
  else t.test('network registry against a real etcd', { skip: missing }, async () => undefined);
} else {
  const server = await EtcdTestServer.start();
  t.teardown(() => server.cleanup());
  let clusters = 0;
  scenarios(t, 'etcd', async (t) => {
    const namespace = `networks-${++clusters}/`;
    const open = () => EtcdKvStore.open({ endpoints: [server.clientUrl], namespace });
    const [storeA, storeB, admin] = await Promise.all([open(), open(), open()]);
    t.teardown(async () => {
      await admin.deletePrefix('');
      await Promise.all([storeA.close(), storeB.close(), admin.close()]);
    });
    return { storeA, storeB, admin };
  });
}
