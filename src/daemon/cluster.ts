/**
 * The daemon's cluster side, built from its local parts: this node's `ip/v1/` entries
 * (cluster/ip-publisher.ts), the heartbeat and resync that re-asserts every key this node owns
 * (cluster/node-sync.ts) and the other nodes' entries, blocks and routes (cluster/peer-watcher.ts).
 */
import type { Config } from '../config/config.js';
import type { KvStore } from '../kvstore/kvstore.js';
import { networkNumber } from '../datapath/datapath.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { PolicyEngine } from '../endpoint/policy-engine.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import type { Ipam } from '../ipam/ipam.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import { IpPublisher } from '../cluster/ip-publisher.js';
import { NodeSync } from '../cluster/node-sync.js';
import { PeerWatcher, type PeerRouteWriter, type RemoteEntryWriter } from '../cluster/peer-watcher.js';
import { log } from '../util/log.js';
import type { NativeChoice, TunnelChoice } from './routing.js';

/** The local parts the cluster side publishes, re-asserts and programs. */
export interface ClusterSources {
  store: KvStore;
  endpoints: EndpointManager;
  identities: IdentityAllocator;
  networks: NetworkRegistry;
  policy: PolicyEngine;
  ipam: Ipam;
  datapath: RemoteEntryWriter & PeerRouteWriter;
  tunnel?: TunnelChoice;
  native?: NativeChoice;
}

/** The cluster side's parts, not started. */
export interface ClusterParts {
  ips: IpPublisher;
  nodeSync: NodeSync;
  peers: PeerWatcher;
}

/** Builds the cluster side; the caller starts and stops it. */
export function clusterParts(config: Config, sources: ClusterSources): ClusterParts {
  const { store, endpoints, identities, networks, policy, ipam, datapath, tunnel, native } = sources;
  const ips = new IpPublisher({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'cluster' }),
    localIps: () =>
      endpoints
        .listEndpoints()
        .filter((e) => e.state !== 'created')
        .map((e) => ({
          ip: e.ipv4,
          identity: e.identity,
          endpoint: e.id,
          name: e.containerName?.replace(/^\//, ''),
          aliases: e.aliases,
          network: endpoints.clusterNetworkName(e.networkId),
        })),
  });
  const nodeSync = new NodeSync({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'cluster' }),
    intervalMs: config.resyncIntervalMs,
    ips,
    reassertIdentities: async () => {
      await identities.reassertReferences();
      await identities.collectUnreferenced();
    },
    reassertNetworks: () => networks.reassert(),
    relist: async () => {
      await policy.relist();
      await peers.relist();
    },
    tunnel: tunnel && { kind: tunnel.kind, port: tunnel.port, underlayIp: tunnel.underlayIp },
    native: native && { underlayIp: native.underlayIp },
    localBlocks: async () =>
      (await ipam.listPools()).flatMap((p) => p.blocks.filter((b) => b.node === config.nodeName).map((b) => b.cidr)),
  });
  const peers = new PeerWatcher({
    store,
    nodeName: config.nodeName,
    datapath,
    networkNumber,
    routes: (native || tunnel) && datapath,
    routingMode: native ? 'native' : 'tunnel',
    log: log.child({ component: 'peers' }),
  });
  return { ips, nodeSync, peers };
}
