import t, { type Test } from 'tap';
import { PolicyValidationError } from '../../../src/util/errors.js';
import { parsePolicyText, parsePolicyValue, validatePolicyDocument } from '../../../src/policy/parse.js';
import type { CiliumNetworkPolicy, PeerRule } from '../../../src/policy/rule-types.js';
import { formatPrefix } from '../../../src/policy/cidr.js';

function one(yaml: string): CiliumNetworkPolicy {
  const policies = parsePolicyText(yaml);
  if (policies.length !== 1) throw new Error(`expected one policy, got ${policies.length}`);
  return policies[0]!;
}

function items(policy: CiliumNetworkPolicy): PeerRule[] {
  return policy.rules.flatMap((r) => [...r.peerRules]);
}

/** The assertions `rejects` uses: a tap Test. */
type Asserts = Test;

/** Asserts that parsing fails with ERR_POLICY_INVALID and that every expected line is in the message. */
function rejects(t: Asserts, yaml: string, expected: Array<string | RegExp>): string {
  let message = '';
  try {
    parsePolicyText(yaml);
    t.fail('expected a PolicyValidationError');
  } catch (err) {
    t.type(err, PolicyValidationError);
    t.equal((err as PolicyValidationError).code, 'ERR_POLICY_INVALID');
    message = (err as Error).message;
    for (const e of expected) {
      if (typeof e === 'string')
        t.ok(
          message.split('\n').some((line) => line.includes(e)),
          `message has: ${e}\n--- got:\n${message}`,
        );
      else t.match(message, e);
    }
  }
  return message;
}

const header = (name: string) => `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: ${name}\n`;

t.test('L3 fromEndpoints, as in the Cilium "Labels based" example', async (t) => {
  const p = one(`${header('l3-rule')}spec:
  endpointSelector:
    matchLabels:
      role: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        role: frontend
`);
  t.equal(p.name, 'l3-rule');
  t.equal(p.kind, 'CiliumNetworkPolicy');
  t.equal(p.rules.length, 1);
  const rule = p.rules[0]!;
  t.equal(rule.path, 'spec');
  t.equal(rule.endpointSelector.key, 'any:role=backend');
  t.ok(rule.hasIngress);
  t.notOk(rule.hasEgress);
  const [item] = items(p);
  t.equal(item!.path, 'spec.ingress[0]');
  t.equal(item!.direction, 'ingress');
  t.equal(item!.verdict, 'allow');
  t.same(item!.ports, []);
  t.equal(item!.peers!.length, 1);
  const peer = item!.peers![0]!;
  t.equal(peer.kind, 'endpoints');
  if (peer.kind === 'endpoints') t.equal(peer.selector.key, 'any:role=frontend');
});

t.test('L4 toPorts with fromEndpoints, endPort and protocols', async (t) => {
  const p = one(`${header('l4-rule')}spec:
  description: "L4 policy"
  endpointSelector:
    matchLabels:
      app: myService
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      - port: "8000"
        endPort: 8080
        protocol: tcp
      - port: "53"
        protocol: ANY
      - port: "5353"
`);
  t.equal(p.rules[0]!.description, 'L4 policy');
  t.same(items(p)[0]!.ports, [
    { port: 80, endPort: 80, protocol: 'TCP' },
    { port: 8000, endPort: 8080, protocol: 'TCP' },
    { port: 53, endPort: 53, protocol: 'ANY' },
    { port: 5353, endPort: 5353, protocol: 'ANY' },
  ]);
});

t.test('toPorts alone applies to every peer; an empty item allows nothing', async (t) => {
  const p = one(`${header('ports-only')}spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - port: "80"
        protocol: TCP
  - {}
  egress:
  - {}
`);
  const [portsOnly, empty, egress] = items(p);
  t.equal(portsOnly!.peers, undefined, 'no L3 part: any peer');
  t.same(empty!.peers, [], '{} allows nothing but still turns on default deny');
  t.same(egress!.peers, []);
  t.ok(p.rules[0]!.hasIngress);
  t.ok(p.rules[0]!.hasEgress);
  t.equal(p.rules[0]!.endpointSelector.requirements.length, 0, '{} selects all');
});

