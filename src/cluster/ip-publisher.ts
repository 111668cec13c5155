/**
 * This node's `ip/v1/<ip>` entries: one per local endpoint address, leased, so that other nodes
 * learn which identity and node an address has (their peer watcher programs it into the
 * ipcache) and the cluster DNS resolver learns its name. Cilium's ipcache entries in the kvstore.
 *
 * Value: `{identity, node, endpoint, name?, aliases?, network?}` (name, aliases when there are
 * some and network once the container is known). The publisher owns the entries this node
 * wrote and no others: a stale entry is deleted only while it still names this node, since
 * another node may hold the address by then.
 *
 * Publishing is coalesced: endpoint changes call {@link IpPublisher.schedule}, which runs at most
 * one publish at a time and one more afterwards however many changes arrived meanwhile. The
 * node's resync calls {@link IpPublisher.republish}, which forgets what was written and re-asserts
 * everything (repairing entries deleted behind the node's back).
 */
import type { KvStore } from '../kvstore/kvstore.js';
import { putBatched } from '../kvstore/batched-writes.js';
import type { Logger } from '../util/log.js';

/** Top-level prefix of the address entries, `ip/v1/<ipv4>` (one of the store layout's, daemon/store-layout.ts). */
export const IP_PREFIX = 'ip/v1/';

/** The key of an address's entry. */
export function ipEntryKey(ip: string): string {
  return `${IP_PREFIX}${ip}`;
}

/** The address of a key under `ip/v1/`, as written (not validated: any node may have written it). */
export function ipOfEntryKey(key: string): string {
  return key.slice(IP_PREFIX.length);
}

/** One local endpoint's address mapping. */
export interface LocalIpEntry {
  ip: string;
  identity: number;
  endpoint: number;
  /** Container name (no leading '/'), once known. */
  name?: string;
  /** The container's aliases on the network (published only when there are some). */
  aliases?: string[];
  /** Cluster-wide network name, once known. */
  network?: string;
}

/** An address entry as any node may have written it: the fields every reader relies on. */
export interface IpEntry {
  ip: string;
  identity: number;
  node: string;
}

/** An address entry with the names the cluster DNS serves, as far as its writer gave them. */
export interface NamedIpEntry extends IpEntry {
  /** Container name, when the entry has one. */
  name: string | undefined;
  /** The aliases that can be DNS names, when there are some. */
  aliases?: string[];
  /** Cluster-wide network name, when the entry has one. */
  network: string | undefined;
}

/**
 * Reads one `ip/v1/<ip>` pair; undefined when the key is outside the prefix or the value is not
 * an object with a numeric `identity` and a string `node` (another node's entry is not trusted).
 */
export function parseIpEntry(key: string, value: string): IpEntry | undefined {
  const entry = parseNamedIpEntry(key, value);
  return entry && { ip: entry.ip, identity: entry.identity, node: entry.node };
}

/**
 * Reads one `ip/v1/<ip>` pair with its names (the peer watcher's view): as parseIpEntry, plus
 * `name` and `network` when they are strings and the `aliases` that can be DNS names.
 */
