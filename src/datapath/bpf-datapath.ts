/**
 * The eBPF datapath: the routing datapath's veths, routes and gateway addresses, plus the lxc
 * programs on every container veth, the endpoint/ipcache/policy maps they read, conntrack,
 * metrics and the event ring buffer (all pinned under --bpf-root, so they keep enforcing while
 * the daemon is down and are adopted, not reloaded, when it comes back).
 *
 * Order matters: an endpoint is written to cilium_endpoints before its programs are attached
 * (until then its packets would be dropped as unknown sources).
 */
import { execFile } from 'node:child_process';
import { readdirSync, rmSync, statfsSync, statSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DatapathEndpoint, DatapathNetwork } from './datapath.js';
import { RoutingDatapath } from './routing-datapath.js';
import { getLink, HOST_DEVICE } from './link/veth.js';
import { runIpJson } from './link/ip-command.js';
import { stopIpWorker } from './link/ip-worker.js';
import { loadLxcDatapath, type LxcDatapath } from './bpf/programs.js';
import { EventReader } from './bpf/events.js';
import { bpfNative } from './bpf/native.js';
import { DEFAULT_TC_HANDLE, DEFAULT_TC_PRIORITY, type TcAttachment } from './bpf/tc.js';
import { Identity, type DatapathEvent, type EndpointInfo, type IpcacheEntry, type CtKey, type CtEntry, type PolicyKey, type PolicyValue } from './bpf/abi.js';
import type { MetricsSample } from './bpf/maps.js';
import { ensureMasqueradeRule, removeMasqueradeRule } from './masquerade.js';
import { ensureVxlanDevice, underlayNexthop, VXLAN_OVERHEAD } from './link/tunnel-link.js';
import { listPeerRoutes, removePeerRoutes, syncPeerRoutes, type PeerRoute, type PeerRouteForm } from './link/peer-routes.js';
import { deleteLink } from './link/veth.js';
import { TUNNEL_DEVICE, type TunnelKind } from './features.js';
import { ConfigError, UnsupportedError } from '../util/errors.js';
import type { Logger } from '../util/log.js';

const BPF_FS_MAGIC = 0xcafe4a11;

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

/** Docker network number used for isolation: the subnet's network address as an integer (never 0). */
export function networkNumber(subnet: string): number {
  const [addr] = subnet.split('/');
  const n = addr!.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return n === 0 ? 1 : n;
}

function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/**
 * Removes the agent's ingress filter (handle 1, priority 1) from device when it runs the program
 * `name` (tc names it; a filter someone else put there is left alone). True when one was removed.
 */
async function detachOurIngress(device: string, name: string): Promise<boolean> {
  const link = await getLink(device);
  if (!link) return false;
  const out = await new Promise<string>((resolve) => {
    execFile('tc', ['-json', 'filter', 'show', 'dev', device, 'ingress'], (err, stdout) => resolve(err ? '[]' : stdout));
  });
  const filters = JSON.parse(out.trim() || '[]') as Array<{ pref?: number; options?: { handle?: string; prog?: { name?: string } } }>;
  const ours = filters.some((f) => f.pref === DEFAULT_TC_PRIORITY && Number(f.options?.handle) === DEFAULT_TC_HANDLE && f.options?.prog?.name === name);
  if (!ours) return false;
  bpfNative().tcDetach(link.ifindex, 'ingress', DEFAULT_TC_HANDLE, DEFAULT_TC_PRIORITY);
  return true;
}

const BPF_FS_ROOT = '/sys/fs/bpf';

/** Whether init will mount a bpffs on /sys/fs/bpf first (a root under it, where none is mounted). */
function bpffsToMount(bpfRoot: string): boolean {
  return bpfRoot.startsWith(`${BPF_FS_ROOT}/`) && existsSync(BPF_FS_ROOT) && statfsSync(BPF_FS_ROOT).type !== BPF_FS_MAGIC;
}

/**
 * Refuses, changing nothing, a --bpf-root where pinning would fail after the links are made:
 * one whose nearest existing directory is on another filesystem than bpffs (pins exist only
 * there). A root under /sys/fs/bpf with no bpffs mounted there yet passes: init mounts one.
 */
