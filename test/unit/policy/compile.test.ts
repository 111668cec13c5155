import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import { cidrIdentityLabels } from '../../../src/policy/cidr.js';
import {
  ALLOW_LOCALHOST_RULE,
  compileEndpointPolicy,
  identitiesAffectedByIdentityChange,
  PolicyCompiler,
  requiredCidrPrefixes,
  type CompileOptions,
  type EndpointPolicy,
} from '../../../src/policy/compile.js';
import {
  diffPolicyEntries,
  lookupPolicyEntry,
  policyEntryKeyString,
  ruleCookie,
  type PolicyEntry,
} from '../../../src/policy/policy-entries.js';
import { PolicyRepository } from '../../../src/policy/repository.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import type { Direction } from '../../../src/policy/rule-types.js';

const WEB = 256;
const SHOP = 257;
const DB = 258;
const K8S_WEB = 259;
const INIT = 5;
const HOST = 1;
const WORLD = 2;

const baseIdentities: Array<[number, LabelSet]> = [
  [WEB, LabelSet.parse(['container:app=web', 'docker:network=app'])],
  [SHOP, LabelSet.parse(['container:app=shop', 'docker:network=app'])],
  [DB, LabelSet.parse(['container:app=db', 'docker:network=app'])],
  [K8S_WEB, LabelSet.parse(['k8s:app=web'])],
];

