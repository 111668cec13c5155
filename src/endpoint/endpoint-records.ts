/**
 * This node's network and endpoint records in the node-local store, under `docker/v1/<node>/`
 * (kvstore/store-scopes.ts): `networks/<id>`, `endpoints/<id>` and the `label-encoding` marker;
 * and what a record means to the datapath and to the cluster's network names.
 */
import type { KvStore } from '../kvstore/kvstore.js';
import { nodeRecordPrefix } from '../kvstore/store-scopes.js';
import type { DatapathEndpoint, DatapathNetwork } from '../datapath/datapath.js';
import type { NetworkDefinition, NetworkDetails } from '../ipam/network-definition.js';
import type { EndpointRecord, NetworkRecord } from './endpoint.js';

/** Value of the label-encoding key (see endpoint-restore.ts). */
const LABEL_ENCODING_ESCAPED = 'escaped';

/** `-o com.docker.network.driver.mtu` as given (undefined when the default applies). */
const OPTION_MTU = 'com.docker.network.driver.mtu';

/** Reads and writes one node's records; keeps nothing in memory. */
export class NodeRecords {
  private readonly store: KvStore;
  private readonly prefix: string;

  constructor(store: KvStore, nodeName: string) {
    this.store = store;
    this.prefix = nodeRecordPrefix(nodeName);
  }

  /** Every stored network record. */
  async listNetworks(): Promise<NetworkRecord[]> {
    const { pairs } = await this.store.list(`${this.prefix}networks/`);
    return pairs.map((p) => JSON.parse(p.value) as NetworkRecord);
  }

  /** Every stored endpoint record with its key (a stale one is removed by its key). */
  async listEndpoints(): Promise<Array<{ key: string; record: EndpointRecord }>> {
    const { pairs } = await this.store.list(`${this.prefix}endpoints/`);
    return pairs.map((p) => ({ key: p.key, record: JSON.parse(p.value) as EndpointRecord }));
  }

  async saveNetwork(record: NetworkRecord): Promise<void> {
    await this.store.put(this.networkKey(record.networkId), JSON.stringify(record));
  }

  async deleteNetwork(networkId: string): Promise<void> {
    await this.store.delete(this.networkKey(networkId));
  }

  /** Stores the endpoint, stamping `updatedAt`. */
  async saveEndpoint(ep: EndpointRecord): Promise<void> {
    ep.updatedAt = new Date().toISOString();
    await this.store.put(this.endpointKey(ep.endpointId), JSON.stringify(ep));
  }

  async deleteEndpoint(endpointId: string): Promise<void> {
    await this.store.delete(this.endpointKey(endpointId));
  }

  /** Removes a record by the key `listEndpoints` gave. */
  async deleteKey(key: string): Promise<void> {
    await this.store.delete(key);
  }

  /** True once this node's records hold identities of the escaped label form (the marker is written). */
  async labelsEscaped(): Promise<boolean> {
    return (await this.store.get(this.labelEncodingKey()))?.value === LABEL_ENCODING_ESCAPED;
  }

  /** Writes the marker: every record from now on holds identities of the escaped label form. */
  async markLabelsEscaped(): Promise<void> {
    await this.store.put(this.labelEncodingKey(), LABEL_ENCODING_ESCAPED);
  }

  private networkKey(id: string): string {
    return `${this.prefix}networks/${id}`;
  }

  private endpointKey(id: string): string {
    return `${this.prefix}endpoints/${id}`;
  }

  /** `docker/v1/<node>/label-encoding` -> `escaped`: this node's records hold identities of the escaped label form. */
  private labelEncodingKey(): string {
    return `${this.prefix}label-encoding`;
  }
}

/** The datapath's view of a network. */
export function toDatapathNetwork(n: NetworkRecord): DatapathNetwork {
  return { networkId: n.networkId, subnet: n.subnet, gateway: n.gateway, internal: n.internal };
}

/** The datapath's view of an endpoint. */
export function toDatapathEndpoint(ep: EndpointRecord): DatapathEndpoint {
  return {
    id: ep.id,
    endpointId: ep.endpointId,
    networkId: ep.networkId,
    ipv4: ep.ipv4,
    hostIfName: ep.hostIfName,
    hostIfIndex: ep.hostIfIndex,
    containerIfName: ep.containerIfName,
    mac: ep.mac,
    mtu: ep.mtu,
    identity: ep.identity,
  };
}

/** The settings of a local network that must agree with its cluster definition. */
export function networkDetails(n: NetworkRecord): NetworkDetails {
  const details: NetworkDetails = { gateway: n.gateway, internal: n.internal };
  if (n.options[OPTION_MTU] !== undefined) details.mtu = n.mtu;
  return details;
}

/** A local network's cluster definition: its subnet and details. */
export function networkDefinition(n: NetworkRecord): NetworkDefinition {
  return { subnet: n.subnet, details: networkDetails(n) };
}
