/**
 * The maps layer of the eBPF datapath (Cilium's pkg/maps as the agent uses it): what the policy
 * engine, the endpoint layer, the peer watcher and the CLI put into and read from the pinned maps —
 * endpoints with their enforcement flags, policy entries, the ipcache (host addresses, gateways,
 * CIDR identities, other nodes' entries), conntrack and the counters. It always works on the
 * programs loaded now (a reload swaps them; the pinned maps stay the same).
 *
 * Order matters: an endpoint is written to cilium_endpoints before its programs are attached
 * (until then its packets would be dropped as unknown sources).
 */
import {
  Identity,
  type CtEntry,
  type CtKey,
  type EndpointInfo,
  type IpcacheEntry,
  type PolicyKey,
  type PolicyValue,
} from './bpf/abi.js';
import type { LxcDatapath } from './bpf/programs.js';
import type { MetricsSample } from './bpf/maps.js';
import { getLink } from './link/veth.js';
import {
  networkNumber,
  type DatapathEndpoint,
  type DatapathNetwork,
  type DatapathPolicyEntry,
  type EndpointEnforcement,
  type RemoteIpcacheEntry,
} from './datapath.js';

const NO_ENFORCEMENT: EndpointEnforcement = { enforceIngress: false, enforceEgress: false };

/** Typed, diffed writes to the datapath's maps, and their dumps. */
export class DatapathMaps {
  private readonly subnets = new Map<string, string>();
  private readonly enforcement = new Map<number, EndpointEnforcement>();
  private readonly hostAddressSet = new Set<string>();
  /** Host-side ifindex and MAC of each endpoint's veth (they never change). */
  private readonly links = new Map<string, { ifindex: number; mac: string }>();
  /** The tunnelled entries of the last syncRemoteEntries (rewritten when a next hop changes). */
  private remoteEntries: RemoteIpcacheEntry[] = [];

  /** programs: the loaded programs now (the loader's; a reload replaces them). */
  constructor(private readonly programs: () => LxcDatapath) {}

  private get maps(): LxcDatapath {
    return this.programs();
  }

  /**
   * Adopted maps keep enforcing across a restart: start from the flags they hold, so re-writing
   * an endpoint before its policy is recompiled never opens a window without enforcement.
   */
  async adoptEnforcement(): Promise<void> {
    for (const [, info] of await this.maps.endpoints.list()) {
      this.enforcement.set(info.epId, { enforceIngress: info.enforceIngress, enforceEgress: info.enforceEgress });
    }
  }

  /** Makes the host-identity entries of this host's own addresses exactly `addresses`. */
  setHostAddresses(addresses: Set<string>): void {
    for (const ip of addresses) {
      if (this.hostAddressSet.has(ip)) continue;
      this.maps.ipcache.set(`${ip}/32`, { identity: Identity.Host, netId: 0 });
      this.hostAddressSet.add(ip);
    }
    for (const ip of [...this.hostAddressSet]) {
      if (addresses.has(ip)) continue;
      this.maps.ipcache.delete(`${ip}/32`);
      this.hostAddressSet.delete(ip);
    }
  }

  /** Remembers the network's subnet (its number) and makes its gateway the host identity. */
  addNetwork(network: DatapathNetwork): void {
    this.subnets.set(network.networkId, network.subnet);
    if (network.gateway) this.maps.ipcache.set(`${network.gateway}/32`, { identity: Identity.Host, netId: 0 });
  }

  /** Undoes addNetwork (keeping a gateway another network still uses). */
  removeNetwork(network: DatapathNetwork, remaining: DatapathNetwork[]): void {
    this.subnets.delete(network.networkId);
    if (network.gateway && !remaining.some((n) => n.gateway === network.gateway))
      this.maps.ipcache.delete(`${network.gateway}/32`);
  }

  /** Remembers a veth the routing datapath created (saves an `ip` spawn per endpoint write). */
  rememberLink(hostIfName: string, ifindex: number, mac: string): void {
    this.links.set(hostIfName, { ifindex, mac });
  }

  private endpointInfo(ep: DatapathEndpoint, hostMac: string, ifindex: number): EndpointInfo {
    const subnet = this.subnets.get(ep.networkId);
    const e = this.enforcement.get(ep.id) ?? NO_ENFORCEMENT;
    return {
      ifindex,
      epId: ep.id,
      identity: ep.identity,
      netId: subnet ? networkNumber(subnet) : 0,
      enforceIngress: e.enforceIngress,
      enforceEgress: e.enforceEgress,
      mac: ep.mac,
      nodeMac: hostMac,
    };
  }

