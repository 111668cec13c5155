/**
 * Native routing's kernel routes: one per peer block, `<block> via <peer underlay IP>`, in the
 * main table with a protocol number of our own (PEER_ROUTE_PROTOCOL), so the set we installed is
 * always `ip route show proto 193` and nothing else's routes are ever touched or removed.
 * The next hop must be on a directly connected underlay (as with Cilium's
 * `auto-direct-node-routes`); a peer behind a router needs that router to know the blocks.
 */
import { runIp, runIpJson, isNotFound } from './ip-command.js';

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

/** The peer routes currently installed (by this or an earlier run of the daemon). */
export async function listPeerRoutes(): Promise<PeerRoute[]> {
  const routes = await runIpJson<{ dst?: string; gateway?: string }>(['-4', 'route', 'show', 'table', 'main', 'proto', String(PEER_ROUTE_PROTOCOL)]);
  return routes.filter((r) => r.dst && r.gateway).map((r) => ({ prefix: r.dst!.includes('/') ? r.dst! : `${r.dst!}/32`, via: r.gateway! }));
}

/**
 * Makes the installed peer routes exactly `desired`: replaces missing or changed ones, deletes the
 * rest. Returns how many it wrote and deleted.
 */
export async function syncPeerRoutes(desired: PeerRoute[]): Promise<{ written: number; deleted: number }> {
  const current = new Map((await listPeerRoutes()).map((r) => [r.prefix, r.via]));
  const wanted = new Map(desired.map((r) => [r.prefix, r.via]));
  let written = 0;
  let deleted = 0;
  for (const [prefix, via] of wanted) {
    if (current.get(prefix) === via) continue;
    await runIp(['route', 'replace', prefix, 'via', via, 'proto', String(PEER_ROUTE_PROTOCOL)]);
    written++;
  }
  for (const [prefix] of current) {
    if (wanted.has(prefix)) continue;
    await deletePeerRoute(prefix);
    deleted++;
  }
  return { written, deleted };
}

/** Removes every peer route (`cilium cleanup`). */
export async function removePeerRoutes(): Promise<void> {
  for (const r of await listPeerRoutes()) await deletePeerRoute(r.prefix);
}

async function deletePeerRoute(prefix: string): Promise<void> {
  try {
    await runIp(['route', 'del', prefix, 'proto', String(PEER_ROUTE_PROTOCOL)]);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