export function checkBpfRoot(bpfRoot: string): void {
  if (bpffsToMount(bpfRoot)) return;
  let dir = bpfRoot;
  while (!existsSync(dir) && dir !== dirname(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) throw new ConfigError(`--bpf-root ${bpfRoot}: ${dir} is not a directory; choose a directory under ${BPF_FS_ROOT}`);
  if (statfsSync(dir).type !== BPF_FS_MAGIC) {
    throw new ConfigError(`--bpf-root ${bpfRoot}: ${dir} is not a bpf filesystem (programs and maps can be pinned only on bpffs); choose a directory under ${BPF_FS_ROOT}, or mount one first (mount -t bpf bpf DIR)`);
  }
}

/** Whether an earlier agent's datapath is on this host: the cilium_host link, or pins under bpfRoot. */
export async function datapathInstalled(bpfRoot: string): Promise<boolean> {
  if (await getLink(HOST_DEVICE)) return true;
  return existsSync(bpfRoot) && statfsSync(bpfRoot).type === BPF_FS_MAGIC && readdirSync(bpfRoot).length > 0;
}

function mountBpffs(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mount', ['-t', 'bpf', 'bpf', dir], (err, _o, stderr) => (err ? reject(new UnsupportedError(`cannot mount bpffs at ${dir}: ${stderr || err.message}`)) : resolve()));
  });
}

/** The overlay this host runs: one external tunnel device for every peer. */
export interface TunnelSettings {
  kind: TunnelKind;
  /** UDP port. */
  port: number;
  /** MTU of the underlay device; containers and the tunnel device get this minus the overlay overhead. */
  underlayMtu: number;
  /** This host's underlay address: the source of what the host itself sends to remote containers. */
  underlayIp: string;
  /** The device that holds underlayIp. */
  underlayDevice: string;
  /**
   * Who writes the outer headers of containers' traffic: 'bpf' = from_container itself, straight
   * to the underlay device (no route lookup per packet); 'device' = the tunnel device.
   */
  encap: 'bpf' | 'device';
}

/**
 * Native routing: no tunnel device; peers' blocks are kernel routes via their underlay addresses
 * (link/peer-routes.ts) and containers get the underlay's MTU.
 */
export interface NativeRoutingSettings {
  /** MTU of the underlay device (containers get all of it: nothing is added on the way). */
  underlayMtu: number;
  /** The underlay device. */
  device: string;
}

/** A remote address or prefix and what the ipcache says about it. */
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

/** Routing + eBPF policy datapath. */
export class BpfDatapath extends RoutingDatapath {
  override readonly name = 'ebpf';
  private lxc: LxcDatapath | undefined;
  private events: EventReader | undefined;
  private readonly subnets = new Map<string, string>();
  private readonly enforcement = new Map<number, EndpointEnforcement>();
  private readonly listeners = new Set<(e: DatapathEvent) => void>();
  private readonly hostAddresses = new Set<string>();
  private readonly links = new Map<string, { ifindex: number; mac: string }>();
  private hostAddressTimer: NodeJS.Timeout | undefined;

  private tunnelIfindex = 0;
  private underlayIfindex = 0;
  /** Peer underlay address -> next hop on the underlay device (see underlayNexthop). */
  private readonly nexthops = new Map<string, string | undefined>();
  /** The tunnelled entries of the last syncRemoteEntries (rewritten when a next hop changes). */
  private remoteEntries: RemoteIpcacheEntry[] = [];
  /** The routes of the last syncPeerRoutes (written again when the tunnel device is re-created). */
  private lastPeerRoutes: PeerRoute[] | undefined;
  /** Our filters on the tunnel and underlay devices (checkDevices puts a removed one back). */
  private deviceFilters: TcAttachment[] = [];
  private checkingDevices: Promise<void> | undefined;

  constructor(private readonly options: { bpfRoot: string; log: Logger; tunnel?: TunnelSettings; native?: NativeRoutingSettings; ctAccounting?: boolean; /** How often host addresses, next hops and devices are checked (15 s). */ deviceCheckMs?: number }) {
    super();
    if (options.tunnel && options.native) throw new Error('BpfDatapath: tunnel and native routing exclude each other');
  }

  /**
   * MTU containers get on multi-host nodes: the underlay's minus the encapsulation with a tunnel,
   * all of it with native routing (undefined: single host, the network's own MTU).
   */
  get overlayMtu(): number | undefined {
    const t = this.options.tunnel;
    if (t) return t.underlayMtu - VXLAN_OVERHEAD;
    return this.options.native?.underlayMtu;
  }

