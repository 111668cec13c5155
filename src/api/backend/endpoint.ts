/**
 * `GET /v1/endpoint[/:ref]` (`cilium endpoint list|get`): this node's endpoints as the endpoint
 * manager holds them (Cilium's daemon/cmd/endpoint.go).
 */
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { EndpointRecord } from '../../endpoint/endpoint.js';
import type { EndpointModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** What the endpoint handlers read. */
export type EndpointSource = Pick<EndpointManager, 'listEndpoints' | 'findEndpoint' | 'getNetwork'>;

/** One endpoint as the API shows it; `networkName` is Docker's name of its network, when known. */
export function endpointModel(e: EndpointRecord, networkName: string | undefined): EndpointModel {
  return {
    id: e.id,
    endpointId: e.endpointId,
    networkId: e.networkId,
    networkName,
    containerId: e.containerId,
    containerName: e.containerName,
    ...(e.aliases ? { aliases: e.aliases } : {}),
    ipv4: e.ipv4,
    mac: e.mac,
    hostInterface: e.hostIfName,
    state: e.state,
    identity: e.identity,
    labels: e.labels,
    policyRevision: e.policyRevision,
    createdAt: e.createdAt,
  };
}

/** The endpoint handlers of the agent API. */
export function endpointHandlers(endpoints: EndpointSource): Pick<AgentBackend, 'listEndpoints' | 'getEndpoint'> {
  const toModel = (e: EndpointRecord) => endpointModel(e, endpoints.getNetwork(e.networkId)?.name);
  return {
    listEndpoints: () => endpoints.listEndpoints().map(toModel),
    getEndpoint: (ref) => {
      const e = endpoints.findEndpoint(ref);
      return e ? toModel(e) : undefined;
    },
  };
}
