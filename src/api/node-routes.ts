/**
 * `GET /v1/node` (`cilium node list`, `cilium status --all-nodes`): the cluster's nodes as this
 * node knows them, Cilium's node list. The records come from the peer watcher (`nodes/v1/<node>`,
 * leased: a node whose lease expired is gone from the list), the liveness from each node's
 * heartbeat (`heartbeat/v1/<node>`, rewritten every minute). Health here is what the store says,
 * not a datapath probe: a node can be `ok` and still unreachable on the underlay.
 */
import type { ClusterNodeStatus } from '../cluster/peer-watcher.js';
import { HEARTBEAT_INTERVAL_MS, readHeartbeats } from '../cluster/node-sync.js';
import type { NodeModel } from './models.js';
import type { RouteGroup } from './route-group.js';

/** A heartbeat older than this many intervals makes a node `stale`. */
export const STALE_HEARTBEAT_INTERVALS = 3;

/** What the route reads. */
export interface NodeRoutesDeps {
  /** The nodes with a record (PeerWatcher.nodeList). */
  peers: { nodeList(): ClusterNodeStatus[] };
  /** The cluster store, for the heartbeats. */
  store: Parameters<typeof readHeartbeats>[0];
  /** Heartbeat interval of the nodes (default {@link HEARTBEAT_INTERVAL_MS}). */
  heartbeatIntervalMs?: number;
  now?: () => number;
}

function routingModeOf(node: ClusterNodeStatus): NodeModel['routingMode'] {
  if (node.routingMode === 'native') return 'native';
  return node.tunnel ? 'tunnel' : 'none';
}

/** Why a node other than this one is not programmed as a peer. */
function notPeerReason(node: ClusterNodeStatus, local: ClusterNodeStatus | undefined): string {
  if (!node.underlayIp) return 'no underlay address: no other node can reach it';
  if (!local) return 'this node has no record yet: no peer is programmed';
  if (!local.underlayIp) return 'this node has no overlay: no peer is programmed';
  return (
    `routing mode ${routingModeOf(node)} differs from this node's ` +
    `(${routingModeOf(local)}): not programmed as a peer`
  );
}

/**
 * The node list with each node's health: `ok` when its last heartbeat is at most
 * {@link STALE_HEARTBEAT_INTERVALS} intervals old, `stale` past that, `unknown` without one.
 */
export function nodeModels(
  nodes: readonly ClusterNodeStatus[],
  heartbeats: ReadonlyMap<string, string> | Error,
  now: number,
  intervalMs = HEARTBEAT_INTERVAL_MS,
): NodeModel[] {
  const local = nodes.find((n) => n.local);
  return nodes.map((n) => {
    const details: string[] = [];
    const beat = heartbeats instanceof Error ? undefined : heartbeats.get(n.name);
    const at = beat === undefined ? NaN : Date.parse(beat);
    let health: NodeModel['health'] = 'unknown';
    let seconds: number | undefined;
    if (heartbeats instanceof Error) details.push(`heartbeats could not be read: ${heartbeats.message}`);
    else if (Number.isNaN(at))
      details.push(
        beat === undefined ? 'no heartbeat stored yet' : `heartbeat ${JSON.stringify(beat.slice(0, 64))} is not a time`,
      );
    else {
      seconds = Math.max(0, Math.round((now - at) / 1000));
      health = now - at > STALE_HEARTBEAT_INTERVALS * intervalMs ? 'stale' : 'ok';
      if (health === 'stale')
        details.push(
          `no heartbeat for ${seconds}s (one is due every ${Math.round(intervalMs / 1000)}s): the node is down, ` +
            'hung or cut off from the store; its record goes when its lease expires',
        );
    }
    if (!n.local && !n.peer) details.push(notPeerReason(n, local));
    return {
      name: n.name,
      local: n.local,
      hostname: n.hostname,
      ...(n.underlayIp ? { underlayIp: n.underlayIp } : {}),
      routingMode: routingModeOf(n),
      ...(n.tunnel ? { tunnel: n.tunnel } : {}),
      ...(n.tunnelPort !== undefined ? { tunnelPort: n.tunnelPort } : {}),
      blocks: n.blocks,
      endpoints: n.endpoints,
      bootId: n.bootId,
      startedAt: n.startedAt,
      peer: n.peer,
      ...(beat !== undefined && !Number.isNaN(at) ? { lastSeen: beat, lastSeenSecondsAgo: seconds } : {}),
      health,
      ...(details.length > 0 ? { detail: details.join('; ') } : {}),
    };
  });
}

/** The `/v1/node` route. */
export function nodeRoutes(deps: NodeRoutesDeps): RouteGroup {
  return (routes) => {
    routes.get('/v1/node', async (): Promise<NodeModel[]> => {
      const heartbeats = await readHeartbeats(deps.store).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err)),
      );
      return nodeModels(deps.peers.nodeList(), heartbeats, (deps.now ?? Date.now)(), deps.heartbeatIntervalMs);
    });
  };
}
