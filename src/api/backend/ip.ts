/**
 * `GET /v1/ip` (`cilium ip list`): every endpoint address the node knows, its own from the
 * endpoint manager and other nodes' from their `ip/v1/<ip>` entries (cluster/ip-publisher.ts),
 * as Cilium lists its ipcache.
 */
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { KvStore } from '../../kvstore/kvstore.js';
import { IP_PREFIX, parseIpEntry } from '../../cluster/ip-publisher.js';
import type { IpModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** What the address handler reads. */
export interface IpSources {
  nodeName: string;
  endpoints: Pick<EndpointManager, 'listEndpoints'>;
  /** The cluster store, for other nodes' entries. */
  store: Pick<KvStore, 'list'>;
}

/**
 * This node's endpoint addresses, then other nodes' (an address this node has, or an entry that
 * names this node, is shown once, as local), sorted by address. An unreachable store leaves the
 * local ones; an entry without identity or node is skipped.
 */
export async function listIps({ nodeName, endpoints, store }: IpSources): Promise<IpModel[]> {
  const local = endpoints
    .listEndpoints()
    .map((e) => ({ ip: e.ipv4, identity: e.identity, node: nodeName, endpoint: e.id, source: 'local' as const }));
  const seen = new Set(local.map((e) => e.ip));
  const remote = (await store.list(IP_PREFIX).catch(() => ({ pairs: [] }))).pairs
    .flatMap((p) => parseIpEntry(p.key, p.value) ?? [])
    .filter((e) => e.node !== nodeName && !seen.has(e.ip))
    .map((e) => ({ ip: e.ip, identity: e.identity, node: e.node, source: 'remote' as const }));
  return [...local, ...remote].sort((a, b) => (a.ip < b.ip ? -1 : 1));
}

/** The address handler of the agent API. */
export function ipHandlers(sources: IpSources): Pick<AgentBackend, 'listIps'> {
  return { listIps: () => listIps(sources) };
}