  /** How traffic reaches other nodes; undefined on a single host. */
  get routingMode(): 'tunnel' | 'native' | undefined {
    if (this.options.tunnel) return 'tunnel';
    return this.options.native ? 'native' : undefined;
  }

  /**
   * The form of the routes to peers' blocks: via their underlay address (native routing), or into
   * the tunnel device with the remote-node VNI (tunnel: the host's own traffic to remote containers).
   */
  private get peerRouteForm(): PeerRouteForm | undefined {
    if (this.options.native) return { kind: 'via' };
    const t = this.options.tunnel;
    if (!t) return undefined;
    return { kind: 'encap', device: TUNNEL_DEVICE[t.kind], vni: Identity.RemoteNode, src: t.underlayIp, mtu: this.overlayMtu! };
  }

  /** Makes the kernel's peer-block routes exactly `routes` (multi-host nodes only). */
  async syncPeerRoutes(routes: PeerRoute[]): Promise<{ written: number; deleted: number }> {
    const form = this.peerRouteForm;
    if (!form) throw new Error('peer routes need a tunnel or native routing');
    this.lastPeerRoutes = routes;
    return syncPeerRoutes(routes, form);
  }

  /** The peer-block routes installed now (`cilium status`). */
  async peerRoutes(): Promise<PeerRoute[]> {
    if (!this.peerRouteForm) return [];
    return (await listPeerRoutes()).map(({ prefix, via }) => ({ prefix, via }));
  }

  /** Name of the tunnel device, when there is one. */
  get tunnelDevice(): string | undefined {
    return this.options.tunnel ? TUNNEL_DEVICE[this.options.tunnel.kind] : undefined;
  }

  /** The loaded maps (after init). */
  get maps(): LxcDatapath {
    if (!this.lxc) throw new Error('BPF datapath not initialised');
    return this.lxc;
  }

  override async init(): Promise<void> {
    await super.init();
    if (bpffsToMount(this.options.bpfRoot)) {
      this.options.log.info({ dir: BPF_FS_ROOT }, 'mounting bpffs');
      await mountBpffs(BPF_FS_ROOT);
    }
    const tunnel = this.options.tunnel;
    if (tunnel) {
      if (tunnel.kind !== 'vxlan') throw new UnsupportedError(`--tunnel ${tunnel.kind}: only the vxlan overlay is implemented; use --tunnel vxlan`);
      // The device exists before the programs load: its ifindex is a load-time constant.
      const link = await ensureVxlanDevice(TUNNEL_DEVICE.vxlan, tunnel.port, this.overlayMtu!);
      this.tunnelIfindex = link.ifindex;
      if (tunnel.encap === 'bpf') {
        const underlay = await getLink(tunnel.underlayDevice);
        if (!underlay) throw new UnsupportedError(`underlay device ${tunnel.underlayDevice} is gone; set --underlay-ip to an address of this host`);
        this.underlayIfindex = underlay.ifindex;
      }
    }
    // A switch of routing mode leaves the other mode's kernel state behind: remove it (ours only).
    // Routes of this mode stay (the host keeps reaching remote containers across a restart); the
    // peer watcher's first sync corrects them.
    if (this.options.native) await deleteLink(TUNNEL_DEVICE.vxlan);
    await removePeerRoutes(this.peerRouteForm?.kind);
    // Without encapsulation in BPF, an earlier agent's from_underlay would keep decapsulating.
    const underlayDevice = this.options.native?.device ?? this.options.tunnel?.underlayDevice;
    if (underlayDevice && !this.underlayIfindex && (await detachOurIngress(underlayDevice, 'from_underlay'))) {
      this.options.log.info({ device: underlayDevice }, 'from_underlay of an earlier agent detached (no encapsulation in BPF now)');
    }
    this.lxc = await this.loadPrograms();
    // Adopted maps keep enforcing across a restart: start from the flags they hold, so re-writing
    // an endpoint before its policy is recompiled never opens a window without enforcement.
    for (const [, info] of await this.maps.endpoints.list()) {
      this.enforcement.set(info.epId, { enforceIngress: info.enforceIngress, enforceEgress: info.enforceEgress });
    }
    await ensureMasqueradeRule();
    await this.refreshHostAddresses();
    // Addresses come and go on a host (DHCP, new interfaces): keep the host identity current.
    // Routes change too: a peer's underlay next hop (encapsulation in BPF) follows them.
    // The devices the programs were loaded for are watched as well (checkDevices).
    this.hostAddressTimer = setInterval(() => {
      void this.refreshHostAddresses().catch(() => undefined);
      void this.checkDevices()
        .then(() => this.refreshNexthops())
        .catch((err: unknown) => this.options.log.warn({ err: String(err) }, 'cannot check the tunnel and underlay devices'));
    }, this.options.deviceCheckMs ?? 15_000);
    this.hostAddressTimer.unref();
    this.startEvents();
    this.options.log.info({ pinRoot: this.options.bpfRoot }, 'eBPF datapath loaded (pinned maps adopted or created)');
  }

