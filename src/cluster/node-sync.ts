/**
 * This node's keys in the shared store and the periodic resync (DESIGN "Resync and outages").
 *
 * Owned keys: `nodes/v1/<node>` (node record, leased), `ip/v1/<ip>` for every local endpoint
 * (through the IP publisher, ip-publisher.ts), `heartbeat/v1/<node>` (written every minute), the
 * identity references the allocator holds, and the network-name keys of the network registry
 * (`networks/v1/<name>/users/<node>`, leased, and the records it agrees with). A resync runs every --resync-interval
 * (default 5 m, never overlapping) and at once after the store reconnects: it re-asserts every owned key,
 * deletes ip keys of ours that no endpoint backs any more, and asks the watchers to re-list. Keys
 * deleted behind the node's back are therefore repaired within one interval.
 */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import type { KvStore } from '../kvstore/kvstore.js';
import type { Logger } from '../util/log.js';
import { scheduleEvery } from './resync-schedule.js';
import type { IpPublisher } from './ip-publisher.js';

/**
 * Top-level prefix of the node records, `nodes/v1/<node>` (one of the store layout's,
 * daemon/store-layout.ts); peers watch it.
 */
export const NODES_PREFIX = 'nodes/v1/';
/** Top-level prefix of the heartbeats, `heartbeat/v1/<node>`. */
export const HEARTBEAT_PREFIX = 'heartbeat/v1/';
/** How often a node writes `heartbeat/v1/<node>` (its time, leased). */
export const HEARTBEAT_INTERVAL_MS = 60_000;

/** Every node's last heartbeat as the store holds it: node name -> ISO time (the writer's clock). */
export async function readHeartbeats(store: Pick<KvStore, 'list'>): Promise<Map<string, string>> {
  const { pairs } = await store.list(HEARTBEAT_PREFIX);
  return new Map(pairs.map((p) => [p.key.slice(HEARTBEAT_PREFIX.length), p.value]));
}

/** `nodes/v1/<node>`: what peers need to reach this node (Cilium's node registration). */
export interface NodeRecord {
  name: string;
  hostname: string;
  /** /proc/sys/kernel/random/boot_id: a different value means the node rebooted (kernel state lost). */
  bootId: string;
  startedAt: string;
  /** Address other nodes send tunnelled traffic to; absent when the node has no overlay. */
  underlayIp?: string;
  /** 'vxlan' | 'geneve', absent when the node has no overlay. */
  tunnel?: string;
  tunnelPort?: number;
  /** 'native' when peers reach this node's blocks by plain routing via underlayIp (no tunnel). */
  routingMode?: string;
  /** This node's IPAM blocks (CIDRs), as claimed under ipam/v1/blocks/. */
  blocks: string[];
}

/** The node a key under `nodes/v1/` is the record of. */
export function nodeOfRecordKey(key: string): string {
  return key.slice(NODES_PREFIX.length);
}

/** Parses a node record; undefined when the value is not one. */
export function parseNodeRecord(value: string): NodeRecord | undefined {
  try {
    const r = JSON.parse(value) as Partial<NodeRecord>;
    if (typeof r.name !== 'string' || typeof r.bootId !== 'string') return undefined;
    return {
      name: r.name,
      hostname: r.hostname ?? '',
      bootId: r.bootId,
      startedAt: r.startedAt ?? '',
      underlayIp: r.underlayIp,
      tunnel: r.tunnel,
      tunnelPort: r.tunnelPort,
      routingMode: r.routingMode,
      blocks: Array.isArray(r.blocks) ? r.blocks : [],
    };
  } catch {
    return undefined;
  }
}

