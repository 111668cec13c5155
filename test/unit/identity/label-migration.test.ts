/**
 * Identities stored in the unescaped label form (before issue 15, item 1) on the embedded store,
 * migrated at start: sets that read the same escaped keep their numbers; forged sets (a
 * `reserved:` label) and sets whose text changed meaning (a backslash) are removed; endpoints
 * whose label set's form changed (`app=x;container:role=admin`, which shared {app=x, role=admin}'s
 * number) are re-allocated while the legitimate holder keeps it; a second start removes nothing
 * and re-allocates nothing.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { nodeRecordPrefix } from '../../../src/kvstore/store-scopes.js';
import { IdentityAllocator } from '../../../src/identity/allocator.js';
import { EndpointManager } from '../../../src/endpoint/endpoint-manager.js';
import { LabelSet } from '../../../src/identity/labels.js';
import type { EndpointRecord } from '../../../src/endpoint/endpoint.js';
import { FakeDatapath } from '../../support/fake-datapath.js';
import { log } from '../../../src/util/log.js';

const INIT = 5;
const NODE = 'node-a';
const NET = 'n'.repeat(64);
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** What the daemon before the fix stored: unescaped canonical forms, its id, label and reference keys. */
const LEGACY: Array<{ id: number; canonical: string }> = [
  // {app=x, role=admin}, and the smuggled set
  { id: 1000, canonical: 'container:app=x;container:role=admin;docker:network=net;' },
  { id: 1001, canonical: 'container:app=z;docker:network=net;reserved:host=;' }, // forged through app=`z;reserved:host`
  { id: 1002, canonical: 'container:path=C:\\dir;docker:network=net;' }, // a backslash: escaped, it reads differently
  { id: 1003, canonical: 'container:app=web;docker:network=net;' },
  { id: 1004, canonical: 'container:url=http://x/?a=b;docker:network=net;' }, // `:` and `=` in a value read the same
];

