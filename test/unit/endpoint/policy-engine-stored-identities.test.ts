/**
 * Identities the policy engine reads from the store are used for selection only when this
 * daemon could have allocated them: container/docker label sources, numbers in the allocated
 * range. An older node wrote label text unescaped (issue 15 item 1), so a stored identity can
 * hold `reserved:host`; one written under a reserved number would replace the reserved labels.
 * Neither may match an entity or endpoint selector. Real local store, fake endpoint and datapath.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { PolicyEngine, type PolicyDatapath } from '../../../src/endpoint/policy-engine.js';
import type { EndpointManager } from '../../../src/endpoint/endpoint-manager.js';
import type { EndpointRecord } from '../../../src/endpoint/endpoint.js';
import type { DatapathPolicyEntry } from '../../../src/datapath/datapath.js';
import { LabelSet } from '../../../src/identity/labels.js';
import { log } from '../../../src/util/log.js';

const VICTIM = 300;
const FRIEND = 301;

class RecordingDatapath implements PolicyDatapath {
  entries: DatapathPolicyEntry[] = [];
  async applyEndpointPolicy(
    _ep: unknown,
    _e: unknown,
    entries: DatapathPolicyEntry[],
  ): Promise<{ added: number; deleted: number }> {
    this.entries = entries;
    return { added: entries.length, deleted: 0 };
  }
  async syncCidrIdentities(): Promise<void> {}
  /** Peers allowed into the endpoint. */
  ingressPeers(): number[] {
    return [
      ...new Set(this.entries.filter((e) => e.direction === 'ingress' && e.verdict === 'allow').map((e) => e.peer)),
    ].sort((a, b) => a - b);
  }
}

function idKey(id: number | string): string {
  return `identities/v1/id/${id}`;
}

/** Unescaped canonical text, as a version before the escaped encoding wrote it. */
function legacy(...labels: string[]): string {
  return labels.map((l) => (l.includes('=') ? `${l};` : `${l}=;`)).join('');
}

async function openEngine(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'stored-ids-'));
  const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
  const ep = {
    id: 7,
    endpointId: 'ep-7',
    identity: VICTIM,
    state: 'ready',
    labels: ['container:app=victim'],
    policyRevision: 0,
  } as unknown as EndpointRecord;
  const endpoints = {
    onChange: () => undefined,
    listEndpoints: () => [ep],
    getEndpoint: (id: string) => (id === ep.endpointId ? ep : undefined),
    setPolicyRevision: async (_id: string, revision: number) => {
      ep.policyRevision = revision;
    },
  } as unknown as EndpointManager;
  const datapath = new RecordingDatapath();
  const engine = new PolicyEngine({
    store,
    endpoints,
    datapath,
    enforcement: 'default',
    log: log.child({ component: 'policy-test' }),
    toDatapathEndpoint: (e) => e as never,
  });
  t.teardown(() => {
    engine.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.put(idKey(VICTIM), LabelSet.parse(['container:app=victim', 'docker:network=n1']).toCanonical());
  await store.put(idKey(FRIEND), LabelSet.parse(['container:app=friend', 'docker:network=n1']).toCanonical());
  return { store, engine, datapath };
}

const POLICY = JSON.stringify({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'victim' },
  spec: {
    endpointSelector: { matchLabels: { app: 'victim' } },
    ingress: [{ fromEntities: ['host', 'remote-node'] }, { fromEndpoints: [{ matchLabels: { app: 'friend' } }] }],
  },
});

async function enforce(engine: PolicyEngine): Promise<void> {
  const revision = await engine.importPolicy(POLICY);
  await engine.waitForRevision(revision, 10_000);
  await engine.settled();
}

t.test('identities with a reserved (or other) label source, or a reserved number, match no selector', async (t) => {
  const { store, engine, datapath } = await openEngine(t);
  await store.put(idKey(400), legacy('container:app=z', 'reserved:host'));
  await store.put(idKey(401), legacy('reserved:remote-node'));
  await store.put(idKey(402), legacy('container:app=friend', 'cidr:0.0.0.0/0'));
  await store.put(idKey(403), 'app=friend;');
  await store.put(idKey(1), LabelSet.parse(['container:app=friend']).toCanonical());
  await store.put(idKey(16_777_300), LabelSet.parse(['container:app=friend']).toCanonical());
  await store.put(idKey('0400'), LabelSet.parse(['container:app=friend']).toCanonical());
  await engine.start();
  await enforce(engine);
  t.same(
    datapath.ingressPeers(),
    [1, 6, FRIEND],
    'only the reserved host and remote-node identities and the real friend are allowed in',
  );
  t.same(engine.labelsOf(1)?.toStrings(), ['reserved:host'], 'reserved:host keeps its labels');
  t.equal(
    engine.labelsOf(400)?.toCanonical(),
    undefined,
    'neither the forged identity nor a second spelling of its number is in the selector cache',
  );
  t.same(engine.labelsOf(FRIEND)?.toStrings(), ['container:app=friend', 'docker:network=n1']);
});

t.test(
  'the same identities arriving through the watch, and a valid identity overwritten with a forged set',
  async (t) => {
    const { store, engine, datapath } = await openEngine(t);
    await engine.start();
    await enforce(engine);
    t.same(datapath.ingressPeers(), [1, 6, FRIEND]);
    await store.put(idKey(500), legacy('container:app=z', 'reserved:host'));
    await store.put(idKey(2), LabelSet.parse(['container:app=friend']).toCanonical());
    await store.put(idKey(FRIEND), legacy('container:app=friend', 'reserved:host'));
    // A valid identity written after the others: once the engine has it, the watch got them all.
    await store.put(idKey(502), LabelSet.parse(['container:app=friend', 'docker:network=n2']).toCanonical());
    for (let i = 0; i < 100 && !engine.labelsOf(502); i++) await new Promise((r) => setTimeout(r, 20));
    await engine.settled();
    t.ok(engine.labelsOf(502), 'the watch delivered the identities');
    t.same(
      datapath.ingressPeers(),
      [1, 6, 502],
      'the forged ones are not allowed in, and the overwritten friend no longer is',
    );
    t.same(engine.labelsOf(2)?.toStrings(), ['reserved:world'], 'reserved:world keeps its labels');
    await engine.relist();
    await engine.settled();
    t.same(datapath.ingressPeers(), [1, 6, 502], 'a resync reads them the same way');
  },
);