  /**
   * Loads the programs for the current tunnel/underlay ifindexes (load-time constants), adopting
   * the pinned maps, and attaches the tunnel and underlay devices' programs. Native routing:
   * tunnel ifindex 0, so from_container hands peers' traffic to the kernel's routes.
   */
  private async loadPrograms(): Promise<LxcDatapath> {
    const tunnel = this.options.tunnel;
    const lxc = await loadLxcDatapath({
      pinRoot: this.options.bpfRoot,
      config: {
        tunnelIfindex: this.tunnelIfindex,
        underlayIfindex: this.underlayIfindex,
        underlaySaddr: tunnel ? ipv4ToNumber(tunnel.underlayIp) : 0,
        tunnelPort: tunnel?.port ?? 0,
        ctAccounting: this.options.ctAccounting ?? false,
      },
      onDroppedPins: (maps) => this.options.log.warn({ maps }, 'pinned maps of an older layout replaced (counters restart at 0)'),
    });
    this.attachDeviceFilters(lxc);
    return lxc;
  }

  /** Attaches (atomic replace) from_overlay to the tunnel device and from_underlay to the underlay device. */
  private attachDeviceFilters(lxc: LxcDatapath): void {
    this.deviceFilters = [];
    if (this.tunnelIfindex) this.deviceFilters.push(lxc.attachOverlay(this.tunnelIfindex));
    if (this.underlayIfindex) this.deviceFilters.push(lxc.attachUnderlay(this.underlayIfindex));
  }

  private startEvents(): void {
    this.events = new EventReader(
      this.maps.events,
      (e) => {
        for (const l of this.listeners) l(e);
      },
      (err) => this.options.log.warn({ err: err.message }, 'undecodable datapath event'),
    );
  }

  /**
   * The tunnel and underlay devices are load-time constants of the programs (their ifindexes):
   * when one is deleted and created again (`ip link del cilium_vxlan`, an interface re-created by
   * the network manager) the programs would redirect into a stale ifindex. Checked on the 15 s
   * timer: a missing tunnel device is created again; a changed ifindex (or an underlay device
   * that is gone: ifindex 0, so containers' traffic takes the tunnel device until it returns)
   * reloads the programs; a filter of ours removed from a device (`tc qdisc del`) is put back.
   */
  async checkDevices(): Promise<void> {
    if (this.checkingDevices) return this.checkingDevices;
    this.checkingDevices = this.checkDevicesOnce().finally(() => {
      this.checkingDevices = undefined;
    });
    return this.checkingDevices;
  }

  private async checkDevicesOnce(): Promise<void> {
    const tunnel = this.options.tunnel;
    if (!tunnel || !this.lxc) return;
    let tunnelLink = await getLink(TUNNEL_DEVICE[tunnel.kind]);
    if (!tunnelLink) {
      this.options.log.warn({ device: TUNNEL_DEVICE[tunnel.kind] }, 'the tunnel device is gone: creating it again');
      tunnelLink = await ensureVxlanDevice(TUNNEL_DEVICE[tunnel.kind], tunnel.port, this.overlayMtu!);
    }
    const underlayIfindex = tunnel.encap === 'bpf' ? ((await getLink(tunnel.underlayDevice))?.ifindex ?? 0) : 0;
    if (tunnelLink.ifindex !== this.tunnelIfindex || underlayIfindex !== this.underlayIfindex) {
      await this.reloadPrograms(tunnelLink.ifindex, underlayIfindex);
      return;
    }
    for (const filter of this.deviceFilters) {
      let progId: number | null = null;
      try {
        progId = filter.query();
      } catch {
        // the device went away since: the next check sees it
      }
      if (progId === filter.progId) continue;
      this.options.log.warn({ ifindex: filter.ifindex }, 'a filter of ours on the tunnel or underlay device was removed: attaching it again');
      this.attachDeviceFilters(this.maps);
      break;
    }
  }

