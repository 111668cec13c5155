import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import { cidrIdentityLabels } from '../../../src/policy/cidr.js';
import { PolicyCompiler, requiredCidrPrefixes, type EndpointPolicy } from '../../../src/policy/compile.js';
import { parsePolicyValue } from '../../../src/policy/parse.js';
import { lookupPolicyEntry, portKeyMatches } from '../../../src/policy/policy-entries.js';
import { PolicyRepository } from '../../../src/policy/repository.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import { trace } from '../../../src/policy/trace.js';
import type { Direction, PortProtocolName } from '../../../src/policy/rule-types.js';

const yaml = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-policy
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: shop}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
  - fromCIDR: [10.1.0.0/16]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-canary
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingressDeny:
  - fromEndpoints:
    - matchLabels: {canary: "true"}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: shop-egress
spec:
  endpointSelector:
    matchLabels: {app: shop}
  egress:
  - toEndpoints:
    - matchLabels: {app: web}
`;

const shop = ['container:app=shop'];
const web = ['container:app=web'];

function setup() {
  const repo = new PolicyRepository();
  repo.import(yaml);
  const cache = new SelectorCache([
    [256, LabelSet.parse(web)],
    [257, LabelSet.parse(shop)],
  ]);
  return { repo, cache };
}

t.test('allowed on the allowed port, with the deciding rule and an explanation', async (t) => {
  const { repo, cache } = setup();
  const r = trace(repo, cache, shop, web, 80, 'TCP');
  t.equal(r.verdict, 'allowed');
  t.equal(r.decidingRule, 'web-policy');
  t.equal(r.ingress.decidingPath, 'spec.ingress[0]');
  t.equal(r.egress.decidingRule, 'shop-egress');
  t.equal(r.explanation[0], 'Tracing From: [container:app=shop] => To: [container:app=web] Ports: [80/TCP]');
  t.equal(r.explanation[1], 'Source identity: 257; destination identity: 256');
  t.ok(r.explanation.includes('Resolving ingress policy for [container:app=web]'));
  t.ok(r.explanation.includes('* Rule "web-policy" (spec): selector any:app=web selects [container:app=web]'));
  t.ok(r.explanation.includes('    spec.ingress[0]: allow from any:app=shop on 80/TCP: matches'));
  t.ok(r.explanation.includes('    spec.ingress[1]: allow from 10.1.0.0/16 on any port: source does not match'));
  t.ok(r.explanation.includes('Ingress verdict: allowed (allowed by "web-policy" spec.ingress[0])'));
  t.equal(r.explanation.at(-1), 'Final verdict: ALLOWED');
});

t.test('default deny: wrong port', async (t) => {
  const { repo, cache } = setup();
  const r = trace(repo, cache, shop, web, 443, 'TCP');
  t.equal(r.verdict, 'denied');
  t.equal(r.decidingRule, undefined, 'nothing matched: default deny');
  t.ok(r.explanation.includes('    spec.ingress[0]: allow from any:app=shop on 80/TCP: port does not match'));
  t.ok(r.explanation.includes('Ingress verdict: denied (no rule allows it; ingress is default deny)'));
  t.equal(r.explanation.at(-1), 'Final verdict: DENIED');
});

t.test('deny precedence names the deny rule', async (t) => {
  const { repo, cache } = setup();
  const r = trace(repo, cache, [...shop, 'container:canary=true'], web, 80, 'TCP');
  t.equal(r.verdict, 'denied');
  t.equal(r.decidingRule, 'deny-canary');
  t.equal(r.ingress.decidingPath, 'spec.ingressDeny[0]');
  t.ok(r.explanation.some((l) => l.includes('deny rules take precedence')));
});

t.test('egress is evaluated at the source', async (t) => {
  const { repo, cache } = setup();
  const r = trace(repo, cache, shop, ['container:app=db'], 5432, 'TCP');
  t.equal(r.verdict, 'denied');
  t.equal(r.egress.verdict, 'denied');
  t.equal(r.ingress.enforced, false);
  t.equal(r.ingress.verdict, 'allowed');
  t.ok(r.explanation.includes('Egress verdict: denied (no rule allows it; egress is default deny)'));
  t.ok(r.explanation.some((l) => l.startsWith('Ingress verdict: allowed (no selecting rule has an ingress section')));
  t.equal(r.explanation[1], 'Source identity: 257; destination identity: none allocated yet');
});

t.test('unselected endpoints, world, CIDR peers and the host', async (t) => {
  const { repo, cache } = setup();
  t.equal(
    trace(repo, cache, ['container:app=db'], ['container:app=cache']).verdict,
    'allowed',
    'no rule selects either side',
  );
  const fromWorld = trace(repo, cache, ['reserved:world'], web, 80, 'TCP');
  t.equal(fromWorld.verdict, 'denied');
  t.equal(fromWorld.egress.evaluated, false, 'world has no egress policy');
  const fromCidr = trace(repo, cache, cidrIdentityLabels('10.1.2.0/24'), web, 22, 'TCP');
  t.equal(fromCidr.verdict, 'allowed', 'a CIDR identity inside 10.1.0.0/16');
  t.equal(fromCidr.ingress.decidingPath, 'spec.ingress[1]');
  t.equal(
    trace(repo, cache, cidrIdentityLabels('10.0.0.0/8'), web, 22, 'TCP').verdict,
    'denied',
    'a wider prefix is not inside',
  );
  const fromHost = trace(repo, cache, ['reserved:host'], web, 22, 'TCP');
  t.equal(fromHost.verdict, 'allowed');
  t.equal(fromHost.decidingRule, 'reserved:allow-localhost');
  t.equal(trace(repo, cache, ['reserved:host'], web, 22, 'TCP', { allowLocalhost: 'policy' }).verdict, 'denied');
  t.equal(trace(repo, cache, shop, web, 443, 'TCP', { enforcement: 'never' }).verdict, 'allowed');
  t.equal(
    trace(repo, cache, ['container:app=db'], ['container:app=cache'], 0, 'ANY', { enforcement: 'always' }).verdict,
    'denied',
  );
  t.equal(
    trace(repo, undefined, shop, web, 80, 'TCP').explanation[1],
    'Source identity: not resolved; destination identity: not resolved',
  );
});

t.test('bad requests', async (t) => {
  const { repo, cache } = setup();
  t.throws(() => trace(repo, cache, shop, web, 80, 'ANY'), { code: 'ERR_BAD_REQUEST', message: /80\/TCP or 80\/UDP/ });
  t.throws(() => trace(repo, cache, shop, web, 70000, 'TCP'), { code: 'ERR_BAD_REQUEST' });
});

/** Small deterministic PRNG (mulberry32) so the cross-check is reproducible. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Counts of one cross-check run. */
interface CrossCheck {
  checked: number;
  allowed: number;
  mismatches: string[];
}

/**
 * Builds a random repository and identity set from `seed`, compiles every endpoint, and compares
 * the map lookup with trace for every (source, destination, port) combination.
 */
function crossCheck(seed: number, policyCount: number, enforcement: 'default' | 'always'): CrossCheck {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const apps = ['a', 'b', 'c', 'd'];
  const selectorPool = (): Record<string, unknown> =>
    pick([
      {},
      { matchLabels: { app: pick(apps) } },
      { matchLabels: { 'container:app': pick(apps) } },
      { matchLabels: { 'docker:app': pick(apps) } },
      { matchExpressions: [{ key: 'app', operator: 'In', values: [pick(apps), pick(apps)] }] },
      { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['x'] }] },
      { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
      {
        matchExpressions: [
          { key: 'tier', operator: 'DoesNotExist' },
          { key: 'app', operator: 'In', values: [pick(apps)] },
        ],
      },
    ]);
  const portsPool = () =>
    pick([
      undefined,
      [{ ports: [{ port: '80', protocol: 'TCP' }] }],
      [{ ports: [{ port: '53', protocol: 'ANY' }] }],
      [{ ports: [{ port: '8000', endPort: 8100, protocol: 'TCP' }] }],
      [{ ports: [{ port: '0', protocol: 'UDP' }] }],
      [
        {
          ports: [
            { port: '22', protocol: 'TCP' },
            { port: '80', protocol: 'TCP' },
          ],
        },
      ],
    ]);
  const peerItem = (prefix: 'from' | 'to') => {
    const item: Record<string, unknown> = {};
    const kind = pick(['endpoints', 'entities', 'cidr', 'cidrset', 'none']);
    if (kind === 'endpoints') item[`${prefix}Endpoints`] = [selectorPool()];
    if (kind === 'entities') item[`${prefix}Entities`] = [pick(['all', 'world', 'host', 'cluster'])];
    if (kind === 'cidr') item[`${prefix}CIDR`] = [pick(['10.1.2.0/24', '0.0.0.0/0', '192.0.2.7'])];
    if (kind === 'cidrset') item[`${prefix}CIDRSet`] = [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }];
    const ports = portsPool();
    if (ports) item['toPorts'] = ports;
    return item;
  };
  const documents = Array.from({ length: policyCount }, (_, i) => {
    const spec: Record<string, unknown> = { endpointSelector: selectorPool() };
    for (const [section, prefix] of [
      ['ingress', 'from'],
      ['egress', 'to'],
      ['ingressDeny', 'from'],
      ['egressDeny', 'to'],
    ] as const) {
      const chance = section.endsWith('Deny') ? 0.25 : 0.6;
      if (rand() < chance) spec[section] = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => peerItem(prefix));
    }
    return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `p${i}` }, spec };
  });
  const repo = new PolicyRepository();
  repo.import(parsePolicyValue(documents));

  const identities: Array<[number, LabelSet]> = [];
  for (let i = 0; i < 24; i++) {
    const source = pick(['container', 'docker']);
    const l = [`${source}:app=${pick(apps)}`];
    if (rand() < 0.5) l.push(`container:tier=${pick(['x', 'y'])}`);
    identities.push([256 + i, LabelSet.parse(l)]);
  }
  const cidrIds: number[] = [];
  for (const [i, prefix] of [...requiredCidrPrefixes(repo), '172.16.0.0/12'].entries()) {
    const id = (1 << 24) | (i + 1);
    cidrIds.push(id);
    identities.push([id, cidrIdentityLabels(prefix)]);
  }
  const cache = new SelectorCache(identities);
  const endpointIds = identities.filter(([id]) => id >= 256 && id < 1 << 24).map(([id]) => id);
  const sources = [...endpointIds, 1, 2, ...cidrIds];

  const result: CrossCheck = { checked: 0, allowed: 0, mismatches: [] };
  const compiler = new PolicyCompiler(repo, cache, { enforcement });
  const compiled = new Map<number, EndpointPolicy>(endpointIds.map((id) => [id, compiler.compile(id)]));
  const mapSays = (subject: number, direction: Direction, peer: number, dport: number, proto: number): boolean => {
    const policy = compiled.get(subject);
    if (!policy) return true; // not an endpoint: nothing enforced there
    const enforced = direction === 'ingress' ? policy.ingressEnforced : policy.egressEnforced;
    if (!enforced) return true;
    const mostSpecific = lookupPolicyEntry(policy.entries, direction, peer, dport, proto)?.verdict === 'allow';
    // bpf/include/policy.h tries every key and lets any deny win; the entries must mean the same there.
    const matching = policy.entries.filter(
      (e) =>
        e.direction === direction &&
        (e.peer === 0 || e.peer === peer) &&
        (e.protocol === 0 || e.protocol === proto) &&
        (e.portPrefixLen === 0 || (dport !== 0 && portKeyMatches(e, dport))),
    );
    const anyDenyWins = !matching.some((e) => e.verdict === 'deny') && matching.some((e) => e.verdict === 'allow');
    if (anyDenyWins !== mostSpecific && result.mismatches.length < 3)
      result.mismatches.push(`seed ${seed}: lookups disagree for ${subject} ${direction} ${peer} ${dport}/${proto}`);
    return mostSpecific;
  };
  for (const src of sources) {
    for (const dst of endpointIds) {
      for (const [dport, protocol] of [
        [80, 'TCP'],
        [53, 'UDP'],
        [8050, 'TCP'],
        [22, 'TCP'],
        [9999, 'UDP'],
        [0, 'ANY'],
      ] as Array<[number, PortProtocolName]>) {
        const proto = protocol === 'TCP' ? 6 : protocol === 'UDP' ? 17 : 0;
        const expected = mapSays(src, 'egress', dst, dport, proto) && mapSays(dst, 'ingress', src, dport, proto);
        const traced = trace(repo, cache, cache.labelsOf(src)!, cache.labelsOf(dst)!, dport, protocol, { enforcement });
        result.checked++;
        if (expected) result.allowed++;
        if ((traced.verdict === 'allowed') !== expected && result.mismatches.length < 3) {
          result.mismatches.push(
            `seed ${seed} ${enforcement}: ${src} -> ${dst} ${dport}/${protocol}: map ${expected}, ` +
              `trace ${traced.verdict}\n${traced.explanation.join('\n')}`,
          );
        }
      }
    }
  }
  return result;
}

t.test('trace agrees with the compiled map on random policies', async (t) => {
  let differ = 0;
  for (const seed of [20261123, 1, 2, 3, 4, 5]) {
    const policyCount = 3 + (seed % 12);
    const byMode = (['default', 'always'] as const).map((mode) => crossCheck(seed, policyCount, mode));
    for (const [i, r] of byMode.entries()) {
      t.same(
        r.mismatches,
        [],
        `seed ${seed}, ${policyCount} policies, ${i === 0 ? 'default' : 'always'}: ${r.checked} flows, ` +
          `${r.allowed} allowed, trace and map agree`,
      );
      t.ok(r.allowed > 0 && r.allowed < r.checked, 'the random policy allows some flows and denies others');
    }
    if (byMode[0]!.allowed !== byMode[1]!.allowed) differ++;
  }
  t.ok(differ > 0, 'some seeds leave endpoints unenforced in default mode');
});
