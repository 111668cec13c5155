import t from 'tap';
import {
  cidrIdentityLabels,
  cidrLabelKey,
  formatPrefix,
  identityPrefix,
  parseCidrLabelKey,
  parsePrefix,
  prefixContains,
  subtractPrefixes,
  type IpPrefix,
} from '../../../src/policy/cidr.js';

function p(text: string): IpPrefix {
  const r = parsePrefix(text, true);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
}

t.test('parse and format IPv4 and IPv6 prefixes', async (t) => {
  t.equal(formatPrefix(p('10.1.2.3/8')), '10.0.0.0/8', 'host bits cleared');
  t.equal(formatPrefix(p('192.168.1.1')), '192.168.1.1/32', 'bare address is a host prefix');
  t.equal(formatPrefix(p('0.0.0.0/0')), '0.0.0.0/0');
  t.equal(formatPrefix(p('2001:DB8:0:0:1::1/64')), '2001:db8::/64');
  t.equal(formatPrefix(p('::1')), '::1/128');
  t.equal(formatPrefix(p('::/0')), '::/0');
  t.equal(formatPrefix(p('fe80::1:0:0:1/128')), 'fe80::1:0:0:1/128');
  t.equal(formatPrefix(p('2001:db8:0:1:0:0:0:1/128')), '2001:db8:0:1::1/128', 'longest zero run compressed');
  t.equal(formatPrefix(p('::ffff:10.0.0.1/128')), '::ffff:a00:1/128', 'embedded IPv4');
  for (const bad of [
    '10.0.0.0/33',
    '10.0.0/8',
    '256.0.0.0/8',
    '0198.18.0.0/15',
    '2001:db8::/129',
    '1::2::3',
    'fe80::1%eth0',
    'x',
    '10.0.0.0/-1',
    '10.0.0.0/',
  ]) {
    t.notOk(parsePrefix(bad, true).ok, `rejects ${bad}`);
  }
  const noBare = parsePrefix('10.0.0.1', false);
  t.notOk(noBare.ok);
  if (!noBare.ok) t.match(noBare.reason, /prefix length is required/);
});

t.test('containment', async (t) => {
  t.ok(prefixContains(p('10.0.0.0/8'), p('10.96.0.0/12')));
  t.ok(prefixContains(p('10.0.0.0/8'), p('10.0.0.0/8')));
  t.notOk(prefixContains(p('10.96.0.0/12'), p('10.0.0.0/8')));
  t.notOk(prefixContains(p('10.0.0.0/8'), p('11.0.0.0/8')));
  t.notOk(prefixContains(p('::/0'), p('10.0.0.0/8')), 'families never mix');
  t.ok(prefixContains(p('0.0.0.0/0'), p('203.0.113.7')));
});

t.test('cidr minus except gives the fewest disjoint prefixes', async (t) => {
  t.same(subtractPrefixes(p('10.0.0.0/8'), [p('10.96.0.0/12')]).map(formatPrefix), [
    '10.0.0.0/10',
    '10.64.0.0/11',
    '10.112.0.0/12',
    '10.128.0.0/9',
  ]);
  t.same(subtractPrefixes(p('10.0.0.0/8'), [p('10.0.0.0/8')]).map(formatPrefix), []);
  t.same(subtractPrefixes(p('10.0.0.0/8'), []).map(formatPrefix), ['10.0.0.0/8']);
  t.same(subtractPrefixes(p('10.0.0.0/30'), [p('10.0.0.1/32'), p('10.0.0.2/32')]).map(formatPrefix), [
    '10.0.0.0/32',
    '10.0.0.3/32',
  ]);
  const v6 = subtractPrefixes(p('2001:db8::/32'), [p('2001:db8::/34')]).map(formatPrefix);
  t.same(v6, ['2001:db8:4000::/34', '2001:db8:8000::/33']);
  // Exhaustive check on a small space: every address is kept iff it is in no except.
  const base = p('192.168.0.0/24');
  const excepts = [p('192.168.0.16/28'), p('192.168.0.200/29'), p('192.168.0.7/32')];
  const kept = subtractPrefixes(base, excepts);
  for (let i = 0; i < 256; i++) {
    const host = p(`192.168.0.${i}/32`);
    const inKept = kept.filter((k) => prefixContains(k, host)).length;
    const excluded = excepts.some((e) => prefixContains(e, host));
    if (inKept !== (excluded ? 0 : 1)) t.fail(`address .${i}: kept ${inKept} times, excluded=${excluded}`);
  }
  t.pass('256 addresses checked');
});

t.test('CIDR identity labels', async (t) => {
  const v4 = cidrIdentityLabels('10.0.0.0/8');
  t.same(v4.toStrings(), ['cidr:10.0.0.0/8', 'reserved:world']);
  const v6 = cidrIdentityLabels('2001:db8::/32');
  t.same(v6.toStrings(), ['cidr:2001-db8--/32', 'reserved:world'], 'IPv6 colons written as dashes, as Cilium does');
  t.equal(cidrLabelKey(p('2001:db8::/32')), '2001-db8--/32');
  t.equal(formatPrefix(parseCidrLabelKey('2001-db8--/32')!), '2001:db8::/32');
  t.equal(formatPrefix(identityPrefix(v6)!), '2001:db8::/32');
  t.equal(identityPrefix(v4)!.bits, 8);
  t.throws(() => cidrIdentityLabels('nope'), { code: 'ERR_POLICY_INVALID' });
});
