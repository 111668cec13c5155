/**
 * Per-endpoint policy map entries: their shape, ordering, lookup contract and batched diffs.
 *
 * An entry is what the datapath's per-endpoint policy map holds (DESIGN.md "BPF datapath"):
 *
 *     key   { peer identity (0 = any), dport + port prefix length, protocol (0 = any), direction }
 *     value { verdict allow | deny, rule name, cookie }
 *
 * Ports. `dport` with `portPrefixLen` 16 is one port; `portPrefixLen` 0 (with `dport` 0) is every
 * port. A range (`port`..`endPort`) of at most {@link MAX_EXPANDED_RANGE} ports becomes one exact
 * entry per port, which a plain hash map can hold. A larger range becomes the few aligned blocks
 * that cover it exactly, each written as `dport`/`portPrefixLen` (e.g. 1024-2047 is 1024/6): the
 * form Cilium 1.16+ stores in its LPM-trie policy map, where the trie matches the port bits.
 * A hash-map datapath must try the prefix lengths present (see {@link lookupPolicyEntry}).
 *
 * Protocol 0 only appears with "every port": `protocol: ANY` with a port is written as a TCP and
 * a UDP entry, as Cilium expands ANY (we have no SCTP).
 *
 * Lookup contract, and why deny still wins. Two datapath strategies give the same answer:
 * - "any deny wins": try every key that can match, drop if any is a deny, pass if any is an allow
 *   (what `bpf/include/policy.h` does with its six exact keys);
 * - "most specific wins": the exact peer before peer 0, then the longest port prefix, then a named
 *   protocol before 0 (any order that tries a key before the keys covering it works; Cilium's LPM
 *   map). For this the compiler guarantees that a deny is never shadowed by a more specific allow:
 *   when a deny and an allow overlap, the allow becomes a deny if the deny covers it, and otherwise
 *   a deny entry is added for the overlap (Cilium's mapstate does the same).
 * A datapath with exact-port hash keys only must also try the prefix blocks of large ranges:
 * `dport` masked to each prefix length the endpoint uses (`EndpointPolicy.portPrefixLengths`).
 * Without that it would miss those entries: a large allowed range would drop, and, worse, a deny
 * of a large range (or a deny derived from one) would not be enforced.
 */
import type { Direction, PortRange, Verdict } from './rule-types.js';

/** Ranges up to this many ports are expanded into exact-port entries; larger ones become prefixes. */
export const MAX_EXPANDED_RANGE = 64;

/** IANA protocol numbers used in keys. */
export const PROTO_ANY = 0;
/** TCP's protocol number. */
export const PROTO_TCP = 6;
/** UDP's protocol number. */
export const PROTO_UDP = 17;
/** ICMP's protocol number: `icmps` entries carry the ICMP type in `dport` (Cilium's encoding). */
export const PROTO_ICMP = 1;

/** The key of a policy map entry. */
export interface PolicyEntryKey {
  readonly direction: Direction;
  /** Numeric identity of the remote peer; 0 = any identity. */
  readonly peer: number;
  /** Destination port (host order); 0 when `portPrefixLen` is 0. */
  readonly dport: number;
  /** 16 = exactly `dport`; 0 = every port; in between = the aligned block starting at `dport`. */
  readonly portPrefixLen: number;
  /** 6 TCP, 17 UDP, 1 ICMP (`dport` is then the ICMP type), 0 any protocol. */
  readonly protocol: number;
}

/** One policy map entry: key plus verdict and the rule that produced it. */
export interface PolicyEntry extends PolicyEntryKey {
  readonly verdict: Verdict;
  /** `metadata.name` of the deciding policy; `reserved:allow-localhost` for the host allowance. */
  readonly ruleName: string;
  /** Stable 32-bit number for `ruleName` (see {@link ruleCookie}); 0 for reserved entries. */
  readonly cookie: number;
}

/** A port match in key form. */
export interface PortKey {
  readonly dport: number;
  readonly portPrefixLen: number;
  readonly protocol: number;
}

/**
 * A stable, non-zero 32-bit cookie for a policy name (FNV-1a), carried in map values so that drop
 * and verdict events can name the policy without a lookup table shared between hosts.
 */
export function ruleCookie(ruleName: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(ruleName)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}

/** Splits `[low, high]` into the fewest aligned power-of-two blocks, as (start, prefix length). */
export function portRangeToPrefixes(low: number, high: number): Array<{ dport: number; portPrefixLen: number }> {
  const blocks: Array<{ dport: number; portPrefixLen: number }> = [];
  let start = low;
  while (start <= high) {
    let size = start === 0 ? 65536 : start & -start;
    while (start + size - 1 > high) size >>= 1;
    blocks.push({ dport: start, portPrefixLen: 16 - Math.log2(size) });
    start += size;
  }
  return blocks;
}

