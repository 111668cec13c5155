/**
 * The Linux side of the eBPF datapath (Cilium's pkg/datapath/linux): the tunnel device, the
 * underlay device, the kernel routes to peers' blocks, this host's addresses and the underlay next
 * hops of peers, and the watch that follows them (every 15 s). It programs no BPF map and loads no
 * program: what changed is reported to the datapath (bpf-datapath.ts), which has the loader reload
 * and the maps layer rewrite.
 */
import { runIpJson } from './link/ip-command.js';
import { getLink, deleteLink } from './link/veth.js';
import { ensureVxlanDevice, underlayNexthop, VXLAN_OVERHEAD } from './link/tunnel-link.js';
import {
  listPeerRoutes,
  removePeerRoutes,
  syncPeerRoutes,
  type PeerRoute,
  type PeerRouteForm,
} from './link/peer-routes.js';
import { Identity } from './bpf/abi.js';
import type { DeviceIfindexes } from './bpf-loader.js';
import { TUNNEL_DEVICE, type TunnelKind } from './features.js';
import { UnsupportedError } from '../util/errors.js';
import type { Logger } from '../util/log.js';

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

/** What the device watch reports; each handler's failure is logged, the watch goes on. */
export interface DeviceWatchHandlers {
  /** This host's IPv4 addresses (read on every tick). */
  hostAddresses(addresses: Set<string>): void;
  /** The tunnel or underlay device has another ifindex now (0: the underlay device is gone). */
  devicesChanged(devices: DeviceIfindexes, before: DeviceIfindexes): Promise<void>;
  /** The devices are the ones the programs were loaded for. */
  devicesUnchanged(): void;
  /** A peer's underlay next hop changed (nexthops has the new one). */
  nexthopsChanged(): Promise<void>;
}

/** Devices, routes and addresses of this host, as the eBPF datapath needs them. */
export class LinuxNode {
  private ifindexes: DeviceIfindexes = { tunnelIfindex: 0, underlayIfindex: 0 };
  /** Peer underlay address -> next hop on the underlay device (see underlayNexthop). */
  private readonly nexthopsByPeer = new Map<string, string | undefined>();
  /** The routes of the last syncPeerRoutes (written again when the tunnel device is re-created). */
  private lastPeerRoutes: PeerRoute[] | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private checkingDevices: Promise<void> | undefined;

