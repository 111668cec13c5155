/**
 * SelectorCache batches (addIdentities / removeIdentities) give the same selections as adding and
 * removing identities one by one, for CIDR peers (range lookups in the batch), endpoint selectors
 * (batch postings) and entities.
 */
import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import {
  cidrIdentityLabels,
  parsePrefix,
  subtractPrefixes,
  formatPrefix,
  type IpPrefix,
} from '../../../src/policy/cidr.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import { makeEndpointSelector } from '../../../src/policy/selector.js';
import type { Peer } from '../../../src/policy/rule-types.js';

function prefix(text: string): IpPrefix {
  const r = parsePrefix(text, true);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
}

function cidrPeer(cidr: string, except: string[] = []): Peer {
  return { kind: 'cidr', cidr, except, prefixes: subtractPrefixes(prefix(cidr), except.map(prefix)) };
}

const peers: Peer[] = [
  cidrPeer('198.18.0.0/16'),
  cidrPeer('198.18.0.0/24', ['198.18.0.128/25']),
  cidrPeer('198.18.1.7/32'),
  cidrPeer('10.0.0.0/8'),
  { kind: 'entity', entity: 'world' },
  {
    kind: 'endpoints',
    selector: makeEndpointSelector([{ source: 'reserved', key: 'world', operator: 'Exists', values: [] }]),
  },
  {
    kind: 'endpoints',
    selector: makeEndpointSelector([{ source: 'any', key: 'app', operator: 'DoesNotExist', values: [] }]),
  },
  {
    kind: 'endpoints',
    selector: makeEndpointSelector([{ source: 'container', key: 'app', operator: 'In', values: ['web'] }]),
  },
];

const identities: Array<[number, LabelSet]> = [
  ...[
    '198.18.0.0/16',
    '198.18.0.5/32',
    '198.18.0.200/32',
    '198.18.1.7/32',
    '198.18.0.0/24',
    '198.19.0.1/32',
    '10.1.2.3/32',
    '0.0.0.0/0',
  ].map((p, i) => [16_777_216 + i, cidrIdentityLabels(p)] as [number, LabelSet]),
  [300, LabelSet.parse(['container:app=web'])],
  [301, LabelSet.parse(['container:app=db'])],
];

function selections(cache: SelectorCache): string[] {
  return peers.map((p) => {
    const s = cache.selectPeer(p);
    return s.wildcard ? '*' : [...s.identities].sort((a, b) => a - b).join(',');
  });
}

t.test('batch add and remove match one-by-one updates of memoised selections', async (t) => {
  const one = new SelectorCache([]);
  const batch = new SelectorCache([]);
  selections(one); // memoise every selection while the caches are empty
  selections(batch);
  for (const [id, labels] of identities) one.addIdentity(id, labels);
  batch.addIdentities(identities);
  t.same(selections(batch), selections(one), 'after adding');
  t.same(selections(batch), selections(new SelectorCache(identities)), 'same as computing from scratch');
  t.match(selections(batch)[0], /16777216/, 'the /16 peer selects its own identity');
  t.notOk(selections(batch)[1]!.split(',').includes('16777218'), '198.18.0.200 is in the except');

  const removed = identities.filter(([id]) => id % 2 === 0).map(([id]) => id);
  for (const id of removed) one.removeIdentity(id);
  batch.removeIdentities(removed);
  t.same(selections(batch), selections(one), 'after removing');
  t.same(selections(batch), selections(new SelectorCache(identities.filter(([id]) => id % 2 !== 0))));
});

t.test('subtractPrefixes with many excepts is exact', async (t) => {
  const base = prefix('198.18.0.0/16');
  const excepts = Array.from({ length: 5000 }, (_, i) => prefix(`198.18.${(i * 7) % 256}.${(i * 13) % 256}/32`));
  const started = performance.now();
  const rest = subtractPrefixes(base, excepts);
  t.ok(performance.now() - started < 2000, 'linear in the excepts');
  const size = (p: IpPrefix) => 2 ** (32 - p.bits);
  const distinct = new Set(excepts.map(formatPrefix)).size;
  t.equal(
    rest.reduce((n, p) => n + size(p), 0),
    65536 - distinct,
    'covers exactly the addresses not excepted',
  );
});
