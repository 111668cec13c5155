/**
 * IPv4 arithmetic: strict parsing (as Go's net.ParseIP), canonical prefixes, containment,
 * overlap and subdivision, including the edges of the address space. The parsers are the daemon's
 * only ones, so the tables below are what every caller accepts and refuses.
 */
import t from 'tap';
import {
  cidrContainsAddress,
  cidrContainsCidr,
  cidrsOverlap,
  formatIpv4,
  formatIpv4Cidr,
  hasHostBits,
  hostAddressCount,
  isHostAddress,
  lastAddress,
  nthSubnet,
  parseIpv4,
  parseIpv4Cidr,
  parseIpv4WithPrefix,
  parsePrefixLength,
  subnetCount,
} from '../../../src/util/ipv4.js';

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
  for (const text of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '198.018.3.4',
    '1.2.3.-1',
    '1.2.3.4/24',
    ' 1.2.3.4',
    '::1',
    '1.2.3.0x1',
    '1..3.4',
  ]) {
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
  t.same(
    [0, 1, 2, 3].map((i) => formatIpv4Cidr(nthSubnet(net, 26, i))),
    ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26'],
  );
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
  t.equal(
    hostAddressCount(cidr('10.0.0.0/24'), cidr('10.0.0.128/25')),
    127,
    'only the broadcast falls in the upper half',
  );
  t.equal(hostAddressCount(cidr('10.0.0.0/24'), cidr('10.0.0.64/26')), 64);
});

/** Text no parser of the daemon accepts as an address: [input, why]. */
const INVALID_ADDRESSES: Array<[string, string]> = [
  ['', 'empty'],
  ['010.0.0.1', 'leading zero (octal to inet_aton)'],
  ['10.0.0.01', 'leading zero in the last octet'],
  ['198.18.00.1', 'two zeros'],
  ['256.0.0.1', 'octet over 255'],
  ['1.2.3.1000', 'four digits'],
  ['1.2.3', 'missing part'],
  ['1.2.3.', 'empty last part'],
  ['.1.2.3', 'empty first part'],
  ['1.2.3.4.5', 'extra part'],
  [' 1.2.3.4', 'leading space'],
  ['1.2.3.4 ', 'trailing space'],
  ['1.2.3.4\n', 'trailing newline'],
  ['1.2. 3.4', 'inner space'],
  ['+1.2.3.4', 'sign'],
  ['1.2.3.0x4', 'hex'],
  ['1.2.3.4e0', 'exponent'],
  ['１.2.3.4', 'non-ASCII digit'],
  ['10.1', 'short form'],
  ['167772161', 'a bare number'],
  ['::ffff:1.2.3.4', 'IPv6'],
  ['1.2.3.4/32', 'a prefix'],
  ['1'.repeat(5000), 'hostile length'],
];

t.test('address table: valid and invalid inputs', async (t) => {
  const valid: Array<[string, number]> = [
    ['0.0.0.0', 0],
    ['1.2.3.4', 0x01020304],
    ['10.0.0.1', 0x0a000001],
    ['198.18.0.10', 0xc612000a],
    ['255.255.255.255', 0xffffffff],
  ];
  for (const [text, value] of valid) {
    t.equal(parseIpv4(text), value, `${text} parses`);
    t.equal(formatIpv4(value), text, `${text} formats back`);
  }
  for (const [text, why] of INVALID_ADDRESSES)
    t.equal(parseIpv4(text), undefined, `${JSON.stringify(text.slice(0, 20))} refused: ${why}`);
});

t.test('prefix table: lengths, CIDRs and interface addresses', async (t) => {
  for (const [text, width, value] of [
    ['0', 32, 0],
    ['8', 32, 8],
    ['32', 32, 32],
    ['128', 128, 128],
    ['64', 128, 64],
  ] as const) {
    t.equal(parsePrefixLength(text, width), value, `/${text} of a ${width}-bit family`);
  }
  for (const [text, width] of [
    ['33', 32],
    ['129', 128],
    ['08', 32],
    ['', 32],
    [' 8', 32],
    ['8 ', 32],
    ['-1', 32],
    ['+8', 32],
    ['1e1', 32],
    ['0x8', 32],
    ['8.0', 32],
    ['1000', 128],
  ] as const) {
    t.equal(parsePrefixLength(text, width), undefined, `/${JSON.stringify(text)} of a ${width}-bit family refused`);
  }
  t.same(
    parseIpv4WithPrefix('198.18.0.5/24'),
    { address: 0xc6120005, prefixLength: 24 },
    'an interface address keeps its host bits',
  );
  t.same(parseIpv4Cidr('198.18.0.5/24'), { network: 0xc6120000, prefixLength: 24 }, 'a CIDR clears them');
  for (const [text, why] of INVALID_ADDRESSES) {
    t.equal(parseIpv4WithPrefix(`${text}/24`), undefined, `${JSON.stringify(text.slice(0, 20))}/24 refused: ${why}`);
  }
  for (const text of [
    '198.18.0.0',
    '198.18.0.0/',
    '198.18.0.0/33',
    '198.18.0.0/024',
    '198.18.0.0/24/24',
    '198.18.0.0 /24',
    '198.18.0.0/ 24',
    '198.18.0.0/24 ',
    '198.18.0.0\\24',
  ]) {
    t.equal(parseIpv4WithPrefix(text), undefined, `${JSON.stringify(text)} refused`);
    t.equal(parseIpv4Cidr(text), undefined, `${JSON.stringify(text)} refused as a CIDR`);
  }
  t.notOk(hasHostBits(0xc6120000, 24), '198.18.0.0/24 is a network');
  t.ok(hasHostBits(0xc6120005, 24), '198.18.0.5/24 has host bits');
  t.ok(
    hasHostBits(0xc6120080, 24) === true && !hasHostBits(0xc6120080, 25),
    '.128 is a host of /24, the network of /25',
  );
  t.notOk(hasHostBits(0xffffffff, 32), 'a /32 has no host bits');
  t.ok(hasHostBits(0xc6120001, 0), '198.18.0.1/0 has host bits');
});