  /**
   * Loads the programs for new device ifindexes and swaps them in on every device and endpoint
   * veth (atomic replace, as after a restart: no gap); the peer routes into the tunnel device and
   * the tunnelled ipcache entries (next hops) are written again. The old object's fds close a
   * little later, so an operation already holding its maps finishes on them.
   */
  private async reloadPrograms(tunnelIfindex: number, underlayIfindex: number): Promise<void> {
    const tunnel = this.options.tunnel!;
    this.options.log.warn(
      { tunnelIfindex, underlayIfindex, before: { tunnelIfindex: this.tunnelIfindex, underlayIfindex: this.underlayIfindex }, underlayDevice: tunnel.underlayDevice },
      underlayIfindex || tunnel.encap !== 'bpf' ? 'tunnel or underlay device re-created: reloading the programs' : 'underlay device gone: containers\' traffic takes the tunnel device until it returns',
    );
    const old = this.lxc!;
    this.tunnelIfindex = tunnelIfindex;
    this.underlayIfindex = underlayIfindex;
    const lxc = await this.loadPrograms();
    for (const [ip, info] of await lxc.endpoints.list()) {
      try {
        lxc.attachEndpoint(info.ifindex);
      } catch (err) {
        this.options.log.warn({ err: String(err), ip, ifindex: info.ifindex }, 'cannot attach the reloaded programs to an endpoint');
      }
    }
    await this.events?.close();
    this.lxc = lxc;
    this.startEvents();
    setTimeout(() => old.close(), 10_000).unref();
    this.nexthops.clear();
    await this.syncRemoteEntries(this.remoteEntries);
    if (this.lastPeerRoutes) await this.syncPeerRoutes(this.lastPeerRoutes);
  }

