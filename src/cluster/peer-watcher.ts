/**
 * Other nodes -> this node's kernel: watches `nodes/v1/`, `ip/v1/` and `ipam/v1/blocks/` and keeps
 * the tunnelled part of the ipcache equal to what they say (Cilium v1.18+'s model, no tunnel map):
 *
 *   remote endpoint  `<ip>/32`      -> its identity, its network, tunnel endpoint = its node's underlay IP
 *   remote block     `<block cidr>` -> reserved:world, the pool's network, tunnel endpoint = the node's underlay IP
 *   remote node      `<underlay>/32` -> reserved:remote-node, no network, tunnel endpoint = that address
 *
 * A remote address the ip/v1 entries do not (yet) name still reaches its node through the block
 * entry, with the world identity until the entry arrives. Only nodes that have a record with an
 * underlay address count: when a node's lease expires its record and its leased ip entries are
 * deleted, and the next sync removes every entry pointing at it. A node that comes back (a new
 * boot id, or a new underlay address) is re-learned from its new record.
 *
 * The node entries make a container's traffic to another node's own address go through the tunnel
 * with its identity (and the answers of that node's host come back the same way).
 *
 * Each peer block also becomes a kernel route (`routes`), added and removed with the block and the
 * node's record: with a tunnel, into the tunnel device (the host's own traffic to remote
 * containers); with native routing, via the peer's underlay address (everything: there the
 * entries' tunnel endpoint only marks them as a peer's, there is no tunnel device).
 * A node counts as a peer only when it runs the same routing mode as this one (a tunnel node
 * cannot decapsulate what a native one would send it, nor the other way round).
 *
 * Every change recomputes the whole desired set and applies it as one batched map diff
 * (coalesced: at most one sync runs, and one more is queued while it does).
 */
