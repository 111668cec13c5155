/**
 * What the endpoint layer needs from a datapath. The plain-routing datapath (`routing-datapath.ts`)
 * implements it with kernel routes and proxy ARP; the eBPF datapath (`bpf-datapath.ts`) adds
 * policy on top. The types the endpoint and cluster layers hand to the eBPF datapath (enforcement,
 * policy entries, remote ipcache entries) live here too, so those layers never import the concrete
 * datapath. Types here are domain types (camelCase), independent of Docker's wire format.
 */
import { parseIpv4 } from '../util/ipv4.js';

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

/** Per-endpoint enforcement computed by the policy layer. */
export interface EndpointEnforcement {
  enforceIngress: boolean;
  enforceEgress: boolean;
}

/** One policy map entry of an endpoint, in the compiler's shape. */
export interface DatapathPolicyEntry {
  direction: 'ingress' | 'egress';
  peer: number;
  dport: number;
  portPrefixLen: number;
  protocol: number;
  verdict: 'allow' | 'deny';
  cookie: number;
}

/** A remote address or prefix and what the ipcache says about it (another node's). */
export interface RemoteIpcacheEntry {
  /** 'a.b.c.d/32' for a remote endpoint, a node's block CIDR otherwise. */
  prefix: string;
  identity: number;
  /** Docker network number (see networkNumber); 0 when unknown. */
  netId: number;
  /**
   * Underlay IPv4 of the node behind the prefix. With native routing it only marks the entry as
   * a peer's (the datapath has no tunnel device and leaves the packet to the kernel's routes).
   */
  tunnelEndpoint: string;
}

/**
 * Docker network number used for isolation: the subnet's network address as an integer (never 0
 * for a subnet; 0, "unknown", for text that is not one).
 */
export function networkNumber(subnet: string): number {
  const n = parseIpv4(subnet.split('/')[0]!);
  if (n === undefined) return 0;
  return n === 0 ? 1 : n;
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
  createEndpointLink(
    endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string },
  ): Promise<{ mac: string; hostIfIndex: number }>;
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
