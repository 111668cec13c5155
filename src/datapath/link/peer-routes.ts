/**
 * Kernel routes to peers' address blocks: one per peer block, in the main table with a protocol
 * number of our own (PEER_ROUTE_PROTOCOL), so the set we installed is always
 * `ip route show proto 193` and nothing else's routes are ever touched or removed.
 *
 *  - native routing: `<block> via <peer underlay IP>`. The next hop must be on a directly
 *    connected underlay (as with Cilium's `auto-direct-node-routes`); a peer behind a router
 *    needs that router to know the blocks.
 *  - tunnel: `<block> encap ip id 6 dst <peer underlay IP> dev cilium_vxlan src <our underlay IP>
 *    mtu <overlay MTU>`: what the host itself sends to a remote container (containers' own traffic
 *    is encapsulated by the BPF program before any route is looked up). The kernel's lightweight
 *    tunnel sets the tunnel key; the VNI is reserved:remote-node, which the receiving node accepts
 *    only from that node's own address (bpf/lxc.bpf.c, node_identity). The source is our underlay
 *    address, which the peers' ipcache tunnels back to us, so replies come through the tunnel too.
 */
import { runIp, isNotFound } from './ip-command.js';

/**
 * rtnetlink protocol of the peer routes (RTPROT_* above RTPROT_STATIC are free for routing
 * daemons; 193 is unassigned in iproute2's rt_protos and rt_protos.d).
 */
export const PEER_ROUTE_PROTOCOL = 193;

/** A route to a peer's address block through its underlay address. */
export interface PeerRoute {
  /** The block, `a.b.c.d/len`. */
  prefix: string;
  /** The peer's underlay IPv4. */
  via: string;
}

/** How the routes reach a peer: straight to its underlay address, or into the tunnel device. */
export type PeerRouteForm = { kind: 'via' } | { kind: 'encap'; device: string; vni: number; src: string; mtu: number };

/** An installed peer route and its form. */
export interface InstalledPeerRoute extends PeerRoute {
  kind: PeerRouteForm['kind'];
}

/**
 * Parses `ip -4 route show proto 193` (text: iproute2's JSON repeats the key `dst` for an encap
 * route, once for the prefix and once for the tunnel's destination).
 */
export function parsePeerRoutes(text: string): InstalledPeerRoute[] {
  const out: InstalledPeerRoute[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (!words[0] || words[0] === 'unreachable' || words[0] === 'blackhole') continue;
    const prefix = words[0].includes('/') ? words[0] : `${words[0]}/32`;
    const encap = words.indexOf('encap');
    if (encap >= 0) {
      const dst = words.indexOf('dst', encap);
      if (dst > 0 && words[dst + 1]) out.push({ prefix, via: words[dst + 1]!, kind: 'encap' });
      continue;
    }
    const via = words.indexOf('via');
    if (via > 0 && words[via + 1]) out.push({ prefix, via: words[via + 1]!, kind: 'via' });
  }
  return out;
}

/** The peer routes currently installed (by this or an earlier run of the daemon). */
export async function listPeerRoutes(): Promise<InstalledPeerRoute[]> {
  return parsePeerRoutes(await runIp(['-4', 'route', 'show', 'table', 'main', 'proto', String(PEER_ROUTE_PROTOCOL)]));
}

function routeArgs(route: PeerRoute, form: PeerRouteForm): string[] {
  const proto = ['proto', String(PEER_ROUTE_PROTOCOL)];
  if (form.kind === 'via') return ['route', 'replace', route.prefix, 'via', route.via, ...proto];
  return [
    'route',
    'replace',
    route.prefix,
    'encap',
    'ip',
    'id',
    String(form.vni),
    'dst',
    route.via,
    'dev',
    form.device,
    'src',
    form.src,
    'mtu',
    String(form.mtu),
    ...proto,
  ];
}

/**
 * Makes the installed peer routes exactly `desired`, in `form`: replaces missing or changed ones
 * (another next hop, or the other form), deletes the rest. Returns how many it wrote and deleted.
 */
export async function syncPeerRoutes(
  desired: PeerRoute[],
  form: PeerRouteForm,
): Promise<{ written: number; deleted: number }> {
  const current = new Map((await listPeerRoutes()).map((r) => [r.prefix, r]));
  const wanted = new Map(desired.map((r) => [r.prefix, r.via]));
  let written = 0;
  let deleted = 0;
  for (const [prefix, via] of wanted) {
    const now = current.get(prefix);
    if (now?.via === via && now.kind === form.kind) continue;
    await runIp(routeArgs({ prefix, via }, form));
    written++;
  }
  for (const [prefix] of current) {
    if (wanted.has(prefix)) continue;
    await deletePeerRoute(prefix);
    deleted++;
  }
  return { written, deleted };
}

/** Removes every peer route (`cilium cleanup`), or only those not of form `keep` (a mode switch). */
export async function removePeerRoutes(keep?: PeerRouteForm['kind']): Promise<void> {
  for (const r of await listPeerRoutes()) if (r.kind !== keep) await deletePeerRoute(r.prefix);
}

async function deletePeerRoute(prefix: string): Promise<void> {
  try {
    await runIp(['route', 'del', prefix, 'proto', String(PEER_ROUTE_PROTOCOL)]);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