const doc = (name: string, spec: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
${spec.replace(/^/gm, '  ')}
---
`;

/** A repository plus identities, CIDR identities allocated for every prefix the rules need. */
function world(yaml: string) {
  const repo = new PolicyRepository();
  if (yaml.trim() !== '') repo.import(yaml);
  const cidrIds = new Map<string, number>();
  const identities: Array<[number, LabelSet]> = [...baseIdentities];
  for (const [i, prefix] of requiredCidrPrefixes(repo).entries()) {
    const id = (1 << 24) | (i + 1);
    cidrIds.set(prefix, id);
    identities.push([id, cidrIdentityLabels(prefix)]);
  }
  const cache = new SelectorCache(identities);
  return {
    repo,
    cache,
    cidrIds,
    compile: (id: number, options?: CompileOptions) => compileEndpointPolicy(repo, cache, id, options),
  };
}

/** What the datapath would do: 'allow'/'deny' from the map, 'drop' on a miss, 'pass' if unenforced. */
function decide(policy: EndpointPolicy, direction: Direction, peer: number, dport = 0, proto = 0): string {
  const enforced = direction === 'ingress' ? policy.ingressEnforced : policy.egressEnforced;
  if (!enforced) return 'pass';
  return lookupPolicyEntry(policy.entries, direction, peer, dport, proto)?.verdict ?? 'drop';
}

function brief(entries: readonly PolicyEntry[]): string[] {
  return entries.map(
    (e) => `${e.direction} ${e.peer} ${e.dport}/${e.portPrefixLen} p${e.protocol} ${e.verdict} ${e.ruleName}`,
  );
}

t.test('no rules: nothing is enforced, no entries', async (t) => {
  const w = world('');
  const p = w.compile(WEB);
  t.equal(p.ingressEnforced, false);
  t.equal(p.egressEnforced, false);
  t.same(p.entries, []);
  t.equal(p.revision, 1);
  t.throws(() => w.compile(4242), { code: 'ERR_NOT_FOUND' });
});

t.test('L3/L4 allow: exact entries, default deny only for the selected direction', async (t) => {
  const w = world(
    doc(
      'web-policy',
      `endpointSelector:
  matchLabels: {app: web}
ingress:
- fromEndpoints:
  - matchLabels: {container:app: shop}
  toPorts:
  - ports: [{port: "80", protocol: TCP}]`,
    ),
  );
  const web = w.compile(WEB);
  t.equal(web.ingressEnforced, true);
  t.equal(web.egressEnforced, false, 'a rule with only ingress leaves egress alone');
  t.same(brief(web.entries), [
    `ingress 1 0/0 p0 allow ${ALLOW_LOCALHOST_RULE}`,
    `ingress ${SHOP} 80/16 p6 allow web-policy`,
  ]);
  t.equal(web.entries[1]!.cookie, ruleCookie('web-policy'));
  t.same(web.selectingPolicies, ['web-policy']);
  t.equal(decide(web, 'ingress', SHOP, 80, 6), 'allow');
  t.equal(decide(web, 'ingress', SHOP, 81, 6), 'drop');
  t.equal(decide(web, 'ingress', SHOP, 80, 17), 'drop');
  t.equal(decide(web, 'ingress', DB, 80, 6), 'drop');
  t.equal(decide(web, 'egress', DB, 5432, 6), 'pass');
  t.equal(decide(web, 'ingress', HOST, 22, 6), 'allow', 'allow-localhost (Cilium default)');
  const k8sWeb = w.compile(K8S_WEB);
  t.equal(k8sWeb.ingressEnforced, true, '`app` without a source selects k8s:app too');
  const shop = w.compile(SHOP);
  t.equal(shop.ingressEnforced, false);
  t.same(shop.entries, []);
  t.same(brief(w.compile(WEB, { allowLocalhost: 'policy' }).entries), [`ingress ${SHOP} 80/16 p6 allow web-policy`]);
});

t.test('a source-prefixed selector does not match other sources', async (t) => {
  const w = world(
    doc(
      'c-only',
      `endpointSelector:
  matchLabels: {container:app: web}
egress:
- toEndpoints: [{matchLabels: {app: db}}]`,
    ),
  );
  t.equal(w.compile(WEB).egressEnforced, true);
  t.equal(w.compile(K8S_WEB).egressEnforced, false, 'k8s:app=web is not container:app=web');
  t.equal(decide(w.compile(WEB), 'egress', DB), 'allow');
  t.equal(decide(w.compile(WEB), 'egress', SHOP, 80, 6), 'drop');
});

t.test('ingress: [{}] and egress: [{}] are default deny with nothing allowed', async (t) => {
  const w = world(
    doc(
      'lockdown',
      `endpointSelector: {}
ingress: [{}]
egress: [{}]`,
    ),
  );
  const p = w.compile(DB, { allowLocalhost: 'policy' });
  t.equal(p.ingressEnforced, true);
  t.equal(p.egressEnforced, true);
  t.same(p.entries, []);
  t.equal(decide(p, 'ingress', SHOP, 80, 6), 'drop');
  t.equal(decide(p, 'egress', WORLD, 443, 6), 'drop');
});

t.test('enforcement modes: always and never', async (t) => {
  const w = world(
    doc(
      'web',
      `endpointSelector: {matchLabels: {app: web}}
ingress:
- fromEndpoints: [{matchLabels: {app: shop}}]
ingressDeny:
- fromEndpoints: [{matchLabels: {app: db}}]`,
    ),
  );
  const always = w.compile(DB, { enforcement: 'always' });
  t.equal(always.ingressEnforced, true);
  t.equal(always.egressEnforced, true, 'always: enforced even with no selecting rule');
  t.equal(decide(always, 'egress', WEB, 80, 6), 'drop');
  const never = w.compile(WEB, { enforcement: 'never' });
  t.equal(never.ingressEnforced, false);
  t.same(never.entries, [], 'never: no entries, deny rules included');
  t.equal(decide(never, 'ingress', DB, 80, 6), 'pass');
});

t.test('deny wins over allow at every level of specificity', async (t) => {
  const w = world(
    doc(
      'allow-all',
      `endpointSelector: {matchLabels: {app: web}}
ingress:
- fromEntities: [all]
- fromEndpoints: [{matchLabels: {app: shop}}]
- toPorts: [{ports: [{port: "8080", protocol: TCP}]}]`,
    ) +
      doc(
        'deny-db',
        `endpointSelector: {matchLabels: {app: web}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: db}}]`,
      ) +
      doc(
        'deny-ssh',
        `endpointSelector: {matchLabels: {app: web}}
