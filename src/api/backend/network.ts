/**
 * `GET /v1/network` (`cilium network list`): the cluster's network records (`networks/v1/`,
 * ipam/network-registry.ts) merged with this node's networks and the name each one claims.
 */
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { NetworkRegistry } from '../../ipam/network-registry.js';
import type { NetworkModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** What the network handler reads. */
export interface NetworkSources {
  /** The cluster records and this node's claims on them. */
  networks: Pick<NetworkRegistry, 'list' | 'claims'>;
  /** This node's networks. */
  endpoints: Pick<EndpointManager, 'listNetworks'>;
}

/**
 * The network list: every cluster record (`remote` unless this node has the network), then this
 * node's networks on top of the record they claim (status `ok`, `conflict` or `unregistered`),
 * sorted by name; networks that claim no name (`unnamed`) last. An unreachable store leaves this
 * node's view only.
 */
export async function listNetworks({ networks, endpoints }: NetworkSources): Promise<NetworkModel[]> {
  const records = await networks.list().catch(() => []);
  const claims = new Map(networks.claims().map((c) => [c.networkId, c]));
  const rows = new Map<string, NetworkModel>();
  for (const { record, users } of records) {
    rows.set(record.name, {
      name: record.name,
      subnet: record.subnet,
      ipRange: record.ipRange,
      gateway: record.details?.gateway,
      internal: record.details?.internal,
      mtu: record.details?.mtu,
      createdBy: record.createdBy,
      createdAt: record.createdAt,
      nodes: users.map((u) => u.node).sort(),
      status: 'remote',
    });
  }
  const unnamed: NetworkModel[] = [];
  for (const n of endpoints.listNetworks()) {
    const claim = claims.get(n.networkId);
    const cluster = claim ? rows.get(claim.name) : undefined;
    const row: NetworkModel = {
      name: claim?.name ?? '',
      networkId: n.networkId,
      subnet: n.subnet,
      ipRange: cluster?.ipRange ?? claim?.definition.ipRange,
      gateway: n.gateway,
      internal: n.internal,
      createdBy: cluster?.createdBy,
      createdAt: cluster?.createdAt,
      nodes: cluster?.nodes ?? [],
      status: !claim ? 'unnamed' : claim.status === 'agreed' ? 'ok' : claim.status,
      detail: claim?.detail,
    };
    if (claim) rows.set(claim.name, row);
    else unnamed.push(row);
  }
  return [...[...rows.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), ...unnamed];
}

/** The network handler of the agent API. */
export function networkHandlers(sources: NetworkSources): Pick<AgentBackend, 'listNetworks'> {
  return { listNetworks: () => listNetworks(sources) };
}
