/**
 * Issue 4, "3 daemons racing to allocate identities for 3×1000 label sets against real etcd":
 * three separate OS processes (test/support/identity-race-worker.ts), each with its own node
 * name, etcd connection and IdentityAllocator, acquire the same 3000 label sets, each in its own
 * random order, 32 at a time, all at once. Afterwards: no two label sets share a number, no label
 * set has two numbers, every process ends with the same mapping, and etcd holds exactly that
 * mapping (one id key and one label key per label set, one reference per process and label set).
 *
 * Without etcd installed the test is skipped with the reason (failed when CI=true).
 */
import t from 'tap';
import { EtcdKvStore } from '../../../src/kvstore/etcd/etcd-store.js';
import { MAX_ALLOCATED_IDENTITY, MIN_ALLOCATED_IDENTITY } from '../../../src/identity/reserved.js';
import { EtcdTestServer, etcdUnavailableReason } from '../../support/etcd-server.js';
import { raceLabelSet, runIdentityRace } from '../../support/identity-race.js';

const NODES = ['race-a', 'race-b', 'race-c'];
const GROUPS = 3;
const PER_GROUP = 1000;
/** Generous for a loaded 2-CPU machine; a quiet one needs a few seconds. */
const RACE_TIMEOUT_MS = 50_000;

const missing = etcdUnavailableReason();
if (missing !== undefined) {
  if (process.env.CI === 'true') t.fail(`etcd is required when CI=true: ${missing}`);
  else t.test('identity race against a real etcd', { skip: missing }, async () => undefined);
} else {
  t.test('3 processes racing for 3×1000 label sets agree on one cluster-unique mapping', async (t) => {
    const server = await EtcdTestServer.start();
    t.teardown(() => server.cleanup());
    const namespace = 'race/';
    const { results, wallMs, startupMs } = await runIdentityRace({
      etcd: server.clientUrl,
      namespace,
      nodes: NODES,
      groups: GROUPS,
      perGroup: PER_GROUP,
      concurrency: 32,
      timeoutMs: RACE_TIMEOUT_MS,
    });
    const total = GROUPS * PER_GROUP;
    const expected = Array.from({ length: total }, (_, i) => raceLabelSet(i, PER_GROUP).toCanonical()).sort();
    t.equal(new Set(expected).size, total, `${total} distinct label sets`);

    for (const r of results) {
      t.same(Object.keys(r.mapping).sort(), expected, `${r.node} acquired every label set`);
    }
    const [first, ...others] = results;
    for (const r of others) t.same(r.mapping, first!.mapping, `${r.node} ends with the same mapping as ${first!.node}`);

    const byNumber = new Map<number, string>();
    const duplicates: string[] = [];
    for (const [labels, id] of Object.entries(first!.mapping)) {
      const other = byNumber.get(id);
      if (other !== undefined) duplicates.push(`${id}: ${other} and ${labels}`);
      byNumber.set(id, labels);
      if (!(id >= MIN_ALLOCATED_IDENTITY && id <= MAX_ALLOCATED_IDENTITY))
        duplicates.push(`${id} outside the allocation range`);
    }
    t.same(duplicates, [], 'no number shared by two label sets (and every number in range)');

    const admin = await EtcdKvStore.open({ endpoints: [server.clientUrl], namespace });
    t.teardown(() => admin.close());
    const ids = (await admin.list('identities/v1/id/')).pairs;
    const inEtcd = Object.fromEntries(ids.map((p) => [p.value, Number(p.key.slice('identities/v1/id/'.length))]));
    t.equal(ids.length, total, 'exactly one id key per label set: losers left no number behind');
    t.same(inEtcd, first!.mapping, 'the id keys in etcd are the mapping every process holds');
    const labelKeys = (await admin.list('identities/v1/labels/')).pairs;
    t.equal(labelKeys.length, total, 'one label key per label set');
    t.same(
      Object.fromEntries(
        labelKeys.map((p) => [
          Buffer.from(p.key.slice('identities/v1/labels/'.length), 'base64url').toString('utf8'),
          Number(p.value),
        ]),
      ),
      first!.mapping,
      'every label key points at the number of its label set',
    );
    const refs = (await admin.list('identities/v1/value/')).pairs;
    t.equal(refs.length, total * NODES.length, 'one reference per process and label set');
    const wrongRefs = refs.filter((p) => {
      const [encoded] = p.key.slice('identities/v1/value/'.length).split('/');
      return first!.mapping[Buffer.from(encoded!, 'base64url').toString('utf8')] !== Number(p.value);
    });
    t.same(
      wrongRefs.map((p) => p.key),
      [],
      'every reference names the number of its label set',
    );

    const sum = (f: (r: (typeof results)[number]) => number) => results.reduce((a, r) => a + f(r), 0);
    t.equal(
      sum((r) => r.stats.allocated),
      total,
      'each label set was allocated by exactly one process',
    );
    t.equal(
      sum((r) => r.stats.allocated + r.stats.referenced),
      total * NODES.length,
      'the others referenced it',
    );
    t.comment(
      `workers started in ${Math.round(startupMs)} ms; race: ${total * NODES.length} acquisitions in ` +
        `${Math.round(wallMs)} ms (${Math.round((total * NODES.length) / (wallMs / 1000))}/s), ` +
        `${sum((r) => r.stats.candidateCollisions)} candidate collisions in ${sum((r) => r.stats.attempts)} attempts`,
    );
  });
}