ingressDeny:
- toPorts: [{ports: [{port: "22", protocol: TCP}]}]`,
      ) +
      doc(
        'deny-shop-8080',
        `endpointSelector: {matchLabels: {app: web}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: shop}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]`,
      ),
  );
  const p = w.compile(WEB, { allowLocalhost: 'policy' });
  t.equal(decide(p, 'ingress', DB, 80, 6), 'deny', 'identity deny beats the wildcard allow');
  t.equal(decide(p, 'ingress', DB, 8080, 6), 'deny', 'identity deny beats a more specific port allow');
  t.equal(decide(p, 'ingress', SHOP, 22, 6), 'deny', 'port deny for everyone beats an identity allow (derived entry)');
  t.equal(decide(p, 'ingress', SHOP, 8080, 6), 'deny');
  t.equal(decide(p, 'ingress', SHOP, 80, 6), 'allow');
  t.equal(decide(p, 'ingress', HOST, 22, 6), 'deny');
  t.equal(decide(p, 'ingress', WORLD, 443, 6), 'allow');
  t.equal(decide(p, 'ingress', WORLD, 8080, 6), 'allow');
  const derived = p.entries.find((e) => e.peer === SHOP && e.dport === 22);
  t.same(derived && [derived.verdict, derived.ruleName], ['deny', 'deny-ssh'], 'the derived entry names the deny rule');
  const dbAllow = p.entries.filter((e) => e.peer === DB && e.verdict === 'allow');
  t.same(dbAllow, [], 'no allow entry survives for a denied identity');
  // Exhaustive: for every peer and a set of ports, any deny rule that matches means deny.
  for (const peer of [HOST, WORLD, WEB, SHOP, DB, K8S_WEB, 99999]) {
    for (const port of [22, 80, 8080]) {
      const expectDeny = peer === DB || port === 22 || (peer === SHOP && port === 8080);
      t.equal(decide(p, 'ingress', peer, port, 6), expectDeny ? 'deny' : 'allow', `peer ${peer} port ${port}`);
    }
  }
});

t.test('a deny of a large port range wins over allows, through prefix entries', async (t) => {
  const w = world(
    doc(
      'open',
      `endpointSelector: {matchLabels: {app: web}}
egress:
- toEntities: [all]
- toEndpoints: [{matchLabels: {app: db}}]
  toPorts: [{ports: [{port: "5432", protocol: TCP}]}]`,
    ) +
      doc(
        'no-high-ports',
        `endpointSelector: {matchLabels: {app: web}}
egressDeny:
- toPorts: [{ports: [{port: "1024", endPort: 65535, protocol: TCP}]}]`,
      ),
  );
  const p = w.compile(WEB);
  t.same(p.portPrefixLengths, [1, 2, 3, 4, 5, 6]);
  t.equal(decide(p, 'egress', DB, 5432, 6), 'deny', 'the exact allow for 5432 is turned into a deny');
  t.equal(decide(p, 'egress', DB, 80, 6), 'allow');
  t.equal(decide(p, 'egress', WORLD, 40000, 6), 'deny');
  t.equal(decide(p, 'egress', WORLD, 40000, 17), 'allow', 'UDP untouched');
  const exact = p.entries.find((e) => e.peer === DB && e.dport === 5432);
  t.same(exact && [exact.verdict, exact.ruleName], ['deny', 'no-high-ports']);
});

t.test('deny-only rules still turn on default deny (as in Cilium)', async (t) => {
  const w = world(
    doc(
      'deny-only',
      `endpointSelector: {matchLabels: {app: web}}
egressDeny:
- toEntities: [world]`,
    ),
  );
  const p = w.compile(WEB);
  t.equal(p.egressEnforced, true);
  t.equal(decide(p, 'egress', WORLD, 443, 6), 'deny');
  t.equal(decide(p, 'egress', DB, 5432, 6), 'drop');
});

t.test('entities: host, remote-node, world, cluster, all', async (t) => {
  const w = world(
    doc(
      'host',
      `endpointSelector: {matchLabels: {app: web}}
egress: [{toEntities: [host]}]`,
    ) +
      doc(
        'nodes',
        `endpointSelector: {matchLabels: {app: db}}
ingress: [{fromEntities: [remote-node]}]`,
      ) +
      doc(
        'world',
        `endpointSelector: {matchLabels: {app: shop}}
