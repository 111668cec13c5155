/**
 * IPv4 arithmetic: strict parsing (as Go's net.ParseIP), canonical prefixes, containment,
 * overlap and subdivision, including the edges of the address space.
 */
import t from 'tap';
import {
  cidrContainsAddress,
  cidrContainsCidr,
  cidrsOverlap,
  formatIpv4,
  formatIpv4Cidr,
  hostAddressCount,
  isHostAddress,
  lastAddress,
  nthSubnet,
  parseIpv4,
  parseIpv4Cidr,
  subnetCount,
} from '../../../src/ipam/ipv4.js';

const cidr = (text: string) => {
  const parsed = parseIpv4Cidr(text);
  if (!parsed) throw new Error(`test CIDR ${text} does not parse`);
  return parsed;
};

t.test('parses and formats dotted quads, including 0.0.0.0 and 255.255.255.255', async (t) => {
  t.equal(parseIpv4('0.0.0.0'), 0);
  t.equal(parseIpv4('255.255.255.255'), 2 ** 32 - 1);
  t.equal(parseIpv4('198.18.10.1'), 198 * 2 ** 24 + 18 * 2 ** 16 + 10 * 256 + 1);
  for (const text of ['0.0.0.0', '255.255.255.255', '198.18.10.1', '10.0.255.0', '128.0.0.1']) {
    t.equal(formatIpv4(parseIpv4(text)!), text, `${text} round-trips`);
  }
});

t.test('rejects anything that is not a plain dotted quad', async (t) => {
  for (const text of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', '1.2.3.4/24', ' 1.2.3.4', '::1', '1.2.3.0x1', '1..3.4']) {
    t.equal(parseIpv4(text), undefined, JSON.stringify(text));
  }
});

t.test('CIDRs are canonicalised (host bits cleared) and bad ones rejected', async (t) => {
  t.same(parseIpv4Cidr('10.1.2.3/24'), { network: parseIpv4('10.1.2.0'), prefixLength: 24 });
  t.equal(formatIpv4Cidr(cidr('198.18.13.200/25')), '198.18.13.128/25');
  t.equal(formatIpv4Cidr(cidr('255.255.255.255/0')), '0.0.0.0/0');
  t.equal(formatIpv4Cidr(cidr('255.255.255.255/32')), '255.255.255.255/32');
  for (const text of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/024', '10.0.0/8', '10.0.0.0/-1', 'fd00::/64']) {
    t.equal(parseIpv4Cidr(text), undefined, text);
  }
});

t.test('containment and overlap', async (t) => {
  const net = cidr('10.0.0.0/24');
  t.ok(cidrContainsAddress(net, parseIpv4('10.0.0.0')!));
  t.ok(cidrContainsAddress(net, parseIpv4('10.0.0.255')!));
  t.notOk(cidrContainsAddress(net, parseIpv4('10.0.1.0')!));
  t.notOk(cidrContainsAddress(net, parseIpv4('9.255.255.255')!));
  t.ok(cidrContainsCidr(net, cidr('10.0.0.128/25')));
  t.notOk(cidrContainsCidr(net, cidr('10.0.0.0/23')), 'a larger prefix is not inside');
  t.ok(cidrsOverlap(net, cidr('10.0.0.0/16')));
  t.ok(cidrsOverlap(cidr('10.0.0.0/16'), net));
  t.notOk(cidrsOverlap(net, cidr('10.0.1.0/24')));
  t.equal(lastAddress(cidr('0.0.0.0/0')), 2 ** 32 - 1);
});

t.test('subdivision into aligned blocks', async (t) => {
  const net = cidr('10.0.0.0/24');
  t.equal(subnetCount(net, 26), 4);
  t.equal(subnetCount(net, 24), 1);
  t.equal(subnetCount(net, 20), 1, 'a block larger than the prefix is the prefix itself');
  t.same([0, 1, 2, 3].map((i) => formatIpv4Cidr(nthSubnet(net, 26, i))), ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
  t.equal(formatIpv4Cidr(nthSubnet(net, 20, 0)), '10.0.0.0/24');
  t.equal(formatIpv4Cidr(nthSubnet(cidr('10.200.0.0/16'), 24, 255)), '10.200.255.0/24');
});

t.test('host addresses exclude the network and broadcast addresses', async (t) => {
  const net = cidr('198.18.5.0/29');
  t.notOk(isHostAddress(net, parseIpv4('198.18.5.0')!));
  t.notOk(isHostAddress(net, parseIpv4('198.18.5.7')!));
  t.ok(isHostAddress(net, parseIpv4('198.18.5.1')!));
  t.ok(isHostAddress(net, parseIpv4('198.18.5.6')!));
  t.notOk(isHostAddress(net, parseIpv4('198.18.5.8')!));
  t.equal(hostAddressCount(net, net), 6);
  t.equal(hostAddressCount(cidr('10.0.0.0/24'), cidr('10.0.0.128/25')), 127, 'only the broadcast falls in the upper half');
  t.equal(hostAddressCount(cidr('10.0.0.0/24'), cidr('10.0.0.64/26')), 64);
});
