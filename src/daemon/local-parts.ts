/**
 * The node's own parts over the stores, built in two steps around the datapath's installation
 * (main.ts): the IPAM and the identity allocator first (their options are checked before the host
 * is touched), then the cluster's network names, the endpoint manager and the policy engine, which
 * program the datapath.
 */
import type { Config } from '../config/config.js';
import type { Datapath } from '../datapath/datapath.js';
import { EndpointManager } from '../endpoint/endpoint-manager.js';
import { PolicyEngine, type PolicyEngineDeps } from '../endpoint/policy-engine.js';
import { IdentityAllocator } from '../identity/allocator.js';
import { Ipam } from '../ipam/ipam.js';
import { NetworkRegistry } from '../ipam/network-registry.js';
import type { KvStore } from '../kvstore/kvstore.js';
import { log } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';

/** The IPAM and the identity allocator; touch nothing yet (a bad IPAM option is a ConfigError). */
export function storeParts(
  config: Config,
  stores: { store: KvStore; nodeStore: KvStore },
): { ipam: Ipam; identities: IdentityAllocator } {
  const { store, nodeStore } = stores;
  const ipam = new Ipam({
    store,
    nodeStore,
    nodeName: config.nodeName,
    defaultPool: config.defaultPool,
    defaultPoolPrefixLength: config.defaultPoolPrefixLength,
    blockPrefixLength: config.blockPrefixLength,
  });
  const identities = new IdentityAllocator({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'identity' }),
  });
  return { ipam, identities };
}

/** What the endpoint layer is built on. */
export interface EndpointLayerSources {
  store: KvStore;
  nodeStore: KvStore;
  ipam: Ipam;
  identities: IdentityAllocator;
  datapath: Datapath & PolicyEngineDeps['datapath'];
  metrics: Metrics;
}

/** The cluster's network names, the endpoint manager and the policy engine; none started. */
export function endpointLayer(
  config: Config,
  sources: EndpointLayerSources,
): { networks: NetworkRegistry; endpoints: EndpointManager; policy: PolicyEngine } {
  const { store, nodeStore, ipam, identities, datapath, metrics } = sources;
  const networks = new NetworkRegistry({
    store,
    nodeName: config.nodeName,
    ipam,
    log: log.child({ component: 'networks' }),
  });
  const endpoints = new EndpointManager({
    store: nodeStore,
    identityTimeoutMs: config.identityTimeoutMs,
    nodeName: config.nodeName,
    datapath,
    identities,
    networks,
    log: log.child({ component: 'endpoint' }),
  });
  const policy = new PolicyEngine({
    store,
    endpoints,
    datapath,
    enforcement: config.enforcement,
    log: log.child({ component: 'policy' }),
    toDatapathEndpoint: (e) => endpoints.toDatapathEndpoint(e),
    onRegenerated: (seconds) => metrics.regenerationSeconds.observe({ scope: 'total' }, seconds),
  });
  return { networks, endpoints, policy };
}