/** Turns one `ports[]` item into key port parts (see the module comment for ANY and ranges). */
export function portRangeKeys(range: PortRange, maxExpanded = MAX_EXPANDED_RANGE): PortKey[] {
  // One ICMP type per entry; type 0 (echo reply) is a real type here, not "every port".
  if (range.protocol === 'ICMP') return [{ dport: range.port, portPrefixLen: 16, protocol: PROTO_ICMP }];
  const protocols =
    range.protocol === 'TCP' ? [PROTO_TCP] : range.protocol === 'UDP' ? [PROTO_UDP] : [PROTO_TCP, PROTO_UDP];
  if (range.port === 0) {
    return range.protocol === 'ANY'
      ? [{ dport: 0, portPrefixLen: 0, protocol: PROTO_ANY }]
      : protocols.map((protocol) => ({ dport: 0, portPrefixLen: 0, protocol }));
  }
  const count = range.endPort - range.port + 1;
  const ports =
    count <= maxExpanded
      ? Array.from({ length: count }, (_, i) => ({ dport: range.port + i, portPrefixLen: 16 }))
      : portRangeToPrefixes(range.port, range.endPort);
  return protocols.flatMap((protocol) => ports.map((p) => ({ ...p, protocol })));
}

/** The map key as one string (for Maps and diffs). */
export function policyEntryKeyString(k: PolicyEntryKey): string {
  return `${k.direction}/${k.peer}/${k.dport}/${k.portPrefixLen}/${k.protocol}`;
}

/** Sort order of entries: ingress before egress, then peer, protocol, port, prefix length. */
export function comparePolicyEntries(a: PolicyEntryKey, b: PolicyEntryKey): number {
  if (a.direction !== b.direction) return a.direction === 'ingress' ? -1 : 1;
  return a.peer - b.peer || a.protocol - b.protocol || a.dport - b.dport || a.portPrefixLen - b.portPrefixLen;
}

/** True if port `dport` falls in the block of `key`. */
export function portKeyMatches(key: { dport: number; portPrefixLen: number }, dport: number): boolean {
  if (key.portPrefixLen === 0) return true;
  const shift = 16 - key.portPrefixLen;
  return dport >>> shift === key.dport >>> shift;
}

/**
 * Reference lookup for one packet, following the contract in the module comment: the most specific
 * matching entry (exact peer, then longest port prefix, then named protocol). Returns undefined on
 * a miss, which means drop when the direction is enforced. The datapath implements the same order.
 */
export function lookupPolicyEntry(
  entries: readonly PolicyEntry[],
  direction: Direction,
  peer: number,
  dport: number,
  protocol: number,
): PolicyEntry | undefined {
  let best: PolicyEntry | undefined;
  const rank = (e: PolicyEntry) => (e.peer !== 0 ? 1000 : 0) + e.portPrefixLen * 10 + (e.protocol !== 0 ? 1 : 0);
  for (const e of entries) {
    if (e.direction !== direction) continue;
    if (e.peer !== 0 && e.peer !== peer) continue;
    if (e.protocol !== 0 && e.protocol !== protocol) continue;
    if (e.portPrefixLen > 0 && (dport === 0 || !portKeyMatches(e, dport))) continue;
    if (!best || rank(e) > rank(best)) best = e;
  }
  return best;
}

/** Map updates that turn one entry list into another: write `upserts`, remove `deletes`. */
export interface PolicyEntryDiff {
  /** New keys and keys whose value (verdict, rule, cookie) changed. Sorted. */
  readonly upserts: PolicyEntry[];
  /** Keys present before and gone now. Sorted. */
  readonly deletes: PolicyEntryKey[];
}

/** Diffs two entry lists so map updates are batched: only changed keys are written or deleted. */
export function diffPolicyEntries(previous: readonly PolicyEntry[], next: readonly PolicyEntry[]): PolicyEntryDiff {
  const before = new Map(previous.map((e) => [policyEntryKeyString(e), e]));
  const upserts: PolicyEntry[] = [];
  const seen = new Set<string>();
  for (const e of next) {
    const key = policyEntryKeyString(e);
    seen.add(key);
    const old = before.get(key);
    if (!old || old.verdict !== e.verdict || old.ruleName !== e.ruleName || old.cookie !== e.cookie) upserts.push(e);
  }
  const deletes: PolicyEntryKey[] = [];
  for (const [key, e] of before) {
    if (!seen.has(key))
      deletes.push({
        direction: e.direction,
        peer: e.peer,
        dport: e.dport,
        portPrefixLen: e.portPrefixLen,
        protocol: e.protocol,
      });
  }
  return { upserts: upserts.sort(comparePolicyEntries), deletes: deletes.sort(comparePolicyEntries) };
}

