/**
 * The text of `cilium status` (formatStatus), byte for byte: the expected texts are what the
 * command printed before its template moved into status-format.ts, for models that take every
 * branch (single host, tunnel with BPF or device encapsulation, native routing, resync and DNS
 * present or not, peers without underlay or blocks).
 */
import t from 'tap';
import type { StatusModel } from '../../../src/api/models.js';
import { formatStatus } from '../../../src/cli/status-format.js';

/** The lines as the command prints them, each ending in a newline. */
function text(...lines: string[]): string {
  return lines.map((line) => `${line}\n`).join('');
}

const singleHost: StatusModel = {
  node: 'node-1',
  version: '0.1.0',
  uptimeSeconds: 42,
  driver: 'cilium',
  kvstore: { backend: 'local', healthy: true, detail: '/var/lib/cilium-docker/store.db' },
  docker: { connected: true, detail: 'unix:///var/run/docker.sock' },
  datapath: 'bpf',
  endpoints: {},
  identities: 5,
  networks: 0,
};

const tunnel: StatusModel = {
  ...singleHost,
  kvstore: { backend: 'etcd', healthy: false, detail: 'http://198.19.0.1:2379: connection refused' },
  docker: { connected: false, detail: 'connect ENOENT /var/run/docker.sock' },
  resync: {
    intervalMs: 300_000,
    resyncs: 12,
    lastResyncAt: '2026-01-01T00:05:00.000Z',
    lastResyncMs: 37,
    lastResyncError: 'etcd unavailable',
    lastHeartbeatAt: '2026-01-01T00:05:10.000Z',
  },
  endpoints: { ready: 3, 'waiting-for-identity': 1 },
  networks: 2,
  overlay: {
    routingMode: 'tunnel',
    tunnel: 'vxlan',
    port: 8472,
    encap: 'bpf',
    underlayDevice: 'eth1',
    device: 'cilium_vxlan',
    underlayIp: '198.19.0.1',
    mtu: 1450,
    peers: [
      {
        name: 'node-2',
        underlayIp: '198.19.0.2',
        bootId: 'b2',
        blocks: ['198.18.64.0/26', '198.18.64.64/26'],
        endpoints: 3,
      },
      { name: 'node-3', bootId: 'b3', blocks: [], endpoints: 0 },
    ],
    routes: [{ prefix: '198.18.64.0/26', via: 'cilium_vxlan' }],
  },
  dns: {
    address: '198.18.0.53',
    upstreams: ['198.18.1.1', '198.18.1.2'],
    queries: 10,
    clusterAnswers: 4,
    nxdomain: 1,
    forwarded: 5,
    upstreamFailures: 2,
    refused: 0,
    malformed: 3,
  },
};

const DNS_COUNTERS =
  '10 queries, 4 cluster answers, 1 NXDOMAIN, 5 forwarded, 2 upstream failures, 0 refused, 3 malformed';
const overlay = tunnel.overlay!;
const dns = tunnel.dns!;

t.test('a single-host node: no resync, no endpoints, no overlay, no DNS', async (t) => {
  t.equal(
    formatStatus(singleHost),
    text(
      'Node:        node-1',
      'Version:     0.1.0',
      'Uptime:      42s',
      'Driver:      cilium',
      'KVStore:     Ok   local: /var/lib/cilium-docker/store.db',
      'Docker:      Ok   unix:///var/run/docker.sock',
      'Datapath:    bpf',
      'Resync:      n/a',
      'Networks:    0',
      'Endpoints:   none',
      'Identities:  5',
      'Routing:     single host',
      'Overlay:     disabled (single host)',
      'DNS:         disabled',
    ),
  );
});

t.test(
  'a tunnel node: failures, every resync field, BPF encapsulation, peers (one without underlay or blocks), routes, DNS',
  async (t) => {
    t.equal(
      formatStatus(tunnel),
      text(
        'Node:        node-1',
        'Version:     0.1.0',
        'Uptime:      42s',
        'Driver:      cilium',
        'KVStore:     Failure   etcd: http://198.19.0.1:2379: connection refused',
        'Docker:      Failure   connect ENOENT /var/run/docker.sock',
        'Datapath:    bpf',
        'Resync:      every 300s, 12 done, last 2026-01-01T00:05:00.000Z (37 ms), failing: etcd unavailable; ' +
          'heartbeat 2026-01-01T00:05:10.000Z',
        'Networks:    2',
        'Endpoints:   3 ready, 1 waiting-for-identity',
        'Identities:  5',
        'Routing:     tunnel',
        'Overlay:     vxlan cilium_vxlan port 8472, encapsulation in BPF via eth1, ' +
          'underlay 198.19.0.1, MTU 1450; 2 peer(s)',
        '             node-2 198.19.0.2 blocks 198.18.64.0/26,198.18.64.64/26, 3 endpoint(s)',
        '             node-3 (no underlay) blocks -, 0 endpoint(s)',
        '             route 198.18.64.0/26 via cilium_vxlan',
        `DNS:         198.18.0.53, upstreams 198.18.1.1,198.18.1.2; ${DNS_COUNTERS}`,
      ),
    );
  },
);

