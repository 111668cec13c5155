/**
 * What the endpoint layer needs from a datapath. The plain-routing datapath (`routing-datapath.ts`)
 * implements it with kernel routes and proxy ARP; the eBPF datapath adds policy on top.
 * Types here are domain types (camelCase), independent of Docker's wire format.
 */

/** A Docker network as the datapath sees it. */
export interface DatapathNetwork {
  networkId: string;
  subnet: string;
  gateway: string;
  internal: boolean;
}

/** An endpoint as the datapath sees it. */
export interface DatapathEndpoint {
  /** Local numeric endpoint id (1–4095). */
  id: number;
  endpointId: string;
  networkId: string;
  ipv4: string;
  hostIfName: string;
  /**
   * Ifindex of the host-side link when it was created (unknown before that). A link that has the
   * name but another index is not this endpoint's: it is never deleted or adopted for it.
   */
  hostIfIndex?: number;
  containerIfName: string;
  mac: string;
  mtu: number;
  /** Security identity (reserved:init until labels are known). */
  identity: number;
}

/** Kernel programming for networks and endpoints. Every method is idempotent. */
export interface Datapath {
  /** Name shown by `cilium status`. */
  readonly name: string;
  /** Prepares host-wide state (router device, forwarding, pinned objects). */
  init(): Promise<void>;
  /** Makes the network's gateway reachable from its containers. */
  addNetwork(network: DatapathNetwork, otherNetworks: DatapathNetwork[]): Promise<void>;
  /** Undoes addNetwork (keeping a gateway address another network still uses). */
  removeNetwork(network: DatapathNetwork, remainingNetworks: DatapathNetwork[]): Promise<void>;
  /** Creates the veth pair; returns the container side's MAC and the host side's ifindex. */
  createEndpointLink(endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string }): Promise<{ mac: string; hostIfIndex: number }>;
  /** Routes the endpoint's address to its veth (at Join). */
  activateEndpoint(endpoint: DatapathEndpoint): Promise<void>;
  /** The endpoint's identity or policy changed. */
  updateEndpoint(endpoint: DatapathEndpoint): Promise<void>;
  /** Removes the veth, routes and per-endpoint kernel state. */
  removeEndpoint(endpoint: DatapathEndpoint): Promise<void>;
  /** True if the endpoint's host-side link still exists (restore after a restart). */
  endpointLinkExists(endpoint: DatapathEndpoint): Promise<boolean>;
  /** Removes every link/route/program this datapath made (for `cilium cleanup`). */
  cleanup(endpoints: DatapathEndpoint[], networks: DatapathNetwork[]): Promise<void>;
}