  /** Every address of this host is the host identity (traffic from the host to containers). */
  private async refreshHostAddresses(): Promise<void> {
    if (!this.lxc) return;
    const addrs = await runIpJson<{ addr_info?: Array<{ family: string; local: string }> }>(['addr', 'show']);
    const hostIps = new Set(addrs.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local)));
    for (const ip of hostIps) {
      if (this.hostAddresses.has(ip)) continue;
      this.maps.ipcache.set(`${ip}/32`, { identity: Identity.Host, netId: 0 });
      this.hostAddresses.add(ip);
    }
    for (const ip of [...this.hostAddresses]) {
      if (hostIps.has(ip)) continue;
      this.maps.ipcache.delete(`${ip}/32`);
      this.hostAddresses.delete(ip);
    }
  }

  /** Subscribes to datapath events (drops, verdicts, traces). */
  onEvent(listener: (e: DatapathEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  override async addNetwork(network: DatapathNetwork): Promise<void> {
    await super.addNetwork(network);
    this.subnets.set(network.networkId, network.subnet);
    if (network.gateway) this.maps.ipcache.set(`${network.gateway}/32`, { identity: Identity.Host, netId: 0 });
  }

  override async removeNetwork(network: DatapathNetwork, remaining: DatapathNetwork[]): Promise<void> {
    await super.removeNetwork(network, remaining);
    this.subnets.delete(network.networkId);
    if (network.gateway && !remaining.some((n) => n.gateway === network.gateway)) this.maps.ipcache.delete(`${network.gateway}/32`);
  }

  private endpointInfo(ep: DatapathEndpoint, hostMac: string, ifindex: number): EndpointInfo {
    const subnet = this.subnets.get(ep.networkId);
    const e = this.enforcement.get(ep.id) ?? { enforceIngress: false, enforceEgress: false };
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

  protected override backgroundFailed(err: unknown, what: string): void {
    this.options.log.warn({ err }, `${what} failed (\`cilium cleanup\` removes leftovers)`);
  }

  protected override linkCreated(hostIfName: string, ifindex: number, mac: string): void {
    this.links.set(hostIfName, { ifindex, mac });
  }

  private async writeEndpoint(ep: DatapathEndpoint): Promise<number> {
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

  override async activateEndpoint(ep: DatapathEndpoint): Promise<void> {
    const ifindex = await this.writeEndpoint(ep);
    // Replaces the filters atomically when they exist (daemon restart: no gap).
    this.maps.attachEndpoint(ifindex);
    await super.activateEndpoint(ep);
  }

  override async updateEndpoint(ep: DatapathEndpoint): Promise<void> {
    if (this.maps.endpoints.get(ep.ipv4)) await this.writeEndpoint(ep);
  }

  /** Writes an endpoint's enforcement flags and policy entries (diffed, batched). */
  async applyEndpointPolicy(ep: DatapathEndpoint, enforcement: EndpointEnforcement, entries: DatapathPolicyEntry[]): Promise<{ added: number; deleted: number }> {
    // Entries first, then the flags: a newly enforced direction never runs on an empty map.
    const diff = await this.maps.policy.syncEndpoint(ep.id, entries);
    this.enforcement.set(ep.id, enforcement);
    if (this.maps.endpoints.get(ep.ipv4)) await this.writeEndpoint(ep);
    return { added: diff.written, deleted: diff.deleted };
  }

  override async removeEndpoint(ep: DatapathEndpoint): Promise<void> {
    this.links.delete(ep.hostIfName);
    this.maps.endpoints.delete(ep.ipv4);
    await this.maps.policy.removeEndpoint(ep.id);
    this.enforcement.delete(ep.id);
    await this.maps.ct.deleteWhere((k) => k.saddr === ep.ipv4 || k.daddr === ep.ipv4);
    await super.removeEndpoint(ep);
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
   * in one batched diff; local, host and CIDR entries are left alone.
   */
  async syncRemoteEntries(entries: RemoteIpcacheEntry[]): Promise<{ written: number; deleted: number }> {
    this.remoteEntries = entries;
    const nexthops = await this.resolveNexthops(new Set(entries.map((e) => e.tunnelEndpoint)));
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

  /**
   * The underlay next hop of each peer (encapsulation in BPF only), from the kernel's routes;
   * remembered, so a sync asks only about new peers (refreshNexthops follows route changes).
   */
  private async resolveNexthops(peers: Set<string>): Promise<Map<string, string | undefined>> {
    const device = this.options.tunnel?.underlayDevice;
    if (!this.underlayIfindex || !device) return new Map();
    for (const peer of this.nexthops.keys()) if (!peers.has(peer)) this.nexthops.delete(peer);
    for (const peer of peers) {
      if (!this.nexthops.has(peer)) this.nexthops.set(peer, await underlayNexthop(peer, device));
    }
    return this.nexthops;
  }

  /** Re-reads every peer's next hop; rewrites the tunnelled entries when one changed. */
  private async refreshNexthops(): Promise<void> {
    const device = this.options.tunnel?.underlayDevice;
    if (!this.underlayIfindex || !device || this.nexthops.size === 0) return;
    let changed = false;
    for (const [peer, before] of this.nexthops) {
      const now = await underlayNexthop(peer, device);
      if (now !== before) {
        this.options.log.info({ peer, nexthop: now ?? peer, before: before ?? peer }, 'underlay next hop of a peer changed');
        this.nexthops.set(peer, now);
        changed = true;
      }
    }
    if (changed) await this.syncRemoteEntries(this.remoteEntries);
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
    return this.enforcement.get(epId) ?? { enforceIngress: false, enforceEgress: false };
  }

  /** Datapath counters (per reason/direction). */
  async metricsSamples(): Promise<MetricsSample[]> {
    return this.maps.metrics.read();
  }

  override async cleanup(endpoints: DatapathEndpoint[], networks: DatapathNetwork[]): Promise<void> {
    clearInterval(this.hostAddressTimer);
    await this.events?.close();
    this.events = undefined;
    await super.cleanup(endpoints, networks);
    if (this.tunnelDevice) await deleteLink(this.tunnelDevice);
    // Whatever the configured mode: routes of an earlier native-routing run go too.
    await removePeerRoutes();
    this.lxc?.close();
    this.lxc = undefined;
    await removeMasqueradeRule();
    // Unpin every map we pinned (the programs die with their last filter/fd).
    if (existsSync(this.options.bpfRoot)) {
      for (const name of readdirSync(this.options.bpfRoot)) rmSync(join(this.options.bpfRoot, name), { force: true, recursive: true });
      rmSync(this.options.bpfRoot, { force: true, recursive: true });
    }
  }

  /** Stops reading events and closes fds; pinned state and attachments stay. */
  async close(): Promise<void> {
    clearInterval(this.hostAddressTimer);
    await this.settle();
    stopIpWorker();
    await this.events?.close();
    this.events = undefined;
    this.lxc?.close();
    this.lxc = undefined;
  }
}

export { HOST_DEVICE };
