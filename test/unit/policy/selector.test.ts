import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import {
  formatSelector,
  makeEndpointSelector,
  parseSelectorKey,
  selectorMatches,
  type LabelRequirement,
  type SelectorOperator,
} from '../../../src/policy/selector.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import { entitySelects } from '../../../src/policy/reserved.js';
import { cidrIdentityLabels } from '../../../src/policy/cidr.js';

const labels = (...texts: string[]) => LabelSet.parse(texts);

function sel(...reqs: Array<[string, SelectorOperator, string[]?]>) {
  return makeEndpointSelector(
    reqs.map(([k, operator, values]): LabelRequirement => ({ ...parseSelectorKey(k), operator, values: values ?? [] })),
  );
}

t.test('selector keys: source prefixes, any, $ shorthand', async (t) => {
  t.same(parseSelectorKey('app'), { source: 'any', key: 'app' });
  t.same(parseSelectorKey('container:app'), { source: 'container', key: 'app' });
  t.same(parseSelectorKey('k8s:io.kubernetes.pod.namespace'), { source: 'k8s', key: 'io.kubernetes.pod.namespace' });
  t.same(parseSelectorKey('any:app'), { source: 'any', key: 'app' });
  t.same(parseSelectorKey('$host'), { source: 'reserved', key: 'host' });
  t.same(parseSelectorKey('reserved:world'), { source: 'reserved', key: 'world' });
});

t.test('a key without a source matches every source', async (t) => {
  const s = sel(['app', 'In', ['web']]);
  t.ok(selectorMatches(s, labels('container:app=web')));
  t.ok(selectorMatches(s, labels('k8s:app=web')));
  t.ok(selectorMatches(s, labels('docker:app=web')));
  t.notOk(selectorMatches(s, labels('container:app=db')));
  t.notOk(selectorMatches(s, labels('container:role=web')));
});

t.test('a key with a source matches that source only', async (t) => {
  const s = sel(['container:app', 'In', ['web']]);
  t.ok(selectorMatches(s, labels('container:app=web')));
  t.notOk(selectorMatches(s, labels('k8s:app=web')));
  const k8s = sel(['k8s:app', 'In', ['web']]);
  t.ok(selectorMatches(k8s, labels('k8s:app=web')));
  t.notOk(selectorMatches(k8s, labels('container:app=web')));
  const any = sel(['any:app', 'In', ['web']]);
  t.ok(selectorMatches(any, labels('k8s:app=web')));
  t.ok(selectorMatches(any, labels('container:app=web')));
});

t.test('reserved labels have empty values', async (t) => {
  t.ok(selectorMatches(sel(['reserved:host', 'In', ['']]), labels('reserved:host')));
  t.notOk(selectorMatches(sel(['reserved:host', 'In', ['']]), labels('reserved:world')));
  t.ok(selectorMatches(sel(['$world', 'In', ['']]), labels('reserved:world')));
});

t.test('matchExpressions: In, NotIn, Exists, DoesNotExist', async (t) => {
  const web = labels('container:app=web', 'container:tier=fe');
  const db = labels('container:app=db');
  const none = labels('container:other=x');

  const inSel = sel(['app', 'In', ['web', 'api']]);
  t.same(
    [web, db, none].map((l) => selectorMatches(inSel, l)),
    [true, false, false],
  );

  const notIn = sel(['app', 'NotIn', ['web']]);
  t.same(
    [web, db, none].map((l) => selectorMatches(notIn, l)),
    [false, true, true],
    'NotIn matches an absent key (Kubernetes semantics)',
  );

  const exists = sel(['tier', 'Exists']);
  t.same(
    [web, db, none].map((l) => selectorMatches(exists, l)),
    [true, false, false],
  );

  const missing = sel(['tier', 'DoesNotExist']);
  t.same(
    [web, db, none].map((l) => selectorMatches(missing, l)),
    [false, true, true],
  );

  const sourced = sel(['k8s:tier', 'Exists']);
  t.notOk(selectorMatches(sourced, web), 'Exists honours the source too');
  const sourcedMissing = sel(['k8s:tier', 'DoesNotExist']);
  t.ok(selectorMatches(sourcedMissing, web));
});

