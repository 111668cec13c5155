/**
 * The eBPF datapath, composed the way Cilium's is: the routing datapath's veths, routes and
 * gateway addresses (routing-datapath.ts), the loader (bpf-loader.ts: bpffs, the programs, their
 * tc attachments and reloads), the Linux side (linux-node.ts: tunnel and underlay devices, peer
 * routes, host addresses, next hops and their 15 s watch) and the maps layer (datapath-maps.ts:
 * endpoints, policy, ipcache, conntrack, counters — what the policy engine and the CLI use), plus
 * the event ring buffer. Everything is pinned under --bpf-root, so it keeps enforcing while the
 * daemon is down and is adopted, not reloaded, when it comes back.
 *
 * This class only orders the parts: which runs first on init, on each endpoint and network call,
 * when a device changes (reload, then the maps and routes that depend on it), on cleanup and close.
 * docs/datapath.md has the module map.
 */
import type {
  Datapath,
  DatapathEndpoint,
  DatapathNetwork,
  DatapathPolicyEntry,
  EndpointEnforcement,
  RemoteIpcacheEntry,
} from './datapath.js';
import { RoutingDatapath } from './routing-datapath.js';
import { BpfLoader, type DeviceIfindexes } from './bpf-loader.js';
import { LinuxNode, type DeviceWatchHandlers, type NativeRoutingSettings, type TunnelSettings } from './linux-node.js';
import { DatapathMaps } from './datapath-maps.js';
import { EventReader } from './bpf/events.js';
import type { LxcDatapath } from './bpf/programs.js';
import type { DatapathEvent, CtEntry, CtKey, EndpointInfo, IpcacheEntry, PolicyKey, PolicyValue } from './bpf/abi.js';
import type { MetricsSample } from './bpf/maps.js';
import type { PeerRoute } from './link/peer-routes.js';
import { stopIpWorker } from './link/ip-worker.js';
import { HOST_DEVICE } from './link/veth.js';
import { ensureMasqueradeRule, removeMasqueradeRule } from './masquerade.js';
import type { Logger } from '../util/log.js';

export { checkBpfRoot, datapathInstalled } from './bpf-loader.js';
export {
  networkNumber,
  type DatapathPolicyEntry,
  type EndpointEnforcement,
  type RemoteIpcacheEntry,
} from './datapath.js';
export type { NativeRoutingSettings, TunnelSettings } from './linux-node.js';

/** Options of BpfDatapath. */
export interface BpfDatapathOptions {
  bpfRoot: string;
  log: Logger;
  tunnel?: TunnelSettings;
  native?: NativeRoutingSettings;
  ctAccounting?: boolean;
  /** How often host addresses, next hops and devices are checked (15 s). */
  deviceCheckMs?: number;
}

/** Routing + eBPF policy datapath. */
export class BpfDatapath implements Datapath {
  readonly name = 'ebpf';
  private readonly routing: RoutingDatapath;
  private readonly loader: BpfLoader;
  private readonly node: LinuxNode;
  /** The maps layer (usable after init). */
  private readonly state: DatapathMaps;
  private events: EventReader | undefined;
  private readonly listeners = new Set<(e: DatapathEvent) => void>();
  private readonly watch: DeviceWatchHandlers;

  constructor(private readonly options: BpfDatapathOptions) {
    if (options.tunnel && options.native) throw new Error('BpfDatapath: tunnel and native routing exclude each other');
    const log = options.log;
    this.node = new LinuxNode({
      log,
      tunnel: options.tunnel,
      native: options.native,
      deviceCheckMs: options.deviceCheckMs,
    });
    this.loader = new BpfLoader({
      bpfRoot: options.bpfRoot,
      log,
      underlayIp: options.tunnel?.underlayIp,
      tunnelPort: options.tunnel?.port ?? 0,
      ctAccounting: options.ctAccounting ?? false,
    });
    this.state = new DatapathMaps(() => this.loader.programs);
    this.routing = new RoutingDatapath({
      onLinkCreated: (name, ifindex, mac) => this.state.rememberLink(name, ifindex, mac),
      onBackgroundFailure: (err, what) => log.warn({ err }, `${what} failed (\`cilium cleanup\` removes leftovers)`),
    });
    this.watch = {
      hostAddresses: (addresses) => {
        if (this.loader.isLoaded) this.state.setHostAddresses(addresses);
      },
      devicesChanged: (devices) => this.reloadPrograms(devices),
      devicesUnchanged: () => this.loader.checkDeviceFilters(),
      nexthopsChanged: async () => {
        await this.syncRemoteEntries(this.state.lastRemoteEntries);
      },
    };
  }