/** Docker labels of each container, and the identity and labels the old daemon recorded for it. */
const CONTAINERS: Array<{ name: string; docker: Record<string, string>; identity: number; recorded: string[] }> = [
  {
    name: 'smuggler',
    docker: { app: 'x;container:role=admin' },
    identity: 1000,
    recorded: ['container:app=x;container:role=admin', 'docker:network=net'],
  },
  {
    name: 'admin',
    docker: { app: 'x', role: 'admin' },
    identity: 1000,
    recorded: ['container:app=x', 'container:role=admin', 'docker:network=net'],
  },
  {
    name: 'forger',
    docker: { app: 'z;reserved:host' },
    identity: 1001,
    recorded: ['container:app=z;reserved:host', 'docker:network=net'],
  },
  {
    name: 'windows',
    docker: { path: 'C:\\dir' },
    identity: 1002,
    recorded: ['container:path=C:\\dir', 'docker:network=net'],
  },
  { name: 'web', docker: { app: 'web' }, identity: 1003, recorded: ['container:app=web', 'docker:network=net'] },
  {
    name: 'linked',
    docker: { url: 'http://x/?a=b' },
    identity: 1004,
    recorded: ['container:url=http://x/?a=b', 'docker:network=net'],
  },
];

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-label-migration-'));
  const cluster = LocalKvStore.open({ path: join(dir, 'cluster.db') });
  const node = LocalKvStore.open({ path: join(dir, 'node.db') });
  t.teardown(async () => {
    await cluster.close();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { cluster, node };
}

async function writeLegacyState(cluster: LocalKvStore, node: LocalKvStore, datapath: FakeDatapath): Promise<void> {
  for (const { id, canonical } of LEGACY) {
    await cluster.put(`identities/v1/id/${id}`, canonical);
    await cluster.put(`identities/v1/labels/${b64(canonical)}`, String(id));
    await cluster.put(`identities/v1/value/${b64(canonical)}/${NODE}`, String(id), { leased: true });
  }
  let n = 0;
  for (const c of CONTAINERS) {
    n++;
    const endpointId = n.toString(16).padStart(64, 'e');
    const record: EndpointRecord = {
      id: n,
      endpointId,
      networkId: NET,
      ipv4: `198.18.74.${n + 1}`,
      prefixLength: 24,
      mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
      hostIfName: `lxc${n}`,
      containerIfName: `tmp${n}`,
      hostIfIndex: 100 + n,
      mtu: 1500,
      state: 'ready',
      containerId: n.toString(16).padStart(64, 'c'),
      containerName: c.name,
      labels: c.recorded,
      identity: c.identity,
      policyRevision: 0,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    };
    await node.put(`${nodeRecordPrefix(NODE)}endpoints/${endpointId}`, JSON.stringify(record));
    await datapath.createEndpointLink({
      id: n,
      endpointId,
      networkId: NET,
      ipv4: record.ipv4,
      hostIfName: record.hostIfName,
      hostIfIndex: record.hostIfIndex,
      containerIfName: record.containerIfName,
      identity: c.identity,
    } as never);
  }
}

/** A daemon start as main.ts does it: migrate, restore, then the Docker watcher attaches every container. */
async function start(cluster: LocalKvStore, node: LocalKvStore, datapath: FakeDatapath) {
  const identities = new IdentityAllocator({ store: cluster, nodeName: NODE, log });
  const endpoints = new EndpointManager({ store: node, nodeName: NODE, datapath, identities, log });
  const removed = await identities.migrateLabelEncoding();
  await endpoints.restore();
  const afterRestore = new Map(endpoints.listEndpoints().map((e) => [e.containerName!, e.identity]));
  for (const e of endpoints.listEndpoints()) {
    const c = CONTAINERS.find((x) => x.name === e.containerName)!;
    await endpoints.attachContainer(e.endpointId, {
      containerId: e.containerId!,
      containerName: c.name,
      labels: c.docker,
      networkName: 'net',
    });
  }
  const attached = new Map(endpoints.listEndpoints().map((e) => [e.containerName!, e]));
  return { identities, endpoints, removed, afterRestore, attached };
}

t.test('identities stored unescaped are kept, removed or re-allocated; a second start changes nothing', async (t) => {
  const { cluster, node } = setup(t);
  const datapath = new FakeDatapath();
  await writeLegacyState(cluster, node, datapath);

  const first = await start(cluster, node, datapath);
  t.same(first.removed.sort(), [1001, 1002], 'the forged reserved:host set and the backslash set are removed');
  for (const id of [1001, 1002]) {
    t.notOk(await cluster.get(`identities/v1/id/${id}`), `identities/v1/id/${id} gone`);
    const canonical = LEGACY.find((l) => l.id === id)!.canonical;
    t.notOk(await cluster.get(`identities/v1/labels/${b64(canonical)}`), 'its label key too');
    t.notOk(await cluster.get(`identities/v1/value/${b64(canonical)}/${NODE}`), "and this node's reference");
  }
  for (const id of [1000, 1003, 1004])
    t.ok(await cluster.get(`identities/v1/id/${id}`), `identities/v1/id/${id} kept (reads the same escaped)`);
  t.equal((await cluster.get('identities/v1/encoding'))?.value, 'escaped', 'the encoding marker is written');

  t.same(
    Object.fromEntries(first.afterRestore),
    { smuggler: INIT, admin: 1000, forger: INIT, windows: INIT, web: 1003, linked: 1004 },
    'restore keeps the numbers of sets whose form did not change, and drops the others to reserved:init',
  );
  const smuggler = first.attached.get('smuggler')!;
  const admin = first.attached.get('admin')!;
  const forger = first.attached.get('forger')!;
  const windows = first.attached.get('windows')!;
  t.equal(admin.identity, 1000, 'the container really labelled app=x, role=admin keeps its number');
  t.ok(
    smuggler.identity >= 256 && smuggler.identity !== 1000,
    `app=x;container:role=admin gets its own number (${smuggler.identity})`,
  );
  t.ok(
    forger.identity >= 256 && ![1001, 1000].includes(forger.identity),
    `app=z;reserved:host gets a new number (${forger.identity})`,
  );
  t.equal(first.attached.get('web')!.identity, 1003);
  t.equal(first.attached.get('linked')!.identity, 1004);
  for (const e of [smuggler, forger, windows]) t.equal(e.state, 'ready', `${e.containerName} ready again`);

  const stored = async (id: number) => LabelSet.fromCanonical((await cluster.get(`identities/v1/id/${id}`))!.value);
  t.notOk((await stored(forger.identity)).has('reserved', 'host'), 'the forger identity holds no reserved:host');
  t.equal((await stored(forger.identity)).get('container', 'app'), 'z;reserved:host');
  t.notOk((await stored(smuggler.identity)).has('container', 'role'), 'the smuggler identity holds no role label');
  t.equal(
    (await stored(windows.identity)).get('container', 'path'),
    'C:\\dir',
    'the backslash value is stored escaped and reads back exactly',
  );
  const list = await first.identities.list();
  t.notOk(
    list.some((i) => !i.reserved && i.labels.has('reserved', 'host')),
    'no allocated identity lists reserved:host',
  );

  // A second start (the marker is there): the escaped backslash set is not taken for a legacy one.
  const second = await start(cluster, node, datapath);
  t.same(second.removed, [], 'nothing removed');
  t.same(
    Object.fromEntries(second.afterRestore),
    Object.fromEntries([...first.attached].map(([name, e]) => [name, e.identity])),
    'restore adopts every escaped number: no endpoint drops to reserved:init on a later restart',
  );
  t.same(
    Object.fromEntries([...second.attached].map(([name, e]) => [name, e.identity])),
    Object.fromEntries([...first.attached].map(([name, e]) => [name, e.identity])),
    'every endpoint keeps its number',
  );
});

t.test(
  'an id value that is not canonical, or holds a source never allocated, is removed even after the marker',
  async (t) => {
    const { cluster } = setup(t);
    await cluster.put('identities/v1/encoding', 'escaped');
    await cluster.put('identities/v1/id/2000', 'container:a=b;cidr:0.0.0.0/0=;');
    await cluster.put('identities/v1/id/2001', 'container:a=b\\');
    await cluster.put('identities/v1/id/2002', 'container:a=b\\;c;');
    const identities = new IdentityAllocator({ store: cluster, nodeName: NODE, log });
    t.same((await identities.migrateLabelEncoding()).sort(), [2000, 2001]);
    t.ok(await cluster.get('identities/v1/id/2002'), 'an escaped value with a backslash stays');
  },
);

t.test('the allocator refuses label sets with a source other than container and docker', async (t) => {
  const { cluster } = setup(t);
  const identities = new IdentityAllocator({ store: cluster, nodeName: NODE, log });
  await t.rejects(identities.acquire(LabelSet.parse(['app=z', 'reserved:host'])), {
    code: 'ERR_INVALID_IDENTITY_LABELS',
  });
  t.same((await cluster.list('identities/v1/')).pairs, [], 'nothing written');
});