t.test('matchExpressions with all four operators and source prefixes', async (t) => {
  const p = one(`${header('expr')}spec:
  endpointSelector:
    matchLabels:
      container:app: web
      docker:tier: fe
      any:env: prod
      $host: ""
    matchExpressions:
    - {key: version, operator: In, values: [v2, v1]}
    - {key: container:stage, operator: NotIn, values: [dev]}
    - {key: owner, operator: Exists}
    - {key: legacy, operator: DoesNotExist}
  egress:
  - toEndpoints:
    - {}
`);
  const reqs = p.rules[0]!.endpointSelector.requirements.map(
    (r) => `${r.source}|${r.key}|${r.operator}|${r.values.join(',')}`,
  );
  t.same(reqs.sort(), [
    'any|env|In|prod',
    'any|legacy|DoesNotExist|',
    'any|owner|Exists|',
    'any|version|In|v1,v2',
    'container|app|In|web',
    'container|stage|NotIn|dev',
    'docker|tier|In|fe',
    'reserved|host|In|',
  ]);
});

t.test('CIDR rules: toCIDR (bare address allowed), toCIDRSet with except', async (t) => {
  const p = one(`${header('cidr-rule')}spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - toCIDR:
    - 20.1.1.1/32
    - 10.1.2.3
    - 2001:db8::1/64
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except:
      - 10.96.0.0/12
`);
  const [plain, set] = items(p);
  const cidrs = plain!.peers!.map((peer) => (peer.kind === 'cidr' ? peer.cidr : ''));
  t.same(cidrs, ['20.1.1.1/32', '10.1.2.3/32', '2001:db8::/64'], 'normalised; host bits cleared');
  const peer = set!.peers![0]!;
  t.equal(peer.kind, 'cidr');
  if (peer.kind !== 'cidr') return;
  t.equal(peer.cidr, '10.0.0.0/8');
  t.same(peer.except, ['10.96.0.0/12']);
  t.same(peer.prefixes.map(formatPrefix), ['10.0.0.0/10', '10.64.0.0/11', '10.112.0.0/12', '10.128.0.0/9']);
});

t.test('entities and deny sections', async (t) => {
  const p = one(`${header('deny')}spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEntities: [world]
    toPorts:
    - ports: [{port: "22", protocol: TCP}]
  egress:
  - toEntities: [cluster, host]
  egressDeny:
  - toEndpoints:
    - matchLabels: {app: db}
`);
  const summary = items(p).map(
    (i) =>
      `${i.path} ${i.direction} ${i.verdict} ` +
      `${i.peers!.map((x) => (x.kind === 'entity' ? x.entity : x.kind)).join(',')}`,
  );
  t.same(summary, [
    'spec.ingress[0] ingress allow all',
    'spec.ingressDeny[0] ingress deny world',
    'spec.egress[0] egress allow cluster,host',
    'spec.egressDeny[0] egress deny endpoints',
  ]);
});