import type { KvStore, Watcher, WatchEvent } from '../kvstore/kvstore.js';
import { cidrContainsAddress, parseIpv4, parseIpv4Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { BLOCKS_PREFIX, parseBlockKey, subnetOfPoolId } from '../ipam/pool-store.js';
import { IP_PREFIX, ipOfEntryKey, parseNamedIpEntry } from './ip-publisher.js';
import { NODES_PREFIX, nodeOfRecordKey, parseNodeRecord, type NodeRecord } from './node-sync.js';

const IDENTITY_WORLD = 2;
const IDENTITY_REMOTE_NODE = 6;

/** One tunnelled ipcache entry (the datapath's RemoteIpcacheEntry). */
export interface RemoteEntry {
  prefix: string;
  identity: number;
  netId: number;
  tunnelEndpoint: string;
}

/** A route to a peer's block through its underlay address (link/peer-routes.ts). */
export interface PeerRoute {
  prefix: string;
  via: string;
}

/** Where peer-block routes go (the datapath). */
export interface PeerRouteWriter {
  syncPeerRoutes(routes: PeerRoute[]): Promise<{ written: number; deleted: number }>;
}

/** What the watcher needs of the datapath. */
export interface RemoteEntryWriter {
  syncRemoteEntries(entries: RemoteEntry[]): Promise<{ written: number; deleted: number }>;
}

/** Dependencies of the watcher. */
export interface PeerWatcherDeps {
  store: KvStore;
  nodeName: string;
  datapath: RemoteEntryWriter;
  /** Docker network number of a subnet (datapath's networkNumber). */
  networkNumber(subnet: string): number;
  /** Where peer-block routes go; absent: none (tests of the ipcache alone). */
  routes?: PeerRouteWriter;
  /** How this node reaches its peers; only peers in the same mode count (default tunnel). */
  routingMode?: 'tunnel' | 'native';
  log: Logger;
}

/** A peer as `cilium status` shows it. */
export interface PeerStatus {
  name: string;
  underlayIp?: string;
  tunnel?: string;
  bootId: string;
  blocks: string[];
  endpoints: number;
}

/** A node as `cilium node list` shows it: its record, with blocks from the block claims. */
export interface ClusterNodeStatus extends NodeRecord {
  endpoints: number;
  /** This node. */
  local: boolean;
  /** Programmed as a peer by this node (same routing mode, an underlay address). */
  peer: boolean;
}

function cidrContains(cidr: string, ip: string): boolean {
  const prefix = parseIpv4Cidr(cidr);
  const address = parseIpv4(ip);
  return prefix !== undefined && address !== undefined && cidrContainsAddress(prefix, address);
}

/** Watches the cluster and programs remote endpoints and blocks into the ipcache. */
export class PeerWatcher {
  private readonly nodes = new Map<string, NodeRecord>();
  /** Last record logged per node (survives re-lists, so a re-list does not log joins again). */
  private readonly seen = new Map<string, NodeRecord>();
  private readonly ips = new Map<
    string,
    { identity: number; node: string; name?: string; aliases?: string[]; network?: string }
  >();
  private readonly blocks = new Map<string, { node: string; subnet: string }>();
  private watchers: Watcher[] = [];
  private syncing: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private lastSyncAt: string | undefined;

  constructor(private readonly deps: PeerWatcherDeps) {}

  /** Lists the three prefixes, programs the ipcache, then follows changes. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.watchFromList();
  }

  /** Stops watching (kernel entries stay: the datapath keeps working while the daemon is down). */
  stop(): void {
    this.stopped = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  /**
   * Re-reads the three prefixes and re-applies them (periodic resync, reconnect): repairs anything
   * a lost event left wrong. Running watches stay; a re-read between two events converges anyway,
   * since each event carries the key's full value.
   */
  async relist(): Promise<void> {
    await this.load();
    await this.sync();
  }

  private async load(): Promise<{ nodes: bigint; ips: bigint; blocks: bigint }> {
    const [nodes, ips, blocks] = await Promise.all([
      this.deps.store.list(NODES_PREFIX),
      this.deps.store.list(IP_PREFIX),
      this.deps.store.list(BLOCKS_PREFIX),
    ]);
    this.nodes.clear();
    this.ips.clear();
    this.blocks.clear();
    for (const p of nodes.pairs)
      this.applyNode({
        type: 'put',
        key: p.key,
        value: p.value,
        modRevision: p.modRevision,
        createRevision: p.createRevision,
      });
    for (const p of ips.pairs)
      this.applyIp({
        type: 'put',
        key: p.key,
        value: p.value,
        modRevision: p.modRevision,
        createRevision: p.createRevision,
      });
    for (const p of blocks.pairs)
      this.applyBlock({
        type: 'put',
        key: p.key,
        value: p.value,
        modRevision: p.modRevision,
        createRevision: p.createRevision,
      });
    return { nodes: nodes.revision, ips: ips.revision, blocks: blocks.revision };
  }

  /** Lists, then watches each prefix from its list's revision (the store contract's re-list). */
  private async watchFromList(): Promise<void> {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    const revisions = await this.load();
    if (this.stopped) return;
    const resync = (reason: string) => {
      this.deps.log.info({ reason }, 'peer watch lost events: re-listing');
      void this.watchFromList().catch((err: unknown) =>
        this.deps.log.warn({ err }, 'peer re-list failed; the resync retries'),
      );
    };
    this.watchers.push(
      this.deps.store.watch(NODES_PREFIX, revisions.nodes, {
        onEvent: (e) => this.changed(() => this.applyNode(e)),
        onResyncNeeded: resync,
      }),
      this.deps.store.watch(IP_PREFIX, revisions.ips, {
        onEvent: (e) => this.changed(() => this.applyIp(e)),
        onResyncNeeded: resync,
      }),
      this.deps.store.watch(BLOCKS_PREFIX, revisions.blocks, {
        onEvent: (e) => this.changed(() => this.applyBlock(e)),
        onResyncNeeded: resync,
      }),
    );
    await this.sync();
  }

  /** Known peers (not this node). */
  peers(): PeerStatus[] {
    return [...this.nodes.values()]
      .filter((n) => n.name !== this.deps.nodeName)
      .map((n) => ({
        name: n.name,
        underlayIp: n.underlayIp,
        tunnel: n.tunnel,
        bootId: n.bootId,
        blocks: [...this.blocks].filter(([, b]) => b.node === n.name).map(([cidr]) => cidr),
        endpoints: [...this.ips.values()].filter((e) => e.node === n.name).length,
      }));
  }

  /**
   * Every node with a record, this one included, sorted by name (`cilium node list`): the record,
   * the blocks and endpoint count the store gives it, and whether this node programs it as a peer.
   */
  nodeList(): ClusterNodeStatus[] {
    return [...this.nodes.values()]
      .map((n) => ({
        ...n,
        blocks: [...this.blocks].filter(([, b]) => b.node === n.name).map(([cidr]) => cidr),
        endpoints: [...this.ips.values()].filter((e) => e.node === n.name).length,
        local: n.name === this.deps.nodeName,
        peer: this.endpointOf(n.name) !== undefined,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Other nodes' named endpoints (container name and network, as their ip/v1 entries say), for the
   * cluster DNS resolver. Only nodes with a live record count, as for the ipcache.
   */
  remoteNames(): Array<{ ip: string; name: string; aliases?: string[]; network: string; node: string }> {
    const out: Array<{ ip: string; name: string; aliases?: string[]; network: string; node: string }> = [];
    for (const [ip, e] of this.ips) {
      if (e.node === this.deps.nodeName || !this.nodes.has(e.node) || !e.name || !e.network) continue;
      out.push({ ip, name: e.name, ...(e.aliases ? { aliases: e.aliases } : {}), network: e.network, node: e.node });
    }
    return out;
  }

  /** When the ipcache was last brought in line with the store. */
  get lastSync(): string | undefined {
    return this.lastSyncAt;
  }

  private changed(apply: () => void): void {
    apply();
    void this.sync().catch(() => undefined);
  }

  private applyNode(e: WatchEvent): void {
    const name = nodeOfRecordKey(e.key);
    if (e.type === 'delete') {
      this.nodes.delete(name);
      if (this.seen.delete(name))
        this.deps.log.info({ node: name }, 'node left (record deleted or lease expired): removing its entries');
      return;
    }
    const record = parseNodeRecord(e.value);
    if (!record) {
      this.deps.log.warn({ key: e.key }, 'ignoring a node record that does not parse');
      return;
    }
    const previous = this.seen.get(name);
    this.seen.set(name, record);
    if (name !== this.deps.nodeName) {
      if (!previous)
        this.deps.log.info({ node: name, underlayIp: record.underlayIp, bootId: record.bootId }, 'node joined');
      else if (previous.bootId !== record.bootId || previous.underlayIp !== record.underlayIp) {
        this.deps.log.info(
          { node: name, underlayIp: record.underlayIp, bootId: record.bootId },
          'node came back (new boot id or underlay address): re-learning it',
        );
      }
    }
    this.nodes.set(name, record);
  }

  private applyIp(e: WatchEvent): void {
    const ip = ipOfEntryKey(e.key);
    if (e.type === 'delete') {
      this.ips.delete(ip);
      return;
    }
    // Another node wrote the key: one that is no address (or not in canonical form) must not
    // reach the ipcache, where it would fail the whole sync.
    if (parseIpv4(ip) === undefined) {
      this.deps.log.warn({ key: e.key }, 'ignoring an ip entry whose key is not an IPv4 address');
      return;
    }
    const entry = parseNamedIpEntry(e.key, e.value);
    if (!entry) {
      this.deps.log.warn({ key: e.key }, 'ignoring an ip entry that does not parse');
      return;
    }
    this.ips.set(ip, {
      identity: entry.identity,
      node: entry.node,
      name: entry.name,
      ...(entry.aliases ? { aliases: entry.aliases } : {}),
      network: entry.network,
    });
  }

  private applyBlock(e: WatchEvent): void {
    const claim = parseBlockKey(e.key);
    if (!claim) return;
    const { cidr } = claim;
    if (e.type === 'delete') {
      this.blocks.delete(cidr);
      return;
    }
    const subnet = subnetOfPoolId(claim.poolId);
    if (parseIpv4Cidr(cidr) === undefined || parseIpv4Cidr(subnet) === undefined) {
      this.deps.log.warn({ key: e.key }, 'ignoring a block claim whose key has no IPv4 CIDR');
      return;
    }
    this.blocks.set(cidr, { node: e.value, subnet });
  }

  /** Underlay address through which `node` is reached, if it is a live peer in this node's routing mode. */
  private endpointOf(node: string): string | undefined {
    const r = node === this.deps.nodeName ? undefined : this.nodes.get(node);
    if (!r?.underlayIp || parseIpv4(r.underlayIp) === undefined) return undefined;
    const native = r.routingMode === 'native';
    if (this.deps.routingMode === 'native' ? !native : native || !r.tunnel) return undefined;
    return r.underlayIp;
  }

  /** The peer-block routes the store implies right now. */
  desiredRoutes(): PeerRoute[] {
    if (!this.deps.routes) return [];
    const out: PeerRoute[] = [];
    for (const [cidr, b] of this.blocks) {
      const via = this.endpointOf(b.node);
      if (via) out.push({ prefix: cidr, via });
    }
    return out;
  }

  /** The tunnelled entries the store implies right now. */
  desiredEntries(): RemoteEntry[] {
    const out: RemoteEntry[] = [];
    const endpointOf = (node: string) => this.endpointOf(node);
    const subnets = [...new Set([...this.blocks.values()].map((b) => b.subnet))];
    for (const [cidr, b] of this.blocks) {
      const tunnelEndpoint = endpointOf(b.node);
      if (tunnelEndpoint)
        out.push({ prefix: cidr, identity: IDENTITY_WORLD, netId: this.deps.networkNumber(b.subnet), tunnelEndpoint });
    }
    for (const [name] of this.nodes) {
      const tunnelEndpoint = endpointOf(name);
      if (tunnelEndpoint)
        out.push({ prefix: `${tunnelEndpoint}/32`, identity: IDENTITY_REMOTE_NODE, netId: 0, tunnelEndpoint });
    }
    for (const [ip, e] of this.ips) {
      const tunnelEndpoint = endpointOf(e.node);
      if (!tunnelEndpoint) continue;
      const subnet = subnets.find((s) => cidrContains(s, ip));
      out.push({
        prefix: `${ip}/32`,
        identity: e.identity,
        netId: subnet ? this.deps.networkNumber(subnet) : 0,
        tunnelEndpoint,
      });
    }
    return out;
  }

  /** Brings the ipcache in line (coalesced). */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          const entries = this.desiredEntries();
          const diff = await this.deps.datapath.syncRemoteEntries(entries);
          if (this.deps.routes) {
            const routes = this.desiredRoutes();
            const changed = await this.deps.routes.syncPeerRoutes(routes);
            if (changed.written || changed.deleted)
              this.deps.log.info({ routes: routes.length, ...changed }, 'peer block routes synced');
          }
          this.lastSyncAt = new Date().toISOString();
          if (diff.written || diff.deleted)
            this.deps.log.debug({ entries: entries.length, ...diff }, 'remote ipcache entries synced');
        } while (this.again && !this.stopped);
      } catch (err) {
        this.deps.log.warn({ err }, 'programming remote entries failed; the next change or resync retries');
        throw err;
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }
}