  /** Writes the endpoint's cilium_endpoints entry; resolves with its veth's ifindex. */
  async writeEndpoint(ep: DatapathEndpoint): Promise<number> {
    // A veth's ifindex and MAC never change: look them up once (an `ip` spawn costs ~50 ms).
    let link = this.links.get(ep.hostIfName);
    if (!link) {
      const found = await getLink(ep.hostIfName);
      if (!found) throw new Error(`veth ${ep.hostIfName} of endpoint ${ep.id} does not exist`);
      link = { ifindex: found.ifindex, mac: found.address };
      this.links.set(ep.hostIfName, link);
    }
    this.maps.endpoints.set(ep.ipv4, this.endpointInfo(ep, link.mac, link.ifindex));
    return link.ifindex;
  }

  /** Re-writes the endpoint's entry when it has one (identity changed). */
  async updateEndpoint(ep: DatapathEndpoint): Promise<void> {
    if (this.maps.endpoints.get(ep.ipv4)) await this.writeEndpoint(ep);
  }

  /** Writes an endpoint's enforcement flags and policy entries (diffed, batched). */
  async applyEndpointPolicy(
    ep: DatapathEndpoint,
    enforcement: EndpointEnforcement,
    entries: DatapathPolicyEntry[],
  ): Promise<{ added: number; deleted: number }> {
    // Entries first, then the flags: a newly enforced direction never runs on an empty map.
    const diff = await this.maps.policy.syncEndpoint(ep.id, entries);
    this.enforcement.set(ep.id, enforcement);
    if (this.maps.endpoints.get(ep.ipv4)) await this.writeEndpoint(ep);
    return { added: diff.written, deleted: diff.deleted };
  }

  /** Removes the endpoint's entry, policy and conntrack entries. */
  async removeEndpoint(ep: DatapathEndpoint): Promise<void> {
    this.links.delete(ep.hostIfName);
    this.maps.endpoints.delete(ep.ipv4);
    await this.maps.policy.removeEndpoint(ep.id);
    this.enforcement.delete(ep.id);
    await this.maps.ct.deleteWhere((k) => k.saddr === ep.ipv4 || k.daddr === ep.ipv4);
  }

  /** Replaces the ipcache entries of CIDR identities (prefix -> identity). */
  async syncCidrIdentities(prefixes: Map<string, number>): Promise<void> {
    const keep = (entry: IpcacheEntry) => entry.identity >= 16_777_216;
    await this.maps.ipcache.diffApply(
      [...prefixes].map(([prefix, identity]) => [prefix, { identity, netId: 0 }] as const),
      (key) => {
        const current = this.maps.ipcache.get(key);
        return current !== undefined && keep(current);
      },
    );
  }

  /**
   * Makes the ipcache's tunnelled entries (other nodes' endpoints and blocks) exactly `entries`,
   * in one batched diff, each with its peer's underlay next hop; local, host and CIDR entries are
   * left alone.
   */
  async syncRemoteEntries(
    entries: RemoteIpcacheEntry[],
    nexthops: ReadonlyMap<string, string | undefined>,
  ): Promise<{ written: number; deleted: number }> {
    this.remoteEntries = entries;
    const diff = await this.maps.ipcache.diffApply(
      entries.map((e) => {
        const entry: IpcacheEntry = { identity: e.identity, netId: e.netId, tunnelEndpoint: e.tunnelEndpoint };
        const nexthop = nexthops.get(e.tunnelEndpoint);
        if (nexthop) entry.tunnelNexthop = nexthop;
        return [e.prefix, entry] as const;
      }),
      (key) => this.maps.ipcache.get(key)?.tunnelEndpoint !== undefined,
    );
    return { written: diff.written, deleted: diff.deleted };
  }

  /** The entries of the last syncRemoteEntries. */
  get lastRemoteEntries(): RemoteIpcacheEntry[] {
    return this.remoteEntries;
  }

  /** Current ipcache. */
  async ipcacheEntries(): Promise<Array<[string, IpcacheEntry]>> {
    return this.maps.ipcache.list();
  }

  /** Current conntrack table. */
  async conntrackEntries(): Promise<Array<[CtKey, CtEntry]>> {
    return this.maps.ct.list();
  }

  /** Current endpoints map. */
  async endpointEntries(): Promise<Array<[string, EndpointInfo]>> {
    return this.maps.endpoints.list();
  }

  /** Policy entries of one endpoint. */
  async policyEntries(epId: number): Promise<Array<[PolicyKey, PolicyValue]>> {
    return (await this.maps.policy.list()).filter(([k]) => k.epId === epId);
  }

  /** Enforcement flags last applied to an endpoint. */
  endpointEnforcement(epId: number): EndpointEnforcement {
    return this.enforcement.get(epId) ?? { ...NO_ENFORCEMENT };
  }

  /** Datapath counters (per reason/direction). */
  async metricsSamples(): Promise<MetricsSample[]> {
    return this.maps.metrics.read();
  }
}
