import t from 'tap';
import {
  diffPolicyEntries,
  intersectKeys,
  lookupPolicyEntry,
  portKeyMatches,
  portRangeKeys,
  portRangeToPrefixes,
  PolicyEntryBuilder,
  type PolicyEntry,
  type PolicyEntryKey,
} from '../../../src/policy/policy-entries.js';

const key = (peer: number, dport: number, portPrefixLen: number, protocol: number): PolicyEntryKey => ({
  direction: 'ingress',
  peer,
  dport,
  portPrefixLen,
  protocol,
});
const entry = (k: PolicyEntryKey, verdict: 'allow' | 'deny', ruleName = 'r'): PolicyEntry => ({
  ...k,
  verdict,
  ruleName,
  cookie: 7,
});

t.test('port ranges become aligned blocks that cover exactly the range', async (t) => {
  t.same(portRangeToPrefixes(1024, 65535), [
    { dport: 1024, portPrefixLen: 6 },
    { dport: 2048, portPrefixLen: 5 },
    { dport: 4096, portPrefixLen: 4 },
    { dport: 8192, portPrefixLen: 3 },
    { dport: 16384, portPrefixLen: 2 },
    { dport: 32768, portPrefixLen: 1 },
  ]);
  t.same(portRangeToPrefixes(0, 65535), [{ dport: 0, portPrefixLen: 0 }]);
  t.same(portRangeToPrefixes(80, 80), [{ dport: 80, portPrefixLen: 16 }]);
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (let i = 0; i < 200; i++) {
    const low = 1 + Math.floor(rand() * 65000);
    const high = Math.min(65535, low + Math.floor(rand() * 5000));
    const blocks = portRangeToPrefixes(low, high);
    t.ok(blocks.length <= 30, 'at most 30 blocks for any range');
    for (const probe of [low - 1, low, Math.floor((low + high) / 2), high, high + 1]) {
      const hits = blocks.filter((b) => portKeyMatches(b, probe)).length;
      if (hits !== (probe >= low && probe <= high ? 1 : 0)) t.fail(`${low}-${high}: port ${probe} in ${hits} blocks`);
    }
  }
});

t.test('port keys for ANY, port 0 and the expansion threshold', async (t) => {
  t.same(portRangeKeys({ port: 0, endPort: 0, protocol: 'ANY' }), [{ dport: 0, portPrefixLen: 0, protocol: 0 }]);
  t.same(
    portRangeKeys({ port: 53, endPort: 53, protocol: 'ANY' }).map((k) => k.protocol),
    [6, 17],
  );
  t.equal(portRangeKeys({ port: 1000, endPort: 1063, protocol: 'TCP' }).length, 64);
  t.same(
    portRangeKeys({ port: 1000, endPort: 1064, protocol: 'TCP' }).map((k) => `${k.dport}/${k.portPrefixLen}`),
    ['1000/13', '1008/12', '1024/11', '1056/13', '1064/16'],
  );
});

t.test('intersections of keys', async (t) => {
  t.same(intersectKeys(key(0, 22, 16, 6), key(5, 0, 0, 0)), key(5, 22, 16, 6));
  t.same(intersectKeys(key(5, 1024, 6, 6), key(0, 1500, 16, 6)), key(5, 1500, 16, 6));
  t.equal(intersectKeys(key(5, 0, 0, 0), key(6, 0, 0, 0)), undefined, 'different peers');
  t.equal(intersectKeys(key(0, 80, 16, 6), key(0, 80, 16, 17)), undefined, 'different protocols');
  t.equal(intersectKeys(key(0, 1024, 6, 6), key(0, 4096, 16, 6)), undefined, 'disjoint ports');
  t.equal(
    intersectKeys(key(0, 0, 0, 0), { ...key(0, 0, 0, 0), direction: 'egress' }),
    undefined,
    'different directions',
  );
});

t.test('builder: same key merges deny-first, then by rule name; overlaps derive denies', async (t) => {
  const b = new PolicyEntryBuilder();
  b.add(entry(key(5, 80, 16, 6), 'allow', 'zeta'));
  b.add(entry(key(5, 80, 16, 6), 'allow', 'alpha'));
  b.add(entry(key(9, 0, 0, 0), 'allow', 'x'));
  b.add(entry(key(0, 443, 16, 6), 'deny', 'no-443'));
  b.add(entry(key(9, 443, 16, 6), 'deny', 'b'));
  b.add(entry(key(9, 443, 16, 6), 'deny', 'a'));
  const out = b.finish();
  t.same(
    out.map((e) => `${e.peer} ${e.dport} ${e.verdict} ${e.ruleName}`),
    ['0 443 deny no-443', '5 80 allow alpha', '9 0 allow x', '9 443 deny a'],
  );
  t.equal(lookupPolicyEntry(out, 'ingress', 9, 443, 6)?.verdict, 'deny');
  t.equal(lookupPolicyEntry(out, 'ingress', 9, 444, 6)?.verdict, 'allow');
  t.equal(lookupPolicyEntry(out, 'ingress', 5, 443, 6)?.verdict, 'deny');
  t.equal(lookupPolicyEntry(out, 'ingress', 5, 81, 6), undefined);
  t.equal(lookupPolicyEntry(out, 'egress', 9, 80, 6), undefined, 'directions are separate');
});

t.test('diff is sorted and value-aware', async (t) => {
  const a = [entry(key(1, 0, 0, 0), 'allow'), entry(key(2, 80, 16, 6), 'allow'), entry(key(3, 0, 0, 0), 'allow')];
  const b = [entry(key(3, 0, 0, 0), 'allow'), entry(key(2, 80, 16, 6), 'deny'), entry(key(4, 0, 0, 0), 'allow')];
  const d = diffPolicyEntries(a, b);
  t.same(
    d.upserts.map((e) => `${e.peer} ${e.verdict}`),
    ['2 deny', '4 allow'],
  );
  t.same(d.deletes, [key(1, 0, 0, 0)]);
  t.same(diffPolicyEntries([], a).upserts.length, 3);
  t.same(diffPolicyEntries(a, []).deletes.length, 3);
  t.same(diffPolicyEntries(a, [{ ...a[0]!, cookie: 8 }, a[1]!, a[2]!]).upserts.length, 1, 'a new cookie is rewritten');
});
