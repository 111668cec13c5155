/**
 * The agent API (`--api-socket`, what the `cilium` CLI talks to): the AgentBackend assembled from
 * one handler module per resource (api/backend/) and the route groups of the store, the nodes and
 * the version.
 */
import type { Config } from '../config/config.js';
import { ApiServer, type AgentBackend } from '../api/server.js';
import { kvstoreRoutes } from '../api/kvstore-routes.js';
import { nodeRoutes } from '../api/node-routes.js';
import { versionRoutes } from '../api/version-routes.js';
import { statusHandlers, type OverlaySources, type StatusSources } from '../api/backend/status.js';
import { endpointHandlers } from '../api/backend/endpoint.js';
import { identityHandlers } from '../api/backend/identity.js';
import { ipHandlers } from '../api/backend/ip.js';
import { networkHandlers } from '../api/backend/network.js';
import { cleanupHandlers } from '../api/backend/cleanup.js';
import { policyHandlers } from '../api/backend/policy.js';
import { monitorHandlers, type MonitorSources } from '../api/backend/monitor.js';
import { bpfHandlers, type DatapathMapDump } from '../api/backend/bpf.js';
import type { PeerWatcher } from '../cluster/peer-watcher.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { PolicyEngine } from '../endpoint/policy-engine.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import type { InstrumentedKvStore } from '../kvstore/instrumented-store.js';
import { log } from '../util/log.js';
import type { NativeChoice, TunnelChoice } from './routing.js';

/** The running parts the API reports on and acts through. */
export interface AgentApiSources {
  version: string;
  startedAt: number;
  store: InstrumentedKvStore;
  endpoints: EndpointManager;
  identities: IdentityAllocator;
  networks: NetworkRegistry;
  policy: PolicyEngine;
  plugin: StatusSources['plugin'];
  docker: StatusSources['docker'];
  resync: StatusSources['resync'];
  dns: StatusSources['dns'];
  peers: PeerWatcher;
  datapath: StatusSources['datapath'] & OverlaySources['datapath'] & MonitorSources['datapath'] & DatapathMapDump;
  tunnel?: TunnelChoice;
  native?: NativeChoice;
}

/** The API server, not listening yet. */
export function agentApi(config: Config, s: AgentApiSources): ApiServer {
  const { store, endpoints, identities, networks, policy, peers, datapath } = s;
  const backend: AgentBackend = {
    ...statusHandlers({
      nodeName: config.nodeName,
      version: s.version,
      startedAt: s.startedAt,
      kvstoreBackend: config.kvstore,
      store,
      endpoints,
      identities,
      plugin: s.plugin,
      docker: s.docker,
      datapath,
      resync: s.resync,
      overlay: { tunnel: s.tunnel, native: s.native, datapath, peers },
      dns: s.dns,
    }),
    ...endpointHandlers(endpoints),
    ...identityHandlers(identities),
    ...ipHandlers({ nodeName: config.nodeName, endpoints, store }),
    ...networkHandlers({ networks, endpoints }),
    ...cleanupHandlers({ endpoints, datapath, peers, bpfRoot: config.bpfRoot }),
    ...policyHandlers(policy),
    ...monitorHandlers({ datapath, policy }),
    ...bpfHandlers({ datapath, endpoints, policy, ctAccounting: config.ctAccounting }),
  };
  return new ApiServer({
    socketPath: config.apiSocket,
    backend,
    log: log.child({ component: 'api' }),
    routes: [kvstoreRoutes(store), nodeRoutes({ peers, store }), versionRoutes(s.version, config.nodeName)],
  });
}