  /** MTU containers get on multi-host nodes (undefined: single host, the network's own MTU). */
  get overlayMtu(): number | undefined {
    return this.node.overlayMtu;
  }

  /** How traffic reaches other nodes; undefined on a single host. */
  get routingMode(): 'tunnel' | 'native' | undefined {
    return this.node.routingMode;
  }

  /** Name of the tunnel device, when there is one. */
  get tunnelDevice(): string | undefined {
    return this.node.tunnelDevice;
  }

  /** The loaded programs and maps (after init). */
  get maps(): LxcDatapath {
    return this.loader.programs;
  }

  /** Makes the kernel's peer-block routes exactly `routes` (multi-host nodes only). */
  syncPeerRoutes(routes: PeerRoute[]): Promise<{ written: number; deleted: number }> {
    return this.node.syncPeerRoutes(routes);
  }

  /** The peer-block routes installed now (`cilium status`). */
  peerRoutes(): Promise<PeerRoute[]> {
    return this.node.peerRoutes();
  }

  async init(): Promise<void> {
    await this.routing.init();
    await this.loader.mountBpffsIfNeeded();
    const devices = await this.node.setUp();
    // Without encapsulation in BPF, an earlier agent's from_underlay would keep decapsulating.
    const underlayDevice = this.node.underlayWithoutBpfEncap;
    if (underlayDevice && (await this.loader.detachIngress(underlayDevice, 'from_underlay'))) {
      this.options.log.info(
        { device: underlayDevice },
        'from_underlay of an earlier agent detached (no encapsulation in BPF now)',
      );
    }
    await this.loader.load(devices);
    await this.state.adoptEnforcement();
    await ensureMasqueradeRule();
    this.state.setHostAddresses(await this.node.hostAddresses());
    this.node.startWatch(this.watch);
    this.startEvents();
    this.options.log.info({ pinRoot: this.options.bpfRoot }, 'eBPF datapath loaded (pinned maps adopted or created)');
  }

  /**
   * Checks the tunnel and underlay devices the programs were loaded for (linux-node.ts): a
   * re-created device reloads the programs, a removed filter of ours is put back.
   */
  async checkDevices(): Promise<void> {
    if (!this.loader.isLoaded) return;
    await this.node.checkDevices(this.watch);
  }

  /**
   * Swaps in programs loaded for new device ifindexes (bpf-loader.ts), then writes again what
   * depends on the devices: the tunnelled ipcache entries (next hops) and the peer routes into the
   * tunnel device.
   */
  private async reloadPrograms(devices: DeviceIfindexes): Promise<void> {
    if (!this.loader.isLoaded) return;
    await this.loader.reload(devices);
    await this.events?.close();
    this.startEvents();
    this.node.forgetNexthops();
    await this.syncRemoteEntries(this.state.lastRemoteEntries);
    await this.node.resyncPeerRoutes();
  }

  private startEvents(): void {
    this.events = new EventReader(
      this.maps.events,
      (e) => {
        for (const l of this.listeners) l(e);
      },
      (err) => this.options.log.warn({ err }, 'undecodable datapath event'),
    );
  }

