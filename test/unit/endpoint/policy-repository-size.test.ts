/**
 * The policy repository is one store value. etcd refuses requests over 1.5 MiB and Consul values
 * over 512 KiB (the in-repo Consul server has that limit, as real Consul): what the stores do at
 * those sizes, and that the policy engine refuses a repository over its limit AT IMPORT (a
 * validation error, store unchanged, a restart loads the previous repository), never at a later
 * write or restart. Issue 15 item 3.
 */
import t, { type Test } from 'tap';
import type { KvStore } from '../../../src/kvstore/kvstore.js';
import { EtcdKvStore } from '../../../src/kvstore/etcd/etcd-store.js';
import { ConsulKvStore } from '../../../src/kvstore/consul/consul-store.js';
import { PolicyEngine } from '../../../src/endpoint/policy-engine.js';
import type { EndpointManager } from '../../../src/endpoint/endpoint-manager.js';
import { POLICY_LIMITS } from '../../../src/policy/limits.js';
import { log } from '../../../src/util/log.js';
import { EtcdTestServer, etcdUnavailableReason } from '../../support/etcd-server.js';
import { ConsulApiServer } from '../../support/consul-api-server.js';

const REPOSITORY_KEY = 'policies/v1/repository';

const endpoints = {
  onChange: () => undefined,
  listEndpoints: () => [],
  getEndpoint: () => undefined,
  setPolicyRevision: async () => undefined,
} as unknown as EndpointManager;
const datapath = {
  applyEndpointPolicy: async () => ({ added: 0, deleted: 0 }),
  syncCidrIdentities: async () => undefined,
};

async function engineOn(t: Test, store: KvStore): Promise<PolicyEngine> {
  const engine = new PolicyEngine({
    store,
    endpoints,
    datapath,
    enforcement: 'default',
    log: log.child({ component: 'policy-test' }),
    toDatapathEndpoint: (e) => e as never,
  });
  t.teardown(() => engine.stop());
  await engine.start();
  await engine.settled();
  return engine;
}

/** A valid policy of about 300 KB (16 000 /32 toCIDR entries, within every per-policy limit). */
function bigPolicy(name: string, third: number): string {
  const cidrs = Array.from({ length: 16_000 }, (_, i) => `198.${18 + third}.${i >> 8}.${i & 255}/32`);
  return JSON.stringify({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name },
    spec: { endpointSelector: {}, egress: [{ toCIDR: cidrs }] },
  });
}

async function repositoryChecks(
  t: Test,
  store: KvStore,
  reopen: () => Promise<KvStore>,
  rawLimitBytes: number,
  backend: string,
): Promise<void> {
  // What the backend itself does with a value over its limit: refuses the write.
  await t.rejects(
    store.put('size-probe/too-big', 'x'.repeat(rawLimitBytes + 1024)),
    `${backend} refuses a value over ${rawLimitBytes} bytes`,
  );
  t.equal(await store.get('size-probe/too-big'), undefined, 'nothing was written');

  const engine = await engineOn(t, store);
  const first = await engine.importPolicy(bigPolicy('hosts-a', 0));
  t.ok(first > 1, 'a 300 KB policy is imported');
  const stored = await store.get(REPOSITORY_KEY);
  t.ok(stored && Buffer.byteLength(stored.value) < POLICY_LIMITS.repositoryBytes);

  // A second one would make the one store value ~600 KB: over Consul's limit. Refused now, typed.
  await t.rejects(engine.importPolicy(bigPolicy('hosts-b', 1)), {
    code: 'ERR_POLICY_INVALID',
    kind: 'BadRequest',
    message: /policy repository would be \d+ bytes as stored; the limit is 491520 bytes/,
  });
  t.equal((await store.get(REPOSITORY_KEY))?.modRevision, stored?.modRevision, 'the stored repository is unchanged');
  t.same(
    engine.getPolicies().policies.map((p) => (p as { metadata: { name: string } }).metadata.name),
    ['hosts-a'],
  );

  // A restart loads what is stored; the policy can be deleted.
  const restartedStore = await reopen();
  const restarted = await engineOn(t, restartedStore);
  t.equal(restarted.policyCount, 1, 'a restarted engine loads the repository');
  await restarted.deletePolicy('hosts-a');
  t.equal(restarted.policyCount, 0);
}

t.test('Consul (in-repo server with the 512 KiB value limit)', async (t) => {
  const server = await ConsulApiServer.listen();
  t.teardown(() => server.close());
  const open = async () => {
    const store = await ConsulKvStore.open({ address: server.address });
    t.teardown(() => store.close());
    return store;
  };
  await repositoryChecks(t, await open(), open, 512 * 1024, 'consul');
});

const missing = etcdUnavailableReason();
if (missing !== undefined) {
  if (process.env.CI === 'true') t.fail(`etcd is required when CI=true: ${missing}`);
  else t.test('real etcd', { skip: missing }, async () => undefined);
} else {
  t.test('real etcd (1.5 MiB request limit)', async (t) => {
    const server = await EtcdTestServer.start();
    t.teardown(() => server.cleanup());
    const open = async () => {
      const store = await EtcdKvStore.open({ endpoints: [server.clientUrl] });
      t.teardown(() => store.close());
      return store;
    };
    await repositoryChecks(t, await open(), open, 1.5 * 1024 * 1024, 'etcd');
  });
}
