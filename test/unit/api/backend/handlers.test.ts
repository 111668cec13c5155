/**
 * The agent API's handlers (src/api/backend/) over stand-ins of the domain objects they read:
 * the network list merges the cluster records with this node's claims, the address list puts
 * local endpoints first and reads other nodes' ip/v1 entries defensively, monitor events name
 * world, identities carry their referencing nodes only when those could be read. The real
 * objects behind them are exercised by the e2e tests (single-host, network-names).
 */
import t from 'tap';
import { listNetworks, type NetworkSources } from '../../../../src/api/backend/network.js';
import { listIps } from '../../../../src/api/backend/ip.js';
import { monitorEventModel } from '../../../../src/api/backend/monitor.js';
import { identityHandlers, type IdentitySource } from '../../../../src/api/backend/identity.js';
import type { EndpointRecord, NetworkRecord } from '../../../../src/endpoint/endpoint.js';
import type { ClusterNetworkInfo } from '../../../../src/ipam/network-records.js';
import type { NetworkClaim } from '../../../../src/ipam/network-registry.js';
import type { DatapathEvent } from '../../../../src/datapath/bpf/abi.js';
import { LabelSet } from '../../../../src/identity/labels.js';
import { IDENTITY_WORLD } from '../../../../src/identity/reserved.js';

const localNetwork = (networkId: string, subnet: string): NetworkRecord => ({
  networkId,
  subnet,
  gateway: subnet.replace(/0\/\d+$/, '1'),
  internal: false,
  mtu: 1500,
  options: {},
  createdAt: '2025-01-01T00:00:00Z',
});
const record = (name: string, subnet: string, nodes: string[]): ClusterNetworkInfo => ({
  record: {
    name,
    subnet,
    createdBy: nodes[0]!,
    createdAt: '2025-01-01T00:00:00Z',
    details: { gateway: subnet.replace(/0\/\d+$/, '1'), internal: false, mtu: 1450 },
  },
  users: nodes.map((node) => ({ node, definition: { subnet } })) as ClusterNetworkInfo['users'],
});

t.test('network list: cluster records, local networks on their claimed records, unnamed last', async (t) => {
  const claims: NetworkClaim[] = [
    { networkId: 'n-front', name: 'front', explicit: true, definition: { subnet: '198.18.1.0/24' }, status: 'agreed' },
    {
      networkId: 'n-back',
      name: 'back',
      explicit: false,
      definition: { subnet: '198.18.9.0/24', ipRange: '198.18.9.128/25' },
      status: 'conflict',
      detail: 'subnet differs',
    },
  ];
  const sources: NetworkSources = {
    networks: {
      list: async () => [
        record('front', '198.18.1.0/24', ['node-b', 'node-a']),
        record('shared', '198.18.3.0/24', ['node-c']),
      ],
      claims: () => claims,
    },
    endpoints: {
      listNetworks: () => [
        localNetwork('n-loose', '198.18.5.0/24'),
        localNetwork('n-front', '198.18.1.0/24'),
        localNetwork('n-back', '198.18.9.0/24'),
      ],
    },
  };
  const rows = await listNetworks(sources);
  t.same(
    rows.map((r) => [r.name, r.networkId, r.status]),
    [
      ['back', 'n-back', 'conflict'],
      ['front', 'n-front', 'ok'],
      ['shared', undefined, 'remote'],
      ['', 'n-loose', 'unnamed'],
    ],
    'sorted by name, unnamed last',
  );
  t.match(
    rows[1],
    { createdBy: 'node-b', nodes: ['node-a', 'node-b'], gateway: '198.18.1.1' },
    'a local network keeps the record’s creator and users',
  );
  t.match(
    rows[0],
    { ipRange: '198.18.9.128/25', detail: 'subnet differs', nodes: [] },
    'a claim without a record shows its own definition',
  );
  t.same(rows[2]!.nodes, ['node-c']);

  const unreachable = await listNetworks({
    ...sources,
    networks: { list: async () => Promise.reject(new Error('store down')), claims: () => claims },
  });
  t.same(
    unreachable.map((r) => r.name),
    ['back', 'front', ''],
    'an unreachable store leaves this node’s view',
  );
});

