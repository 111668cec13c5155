/**
 * `GET /v1/status` (`cilium status`): one line of health per part of the daemon (store, Docker,
 * datapath, resync, DNS), the endpoint, identity and network counts and, on a multi-host node,
 * how it reaches the others (Cilium's daemon/cmd/status.go).
 */
import type { PeerWatcher } from '../../cluster/peer-watcher.js';
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { IdentityAllocator } from '../../identity/allocator.js';
import type { KvStore } from '../../kvstore/kvstore.js';
import type { DnsStatusModel, OverlayStatusModel, StatusModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** How this node reaches others: the tunnel or native routing it was started with (neither on a single host). */
export interface OverlaySources {
  tunnel?: { kind: string; port: number; encap: 'bpf' | 'device'; underlayDevice: string; underlayIp: string };
  native?: { device: string; underlayIp: string };
  datapath: {
    readonly overlayMtu: number | undefined;
    readonly tunnelDevice: string | undefined;
    peerRoutes(): Promise<Array<{ prefix: string; via: string }>>;
  };
  peers: Pick<PeerWatcher, 'lastSync' | 'peers'>;
}

/** What the status handler reads. */
export interface StatusSources {
  nodeName: string;
  version: string;
  /** When the daemon started (ms since the epoch). */
  startedAt: number;
  /** --kvstore, named when the store cannot report its status. */
  kvstoreBackend: string;
  store: Pick<KvStore, 'status'>;
  endpoints: Pick<EndpointManager, 'listEndpoints' | 'listNetworks'>;
  identities: Pick<IdentityAllocator, 'list'>;
  plugin: { readonly driverName: string };
  docker: { status(): StatusModel['docker'] };
  datapath: { readonly name: string };
  resync: { getStatus(): NonNullable<StatusModel['resync']> };
  overlay: OverlaySources;
  /** The cluster DNS resolver, when --dns-address is set. */
  dns?: { status(): DnsStatusModel };
}

/** `cilium status`'s overlay section: the tunnel or the native routes, and the peers either way. */
export async function overlayStatus({
  tunnel,
  native,
  datapath,
  peers,
}: OverlaySources): Promise<OverlayStatusModel | undefined> {
  if (!tunnel && !native) return undefined;
  const common = {
    mtu: datapath.overlayMtu ?? 0,
    lastSync: peers.lastSync,
    peers: peers.peers().map((p) => ({
      name: p.name,
      underlayIp: p.underlayIp,
      bootId: p.bootId,
      blocks: p.blocks,
      endpoints: p.endpoints,
    })),
  };
  if (tunnel)
    return {
      routingMode: 'tunnel',
      tunnel: tunnel.kind,
      port: tunnel.port,
      encap: tunnel.encap,
      underlayDevice: tunnel.underlayDevice,
      device: datapath.tunnelDevice ?? '',
      underlayIp: tunnel.underlayIp,
      ...common,
      routes: await datapath.peerRoutes().catch(() => []),
    };
  return {
    routingMode: 'native',
    tunnel: 'disabled',
    port: 0,
    device: native!.device,
    underlayIp: native!.underlayIp,
    ...common,
    routes: await datapath.peerRoutes().catch(() => []),
  };
}

/** The status handler of the agent API. */
export function statusHandlers(s: StatusSources): Pick<AgentBackend, 'status'> {
  return {
    async status() {
      const kv = await s.store
        .status()
        .catch((err: unknown) => ({ backend: s.kvstoreBackend, healthy: false, detail: String(err) }));
      const byState: Record<string, number> = {};
      for (const e of s.endpoints.listEndpoints()) byState[e.state] = (byState[e.state] ?? 0) + 1;
      const ids = await s.identities.list().catch(() => []);
      return {
        node: s.nodeName,
        version: s.version,
        uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000),
        driver: s.plugin.driverName,
        kvstore: { backend: kv.backend, healthy: kv.healthy, detail: kv.detail },
        docker: s.docker.status(),
        datapath: s.datapath.name,
        resync: s.resync.getStatus(),
        endpoints: byState,
        identities: ids.filter((i) => !i.reserved).length,
        networks: s.endpoints.listNetworks().length,
        overlay: await overlayStatus(s.overlay),
        dns: s.dns?.status(),
      };
    },
  };
}
