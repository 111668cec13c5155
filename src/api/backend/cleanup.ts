/**
 * `POST /v1/cleanup` (`cilium cleanup`): removes this node's datapath (endpoint links, the host
 * devices, the pins, the masquerade rule, the peer routes) and says what went.
 */
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { AgentBackend } from '../server.js';

/** What the cleanup handler uses. */
export interface CleanupSources {
  endpoints: Pick<EndpointManager, 'listEndpoints' | 'cleanupDatapath'>;
  datapath: { peerRoutes(): Promise<Array<{ prefix: string; via: string }>> };
  /** The peer watcher, stopped first: it would re-program what cleanup removes (peer routes) at its next event. */
  peers: { stop(): void };
  /** --bpf-root, named in the reply. */
  bpfRoot: string;
}

/** The cleanup handler of the agent API. */
export function cleanupHandlers({
  endpoints,
  datapath,
  peers,
  bpfRoot,
}: CleanupSources): Pick<AgentBackend, 'cleanup'> {
  return {
    async cleanup() {
      const removed = endpoints.listEndpoints().map((e) => e.hostIfName);
      const routes = await datapath.peerRoutes().catch(() => []);
      peers.stop();
      await endpoints.cleanupDatapath();
      return {
        removed: [
          ...removed,
          'cilium_host',
          'cilium_net',
          `pins under ${bpfRoot}`,
          'masquerade rule',
          ...routes.map((r) => `route ${r.prefix} via ${r.via}`),
        ],
      };
    },
  };
}