/** Callbacks into the rest of the daemon. */
export interface NodeSyncDeps {
  store: KvStore;
  nodeName: string;
  log: Logger;
  intervalMs: number;
  heartbeatIntervalMs?: number;
  /** This node's `ip/v1/` entries, re-asserted by each resync. */
  ips: Pick<IpPublisher, 'republish'>;
  /** Re-writes identity references. */
  reassertIdentities(): Promise<void>;
  /** Re-asserts this node's network-name keys (`networks/v1/<name>/users/<node>`) and their records. */
  reassertNetworks?(): Promise<void>;
  /** Re-lists watched prefixes (policies, identities). */
  relist(): Promise<void>;
  /** The overlay this node offers peers (absent: none). */
  tunnel?: { kind: string; port: number; underlayIp: string };
  /** Native routing: the underlay address peers route this node's blocks to (absent: tunnel or none). */
  native?: { underlayIp: string };
  /** This node's IPAM blocks (CIDRs). */
  localBlocks?(): Promise<string[]>;
}

/** Resync status for `cilium status`. */
export interface ResyncStatus {
  lastResyncAt?: string;
  lastResyncMs?: number;
  lastResyncError?: string;
  lastHeartbeatAt?: string;
  resyncs: number;
  intervalMs: number;
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Keeps this node's keys in the store and runs the periodic resync. */
export class NodeSync {
  private readonly status: ResyncStatus;
  private schedule: { stop(): void } | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: NodeSyncDeps) {
    this.status = { resyncs: 0, intervalMs: deps.intervalMs };
  }

  /** Status for the API. */
  getStatus(): ResyncStatus {
    return { ...this.status };
  }

  /** First full sync, then the schedule and the heartbeat. */
  async start(): Promise<void> {
    await this.resync('start').catch(() => undefined);
    this.schedule = scheduleEvery(this.deps.intervalMs, `resync-${this.deps.nodeName}`, () => this.resync('interval'));
    const beat = () => void this.heartbeat();
    this.heartbeatTimer = setInterval(beat, this.deps.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS);
    this.heartbeatTimer.unref();
    beat();
  }

  /** Stops the schedule (keys stay; leased ones expire after the TTL if the daemon is gone). */
  stop(): void {
    this.schedule?.stop();
    clearInterval(this.heartbeatTimer);
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.deps.store.put(`${HEARTBEAT_PREFIX}${this.deps.nodeName}`, new Date().toISOString(), { leased: true });
      this.status.lastHeartbeatAt = new Date().toISOString();
    } catch (err) {
      this.deps.log.warn({ err }, 'heartbeat write failed');
    }
  }

  /** One full resync (never two at once; a call during a run waits for it). */
  resync(reason: string): Promise<void> {
    this.running ??= this.doResync(reason).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private readonly startedAt = new Date().toISOString();

  /** Writes this node's record (leased). */
  async publishNode(): Promise<void> {
    const record: NodeRecord = {
      name: this.deps.nodeName,
      hostname: hostname(),
      bootId: bootId(),
      startedAt: this.startedAt,
      blocks: (await this.deps.localBlocks?.()) ?? [],
    };
    if (this.deps.tunnel) {
      record.underlayIp = this.deps.tunnel.underlayIp;
      record.tunnel = this.deps.tunnel.kind;
      record.tunnelPort = this.deps.tunnel.port;
    } else if (this.deps.native) {
      record.underlayIp = this.deps.native.underlayIp;
      record.routingMode = 'native';
    }
    await this.deps.store.put(`${NODES_PREFIX}${this.deps.nodeName}`, JSON.stringify(record), { leased: true });
  }

  private async doResync(reason: string): Promise<void> {
    const started = performance.now();
    try {
      await this.publishNode();
      // Re-assert every owned ip key (repairs deletions behind our back) and drop stale ones.
      await this.deps.ips.republish();
      await this.deps.reassertIdentities();
      await this.deps.reassertNetworks?.();
      await this.deps.relist();
      this.status.lastResyncAt = new Date().toISOString();
      this.status.lastResyncMs = Math.round(performance.now() - started);
      this.status.lastResyncError = undefined;
      this.status.resyncs++;
      this.deps.log.debug({ reason, ms: this.status.lastResyncMs }, 'resync done');
    } catch (err) {
      this.status.lastResyncError = err instanceof Error ? err.message : String(err);
      this.deps.log.warn({ reason, err: this.status.lastResyncError }, 'resync failed; the next one retries');
      throw err;
    }
  }
}