export function parseNamedIpEntry(key: string, value: string): NamedIpEntry | undefined {
  if (!key.startsWith(IP_PREFIX)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { identity, node, name, aliases, network } = v as {
    identity?: unknown;
    node?: unknown;
    name?: unknown;
    aliases?: unknown;
    network?: unknown;
  };
  if (typeof identity !== 'number' || typeof node !== 'string') return undefined;
  const names = parseAliases(aliases);
  return {
    ip: ipOfEntryKey(key),
    identity,
    node,
    name: typeof name === 'string' ? name : undefined,
    ...(names ? { aliases: names } : {}),
    network: typeof network === 'string' ? network : undefined,
  };
}

/** At most this many aliases of one endpoint are kept (a peer's entry is not trusted to be small). */
const MAX_ALIASES = 64;

/** An entry's `aliases`: the strings that can be DNS names (1-253 chars), or undefined. */
function parseAliases(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out = v
    .filter((a): a is string => typeof a === 'string' && a.length > 0 && a.length <= 253)
    .slice(0, MAX_ALIASES);
  return out.length > 0 ? out : undefined;
}

/** Whether a stored entry was written by `nodeName` (a value that does not parse is no one's). */
function ownedBy(value: string, nodeName: string): boolean {
  try {
    return (JSON.parse(value) as { node?: unknown } | null)?.node === nodeName;
  } catch {
    return false;
  }
}

/** What the publisher needs. */
export interface IpPublisherDeps {
  store: KvStore;
  nodeName: string;
  /** The local endpoints' addresses now. */
  localIps(): LocalIpEntry[];
  log: Logger;
}

/** Keeps this node's `ip/v1/` entries equal to its local endpoints' addresses. */
export class IpPublisher {
  /** Address -> value this node wrote last (what a publish need not write again). */
  private readonly published = new Map<string, string>();
  private publishing = false;
  private publishAgain = false;
  /** The scheduled publish running now (see idle()). */
  private current: Promise<void> | undefined;

  constructor(private readonly deps: IpPublisherDeps) {}

  private valueOf(e: LocalIpEntry): string {
    return JSON.stringify({
      identity: e.identity,
      node: this.deps.nodeName,
      endpoint: e.endpoint,
      name: e.name,
      aliases: e.aliases?.length ? e.aliases : undefined,
      network: e.network,
    });
  }

  /**
   * Publishes the current local addresses now. New or changed entries are written in batched
   * transactions, so a resync of 10 000 addresses costs ~160 round trips, not 10 000; entries of
   * addresses no local endpoint has any more are deleted if they still name this node.
   */
  async publish(): Promise<void> {
    const wanted = new Map(this.deps.localIps().map((e) => [e.ip, this.valueOf(e)]));
    const changed = [...wanted].filter(([ip, value]) => this.published.get(ip) !== value);
    await putBatched(
      this.deps.store,
      changed.map(([ip, value]) => ({ key: ipEntryKey(ip), value, leased: true })),
    );
    for (const [ip, value] of changed) this.published.set(ip, value);
    for (const ip of [...this.published.keys()]) {
      if (wanted.has(ip)) continue;
      const current = await this.deps.store.get(ipEntryKey(ip));
      // Another node may own the address now; delete only our own entry.
      if (current && ownedBy(current.value, this.deps.nodeName))
        await this.deps.store.atomicDelete(current.key, current.modRevision);
      this.published.delete(ip);
    }
  }

  /**
   * Publishes soon (after an endpoint change), coalesced: while a publish runs, further calls
   * only queue one more, which reads the addresses afresh when it starts. A failure is logged;
   * the next resync retries.
   */
  schedule(): void {
    if (this.publishing) {
      this.publishAgain = true;
      return;
    }
    this.publishing = true;
    this.current = this.publish()
      .catch((err: unknown) => this.deps.log.warn({ err }, 'publishing ip entries failed; the resync retries'))
      .finally(() => {
        this.publishing = false;
        if (this.publishAgain) {
          this.publishAgain = false;
          this.schedule();
        }
      });
  }

  /** Resolves once no scheduled publish is running or queued. */
  async idle(): Promise<void> {
    while (this.publishing) await this.current;
  }

  /**
   * The resync's part: forgets what was published, deletes the entries naming this node whose
   * address no local endpoint has (left by an earlier run or a lost delete), then writes every
   * local address again (repairing entries deleted behind the node's back).
   */
  async republish(): Promise<void> {
    this.published.clear();
    const stored = await this.deps.store.list(IP_PREFIX);
    const local = new Set(this.deps.localIps().map((e) => e.ip));
    for (const p of stored.pairs) {
      const ip = ipOfEntryKey(p.key);
      if (ownedBy(p.value, this.deps.nodeName) && !local.has(ip))
        await this.deps.store.atomicDelete(p.key, p.modRevision);
    }
    await this.publish();
  }
}
