/**
 * The plain kernel-routing datapath: a veth per container, a /32 route to it, proxy ARP on the
 * host side and the gateway address on `cilium_host`. No policy; the eBPF datapath
 * (`bpf-datapath.ts`) holds one and adds its maps and programs around each call.
 */
import type { Datapath, DatapathEndpoint, DatapathNetwork } from './datapath.js';
import {
  addRouterAddress,
  createVethPair,
  deleteLink,
  deleteOwnedLink,
  ensureHostDevice,
  getLink,
  removeRouterAddress,
  routeToDevice,
  HOST_DEVICE,
  HOST_PEER_DEVICE,
} from './link/veth.js';
import { stopIpWorker } from './link/ip-worker.js';

/** What a user of the routing datapath is told about (the eBPF datapath keeps link facts, logs). */
export interface RoutingDatapathOptions {
  /** A veth pair was created: its host side's name, ifindex and MAC. */
  onLinkCreated?: (hostIfName: string, ifindex: number, mac: string) => void;
  /** Background work (a veth deletion) failed; nobody waits for it to report the error. */
  onBackgroundFailure?: (err: unknown, what: string) => void;
}

/** Routing-only datapath. */
export class RoutingDatapath implements Datapath {
  readonly name: string = 'routing';
  /** Host veths whose /32 route this process installed (and that still exist). */
  private readonly routed = new Set<string>();
  /** Link deletions still running in the background, by host veth name. */
  private readonly deleting = new Map<string, Promise<void>>();

  constructor(private readonly options: RoutingDatapathOptions = {}) {}

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

  async createEndpointLink(
    endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string },
  ): Promise<{ mac: string; hostIfIndex: number }> {
    await this.deleting.get(endpoint.hostIfName);
    // The /32 route goes in with the link (same `ip` process): Join then spawns nothing.
    const names = { host: endpoint.hostIfName, container: endpoint.containerIfName };
    const { host, container, routed } = await createVethPair(names, {
      mac: endpoint.mac || undefined,
      mtu: endpoint.mtu,
      routeIp: endpoint.ipv4,
    });
    if (routed) this.routed.add(endpoint.hostIfName);
    this.options.onLinkCreated?.(endpoint.hostIfName, host.ifindex, host.address);
    return { mac: container.address, hostIfIndex: host.ifindex };
  }

  async activateEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    // Routed at creation by this process; otherwise (restore after a restart, re-join) assert it.
    if (this.routed.has(endpoint.hostIfName)) return;
    await routeToDevice(endpoint.ipv4, endpoint.hostIfName);
    this.routed.add(endpoint.hostIfName);
  }

  async updateEndpoint(_endpoint: DatapathEndpoint): Promise<void> {
    // Routing has no per-identity state.
  }

  async removeEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    // The /32 route goes with the link. Deleting it by prefix could remove the route of a newer
    // endpoint that reuses the address, so it is never deleted explicitly.
    // Nothing depends on the link being gone when DeleteEndpoint answers (its address is no longer
    // routed to it once a newer endpoint's route replaces the /32; its BPF state is already gone),
    // so the `ip` process runs in the background, off the container's teardown path. A re-create
    // of the same name, endpointLinkExists, cleanup and settle() wait for it.
    // The link is deleted only while it is still the one this endpoint made (its recorded
    // ifindex): a link of the same name made since is another endpoint's.
    const name = endpoint.hostIfName;
    const ifindex = endpoint.hostIfIndex;
    this.routed.delete(name);
    const previous = this.deleting.get(name) ?? Promise.resolve();
    const deletion: Promise<void> = previous
      .then(async () => {
        if (!ifindex) return deleteLink(name);
        if ((await deleteOwnedLink(name, ifindex)) === 'not-owned') {
          this.backgroundFailed(
            new Error(
              `veth ${name} now has another ifindex than ${ifindex}, recorded by endpoint ${endpoint.id}: ` +
                `it is not this endpoint's and was left alone`,
            ),
            `deleting veth ${name}`,
          );
        }
      })
      .catch((err: unknown) => this.backgroundFailed(err, `deleting veth ${name}`))
      .finally(() => {
        if (this.deleting.get(name) === deletion) this.deleting.delete(name);
      });
    this.deleting.set(name, deletion);
  }

  private backgroundFailed(err: unknown, what: string): void {
    this.options.onBackgroundFailure?.(err, what);
  }

  /** Waits for background link deletions (before close, in tests). */
  async settle(): Promise<void> {
    while (this.deleting.size > 0) await Promise.all([...this.deleting.values()]);
  }

  async endpointLinkExists(endpoint: DatapathEndpoint): Promise<boolean> {
    await this.deleting.get(endpoint.hostIfName);
    const link = await getLink(endpoint.hostIfName);
    // A link of that name with another ifindex is not the endpoint's (its own vanished).
    return link !== undefined && (!endpoint.hostIfIndex || link.ifindex === endpoint.hostIfIndex);
  }

  async cleanup(endpoints: DatapathEndpoint[], networks: DatapathNetwork[]): Promise<void> {
    for (const ep of endpoints) await this.removeEndpoint(ep);
    await this.settle();
    for (const n of networks) if (n.gateway) await removeRouterAddress(n.gateway);
    await deleteLink(HOST_DEVICE);
    await deleteLink(HOST_PEER_DEVICE);
    stopIpWorker();
  }
}