function intersectPeer(a: number, b: number): number | undefined {
  if (a === b || b === 0) return a;
  return a === 0 ? b : undefined;
}

function intersectPorts(a: PortKey, b: PortKey): { dport: number; portPrefixLen: number } | undefined {
  const shorter = Math.min(a.portPrefixLen, b.portPrefixLen);
  const shift = 16 - shorter;
  if (shorter > 0 && a.dport >>> shift !== b.dport >>> shift) return undefined;
  return a.portPrefixLen >= b.portPrefixLen
    ? { dport: a.dport, portPrefixLen: a.portPrefixLen }
    : { dport: b.dport, portPrefixLen: b.portPrefixLen };
}

/** The key matching exactly the packets both keys match, if any. */
export function intersectKeys(a: PolicyEntryKey, b: PolicyEntryKey): PolicyEntryKey | undefined {
  if (a.direction !== b.direction) return undefined;
  const peer = intersectPeer(a.peer, b.peer);
  const protocol = intersectPeer(a.protocol, b.protocol);
  const ports = intersectPorts(a, b);
  if (peer === undefined || protocol === undefined || !ports) return undefined;
  return { direction: a.direction, peer, protocol, ...ports };
}

function better(existing: PolicyEntry, candidate: PolicyEntry): boolean {
  if (existing.verdict !== candidate.verdict) return candidate.verdict === 'deny';
  return candidate.ruleName < existing.ruleName;
}

/** Protocol, port and prefix length packed into one number whose order is the entry order. */
function packPort(e: PortKey): number {
  return e.protocol * 0x200000 + e.dport * 32 + e.portPrefixLen;
}

/**
 * Accumulates entries for one endpoint: same key from several rules keeps one entry (deny over
 * allow, then the smallest rule name, so output is deterministic), and {@link finish} adds the
 * derived deny entries that make the lookup contract hold.
 *
 * Entries are held per direction, per peer, keyed by a packed number rather than a string: an
 * endpoint allowed from thousands of identities on a few ports has tens of thousands of entries,
 * and this is the hot loop of compilation.
 */
export class PolicyEntryBuilder {
  private readonly byDirection = {
    ingress: new Map<number, Map<number, PolicyEntry>>(),
    egress: new Map<number, Map<number, PolicyEntry>>(),
  };

  /** Adds one entry, merging with an entry of the same key. */
  add(entry: PolicyEntry): void {
    const peers = this.byDirection[entry.direction];
    let ports = peers.get(entry.peer);
    if (!ports) {
      ports = new Map();
      peers.set(entry.peer, ports);
    }
    const key = packPort(entry);
    const existing = ports.get(key);
    if (!existing || better(existing, entry)) ports.set(key, entry);
  }

  /** Applies deny precedence across overlapping keys and returns the sorted entries. */
  finish(): PolicyEntry[] {
    for (const peers of Object.values(this.byDirection)) {
      const denies: PolicyEntry[] = [];
      for (const ports of peers.values()) for (const e of ports.values()) if (e.verdict === 'deny') denies.push(e);
      for (const deny of denies) {
        // A deny for one peer can only overlap allows for that peer or for any peer (0).
        const groups = deny.peer === 0 ? [...peers.values()] : [peers.get(deny.peer), peers.get(0)];
        for (const ports of groups) {
          if (!ports) continue;
          for (const allow of [...ports.values()]) {
            if (allow.verdict !== 'allow') continue;
            const overlap = intersectKeys(deny, allow);
            if (overlap) this.add({ ...overlap, verdict: 'deny', ruleName: deny.ruleName, cookie: deny.cookie });
          }
        }
      }
    }
    const result: PolicyEntry[] = [];
    for (const direction of ['ingress', 'egress'] as const) {
      const peers = this.byDirection[direction];
      // Typed-array sorts are numeric and much faster than Array#sort with a comparator.
      for (const peer of Float64Array.from(peers.keys()).sort()) {
        const ports = peers.get(peer)!;
        for (const key of Float64Array.from(ports.keys()).sort()) result.push(ports.get(key)!);
      }
    }
    return result;
  }
}