t.test('encapsulation by the tunnel device; a resync that never ran; no routes', async (t) => {
  t.equal(
    formatStatus({
      ...tunnel,
      resync: { intervalMs: 60_000, resyncs: 0 },
      overlay: { ...overlay, encap: 'device', routes: undefined },
    }),
    text(
      'Node:        node-1',
      'Version:     0.1.0',
      'Uptime:      42s',
      'Driver:      cilium',
      'KVStore:     Failure   etcd: http://198.19.0.1:2379: connection refused',
      'Docker:      Failure   connect ENOENT /var/run/docker.sock',
      'Datapath:    bpf',
      'Resync:      every 60s, 0 done, last never; heartbeat never',
      'Networks:    2',
      'Endpoints:   3 ready, 1 waiting-for-identity',
      'Identities:  5',
      'Routing:     tunnel',
      'Overlay:     vxlan cilium_vxlan port 8472, underlay 198.19.0.1, MTU 1450; 2 peer(s)',
      '             node-2 198.19.0.2 blocks 198.18.64.0/26,198.18.64.64/26, 3 endpoint(s)',
      '             node-3 (no underlay) blocks -, 0 endpoint(s)',
      `DNS:         198.18.0.53, upstreams 198.18.1.1,198.18.1.2; ${DNS_COUNTERS}`,
    ),
  );
});

t.test('native routing: the underlay device, no tunnel port; DNS without upstreams', async (t) => {
  t.equal(
    formatStatus({
      ...tunnel,
      resync: { intervalMs: 300_000, resyncs: 1, lastResyncAt: '2026-01-01T00:00:00.000Z', lastResyncMs: 0 },
      overlay: {
        ...overlay,
        routingMode: 'native',
        tunnel: 'disabled',
        port: 0,
        encap: undefined,
        underlayDevice: undefined,
        device: 'eth1',
        mtu: 1500,
      },
      dns: { ...dns, upstreams: [] },
    }),
    text(
      'Node:        node-1',
      'Version:     0.1.0',
      'Uptime:      42s',
      'Driver:      cilium',
      'KVStore:     Failure   etcd: http://198.19.0.1:2379: connection refused',
      'Docker:      Failure   connect ENOENT /var/run/docker.sock',
      'Datapath:    bpf',
      'Resync:      every 300s, 1 done, last 2026-01-01T00:00:00.000Z (0 ms); heartbeat never',
      'Networks:    2',
      'Endpoints:   3 ready, 1 waiting-for-identity',
      'Identities:  5',
      'Routing:     native',
      'Overlay:     native (no encapsulation) via eth1, underlay 198.19.0.1, MTU 1500; 2 peer(s)',
      '             node-2 198.19.0.2 blocks 198.18.64.0/26,198.18.64.64/26, 3 endpoint(s)',
      '             node-3 (no underlay) blocks -, 0 endpoint(s)',
      '             route 198.18.64.0/26 via cilium_vxlan',
      `DNS:         198.18.0.53, upstreams none; ${DNS_COUNTERS}`,
    ),
  );
});

t.test('a daemon that reports no routing mode is a tunnel; no peers', async (t) => {
  t.equal(
    formatStatus({
      ...tunnel,
      overlay: { ...overlay, routingMode: undefined, encap: undefined, peers: [], routes: [] },
    }),
    text(
      'Node:        node-1',
      'Version:     0.1.0',
      'Uptime:      42s',
      'Driver:      cilium',
      'KVStore:     Failure   etcd: http://198.19.0.1:2379: connection refused',
      'Docker:      Failure   connect ENOENT /var/run/docker.sock',
      'Datapath:    bpf',
      'Resync:      every 300s, 12 done, last 2026-01-01T00:05:00.000Z (37 ms), failing: etcd unavailable; ' +
        'heartbeat 2026-01-01T00:05:10.000Z',
      'Networks:    2',
      'Endpoints:   3 ready, 1 waiting-for-identity',
      'Identities:  5',
      'Routing:     tunnel',
      'Overlay:     vxlan cilium_vxlan port 8472, underlay 198.19.0.1, MTU 1450; 0 peer(s)',
      `DNS:         198.18.0.53, upstreams 198.18.1.1,198.18.1.2; ${DNS_COUNTERS}`,
    ),
  );
});

t.test('values from the daemon are escaped: a forged line stays on its own line', async (t) => {
  t.equal(
    formatStatus({
      ...singleHost,
      node: 'node-1\x1b[2J',
      docker: { connected: false, detail: 'refused\nKVStore:     Ok   (forged)' },
    }),
    text(
      'Node:        node-1\\x1b[2J',
      'Version:     0.1.0',
      'Uptime:      42s',
      'Driver:      cilium',
      'KVStore:     Ok   local: /var/lib/cilium-docker/store.db',
      'Docker:      Failure   refused\\nKVStore:     Ok   (forged)',
      'Datapath:    bpf',
      'Resync:      n/a',
      'Networks:    0',
      'Endpoints:   none',
      'Identities:  5',
      'Routing:     single host',
      'Overlay:     disabled (single host)',
      'DNS:         disabled',
    ),
  );
});