  /** Subscribes to datapath events (drops, verdicts, traces). */
  onEvent(listener: (e: DatapathEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async addNetwork(network: DatapathNetwork): Promise<void> {
    await this.routing.addNetwork(network);
    this.state.addNetwork(network);
  }

  async removeNetwork(network: DatapathNetwork, remaining: DatapathNetwork[]): Promise<void> {
    await this.routing.removeNetwork(network, remaining);
    this.state.removeNetwork(network, remaining);
  }

  createEndpointLink(
    endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string },
  ): Promise<{ mac: string; hostIfIndex: number }> {
    return this.routing.createEndpointLink(endpoint);
  }

  endpointLinkExists(endpoint: DatapathEndpoint): Promise<boolean> {
    return this.routing.endpointLinkExists(endpoint);
  }

  async activateEndpoint(ep: DatapathEndpoint): Promise<void> {
    const ifindex = await this.state.writeEndpoint(ep);
    // Replaces the filters atomically when they exist (daemon restart: no gap).
    this.loader.attachEndpoint(ifindex);
    await this.routing.activateEndpoint(ep);
  }

  updateEndpoint(ep: DatapathEndpoint): Promise<void> {
    return this.state.updateEndpoint(ep);
  }

  /** Writes an endpoint's enforcement flags and policy entries (diffed, batched). */
  applyEndpointPolicy(
    ep: DatapathEndpoint,
    enforcement: EndpointEnforcement,
    entries: DatapathPolicyEntry[],
  ): Promise<{ added: number; deleted: number }> {
    return this.state.applyEndpointPolicy(ep, enforcement, entries);
  }

  async removeEndpoint(ep: DatapathEndpoint): Promise<void> {
    await this.state.removeEndpoint(ep);
    await this.routing.removeEndpoint(ep);
  }

  /** Replaces the ipcache entries of CIDR identities (prefix -> identity). */
  syncCidrIdentities(prefixes: Map<string, number>): Promise<void> {
    return this.state.syncCidrIdentities(prefixes);
  }

  /**
   * Makes the ipcache's tunnelled entries (other nodes' endpoints and blocks) exactly `entries`,
   * each with its peer's underlay next hop (encapsulation in BPF).
   */
  async syncRemoteEntries(entries: RemoteIpcacheEntry[]): Promise<{ written: number; deleted: number }> {
    const nexthops = await this.node.resolveNexthops(new Set(entries.map((e) => e.tunnelEndpoint)));
    return this.state.syncRemoteEntries(entries, nexthops);
  }

  // Dumps for the agent API and the CLI (datapath-maps.ts).
  ipcacheEntries(): Promise<Array<[string, IpcacheEntry]>> {
    return this.state.ipcacheEntries();
  }

  conntrackEntries(): Promise<Array<[CtKey, CtEntry]>> {
    return this.state.conntrackEntries();
  }

  endpointEntries(): Promise<Array<[string, EndpointInfo]>> {
    return this.state.endpointEntries();
  }

  policyEntries(epId: number): Promise<Array<[PolicyKey, PolicyValue]>> {
    return this.state.policyEntries(epId);
  }

  endpointEnforcement(epId: number): EndpointEnforcement {
    return this.state.endpointEnforcement(epId);
  }

  metricsSamples(): Promise<MetricsSample[]> {
    return this.state.metricsSamples();
  }

  /** Waits for background link deletions. */
  settle(): Promise<void> {
    return this.routing.settle();
  }

  async cleanup(endpoints: DatapathEndpoint[], networks: DatapathNetwork[]): Promise<void> {
    this.node.stopWatch();
    await this.events?.close();
    this.events = undefined;
    for (const ep of endpoints) await this.state.removeEndpoint(ep);
    await this.routing.cleanup(endpoints, networks);
    await this.node.cleanup();
    this.loader.close();
    await removeMasqueradeRule();
    // Unpin every map we pinned (the programs die with their last filter/fd).
    this.loader.removePins();
  }

  /** Stops reading events and closes fds; pinned state and attachments stay. */
  async close(): Promise<void> {
    this.node.stopWatch();
    await this.settle();
    stopIpWorker();
    await this.events?.close();
    this.events = undefined;
    this.loader.close();
  }
}

export { HOST_DEVICE };
