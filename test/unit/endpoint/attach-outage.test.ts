/**
 * Container attachment while the cluster store is down (EndpointManager over a node-local store,
 * identities over a switchable cluster store, the kernel faked at the Datapath edge): a known
 * label set becomes ready without a store call; a new one fails after the bounded wait with
 * ERR_IDENTITY_UNAVAILABLE and leaves the endpoint waiting-for-identity with reserved:init and its
 * labels; the endpoint's lock is not held during the wait; the endpoint gets its identity once the
 * store answers; records survive a restart with the cluster store still down; a rename (or new
 * aliases) of an attached container is recorded and announced without touching its identity.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { IdentityAllocator } from '../../../src/identity/allocator.js';
import { EndpointManager } from '../../../src/endpoint/endpoint-manager.js';
import { LabelSet } from '../../../src/identity/labels.js';
import type { Datapath, DatapathEndpoint } from '../../../src/datapath/datapath.js';
import { log } from '../../../src/util/log.js';
import { withOutageSwitch } from '../../support/outage-store.js';

const INIT = 5;
const NET = 'n'.repeat(64);

/** The kernel, faked: remembers the identity each endpoint was last programmed with. */
class FakeDatapath implements Datapath {
  readonly name = 'fake';
  readonly programmed = new Map<string, number>();
  async init(): Promise<void> {}
  async addNetwork(): Promise<void> {}
  async removeNetwork(): Promise<void> {}
  async createEndpointLink(): Promise<{ mac: string; hostIfIndex: number }> {
    return { mac: '02:00:00:00:00:01', hostIfIndex: 7 };
  }
  async activateEndpoint(ep: DatapathEndpoint): Promise<void> {
    this.programmed.set(ep.endpointId, ep.identity);
  }
  async updateEndpoint(ep: DatapathEndpoint): Promise<void> {
    this.programmed.set(ep.endpointId, ep.identity);
  }
  async removeEndpoint(ep: DatapathEndpoint): Promise<void> {
    this.programmed.delete(ep.endpointId);
  }
  async endpointLinkExists(): Promise<boolean> {
    return true;
  }
  async cleanup(): Promise<void> {}
}