t.test('requirements are ANDed; {} selects everything', async (t) => {
  const both = sel(['app', 'In', ['web']], ['tier', 'Exists']);
  t.ok(selectorMatches(both, labels('container:app=web', 'container:tier=fe')));
  t.notOk(selectorMatches(both, labels('container:app=web')));
  const all = makeEndpointSelector([]);
  t.ok(selectorMatches(all, labels('reserved:world')));
  t.equal(formatSelector(all), '{}');
});

t.test('equivalent selectors share one canonical key', async (t) => {
  const a = sel(['app', 'In', ['web']], ['tier', 'In', ['b', 'a', 'a']]);
  const b = sel(['tier', 'In', ['a', 'b']], ['any:app', 'In', ['web']]);
  t.equal(a.key, b.key);
  t.equal(a.key, 'any:app=web, any:tier in (a,b)');
  t.not(sel(['container:app', 'In', ['web']]).key, sel(['app', 'In', ['web']]).key);
});

t.test('entities', async (t) => {
  const host = labels('reserved:host');
  const world = labels('reserved:world');
  const init = labels('reserved:init');
  const container = labels('container:app=web', 'docker:network=app');
  const cidr = cidrIdentityLabels('10.0.0.0/8');
  t.same(
    [host, world, init, container, cidr].map((l) => entitySelects('world', l)),
    [false, true, false, false, true],
    'world includes CIDR identities',
  );
  t.same(
    [host, world, init, container, cidr].map((l) => entitySelects('host', l)),
    [true, false, false, false, false],
  );
  t.same(
    [host, world, init, container, cidr].map((l) => entitySelects('cluster', l)),
    [true, false, true, true, false],
    'cluster: endpoints, host, init (as Cilium)',
  );
  t.same(
    [host, world, init, container, cidr].map((l) => entitySelects('all', l)),
    [true, true, true, true, true],
  );
});

t.test('selector cache: indexed selection equals brute force, and follows identity changes', async (t) => {
  const identities: Array<[number, LabelSet]> = [];
  const apps = ['web', 'db', 'cache', 'api'];
  for (let i = 0; i < 200; i++) {
    const l = [`container:app=${apps[i % 4]}`, `container:shard=${i % 7}`];
    if (i % 3 === 0) l.push('k8s:tier=fe');
    if (i % 5 === 0) l.push('container:canary=');
    identities.push([256 + i, labels(...l)]);
  }
  const cache = new SelectorCache(identities);
  t.ok(cache.labelsOf(1)?.has('reserved', 'host'), 'reserved identities are added');
  const selectors = [
    sel(['app', 'In', ['web']]),
    sel(['app', 'In', ['web', 'db']], ['tier', 'Exists']),
    sel(['container:app', 'NotIn', ['web']]),
    sel(['canary', 'DoesNotExist'], ['shard', 'In', ['3']]),
    sel(['k8s:app', 'In', ['web']]),
    sel(['reserved:world', 'In', ['']]),
    makeEndpointSelector([]),
  ];
  for (const s of selectors) {
    const brute = [...cache.identities]
      .filter(([, l]) => selectorMatches(s, l))
      .map(([id]) => id)
      .sort((a, b) => a - b);
    t.same(
      [...cache.selectEndpoints(s)].sort((a, b) => a - b),
      brute,
      formatSelector(s),
    );
  }
  const web = selectors[0]!;
  const before = cache.selectEndpoints(web).size;
  cache.addIdentity(9999, labels('container:app=web'));
  t.equal(cache.selectEndpoints(web).size, before + 1, 'addIdentity updates memoised selections');
  cache.addIdentity(9999, labels('container:app=db'));
  t.equal(cache.selectEndpoints(web).size, before, 'relabelling moves the identity out');
  cache.addIdentity(9999, labels('container:app=web'));
  cache.removeIdentity(9999);
  t.equal(cache.selectEndpoints(web).size, before);
  t.equal(cache.labelsOf(9999), undefined);
  cache.removeIdentity(9999);
  t.pass('removing an unknown identity is a no-op');
});