egress: [{toEntities: [world]}]`,
      ) +
      doc(
        'cluster',
        `endpointSelector: {matchLabels: {app: db}}
egress: [{toEntities: [cluster]}]`,
      ) +
      doc(
        'all',
        `endpointSelector: {matchLabels: {app: web}}
ingress: [{fromEntities: [all]}]`,
      ) +
      doc(
        'cidr',
        `endpointSelector: {matchLabels: {app: none}}
egress: [{toCIDR: [192.0.2.0/24]}]`,
      ),
  );
  const cidrId = w.cidrIds.get('192.0.2.0/24')!;
  const peersOf = (p: EndpointPolicy, d: Direction) => p.entries.filter((e) => e.direction === d).map((e) => e.peer);
  t.same(peersOf(w.compile(WEB), 'egress'), [HOST]);
  t.same(
    peersOf(w.compile(WEB, { allowLocalhost: 'policy' }), 'ingress'),
    [0],
    'all -> the wildcard identity 0 (world included)',
  );
  t.same(peersOf(w.compile(SHOP), 'egress'), [WORLD, 9, 10, cidrId], 'world: world, world-ipv4/6 and CIDR identities');
  t.same(
    peersOf(w.compile(DB), 'egress'),
    [HOST, 3, 4, INIT, 6, 7, 8, WEB, SHOP, DB, K8S_WEB],
    'cluster: every endpoint, host and the in-cluster reserved identities',
  );
  t.same(
    peersOf(w.compile(DB), 'ingress'),
    [HOST, 6],
    'remote-node: the other hosts (reserved:remote-node), beside the local host (allow-localhost)',
  );
});

t.test('CIDR rules with except: CIDR identities and prefix entries', async (t) => {
  const w = world(
    doc(
      'egress-cidr',
      `endpointSelector: {matchLabels: {app: web}}
egress:
- toCIDRSet:
  - cidr: 10.0.0.0/8
    except: [10.96.0.0/12]
  toPorts: [{ports: [{port: "443", protocol: TCP}]}]
- toCIDR: [0.0.0.0/0]
  toPorts: [{ports: [{port: "53", protocol: UDP}]}]`,
    ) +
      doc(
        'deny-cidr',
        `endpointSelector: {matchLabels: {app: web}}
egressDeny:
- toCIDR: [10.1.2.3/32]`,
      ),
  );
  t.same(requiredCidrPrefixes(w.repo), [
    '0.0.0.0/0',
    '10.0.0.0/10',
    '10.1.2.3/32',
    '10.64.0.0/11',
    '10.112.0.0/12',
    '10.128.0.0/9',
  ]);
  const p = w.compile(WEB);
  const id = (prefix: string) => w.cidrIds.get(prefix)!;
  for (const prefix of ['10.0.0.0/10', '10.64.0.0/11', '10.112.0.0/12', '10.128.0.0/9']) {
    t.equal(decide(p, 'egress', id(prefix), 443, 6), 'allow', `${prefix} allowed on 443`);
    t.equal(decide(p, 'egress', id(prefix), 53, 17), 'allow', `0.0.0.0/0 covers ${prefix} for DNS`);
    t.equal(decide(p, 'egress', id(prefix), 80, 6), 'drop');
  }
  t.equal(
    decide(p, 'egress', id('0.0.0.0/0'), 443, 6),
    'drop',
    'addresses outside 10/8 (and inside the except) resolve to 0.0.0.0/0: not allowed on 443',
  );
  t.equal(decide(p, 'egress', id('0.0.0.0/0'), 53, 17), 'allow');
  t.equal(decide(p, 'egress', id('10.1.2.3/32'), 443, 6), 'deny', 'a deny for a more specific prefix wins');
  t.equal(decide(p, 'egress', id('10.1.2.3/32'), 53, 17), 'deny');
  t.equal(decide(p, 'egress', WORLD, 53, 17), 'drop', 'CIDR rules do not select the plain world identity');
  t.equal(decide(p, 'egress', DB, 443, 6), 'drop', 'nor endpoints');
  const cidrView = p.cidrEntries.map((e) => `${e.cidr} ${e.dport} p${e.protocol} ${e.verdict}`);
  t.same(cidrView, [
    '0.0.0.0/0 53 p17 allow',
    '10.0.0.0/10 443 p6 allow',
    '10.1.2.3/32 0 p0 deny',
    '10.64.0.0/11 443 p6 allow',
    '10.112.0.0/12 443 p6 allow',
    '10.128.0.0/9 443 p6 allow',
  ]);
});

t.test('ports: ANY, port 0, small and large ranges', async (t) => {
  const w = world(
    doc(
      'ports',
      `endpointSelector: {matchLabels: {app: db}}
