/**
 * The peer routes as iproute2 prints them: both forms (native `via`, tunnel `encap ip ... dev
 * cilium_vxlan`) installed in a throw-away network namespace on this kernel, then read back with
 * parsePeerRoutes the way listPeerRoutes reads them (iproute2's JSON cannot be used: an encap
 * route has two `dst` keys).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parsePeerRoutes, PEER_ROUTE_PROTOCOL } from '../../../src/datapath/link/peer-routes.js';
import { nexthopOf, type RouteGet } from '../../../src/datapath/link/tunnel-link.js';

t.test('parses what iproute2 printed on this machine', async (t) => {
  const text = [
    '198.18.120.64/26 via 198.19.250.2 dev ul0 ',
    '198.18.121.0/26  encap ip id 6 src 0.0.0.0 dst 198.19.250.3 ttl 0 tos 0 dev cilium_vxlan scope ' +
      'link src 198.19.250.1 mtu 1450 ',
    '198.18.122.7 via 198.19.250.4 dev ul0 ',
    '',
  ].join('\n');
  t.same(parsePeerRoutes(text), [
    { prefix: '198.18.120.64/26', via: '198.19.250.2', kind: 'via' },
    { prefix: '198.18.121.0/26', via: '198.19.250.3', kind: 'encap' },
    { prefix: '198.18.122.7/32', via: '198.19.250.4', kind: 'via' },
  ]);
  t.same(parsePeerRoutes('unreachable 198.18.0.0/15 \n'), [], 'not a peer route');
});

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;

t.test('both forms, installed in a scratch netns, read back', { skip }, async (t) => {
  const ns = `cdpr-${randomBytes(3).toString('hex')}`;
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => execFileSync('ip', ['netns', 'del', ns]));
  ip('link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1');
  ip('addr', 'add', '198.19.250.1/24', 'dev', 'ul0');
  ip('link', 'set', 'ul0', 'up');
  ip('link', 'set', 'ul1', 'up');
  ip('link', 'add', 'cilium_vxlan', 'type', 'vxlan', 'external', 'dstport', '8472');
  ip('link', 'set', 'cilium_vxlan', 'mtu', '1450', 'up');
  const proto = ['proto', String(PEER_ROUTE_PROTOCOL)];
  ip('route', 'replace', '198.18.120.64/26', 'via', '198.19.250.2', ...proto);
  ip(
    'route',
    'replace',
    '198.18.121.0/26',
    'encap',
    'ip',
    'id',
    '6',
    'dst',
    '198.19.250.3',
    'dev',
    'cilium_vxlan',
    'src',
    '198.19.250.1',
    'mtu',
    '1450',
    ...proto,
  );
  ip('route', 'replace', '198.18.122.0/24', 'via', '198.19.250.9'); // not ours: another protocol
  const shown = ip('-4', 'route', 'show', 'table', 'main', 'proto', String(PEER_ROUTE_PROTOCOL));
  t.same(
    parsePeerRoutes(shown),
    [
      { prefix: '198.18.120.64/26', via: '198.19.250.2', kind: 'via' },
      { prefix: '198.18.121.0/26', via: '198.19.250.3', kind: 'encap' },
    ],
    shown,
  );
  const route = ip('-4', 'route', 'get', '198.18.121.5', 'from', '198.19.250.1');
  t.match(
    route,
    /encap ip id 6 .*dst 198\.19\.250\.3/,
    'a lookup for a remote container goes into the tunnel with the remote-node VNI',
  );
});

t.test("a peer's underlay next hop (encapsulation in BPF), from routes in a scratch netns", { skip }, async (t) => {
  const ns = `cdnh-${randomBytes(3).toString('hex')}`;
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => execFileSync('ip', ['netns', 'del', ns]));
  ip('link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1');
  ip('link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other1');
  ip('addr', 'add', '198.19.250.1/24', 'dev', 'ul0');
  ip('addr', 'add', '198.19.251.1/24', 'dev', 'other0');
  for (const dev of ['ul0', 'ul1', 'other0', 'other1']) ip('link', 'set', dev, 'up');
  ip('route', 'add', '198.19.252.0/24', 'via', '198.19.250.254'); // a routed underlay behind a gateway on ul0
  ip('route', 'add', 'unreachable', '198.19.253.0/24');
  const get = (peer: string): RouteGet | undefined => {
    try {
      return (JSON.parse(ip('-json', 'route', 'get', peer)) as RouteGet[])[0];
    } catch {
      return undefined; // ip fails for an unreachable destination
    }
  };
  t.equal(nexthopOf(get('198.19.250.7'), 'ul0'), undefined, "a peer on the underlay's link is its own next hop");
  t.equal(nexthopOf(get('198.19.252.7'), 'ul0'), '198.19.250.254', "a routed peer: the gateway on the underlay's link");
  t.equal(nexthopOf(get('198.19.251.7'), 'ul0'), 'device', 'a peer behind another device: the tunnel device routes it');
  t.equal(
    nexthopOf(get('198.19.253.7'), 'ul0'),
    'device',
    'an unreachable peer: the tunnel device (and the kernel) report it',
  );
});
