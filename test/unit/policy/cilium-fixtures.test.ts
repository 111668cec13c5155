/**
 * Policy files as Cilium users have them (test/fixtures/cilium-policies/): bare rule arrays with
 * labels, icmps, Kubernetes-only label keys, port-less ports; and the repository's label
 * semantics (import replaces by labels, get and delete by labels).
 */
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import { compileEndpointPolicy } from '../../../src/policy/compile.js';
import { parsePolicyText } from '../../../src/policy/parse.js';
import { parseRuleLabelText } from '../../../src/policy/parse-rule.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP, type PolicyEntry } from '../../../src/policy/policy-entries.js';
import { PolicyRepository } from '../../../src/policy/repository.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import { NotFoundError, PolicyValidationError } from '../../../src/util/errors.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/cilium-policies/${name}`, import.meta.url), 'utf8');

const SERVICE = 300;
const FRONTEND = 301;
const BACKEND = 302;
const cache = new SelectorCache([
  [SERVICE, LabelSet.parse(['container:app=myService'])],
  [FRONTEND, LabelSet.parse(['container:role=frontend'])],
  [BACKEND, LabelSet.parse(['container:role=backend'])],
]);

const keys = (entries: readonly PolicyEntry[]) =>
  entries
    .filter((e) => e.ruleName !== 'reserved:allow-localhost')
    .map((e) => `${e.direction} ${e.peer} ${e.protocol}/${e.dport}/${e.portPrefixLen} ${e.verdict}`);

function rejectsWith(t: Test, text: string, lines: string[]): void {
  t.throws(() => parsePolicyText(text), PolicyValidationError);
  let message = '';
  try {
    parsePolicyText(text);
  } catch (err) {
    message = (err as Error).message;
  }
  for (const line of lines) t.match(message, line);
  t.equal(message.split('\n').length, lines.length, 'one line per problem');
}

t.test('bare rule arrays with labels become one policy per label set, named after the labels', async (t) => {
  const [l3] = parsePolicyText(fixture('l3-rule.json'));
  t.match(l3!.name, /^l3-rule-[0-9a-f]{8}$/);
  t.same(l3!.ruleLabels, [{ source: 'unspec', key: 'name', value: 'l3-rule' }]);
  t.same(l3!.rules[0]!.labels, [{ source: 'unspec', key: 'name', value: 'l3-rule' }]);
  t.same(parsePolicyText(fixture('l3-rule.json'))[0]!.name, l3!.name, 'the name is stable');
  t.same(keys(compileEndpointPolicy(repoWith(fixture('l3-rule.json')), cache, BACKEND).entries), [
    `ingress ${FRONTEND} 0/0/0 allow`,
  ]);

  const world = parsePolicyText(fixture('world.json'));
  t.equal(world.length, 1, 'two rules with the same labels: one policy');
  t.equal(world[0]!.rules.length, 2);
  t.equal(world[0]!.document['kind'], 'CiliumNetworkPolicy', 'stored as an ordinary document');

  const [range] = parsePolicyText(fixture('l4-port-range.json'));
  t.same(range!.ruleLabels, [{ source: 'unspec', key: 'name', value: 'l4-rule' }], 'source defaults to unspec');
  const single = parsePolicyText(JSON.stringify({ endpointSelector: {}, egress: [{}] }));
  t.match(single[0]!.name, /^rules-[0-9a-f]{8}$/, 'a single unlabeled rule object: named by its content');
  t.same(single[0]!.ruleLabels, []);
  const two = parsePolicyText(
    JSON.stringify([
      { labels: ['k8s:a=1', 'b'], endpointSelector: {} },
      {
        labels: [
          { key: 'b', value: '' },
          { key: 'a', value: '1', source: 'k8s' },
        ],
        endpointSelector: {},
      },
    ]),
  );
  t.equal(two.length, 1, 'string and object labels, in any order, are the same set');
  rejectsWith(
    t,
    JSON.stringify([
      { labels: [{ value: 'x' }], endpointSelector: {} },
      { labels: [{ key: 'a', source: 'any' }], endpointSelector: {} },
    ]),
    ['rule 1: labels[0].key: is required', 'rule 2: labels[0]: a rule label needs a source other than "any"'],
  );
});

function repoWith(...texts: string[]): PolicyRepository {
  const repo = new PolicyRepository();
  for (const text of texts) repo.import(text);
  return repo;
}

t.test('icmps: types by number and by name compile to protocol 1 entries with the type as the port', async (t) => {
  const egress = compileEndpointPolicy(repoWith(fixture('icmp.json')), cache, SERVICE);
  t.equal(egress.egressEnforced, true);
  t.same(
    keys(egress.entries),
    [`egress 0 ${PROTO_ICMP}/8/16 allow`, `egress 0 ${PROTO_ICMP}/14/16 allow`],
    'type 8 twice (8 and EchoRequest) is one entry',
  );

  const ingress = compileEndpointPolicy(repoWith(fixture('icmp-ingress.yaml')), cache, SERVICE);
  t.same(keys(ingress.entries), [`ingress 0 ${PROTO_TCP}/80/16 allow`, `ingress ${FRONTEND} ${PROTO_ICMP}/8/16 allow`]);

  const echoReply = compileEndpointPolicy(
    repoWith(
      JSON.stringify([
        { endpointSelector: {}, ingressDeny: [{ icmps: [{ fields: [{ type: 'EchoReply' }] }] }], ingress: [{}] },
      ]),
    ),
    cache,
    SERVICE,
  );
  t.same(
    keys(echoReply.entries),
    [`ingress 0 ${PROTO_ICMP}/0/16 deny`, `ingress 1 ${PROTO_ICMP}/0/16 deny`],
    'type 0 is one type (echo reply), not every port; deny rules take icmps too',
  );

  rejectsWith(t, fixture('icmp-ipv6.json'), [
    'rule 1: egress[0].icmps[0].fields[0].family: ICMPv6 rules are not supported: the datapath is IPv4 only',
  ]);
  rejectsWith(
    t,
    JSON.stringify([
      {
        endpointSelector: {},
        egress: [
          { icmps: [{ fields: [{ type: 'Bogus' }, { type: 256 }, {}] }], toPorts: [{ ports: [{ port: '80' }] }] },
        ],
      },
      { endpointSelector: {}, ingress: [{ icmps: [{ fields: [{ type: 8, code: 0 }] }, {}] }] },
    ]),
    [
      'rule 1: egress[0].icmps[0].fields[0].type: the string "Bogus" is not an ICMP type; ' +
        'use a number from 0 to 255 or one of EchoReply',
      'rule 1: egress[0].icmps[0].fields[1].type: number 256 is not an ICMP type',
      'rule 1: egress[0].icmps[0].fields[2].type: is required',
      'rule 1: egress[0]: icmps may only be present without toPorts (as in Cilium)',
      'rule 2: ingress[0].icmps[0].fields[0].code: unknown field "code"',
      'rule 2: ingress[0].icmps[1].fields: at least one ICMP field is required',
    ],
  );
});

t.test('Kubernetes-only label keys are refused by path, saying why', async (t) => {
  rejectsWith(t, fixture('kube-dns.yaml'), [
    'policy "allow-kube-dns": spec.egress[0].toEndpoints[0].matchLabels.k8s:io.kubernetes.pod.namespace: ' +
      'label key "k8s:io.kubernetes.pod.namespace" can never match here: "k8s:" labels come from Kubernetes pods, ' +
      'and Docker containers have none',
    'policy "allow-kube-dns": spec.egress[0].toEndpoints[0].matchLabels.k8s:k8s-app: ' +
      'label key "k8s:k8s-app" can never match here',
    'policy "in-namespace": spec.endpointSelector.matchExpressions[0].key: ' +
      'label key "io.cilium.k8s.policy.cluster" can never match here',
  ]);
  t.equal(
    parsePolicyText(
      'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ok}\nspec:\n' +
        '  endpointSelector: {matchLabels: {"container:io.kubernetes.x": "y", "k8s-app": dns}}\n',
    ).length,
    1,
    'a container label with such a key, and k8s-app, are fine',
  );
});

t.test(
  'a ports entry without port is every port of its protocol; toPorts: [{}] is every port and protocol',
  async (t) => {
    const policy = compileEndpointPolicy(repoWith(fixture('ports-without-port.yaml')), cache, SERVICE);
    t.same(keys(policy.entries), [`ingress ${FRONTEND} ${PROTO_UDP}/0/0 allow`, `ingress ${BACKEND} 0/0/0 allow`]);
    const zero = compileEndpointPolicy(
      repoWith(
        JSON.stringify([
          {
            endpointSelector: {},
            ingress: [
              {
                toPorts: [
                  {
                    ports: [
                      { port: '0', protocol: 'TCP' },
                      { port: '', protocol: 'UDP' },
                    ],
                  },
                ],
              },
            ],
          },
        ]),
      ),
      cache,
      SERVICE,
    );
    t.same(
      keys(zero.entries),
      [`ingress 0 ${PROTO_TCP}/0/0 allow`, `ingress 0 ${PROTO_UDP}/0/0 allow`],
      'port "0" and "" too',
    );
  },
);

t.test('repository: import replaces the rules with the same labels; get and delete select by labels', async (t) => {
  const repo = repoWith(fixture('l3-rule.json'), fixture('icmp-ingress.yaml'));
  const [l3] = repo.get().filter((p) => p.name.startsWith('l3-rule-'));
  const sel = (...texts: string[]) => texts.map((x) => parseRuleLabelText(x, 'any'));

  const wider = fixture('l3-rule.json').replace('"role": "frontend"', '"role": "backend"');
  const change = repo.import(wider);
  t.equal(repo.size, 2, 'same labels: replaced, not added');
  t.same(change.imported, [l3!.name]);
  t.same(
    keys(compileEndpointPolicy(repo, cache, BACKEND).entries),
    [`ingress ${BACKEND} 0/0/0 allow`],
    'the new rule is in force',
  );

  const tagged = JSON.stringify([
    { labels: ['name=l3-rule', 'env=prod'], endpointSelector: { matchLabels: { role: 'frontend' } }, egress: [{}] },
  ]);
  repo.import(tagged);
  t.equal(repo.size, 3, 'a superset of labels is another rule set');
  t.same(repo.getByLabels(sel('name=l3-rule')).length, 2, 'get by labels: both');
  t.same(repo.getByLabels(sel('unspec:env=prod')).length, 1);
  t.same(repo.getByLabels(sel('k8s:name=l3-rule')), [], 'a source other than any must match');
  const replacing = repo.import(fixture('l3-rule.json'));
  t.equal(
    repo.size,
    2,
    'importing {name=l3-rule} replaces the rules labelled {name=l3-rule, env=prod} too (Cilium: labels contain)',
  );
  t.equal(replacing.deleted.length, 1);
  t.equal(replacing.endpointSelectors.length, 2, 'the endpoints of removed and added rules are regenerated');

  const revision = repo.revision;
  t.throws(() => repo.deleteByLabels(sel('name=nothing')), NotFoundError);
  t.equal(repo.revision, revision, 'a failed delete changes nothing');
  const deleted = repo.deleteByLabels(sel('name=l3-rule'));
  t.same(deleted.deleted, [l3!.name]);
  t.same(
    repo.get().map((p) => p.name),
    ['icmp-ingress'],
  );

  repo.import(
    'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: mixed}\nspecs:\n' +
      '- {labels: [team=a], endpointSelector: {}}\n- {endpointSelector: {}}\n',
  );
  t.throws(
    () => repo.deleteByLabels(sel('team=a')),
    /policy "mixed" has 1 of its 2 rules labelled any:team=a; only whole policies are replaced or deleted/,
  );
  t.throws(
    () => repo.import(JSON.stringify([{ labels: ['team=a'], endpointSelector: {} }])),
    /policy "mixed" has 1 of its 2 rules/,
    'nor replaced by an import',
  );
  t.ok(repo.get('mixed'), 'and it is kept');
  const restored = PolicyRepository.fromJSON(JSON.parse(JSON.stringify(repo.toJSON())));
  t.same(
    restored.getByLabels(sel('team=a')).map((p) => p.name),
    ['mixed'],
    'labels survive persistence',
  );
});
