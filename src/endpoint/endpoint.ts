/**
 * The endpoint and network models (domain types, camelCase) and their lifecycle states.
 *
 * Lifecycle: `created` (CreateEndpoint: veth made) -> `waiting-for-identity` (Join: the container
 * is attached but its labels are not known yet; identity reserved:init) -> `ready` (labels learnt
 * from the Docker API, identity allocated, datapath programmed) -> deleted (DeleteEndpoint).
 * `disconnected` is the short window between Leave and DeleteEndpoint.
 */

/** Endpoint lifecycle states. */
export type EndpointState = 'created' | 'waiting-for-identity' | 'ready' | 'disconnected';

/** A Docker network this node serves. */
export interface NetworkRecord {
  networkId: string;
  /** Docker's network name, learnt from the Docker API (never sent to drivers). */
  name?: string;
  /** Cluster-wide name from `--ipam-opt cilium.network=<name>`, when the network was created with one. */
  clusterName?: string;
  poolId?: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  mtu: number;
  options: Record<string, string>;
  createdAt: string;
}

/** One container attachment on this node. */
export interface EndpointRecord {
  /** Local numeric id (1–4095), stable for the endpoint's life; keys per-endpoint kernel state. */
  id: number;
  /** Docker's 64-hex endpoint id. */
  endpointId: string;
  networkId: string;
  ipv4: string;
  prefixLength: number;
  mac: string;
  hostIfName: string;
  containerIfName: string;
  hostIfIndex: number;
  mtu: number;
  state: EndpointState;
  sandboxKey?: string;
  containerId?: string;
  containerName?: string;
  /** The container's aliases on this endpoint's network (see ContainerInfo.aliases). */
  aliases?: string[];
  /** `source:key=value` strings. */
  labels: string[];
  identity: number;
  /** Policy revision last applied to this endpoint's datapath state. */
  policyRevision: number;
  createdAt: string;
  updatedAt: string;
}

/** What the Docker API tells us about the container behind an endpoint. */
export interface ContainerInfo {
  containerId: string;
  containerName: string;
  /** Other names of the container on this network (`--network-alias`, compose service names, short id). */
  aliases?: string[];
  /** Container labels as `docker inspect` shows them (image labels merged under them). */
  labels: Record<string, string>;
  networkName: string;
}