function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'cd-attach-outage-'));
  const cluster = LocalKvStore.open({ path: join(dir, 'cluster.db') });
  const node = LocalKvStore.open({ path: join(dir, 'node.db') });
  t.teardown(async () => {
    await cluster.close();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const outage = withOutageSwitch(cluster, 'etcd http://127.0.0.1:2379');
  const start = () => {
    const datapath = new FakeDatapath();
    const identities = new IdentityAllocator({ store: outage.store, nodeName: 'node-a', log });
    const endpoints = new EndpointManager({
      store: node,
      nodeName: 'node-a',
      datapath,
      identities,
      log,
      identityTimeoutMs: 300,
    });
    return { datapath, identities, endpoints };
  };
  return { cluster, node, outage, start };
}

let next = 1;
async function container(
  endpoints: EndpointManager,
  app: string,
): Promise<{
  endpointId: string;
  info: { containerId: string; containerName: string; labels: Record<string, string>; networkName: string };
}> {
  const n = next++;
  const endpointId = n.toString(16).padStart(64, 'e');
  await endpoints.createEndpoint({ networkId: NET, endpointId, ipv4: `198.18.73.${n + 1}`, prefixLength: 24, mac: '' });
  await endpoints.join(NET, endpointId, `/var/run/docker/netns/${n}`);
  return {
    endpointId,
    info: {
      containerId: n.toString(16).padStart(64, 'c'),
      containerName: `c${n}`,
      labels: { app },
      networkName: 'net',
    },
  };
}

t.test(
  'known label set ready without the store; a new one waits with reserved:init, bounded, and converges',
  async (t) => {
    const { cluster, outage, start } = setup(t);
    const { endpoints, datapath } = start();
    await endpoints.createNetwork({
      networkId: NET,
      subnet: '198.18.73.0/24',
      gateway: '198.18.73.1',
      internal: false,
      mtu: 1500,
      options: {},
    });
    const first = await container(endpoints, 'web');
    const ready = await endpoints.attachContainer(first.endpointId, first.info);
    t.equal(ready?.state, 'ready');
    const webId = ready!.identity;

    outage.fail();
    const calls = outage.calls;
    const second = await container(endpoints, 'web');
    const known = await endpoints.attachContainer(second.endpointId, second.info);
    t.equal(known?.state, 'ready', 'known label set: ready during the outage');
    t.equal(known?.identity, webId);
    t.equal(datapath.programmed.get(second.endpointId), webId, 'programmed with its identity');
    t.equal(outage.calls, calls, 'zero cluster store calls');

    outage.hang();
    const fresh = await container(endpoints, 'new');
    const started = performance.now();
    const attaching = endpoints.attachContainer(fresh.endpointId, fresh.info);
    // The endpoint's lock is free while the allocation waits: Leave on it does not wait for the store.
    await new Promise((r) => setTimeout(r, 50));
    const leaveStarted = performance.now();
    await endpoints.setPolicyRevision(fresh.endpointId, 1);
    await endpoints.leave('other-network', fresh.endpointId);
    t.ok(performance.now() - leaveStarted < 200, 'plugin calls on the endpoint are not blocked by the wait');
    await t.rejects(attaching, { code: 'ERR_IDENTITY_UNAVAILABLE', message: /within --identity-timeout 300 ms/ });
    t.ok(performance.now() - started < 3000, `bounded (${Math.round(performance.now() - started)} ms)`);
    const waiting = endpoints.getEndpoint(fresh.endpointId)!;
    t.equal(waiting.state, 'waiting-for-identity');
    t.equal(waiting.identity, INIT, 'reserved:init');
    t.same(waiting.labels, ['container:app=new', 'docker:network=net'], 'labels recorded for policy and endpoint list');
    t.equal(datapath.programmed.get(fresh.endpointId), INIT);

    outage.restore();
    const converged = await endpoints.attachContainer(fresh.endpointId, fresh.info);
    t.equal(converged?.state, 'ready', 'the retry after the store returns makes it ready');
    t.ok(converged!.identity >= 256 && converged!.identity !== webId, `real identity ${converged!.identity}`);
    t.equal(datapath.programmed.get(fresh.endpointId), converged!.identity, 'and programmed');
    // The abandoned first allocation gave its reference back: one reference, the endpoint's.
    await new Promise((r) => setTimeout(r, 200));
    const refs = (await cluster.list('identities/v1/value/')).pairs.filter(
      (p) => p.value === String(converged!.identity),
    );
    t.equal(refs.length, 1, 'one reference key for the new identity');
    t.equal(
      (await endpoints.attachContainer(fresh.endpointId, fresh.info))?.identity,
      converged!.identity,
      'idempotent',
    );
  },
);

t.test('records are node-local: a restart with the cluster store down restores endpoints and identities', async (t) => {
  const { node, outage, start } = setup(t);
  const before = start();
  await before.endpoints.createNetwork({
    networkId: NET,
    subnet: '198.18.73.0/24',
    gateway: '198.18.73.1',
    internal: false,
    mtu: 1500,
    options: {},
  });
  const c = await container(before.endpoints, 'db');
  const id = (await before.endpoints.attachContainer(c.endpointId, c.info))!.identity;
  t.ok((await node.list('docker/v1/node-a/')).pairs.length >= 2, 'records in the node store');

  outage.fail();
  const after = start();
  const { restored } = await after.endpoints.restore();
  t.equal(restored, 1);
  t.equal(after.endpoints.getEndpoint(c.endpointId)?.identity, id, 'same identity');
  t.equal(
    after.identities.lookupLocal(LabelSet.parse(after.endpoints.getEndpoint(c.endpointId)!.labels)),
    id,
    'known locally again',
  );
  const calls = outage.calls;
  const again = await container(after.endpoints, 'db');
  t.equal(
    (await after.endpoints.attachContainer(again.endpointId, again.info))?.identity,
    id,
    'a new container with that label set starts',
  );
  t.equal(outage.calls, calls, 'without the cluster store');
});

t.test(
  'a renamed container (same labels) updates the name and aliases, saved and announced; an unchanged one is quiet',
  async (t) => {
    const { node, start } = setup(t);
    const { endpoints } = start();
    await endpoints.createNetwork({
      networkId: NET,
      subnet: '198.18.73.0/24',
      gateway: '198.18.73.1',
      internal: false,
      mtu: 1500,
      options: {},
    });
    const c = await container(endpoints, 'web');
    const ready = await endpoints.attachContainer(c.endpointId, { ...c.info, aliases: ['www'] });
    t.same(ready?.aliases, ['www']);
    const updates: string[] = [];
    endpoints.onChange(
      (event, ep) => void updates.push(`${event}:${ep.containerName}:${(ep.aliases ?? []).join(',')}`),
    );
    await endpoints.attachContainer(c.endpointId, { ...c.info, aliases: ['www'] });
    t.same(updates, [], 'same names: no update');
    await endpoints.attachContainer(c.endpointId, { ...c.info, containerName: 'renamed', aliases: ['www', 'front'] });
    t.same(updates, ['updated:renamed:front,www'], 'the new name and aliases are announced');
    t.equal(endpoints.getEndpoint(c.endpointId)?.identity, ready?.identity, 'identity unchanged');
    const saved = (await node.list('docker/v1/node-a/')).pairs
      .map((p) => p.value)
      .find((v) => v.includes(c.endpointId));
    t.match(saved, /"containerName":"renamed"/, 'saved in the node store');
    await endpoints.attachContainer(c.endpointId, { ...c.info, containerName: 'renamed' });
    t.equal(endpoints.getEndpoint(c.endpointId)?.aliases, undefined, 'aliases dropped when the container has none');
  },
);
