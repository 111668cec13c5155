/**
 * Policy size limits (src/policy/limits.ts): each is refused at parse time with a validation error
 * naming the limit, quickly; documents read back from the store are not held to them.
 * Issue 15 items 2 and 3 (4 MB of empty YAML documents, 100 000 ingress rules, 200 000
 * matchExpressions values, a 1 MB label key, 60 000 CIDR sets).
 */
import t, { type Test } from 'tap';
import { performance } from 'node:perf_hooks';
import { PolicyValidationError } from '../../../src/util/errors.js';
import { parsePolicyText, parsePolicyValue } from '../../../src/policy/parse.js';
import { POLICY_LIMITS } from '../../../src/policy/limits.js';
import { PolicyRepository } from '../../../src/policy/repository.js';

function doc(spec: Record<string, unknown>, name = 'big'): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name },
    spec: { endpointSelector: {}, ...spec },
  };
}

/** Asserts a quick ERR_POLICY_INVALID whose message matches `pattern`. */
function refused(t: Test, what: string, parse: () => unknown, pattern: RegExp): void {
  const started = performance.now();
  try {
    parse();
    t.fail(`${what}: expected a PolicyValidationError`);
  } catch (err) {
    const ms = performance.now() - started;
    t.type(err, PolicyValidationError, what);
    t.equal((err as PolicyValidationError).code, 'ERR_POLICY_INVALID');
    t.equal((err as PolicyValidationError).kind, 'BadRequest', 'a 400, not an internal error');
    t.match((err as Error).message, pattern, what);
    t.ok(ms < 3_000, `${what}: refused in ${ms.toFixed(0)} ms`);
  }
}

t.test('import text: bytes and number of YAML documents', async (t) => {
  refused(
    t,
    '4 MB of empty YAML documents',
    () => parsePolicyText('---\n'.repeat(1_000_000)),
    /limit is 524288 bytes per import/,
  );
  refused(
    t,
    '400 KB of empty YAML documents',
    () => parsePolicyText('---\n'.repeat(100_000)),
    /more than 1000 YAML documents/,
  );
  const many = Array.from({ length: POLICY_LIMITS.policies + 1 }, (_, i) =>
    doc({ egress: [{ toEntities: ['world'] }] }, `p${i}`),
  );
  refused(
    t,
    '1001 policies in a JSON list',
    () => parsePolicyValue(many),
    /1001 policy documents in one input; the limit is 1000/,
  );
});

t.test('rules, rule items and CIDRs per policy', async (t) => {
  refused(
    t,
    '100 000 ingress items',
    () => parsePolicyValue(doc({ ingress: Array.from({ length: 100_000 }, () => ({ fromEntities: ['world'] })) })),
    /more than 4096 ingress\/egress items/,
  );
  refused(
    t,
    '300 rules',
    () =>
      parsePolicyValue({
        ...doc({}),
        spec: undefined,
        specs: Array.from({ length: 300 }, () => ({ endpointSelector: {}, egress: [{ toEntities: ['world'] }] })),
      }),
    /300 rules; the limit is 256/,
  );
  const sets = Array.from({ length: 60_000 }, (_, i) => ({
    cidr: `198.18.${(i >> 8) & 255}.0/24`,
    except: [`198.18.${(i >> 8) & 255}.${i & 255}/32`],
  }));
  refused(
    t,
    '60 000 toCIDRSet entries with except',
    () => parsePolicyValue(doc({ egress: [{ toCIDRSet: sets }] })),
    /more than 16384 CIDRs/,
  );
  refused(
    t,
    '20 000 toCIDR entries',
    () =>
      parsePolicyValue(
        doc({ egress: [{ toCIDR: Array.from({ length: 20_000 }, (_, i) => `198.18.${i >> 8}.${i & 255}/32`) }] }),
      ),
    /more than 16384 CIDRs/,
  );
  // One /0 minus 2000 /32s spread over the address space is 2000 strings but about 40 000 prefixes.
  const excepts = Array.from({ length: 2000 }, (_, i) => `${(i << 20) >>> 24}.${((i << 20) >>> 16) & 255}.0.1/32`);
  refused(
    t,
    'except fan-out',
    () => parsePolicyValue(doc({ egress: [{ toCIDRSet: [{ cidr: '0.0.0.0/0', except: excepts }] }] })),
    /prefixes once the excepts are subtracted; the limit is 32768/,
  );
  const ok = parsePolicyValue(
    doc({ egress: [{ toCIDR: Array.from({ length: 16_000 }, (_, i) => `198.18.${i >> 8}.${i & 255}/32`) }] }),
  );
  t.equal(ok.length, 1, '16 000 /32 toCIDR entries are within the limits');
});

t.test('selector values and label key/value length', async (t) => {
  const values = Array.from({ length: 200_000 }, (_, i) => `v${i}`);
  refused(
    t,
    '200 000 matchExpressions values',
    () => parsePolicyValue(doc({ endpointSelector: { matchExpressions: [{ key: 'app', operator: 'In', values }] } })),
    /more than 1024 values/,
  );
  refused(
    t,
    '1 MB label key in a peer selector',
    () => parsePolicyValue(doc({ ingress: [{ fromEndpoints: [{ matchLabels: { ['k'.repeat(1 << 20)]: 'x' } }] }] })),
    /label key is 1048576 bytes; the limit is 253 bytes/,
  );
  refused(
    t,
    '1 MB label key in matchExpressions',
    () =>
      parsePolicyValue(
        doc({
          endpointSelector: { matchExpressions: [{ key: `container:${'k'.repeat(1 << 20)}`, operator: 'Exists' }] },
        }),
      ),
    /label key is 1048576 bytes/,
  );
  refused(
    t,
    '5000-byte label value',
    () => parsePolicyValue(doc({ endpointSelector: { matchLabels: { app: 'v'.repeat(5000) } } })),
    /label value is 5000 bytes; the limit is 4096/,
  );
  t.equal(
    parsePolicyValue(doc({ endpointSelector: { matchLabels: { ['k'.repeat(253)]: 'v'.repeat(4096) } } })).length,
    1,
    'at the limits is accepted',
  );
});

t.test('documents read back from the store are not held to the limits', async (t) => {
  const big = doc({ egress: [{ toCIDR: Array.from({ length: 20_000 }, (_, i) => `198.18.${i >> 8}.${i & 255}/32`) }] });
  const repo = PolicyRepository.fromJSON({ revision: 2, policies: [{ name: 'big', revision: 2, document: big }] });
  t.equal(repo.size, 1, 'a stored over-limit policy still loads, so it can be deleted');
});