t.test('specs array, spec + specs, clusterwide kind, metadata labels', async (t) => {
  const p = one(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: multi
  labels: {team: net}
  annotations: {note: "x"}
spec:
  endpointSelector: {matchLabels: {a: "1"}}
specs:
- endpointSelector: {matchLabels: {b: "2"}}
  ingress: [{}]
- endpointSelector: {matchLabels: {c: "3"}}
  egress: [{}]
`);
  t.equal(p.kind, 'CiliumClusterwideNetworkPolicy');
  t.same(p.labels, { team: 'net' });
  t.same(p.annotations, { note: 'x' });
  t.same(
    p.rules.map((r) => r.path),
    ['spec', 'specs[0]', 'specs[1]'],
  );
  t.same(
    p.rules.map((r) => [r.hasIngress, r.hasEgress]),
    [
      [false, false],
      [true, false],
      [false, true],
    ],
  );
  t.equal(p.document['kind'], 'CiliumClusterwideNetworkPolicy', 'document kept as given');
});

t.test('input shapes: multi-document YAML, JSON array, JSON object, List', async (t) => {
  const doc = (name: string) => ({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name },
    spec: { endpointSelector: {} },
  });
  t.same(
    parsePolicyText(
      `${header('a')}spec:\n  endpointSelector: {}\n---\n${header('b')}spec:\n  endpointSelector: {}\n---\n`,
    ).map((p) => p.name),
    ['a', 'b'],
  );
  t.same(
    parsePolicyText(JSON.stringify([doc('j1'), doc('j2')])).map((p) => p.name),
    ['j1', 'j2'],
  );
  t.same(
    parsePolicyText(JSON.stringify(doc('j3'))).map((p) => p.name),
    ['j3'],
  );
  t.same(
    parsePolicyText(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [doc('l1')] })).map((p) => p.name),
    ['l1'],
  );
  t.same(
    parsePolicyText(
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyList\nitems:\n- ${JSON.stringify(doc('l2'))}\n`,
    ).map((p) => p.name),
    ['l2'],
  );
  t.same(
    parsePolicyValue([doc('v1'), doc('v2')]).map((p) => p.name),
    ['v1', 'v2'],
  );
});

t.test('unsupported Cilium fields are rejected by path with what to do', async (t) => {
  const message = rejects(
    t,
    `${header('web')}spec:
  endpointSelector: {matchLabels: {app: web}}
  nodeSelector: {}
  enableDefaultDeny: {ingress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {app: shop}}]
    fromRequires: [{matchLabels: {env: prod}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
  - icmps: [{fields: [{type: EchoRequest, family: IPv6}]}]
  - authentication: {mode: required}
  egress:
  - toFQDNs: [{matchName: example.com}]
  - toServices: [{k8sService: {serviceName: x}}]
  - toNodes: [{}]
  - toGroups: [{aws: {}}]
  - toCIDRSet: [{cidrGroupRef: my-group}]
  - toPorts:
    - ports: [{port: "443", protocol: TCP}]
      serverNames: [example.com]
      terminatingTLS: {secret: {name: x}}
`,
    [
      'policy "web": spec.ingress[0].toPorts[0].rules: L7 rules (http) are not supported yet; ' +
        'remove rules to allow the whole port at L4',
      'policy "web": spec.nodeSelector: host policies (nodeSelector) are not supported',
      'policy "web": spec.enableDefaultDeny: enableDefaultDeny is not supported yet',
      'policy "web": spec.ingress[0].fromRequires: fromRequires is not supported yet',
      'policy "web": spec.ingress[1].icmps[0].fields[0].family: ' +
        'ICMPv6 rules are not supported: the datapath is IPv4 only',
      'policy "web": spec.ingress[2].authentication: mutual authentication (authentication) is not supported',
      'policy "web": spec.egress[0].toFQDNs: DNS-based rules (toFQDNs) are not supported yet; use toCIDR or toCIDRSet',
      'policy "web": spec.egress[1].toServices: toServices is not supported',
      'policy "web": spec.egress[2].toNodes: toNodes is not supported',
      'policy "web": spec.egress[3].toGroups: toGroups (cloud provider groups) is not supported',
      'policy "web": spec.egress[4].toCIDRSet[0].cidrGroupRef: CiliumCIDRGroup references are not supported',
      'policy "web": spec.egress[5].toPorts[0].serverNames: SNI matching (serverNames) is not supported yet',
      'policy "web": spec.egress[5].toPorts[0].terminatingTLS: terminatingTLS is not supported',
    ],
  );
  t.equal(message.split('\n').length, 13, 'one line per problem, all problems reported');
});

t.test('L7 kinds are named in the message', async (t) => {
  rejects(
    t,
    `${header('kafka')}spec:
  endpointSelector: {}
  egress:
  - toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{topic: x}]
  - toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchPattern: "*"}]
`,
    [
      'spec.egress[0].toPorts[0].rules: L7 rules (kafka) are not supported yet',
      'spec.egress[1].toPorts[0].rules: L7 rules (dns) are not supported yet',
    ],
  );
});