t.test('address list: local endpoints first, other nodes’ entries read defensively', async (t) => {
  const endpoints = { listEndpoints: () => [{ id: 7, ipv4: '198.18.1.9', identity: 300 }] as EndpointRecord[] };
  const pairs = [
    { key: 'ip/v1/198.18.1.2', value: JSON.stringify({ identity: 301, node: 'node-b', endpoint: 1 }) },
    { key: 'ip/v1/198.18.1.9', value: JSON.stringify({ identity: 999, node: 'node-b', endpoint: 4 }) },
    { key: 'ip/v1/198.18.1.3', value: JSON.stringify({ identity: 302, node: 'node-a', endpoint: 2 }) },
    { key: 'ip/v1/198.18.1.4', value: '{not json' },
    { key: 'ip/v1/198.18.1.5', value: JSON.stringify({ identity: 'x', node: 'node-b' }) },
  ];
  const store = { list: async () => ({ pairs, revision: 1n }) } as unknown as Parameters<typeof listIps>[0]['store'];
  t.same(
    await listIps({ nodeName: 'node-a', endpoints, store }),
    [
      { ip: '198.18.1.2', identity: 301, node: 'node-b', source: 'remote' },
      { ip: '198.18.1.9', identity: 300, node: 'node-a', endpoint: 7, source: 'local' },
    ],
    'local wins, own and malformed entries skipped, sorted',
  );
  const down = { list: async () => Promise.reject(new Error('store down')) } as unknown as typeof store;
  t.same(
    (await listIps({ nodeName: 'node-a', endpoints, store: down })).map((e) => e.source),
    ['local'],
    'unreachable store: local only',
  );
});

t.test('monitor events name world even when no policy selects it', async (t) => {
  const policy = {
    labelsOf: (id: number) => (id === 300 ? LabelSet.parse(['app=web']) : undefined),
    policyForCookie: () => 'allow-web',
  };
  const base = {
    epId: 7,
    direction: 'ingress',
    saddr: '198.18.1.2',
    daddr: '198.18.1.9',
    sport: 1000,
    dport: 80,
    protocol: 6,
    length: 60,
  };
  const drop = monitorEventModel(
    { ...base, type: 'drop', srcIdentity: IDENTITY_WORLD, dstIdentity: 300, reason: 133 } as DatapathEvent,
    policy,
    new Date(0),
  );
  t.match(drop, {
    srcLabels: ['reserved:world'],
    dstLabels: ['container:app=web'],
    reason: 133,
    reasonName: String,
    time: '1970-01-01T00:00:00.000Z',
  });
  const verdict = monitorEventModel(
    {
      ...base,
      type: 'policy-verdict',
      srcIdentity: 4000,
      dstIdentity: 300,
      verdict: 'allow',
      match: 'L3-L4',
      cookie: 1,
    } as DatapathEvent,
    policy,
  );
  t.match(verdict, { srcLabels: [], policy: 'allow-web', verdict: 'allow' }, 'an unknown identity has no labels');
});

t.test('identities carry their referencing nodes only when those could be read', async (t) => {
  const web = { id: 300, labels: LabelSet.parse(['app=web']), reserved: false, localReferences: 1 };
  const world = { id: IDENTITY_WORLD, labels: LabelSet.parse(['reserved:world']), reserved: true, localReferences: 0 };
  let nodesReadable = true;
  const source: IdentitySource = {
    list: async () => [world, web],
    get: async (id) => [world, web].find((i) => i.id === id),
    referencingNodes: async () =>
      nodesReadable ? new Map([[300, ['node-a', 'node-b']]]) : Promise.reject(new Error('store down')),
  };
  const handlers = identityHandlers(source);
  t.same(
    (await handlers.listIdentities()).map((i) => i.nodes),
    [undefined, ['node-a', 'node-b']],
    'reserved identities have none',
  );
  t.same((await handlers.getIdentity(300))?.nodes, ['node-a', 'node-b']);
  t.equal(await handlers.getIdentity(12345), undefined);
  nodesReadable = false;
  t.notOk('nodes' in (await handlers.getIdentity(300))!, 'unreadable references: no nodes field');
});
