/**
 * The agent API's JSON models (shared by the server, the typed client and the CLI).
 */

/** An endpoint as the API shows it. */
export interface EndpointModel {
  id: number;
  endpointId: string;
  networkId: string;
  networkName?: string;
  containerId?: string;
  containerName?: string;
  ipv4: string;
  mac: string;
  hostInterface: string;
  state: string;
  identity: number;
  labels: string[];
  policyRevision: number;
  createdAt: string;
}

/** An identity as the API shows it. */
export interface IdentityModel {
  id: number;
  labels: string[];
  reserved: boolean;
  localReferences: number;
}

/** One IP -> identity mapping. */
export interface IpModel {
  ip: string;
  identity: number;
  node: string;
  endpoint?: number;
  source: 'local' | 'remote';
}

/** Daemon status. */
export interface StatusModel {
  node: string;
  version: string;
  uptimeSeconds: number;
  driver: string;
  kvstore: { backend: string; healthy: boolean; detail: string };
  docker: { connected: boolean; detail: string };
  datapath: string;
  endpoints: Record<string, number>;
  identities: number;
  networks: number;
}

/** Error body of every non-2xx reply. */
export interface ErrorModel {
  error: { code: string; message: string };
}
