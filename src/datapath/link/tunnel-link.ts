/**
 * The per-host tunnel device (one for all peers, Cilium's design): `cilium_vxlan`, a VXLAN device
 * in external (collect_md) mode. It has no remote and no VNI of its own; the BPF program sets both
 * per packet with bpf_skb_set_tunnel_key, and on receive the kernel hands the decapsulated frame to
 * the device with the outer source and VNI as tunnel metadata (bpf_skb_get_tunnel_key).
 */
import { runIp, runIpJson, isExists, isNotFound } from './ip-command.js';
import { getLink, type LinkInfo } from './veth.js';
import { DatapathError } from '../../util/errors.js';

/**
 * Bytes VXLAN over IPv4 adds to an inner Ethernet frame's IP packet: outer IPv4 20 + UDP 8 +
 * VXLAN 8 + inner Ethernet 14.
 */
export const VXLAN_OVERHEAD = 50;

/** Creates (or keeps) the external VXLAN device on `port` with `mtu`, up. */
export async function ensureVxlanDevice(name: string, port: number, mtu: number): Promise<LinkInfo> {
  const existing = await runIpJson<{
    linkinfo?: { info_kind?: string; info_data?: { port?: number; external?: boolean } };
  }>(['-d', 'link', 'show', 'dev', name]).catch((err: unknown) => {
    if (isNotFound(err)) return [];
    throw err;
  });
  const data = existing[0]?.linkinfo?.info_data;
  if (existing[0] && (existing[0].linkinfo?.info_kind !== 'vxlan' || data?.port !== port || data?.external !== true)) {
    // A device of ours with another port (configuration changed): re-create it.
    await runIp(['link', 'del', name]);
  }
  try {
    await runIp(['link', 'add', name, 'type', 'vxlan', 'external', 'dstport', String(port)]);
  } catch (err) {
    if (!isExists(err)) throw err;
  }
  // No ARP: the host's own packets into the tunnel (routes with `encap ip`, link/peer-routes.ts)
  // must not ask the peer for a container's MAC first (the peer's from_overlay drops ARP and sets
  // the container's MAC itself); the kernel then sends them to the device's own address.
  await runIp(['link', 'set', name, 'mtu', String(mtu), 'arp', 'off', 'up']);
  const link = await getLink(name);
  if (!link) throw new DatapathError(`${name} vanished right after creation`);
  return link;
}

/** The underlay: an address of this host and the MTU of the device that carries it. */
export interface Underlay {
  ip: string;
  device: string;
  mtu: number;
}

interface AddrShow {
  ifname: string;
  mtu: number;
  addr_info?: Array<{ family: string; local: string }>;
}

/**
 * Finds the underlay: the device holding `ip` when given, else the source address of the default
 * route. Undefined when there is neither (a host with no default route and no --underlay-ip).
 */
export async function findUnderlay(ip: string): Promise<Underlay | undefined> {
  const addrs = await runIpJson<AddrShow>(['addr', 'show']);
  if (ip !== '') {
    const owner = addrs.find((l) => (l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === ip));
    if (!owner)
      throw new DatapathError(`--underlay-ip ${ip} is not an address of this host; 'ip addr' lists the candidates`);
    return { ip, device: owner.ifname, mtu: owner.mtu };
  }
  const routes = await runIpJson<{ dev?: string; prefsrc?: string }>(['route', 'show', 'default']);
  const dev = routes[0]?.dev;
  if (!dev) return undefined;
  const link = addrs.find((l) => l.ifname === dev);
  const src = routes[0]?.prefsrc ?? link?.addr_info?.find((a) => a.family === 'inet')?.local;
  if (!link || !src) return undefined;
  return { ip: src, device: dev, mtu: link.mtu };
}

/** What `ip -json route get` prints for a destination (the fields underlayNexthop reads). */
export interface RouteGet {
  dev?: string;
  gateway?: string;
  type?: string;
}

/**
 * Where the underlay sends packets for a peer's underlay address, as the ipcache's tunnel_nexthop
 * says it (encapsulation in BPF): undefined = the peer itself is on `device`'s link, an IPv4
 * gateway on that link, or 'device' when the kernel routes the peer out of another device (or not
 * at all), so the tunnel device must route those packets.
 */
export function nexthopOf(route: RouteGet | undefined, device: string): string | undefined {
  if (!route || route.dev !== device || (route.type !== undefined && route.type !== 'unicast')) return 'device';
  return route.gateway;
}

/** nexthopOf the kernel's route to peer now. */
export async function underlayNexthop(peer: string, device: string): Promise<string | undefined> {
  try {
    return nexthopOf((await runIpJson<RouteGet>(['route', 'get', peer]))[0], device);
  } catch {
    return 'device'; // unreachable now: the tunnel device reports it as the kernel would
  }
}
