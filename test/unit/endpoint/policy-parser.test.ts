/**
 * The policy parser thread: the same policies (and the same validation errors) as parsing on the
 * main thread, for imports and stored repository snapshots, while the main thread's event loop
 * keeps running during a large parse.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PolicyParser } from '../../../src/endpoint/policy-parser.js';
import { parsePolicyText, PolicyRepository } from '../../../src/policy/index.js';
import { PolicyValidationError } from '../../../src/util/errors.js';

const FIXTURES = new URL('../../fixtures/cilium-policies/', import.meta.url).pathname;

const parser = new PolicyParser();
t.teardown(() => parser.close());

function inline<T>(fn: () => T): { value?: T; error?: unknown } {
  try {
    return { value: fn() };
  } catch (error) {
    return { error };
  }
}

const CIDR_YAML = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: cidr, labels: { team: a } }
spec:
  endpointSelector:
    matchLabels: { app: web }
    matchExpressions: [ { key: tier, operator: NotIn, values: [ b, a ] } ]
  egress:
  - toCIDRSet: [ { cidr: 198.18.0.0/16, except: [ 198.18.1.0/24, 198.18.7.7/32 ] } ]
    toPorts: [ { ports: [ { port: "80", endPort: 90, protocol: TCP } ] } ]
  - toEntities: [ world ]
  ingressDeny:
  - fromCIDR: [ 198.19.0.0/24 ]
`;

t.test('imports: the same policies or the same error as parsePolicyText', async (t) => {
  const texts = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json') || f.endsWith('.yaml'))
    .map((f) => [f, readFileSync(join(FIXTURES, f), 'utf8')] as const);
  texts.push(
    ['cidr', CIDR_YAML],
    ['bad yaml', 'a: [b'],
    ['bad policy', '{"kind":"CiliumNetworkPolicy","metadata":{"name":"x"},"spec":{"egress":"no"}}'],
    ['empty', ''],
  );
  let valid = 0;
  for (const [name, text] of texts) {
    const expected = inline(() => parsePolicyText(text));
    const got = await parser.parseText(text).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    if (expected.error) {
      t.type(
        (got as { error?: unknown }).error,
        PolicyValidationError,
        `${name}: refused with a PolicyValidationError`,
      );
      t.equal(
        (got as { error?: Error }).error?.message,
        (expected.error as Error).message,
        `${name}: the same message`,
      );
    } else {
      valid++;
      t.same((got as { value?: unknown }).value, expected.value, `${name}: the same policies`);
    }
  }
  t.ok(valid >= 5, `${valid} valid inputs compared`);
});

t.test('snapshots: the same stored policies as PolicyRepository.parseSnapshot', async (t) => {
  const repo = new PolicyRepository();
  repo.import(CIDR_YAML);
  repo.import(readFileSync(join(FIXTURES, 'icmp-ingress.yaml'), 'utf8'));
  const value = JSON.stringify(repo.toJSON());
  const parsed = await parser.parseSnapshot(value);
  t.same(parsed, PolicyRepository.parseSnapshot(JSON.parse(value)));
  const rebuilt = PolicyRepository.fromParsedSnapshot(parsed);
  t.same(rebuilt.toJSON(), repo.toJSON(), 'a repository rebuilt from it stores the same');
  t.same(rebuilt.rules(), repo.rules(), 'and has the same rules');
  await t.rejects(
    parser.parseSnapshot('{"revision": 2, "polic'),
    PolicyValidationError,
    'not JSON: refused as invalid',
  );
  await t.rejects(
    parser.parseSnapshot('{"revision": 0, "policies": []}'),
    PolicyValidationError,
    'a bad snapshot: refused as invalid',
  );
});

t.test('a large import is parsed while the event loop keeps running', async (t) => {
  const lines = Array.from({ length: 16_000 }, (_, i) => `    - 198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  const text =
    'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: { name: big }\nspec:\n  endpointSelector: {}\n' +
    `  egress:\n  - toCIDR:\n${lines.join('\n')}\n`;
  const started = performance.now();
  const expected = parsePolicyText(text);
  const inlineMs = performance.now() - started;
  let last = performance.now();
  let maxGapMs = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 5);
  let got: Awaited<ReturnType<typeof parser.parseText>>;
  try {
    got = await parser.parseText(text);
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    clearInterval(probe);
  }
  t.same(got, expected);
  t.comment(
    `16 000 CIDRs of YAML: ${inlineMs.toFixed(0)} ms on the main thread; ` +
      `through the parser thread the longest event-loop block was ${maxGapMs.toFixed(0)} ms`,
  );
  t.ok(
    maxGapMs < inlineMs / 2,
    `the longest block (${maxGapMs.toFixed(0)} ms) is well under the parse itself (${inlineMs.toFixed(0)} ms)`,
  );
});

t.test('a closed parser starts again on the next request', async (t) => {
  await parser.close();
  t.same((await parser.parseText(readFileSync(join(FIXTURES, 'l3-rule.json'), 'utf8'))).length, 1);
});