t.test('unknown fields are rejected by path, with a hint for case typos', async (t) => {
  rejects(
    t,
    `${header('typo')}spec:
  endpointSelector: {matchLabel: {app: web}}
  ingress:
  - fromendpoints: [{}]
  - fromEndpoints: [{}]
    toPorts:
    - ports: [{port: "80", proto: TCP}]
  bogus: 1
status: {}
`,
    [
      'policy "typo": spec.endpointSelector.matchLabel: unknown field "matchLabel"; ' +
        'expected one of: matchLabels, matchExpressions',
      'policy "typo": spec.ingress[0].fromendpoints: unknown field "fromendpoints"; did you mean "fromEndpoints"?',
      'policy "typo": spec.ingress[1].toPorts[0].ports[0].proto: unknown field "proto"',
      'policy "typo": spec.bogus: unknown field "bogus"',
      'policy "typo": status: status is written by Cilium',
    ],
  );
});

t.test('bad values: port, endPort, protocol, CIDR, operator, entity', async (t) => {
  rejects(
    t,
    `${header('bad')}spec:
  endpointSelector:
    matchExpressions:
    - {key: app, operator: Equals, values: [x]}
    - {key: tier, operator: In}
    - {key: env, operator: Exists, values: [prod]}
  ingress:
  - toPorts:
    - ports:
      - {port: "70000", protocol: TCP}
      - {port: "80", protocol: SCTP}
      - {port: "http", protocol: TCP}
      - {port: "80", endPort: 79, protocol: TCP}
      - {port: "80", protocol: ICMP}
      - {port: "81", protocol: FOO}
      - {port: "0", endPort: 10}
  - fromCIDR: ["10.0.0.0/33", "300.1.1.1", "10.0.0.010"]
  - fromCIDRSet:
    - {cidr: 10.0.0.1, except: []}
    - {cidr: 192.168.0.0/16, except: [10.0.0.0/8]}
  - fromEntities: [init, galaxy]
  - fromEndpoints:
    - matchLabels: {app: 1, tier: null}
`,
    [
      'policy "bad": spec.endpointSelector.matchExpressions[0].operator: operator "Equals" is not supported; ' +
        'use one of In, NotIn, Exists, DoesNotExist',
      'spec.endpointSelector.matchExpressions[1].values: operator In needs a non-empty list of values',
      'spec.endpointSelector.matchExpressions[2].values: operator Exists takes no values',
      'spec.ingress[0].toPorts[0].ports[0].port: port 70000 is out of range; use a port number from 0 to 65535',
      'spec.ingress[0].toPorts[0].ports[1].protocol: protocol SCTP is not supported yet; use TCP, UDP or ANY',
      'spec.ingress[0].toPorts[0].ports[2].port: named ports ("http") are not supported; use the port number',
      'spec.ingress[0].toPorts[0].ports[3].endPort: endPort 79 is below port 80',
      'spec.ingress[0].toPorts[0].ports[4].protocol: ' +
        'protocol ICMP is not allowed in toPorts (as in Cilium); write ICMP rules as icmps',
      'spec.ingress[0].toPorts[0].ports[5].protocol: unknown protocol "FOO"',
      'spec.ingress[0].toPorts[0].ports[6].endPort: endPort needs a non-zero port',
      'spec.ingress[1].fromCIDR[0]: "10.0.0.0/33" is not a valid CIDR: ' +
        'prefix length "33" must be a number from 0 to 32 for IPv4',
      'spec.ingress[1].fromCIDR[1]: "300.1.1.1" is not a valid CIDR',
      'spec.ingress[1].fromCIDR[2]: "10.0.0.010" is not a valid CIDR',
      'spec.ingress[2].fromCIDRSet[0].cidr: "10.0.0.1" is not a valid CIDR: a prefix length is required',
      'spec.ingress[2].fromCIDRSet[1].except[0]: except "10.0.0.0/8" is not inside cidr "192.168.0.0/16"',
      'spec.ingress[3].fromEntities[0]: entity "init" is not supported; use one of all, ' +
        'world, host, remote-node, cluster',
      'spec.ingress[3].fromEntities[1]: unknown entity "galaxy"',
      'spec.ingress[4].fromEndpoints[0].matchLabels.app: label value must be a string, not number 1; quote it',
      'spec.ingress[4].fromEndpoints[0].matchLabels.tier: label value must be a string, not null',
    ],
  );
});