ingress:
- fromEndpoints: [{matchLabels: {container:app: web}}]
  toPorts:
  - ports:
    - {port: "53", protocol: ANY}
    - {port: "0", protocol: UDP}
    - {port: "8000", endPort: 8010, protocol: TCP}
    - {port: "1024", endPort: 65535, protocol: TCP}
    - {port: "9000", endPort: 9063, protocol: TCP}`,
    ),
  );
  const p = w.compile(DB, { allowLocalhost: 'policy' });
  const keys = p.entries.map((e) => `${e.dport}/${e.portPrefixLen}/p${e.protocol}`);
  t.ok(keys.includes('53/16/p6') && keys.includes('53/16/p17'), 'ANY with a port: TCP and UDP');
  t.ok(keys.includes('0/0/p17'), 'port 0: every UDP port');
  t.equal(keys.filter((k) => /^80(0\d|10)\/16\/p6$/.test(k)).length, 11, '8000-8010: 11 exact entries');
  t.equal(keys.filter((k) => /^9\d{3}\/16\/p6$/.test(k)).length, 64, '64 ports are still expanded');
  const blocks = keys.filter((k) => k.endsWith('/p6') && !k.endsWith('/16/p6'));
  t.same(
    blocks,
    ['1024/6/p6', '2048/5/p6', '4096/4/p6', '8192/3/p6', '16384/2/p6', '32768/1/p6'],
    '1024-65535 as six prefix blocks',
  );
  for (const [port, proto, want] of [
    [53, 6, 'allow'],
    [53, 17, 'allow'],
    [9999, 17, 'allow'],
    [8005, 6, 'allow'],
    [1023, 6, 'drop'],
    [1024, 6, 'allow'],
    [65535, 6, 'allow'],
    [22, 6, 'drop'],
  ] as const) {
    t.equal(decide(p, 'ingress', WEB, port, proto), want, `${port}/${proto}`);
  }
  t.same(p.portPrefixLengths, [1, 2, 3, 4, 5, 6], 'the masks an exact-key datapath must try');
  t.same(w.compile(WEB).portPrefixLengths, []);
  const tight = compileEndpointPolicy(w.repo, w.cache, DB, { maxExpandedPortRange: 4, allowLocalhost: 'policy' });
  t.ok(
    tight.entries.some((e) => e.dport === 8000 && e.portPrefixLen === 13),
    'threshold is configurable: 8000-8007 becomes 8000/13',
  );
});

t.test('diff: batched upserts and deletes that turn the old map into the new', async (t) => {
  const v1 = world(
    doc(
      'web',
      `endpointSelector: {matchLabels: {app: web}}
ingress:
- fromEndpoints: [{matchLabels: {app: shop}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "443", protocol: TCP}]}]`,
    ),
  );
  const before = v1.compile(WEB).entries;
  v1.repo.import(
    doc(
      'web',
      `endpointSelector: {matchLabels: {app: web}}
ingress:
- fromEndpoints: [{matchLabels: {app: shop}}]
  toPorts: [{ports: [{port: "443", protocol: TCP}, {port: "8443", protocol: TCP}]}]`,
    ) +
      doc(
        'deny-db',
        `endpointSelector: {matchLabels: {app: web}}
