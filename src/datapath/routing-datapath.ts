/**
 * The plain kernel-routing datapath: a veth per container, a /32 route to it, proxy ARP on the
 * host side and the gateway address on `cilium_host`. No policy; the eBPF datapath builds on it.
 */
import type { Datapath, DatapathEndpoint, DatapathNetwork } from './datapath.js';
import {
  addRouterAddress,
  createVethPair,
  deleteLink,
  ensureHostDevice,
  getLink,
  removeRouterAddress,
  routeToDevice,
  HOST_DEVICE,
  HOST_PEER_DEVICE,
} from './link/veth.js';

/** Routing-only datapath. */
export class RoutingDatapath implements Datapath {
  readonly name: string = 'routing';

  async init(): Promise<void> {
    await ensureHostDevice();
  }

  async addNetwork(network: DatapathNetwork): Promise<void> {
    if (network.gateway) await addRouterAddress(network.gateway);
  }

  async removeNetwork(network: DatapathNetwork, remaining: DatapathNetwork[]): Promise<void> {
    if (!network.gateway) return;
    if (remaining.some((n) => n.gateway === network.gateway)) return;
    await removeRouterAddress(network.gateway);
  }

  async createEndpointLink(endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string }): Promise<{ mac: string; hostIfIndex: number }> {
    const { host, container } = await createVethPair(endpoint.endpointId, { mac: endpoint.mac || undefined, mtu: endpoint.mtu });
    this.linkCreated(endpoint.hostIfName, host.ifindex, host.address);
    return { mac: container.address, hostIfIndex: host.ifindex };
  }

  /** Hook for subclasses that keep per-link facts (ifindex, MAC of the host side). */
  protected linkCreated(_hostIfName: string, _ifindex: number, _mac: string): void {}

  async activateEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    await routeToDevice(endpoint.ipv4, endpoint.hostIfName);
  }

  async updateEndpoint(_endpoint: DatapathEndpoint): Promise<void> {
    // Routing has no per-identity state.
  }

  async removeEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    // The /32 route goes with the link. Deleting it by prefix could remove the route of a newer
    // endpoint that reuses the address, so it is never deleted explicitly.
    await deleteLink(endpoint.hostIfName);
  }

  async endpointLinkExists(endpoint: DatapathEndpoint): Promise<boolean> {
    return (await getLink(endpoint.hostIfName)) !== undefined;
  }

  async cleanup(endpoints: DatapathEndpoint[], networks: DatapathNetwork[]): Promise<void> {
    for (const ep of endpoints) await this.removeEndpoint(ep);
    for (const n of networks) if (n.gateway) await removeRouterAddress(n.gateway);
    await deleteLink(HOST_DEVICE);
    await deleteLink(HOST_PEER_DEVICE);
  }
}