t.test('document-level problems: apiVersion, kind, name, spec, bare rules, duplicates', async (t) => {
  rejects(t, `apiVersion: cilium.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}}\n`, [
    'policy "x": apiVersion: the string "cilium.io/v1" is not supported; use cilium.io/v2',
    'policy "x": kind: the string "NetworkPolicy" is not supported; Kubernetes NetworkPolicy is not supported',
  ]);
  rejects(
    t,
    'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {namespace: default}\n' +
      'spec: {endpointSelector: {}}\n',
    ['document 1: metadata.namespace: there are no namespaces here', 'document 1: metadata.name: is required'],
  );
  rejects(t, `${header('Bad_Name')}spec: {endpointSelector: {}}\n`, [
    'metadata.name: must be lower-case letters, digits',
  ]);
  rejects(t, `${header('nospec')}`, ['policy "nospec": spec: is required (or specs, a list of rules)']);
  rejects(t, `${header('nosel')}spec:\n  ingress: [{}]\n`, [
    'policy "nosel": spec.endpointSelector: is required; use {} to select every container',
  ]);
  rejects(t, `${header('emptyspecs')}specs: []\n`, ['policy "emptyspecs": specs: must contain at least one rule']);
  rejects(
    t,
    JSON.stringify([{ endpointSelector: { matchLabels: { id: 'app1' } }, ingress: [{ fromEndpoints: 'x' }] }]),
    ['rule 1: ingress[0].fromEndpoints: must be a list'],
  );
  rejects(t, `${header('dup')}spec: {endpointSelector: {}}\n---\n${header('dup')}spec: {endpointSelector: {}}\n`, [
    'policy "dup": defined twice in this input (documents 1 and 2)',
  ]);
  rejects(
    t,
    `${header('combo')}spec:\n  endpointSelector: {}\n  ingress:\n` +
      '  - fromEndpoints: [{}]\n    fromCIDR: [10.0.0.0/8]\n',
    [
      'policy "combo": spec.ingress[0]: ' +
        'combining fromEndpoints and fromCIDR in one rule is not supported (as in Cilium)',
    ],
  );
  rejects(t, `${header('listy')}spec:\n  endpointSelector: {}\n  ingress: {fromEndpoints: []}\n`, [
    'spec.ingress: must be a list, not an object',
  ]);
  rejects(
    t,
    `${header('denyl7')}spec:\n  endpointSelector: {}\n  ingressDeny:\n` +
      '  - toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{}]}}]\n',
    ['spec.ingressDeny[0].toPorts[0].rules: L7 rules are not allowed in deny rules'],
  );
  const tooMany = Array.from({ length: 41 }, (_, i) => `{port: "${1000 + i}", protocol: TCP}`).join(', ');
  rejects(t, `${header('many')}spec:\n  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [${tooMany}]}]\n`, [
    'too many ports (41); the maximum is 40',
  ]);
});

t.test('syntax errors and empty input', async (t) => {
  rejects(t, 'a: [\n', [/cannot parse the policy input as YAML or JSON/, /YAML document 1: /]);
  rejects(t, `${header('k')}metadata: {}\n`, [/Map keys must be unique/]);
  rejects(t, '', ['no policy documents found']);
  rejects(t, '---\n---\n', ['no policy documents found']);
});

t.test('validatePolicyDocument reports without throwing', async (t) => {
  const result = validatePolicyDocument('nope', 3);
  t.equal(result.policy, undefined);
  t.same(result.problems, ['document 3: a policy document must be an object, not the string "nope"']);
});