ingressDeny:
- fromEndpoints: [{matchLabels: {app: db}}]`,
      ),
  );
  const after = new PolicyCompiler(v1.repo, v1.cache).compile(WEB).entries;
  const diff = diffPolicyEntries(before, after);
  t.same(brief(diff.upserts), [`ingress ${SHOP} 8443/16 p6 allow web`, `ingress ${DB} 0/0 p0 deny deny-db`]);
  t.same(diff.deletes.map(policyEntryKeyString), [`ingress/${SHOP}/80/16/6`]);
  const applied = new Map(before.map((e) => [policyEntryKeyString(e), e]));
  for (const key of diff.deletes) applied.delete(policyEntryKeyString(key));
  for (const e of diff.upserts) applied.set(policyEntryKeyString(e), e);
  t.same(
    [...applied.values()].sort((a, b) => policyEntryKeyString(a).localeCompare(policyEntryKeyString(b))),
    [...after].sort((a, b) => policyEntryKeyString(a).localeCompare(policyEntryKeyString(b))),
  );
  t.same(diffPolicyEntries(after, after), { upserts: [], deletes: [] }, 'no change, no writes');
  const verdictFlip = diffPolicyEntries([{ ...after[0]!, verdict: 'deny' }], [after[0]!]);
  t.equal(verdictFlip.upserts.length, 1, 'a changed value is an upsert');
});

t.test('identity changes: which endpoints to regenerate', async (t) => {
  const w = world(
    doc(
      'web',
      `endpointSelector: {matchLabels: {app: web}}
ingress:
- fromEndpoints: [{matchLabels: {app: shop}}]`,
    ) +
      doc(
        'db',
        `endpointSelector: {matchLabels: {app: db}}
ingress:
- fromEntities: [world]`,
      ),
  );
  const compiler = new PolicyCompiler(w.repo, w.cache);
  const before = compiler.compile(WEB).entries;
  const shopV2 = LabelSet.parse(['container:app=shop', 'container:v=2']);
  w.cache.addIdentity(300, shopV2);
  t.same(
    identitiesAffectedByIdentityChange(w.repo, w.cache, [shopV2]),
    [WEB, K8S_WEB],
    'endpoints whose rules have a peer selecting the new identity',
  );
  const after = compiler.compile(WEB).entries;
  t.same(
    brief(diffPolicyEntries(before, after).upserts),
    ['ingress 300 0/0 p0 allow web'],
    'memoised selections follow addIdentity',
  );
  const cidrLabels = cidrIdentityLabels('198.51.100.0/24');
  w.cache.addIdentity((1 << 24) | 77, cidrLabels);
  t.same(
    identitiesAffectedByIdentityChange(w.repo, w.cache, [cidrLabels]),
    [DB],
    'a new CIDR identity is world: endpoints allowing world',
  );
  t.same(identitiesAffectedByIdentityChange(w.repo, w.cache, [LabelSet.parse(['container:app=other'])]), []);
  w.cache.removeIdentity(300);
  t.same(
    diffPolicyEntries(after, compiler.compile(WEB).entries).deletes.map(policyEntryKeyString),
    ['ingress/300/0/0/0'],
    'and removeIdentity',
  );
  compiler.compile(DB);
  w.repo.delete('db');
  t.equal(
    w.cache.pruneSelections(w.repo.rules()),
    2,
    "the deleted policy's endpoint selector and world peer are forgotten",
  );
  t.equal(w.cache.pruneSelections(w.repo.rules()), 0);
  t.same(
    new PolicyCompiler(w.repo, w.cache).compile(WEB).entries,
    compiler.compile(WEB).entries,
    'selections still in use survive',
  );
});

t.test('rulesByIdentity matches selectingRules', async (t) => {
  const w = world(
    doc(
      'a',
      `endpointSelector: {matchLabels: {app: web}}
ingress: [{}]`,
    ) +
      doc(
        'b',
        `endpointSelector: {}
egress: [{}]`,
      ),
  );
  const compiler = new PolicyCompiler(w.repo, w.cache);
  const all = compiler.rulesByIdentity();
  for (const id of w.cache.identities.keys()) {
    t.same(
      (all.get(id) ?? []).map((r) => r.policyName),
      compiler.selectingRules(id).map((r) => r.policyName),
      `identity ${id}`,
    );
  }
  t.same(
    compiler.compile(WEB, all.get(WEB)),
    compiler.compile(WEB),
    'passing the precomputed rules gives the same result',
  );
});