  constructor(
    private readonly options: {
      log: Logger;
      tunnel?: TunnelSettings;
      native?: NativeRoutingSettings /** Watch period (15 s). */;
      deviceCheckMs?: number;
    },
  ) {
    if (options.tunnel && options.native) throw new Error('LinuxNode: tunnel and native routing exclude each other');
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

  /** Name of the tunnel device, when there is one. */
  get tunnelDevice(): string | undefined {
    return this.options.tunnel ? TUNNEL_DEVICE[this.options.tunnel.kind] : undefined;
  }

  /** The device ifindexes the programs must be loaded for (after setUp; updated by the watch). */
  get devices(): DeviceIfindexes {
    return this.ifindexes;
  }

  /** Each peer's underlay next hop, when the programs encapsulate themselves (resolveNexthops). */
  get nexthops(): ReadonlyMap<string, string | undefined> {
    return this.nexthopsByPeer;
  }

  /**
   * The form of the routes to peers' blocks: via their underlay address (native routing), or into
   * the tunnel device with the remote-node VNI (tunnel: the host's own traffic to remote containers).
   */
  private get peerRouteForm(): PeerRouteForm | undefined {
    if (this.options.native) return { kind: 'via' };
    const t = this.options.tunnel;
    if (!t) return undefined;
    return {
      kind: 'encap',
      device: TUNNEL_DEVICE[t.kind],
      vni: Identity.RemoteNode,
      src: t.underlayIp,
      mtu: this.overlayMtu!,
    };
  }

  /**
   * Creates the tunnel device (before the programs load: its ifindex is a load-time constant),
   * finds the underlay device (encapsulation in BPF) and removes what another routing mode left.
   * Resolves with the devices to load the programs for.
   */
  async setUp(): Promise<DeviceIfindexes> {
    const tunnel = this.options.tunnel;
    if (tunnel) {
      if (tunnel.kind !== 'vxlan')
        throw new UnsupportedError(
          `--tunnel ${tunnel.kind}: only the vxlan overlay is implemented; use --tunnel vxlan`,
        );
      const link = await ensureVxlanDevice(TUNNEL_DEVICE.vxlan, tunnel.port, this.overlayMtu!);
      this.ifindexes.tunnelIfindex = link.ifindex;
      if (tunnel.encap === 'bpf') {
        const underlay = await getLink(tunnel.underlayDevice);
        if (!underlay)
          throw new UnsupportedError(
            `underlay device ${tunnel.underlayDevice} is gone; set --underlay-ip to an address of this host`,
          );
        this.ifindexes.underlayIfindex = underlay.ifindex;
      }
    }
    // A switch of routing mode leaves the other mode's kernel state behind: remove it (ours only).
    // Routes of this mode stay (the host keeps reaching remote containers across a restart); the
    // peer watcher's first sync corrects them.
    if (this.options.native) await deleteLink(TUNNEL_DEVICE.vxlan);
    await removePeerRoutes(this.peerRouteForm?.kind);
    return this.devices;
  }

  /**
   * The underlay device when the programs do not encapsulate themselves (native routing, or the
   * tunnel device encapsulates): an earlier agent's from_underlay there would keep decapsulating.
   */
  get underlayWithoutBpfEncap(): string | undefined {
    if (this.ifindexes.underlayIfindex) return undefined;
    return this.options.native?.device ?? this.options.tunnel?.underlayDevice;
  }

  /** Makes the kernel's peer-block routes exactly `routes` (multi-host nodes only). */
  async syncPeerRoutes(routes: PeerRoute[]): Promise<{ written: number; deleted: number }> {
    const form = this.peerRouteForm;
    if (!form) throw new Error('peer routes need a tunnel or native routing');
    this.lastPeerRoutes = routes;
    return syncPeerRoutes(routes, form);
  }

  /** Writes the last synced peer routes again (after the tunnel device was re-created). */
  async resyncPeerRoutes(): Promise<void> {
    if (this.lastPeerRoutes) await this.syncPeerRoutes(this.lastPeerRoutes);
  }

  /** The peer-block routes installed now (`cilium status`). */
  async peerRoutes(): Promise<PeerRoute[]> {
    if (!this.peerRouteForm) return [];
    return (await listPeerRoutes()).map(({ prefix, via }) => ({ prefix, via }));
  }

  /** Every IPv4 address of this host (they are the host identity). */
  async hostAddresses(): Promise<Set<string>> {
    const addrs = await runIpJson<{ addr_info?: Array<{ family: string; local: string }> }>(['addr', 'show']);
    return new Set(addrs.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local)));
  }

  /**
   * The underlay next hop of each peer (encapsulation in BPF only), from the kernel's routes;
   * remembered, so a sync asks only about new peers (the watch follows route changes).
   */
  async resolveNexthops(peers: Set<string>): Promise<ReadonlyMap<string, string | undefined>> {
    const device = this.options.tunnel?.underlayDevice;
    if (!this.ifindexes.underlayIfindex || !device) return new Map();
    for (const peer of this.nexthopsByPeer.keys()) if (!peers.has(peer)) this.nexthopsByPeer.delete(peer);
    for (const peer of peers) {
      if (!this.nexthopsByPeer.has(peer)) this.nexthopsByPeer.set(peer, await underlayNexthop(peer, device));
    }
    return this.nexthopsByPeer;
  }

  /** Forgets every next hop (the next resolveNexthops asks the kernel again). */
  forgetNexthops(): void {
    this.nexthopsByPeer.clear();
  }

  /** Re-reads every peer's next hop; true when one changed. */
  private async refreshNexthops(): Promise<boolean> {
    const device = this.options.tunnel?.underlayDevice;
    if (!this.ifindexes.underlayIfindex || !device || this.nexthopsByPeer.size === 0) return false;
    let changed = false;
    for (const [peer, before] of this.nexthopsByPeer) {
      const now = await underlayNexthop(peer, device);
      if (now !== before) {
        this.options.log.info(
          { peer, nexthop: now ?? peer, before: before ?? peer },
          'underlay next hop of a peer changed',
        );
        this.nexthopsByPeer.set(peer, now);
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Watches addresses, devices and next hops on a timer. Addresses come and go on a host (DHCP,
   * new interfaces); routes change too (a peer's underlay next hop); and the devices the programs
   * were loaded for are load-time constants (checkDevices).
   */
  startWatch(handlers: DeviceWatchHandlers): void {
    this.watchTimer = setInterval(() => {
      void this.hostAddresses()
        .then((addresses) => handlers.hostAddresses(addresses))
        .catch(() => undefined);
      void this.checkDevices(handlers)
        .then(async () => {
          if (await this.refreshNexthops()) await handlers.nexthopsChanged();
        })
        .catch((err: unknown) => this.options.log.warn({ err }, 'cannot check the tunnel and underlay devices'));
    }, this.options.deviceCheckMs ?? 15_000);
    this.watchTimer.unref();
  }

  stopWatch(): void {
    clearInterval(this.watchTimer);
  }

  /**
   * The tunnel and underlay devices are load-time constants of the programs (their ifindexes):
   * when one is deleted and created again (`ip link del cilium_vxlan`, an interface re-created by
   * the network manager) the programs would redirect into a stale ifindex. A missing tunnel device
   * is created again; a changed ifindex (or an underlay device that is gone: ifindex 0, so
   * containers' traffic takes the tunnel device until it returns) is reported as devicesChanged
   * (the programs are reloaded); otherwise devicesUnchanged (a removed filter is put back).
   * Concurrent calls share one check.
   */
  async checkDevices(handlers: DeviceWatchHandlers): Promise<void> {
    if (this.checkingDevices) return this.checkingDevices;
    this.checkingDevices = this.checkDevicesOnce(handlers).finally(() => {
      this.checkingDevices = undefined;
    });
    return this.checkingDevices;
  }

  private async checkDevicesOnce(handlers: DeviceWatchHandlers): Promise<void> {
    const tunnel = this.options.tunnel;
    if (!tunnel) return;
    let tunnelLink = await getLink(TUNNEL_DEVICE[tunnel.kind]);
    if (!tunnelLink) {
      this.options.log.warn({ device: TUNNEL_DEVICE[tunnel.kind] }, 'the tunnel device is gone: creating it again');
      tunnelLink = await ensureVxlanDevice(TUNNEL_DEVICE[tunnel.kind], tunnel.port, this.overlayMtu!);
    }
    const underlayIfindex = tunnel.encap === 'bpf' ? ((await getLink(tunnel.underlayDevice))?.ifindex ?? 0) : 0;
    const before = this.ifindexes;
    if (tunnelLink.ifindex === before.tunnelIfindex && underlayIfindex === before.underlayIfindex) {
      handlers.devicesUnchanged();
      return;
    }
    this.options.log.warn(
      { tunnelIfindex: tunnelLink.ifindex, underlayIfindex, before, underlayDevice: tunnel.underlayDevice },
      underlayIfindex || tunnel.encap !== 'bpf'
        ? 'tunnel or underlay device re-created: reloading the programs'
        : "underlay device gone: containers' traffic takes the tunnel device until it returns",
    );
    this.ifindexes = { tunnelIfindex: tunnelLink.ifindex, underlayIfindex };
    await handlers.devicesChanged(this.ifindexes, before);
  }

  /** Removes the tunnel device and every peer route (whatever the mode: an earlier native run's too). */
  async cleanup(): Promise<void> {
    this.stopWatch();
    if (this.tunnelDevice) await deleteLink(this.tunnelDevice);
    await removePeerRoutes();
  }
}
