/**
 * IP prefixes for CIDR policy: parsing, normalising, containment, `cidr` minus `except`, and the
 * `cidr:` labels of CIDR identities.
 *
 * Pure arithmetic on bigint addresses so that IPv4 and IPv6 share one code path (the policy module
 * may not import `node:net`). IPv4 text and prefix lengths are parsed by util/ipv4.ts, the
 * daemon's one strict parser, so a policy accepts exactly the addresses the rest of the daemon does.
 *
 * How CIDR rules reach the datapath (the Cilium design, `Documentation/policy/language.rst`
 * "CIDR based" and `pkg/labels/cidr.go`):
 *
 * 1. Every `toCIDR`/`fromCIDR`/`*CIDRSet` peer is turned into a set of disjoint prefixes: the `cidr`
 *    minus its `except` prefixes ({@link subtractPrefixes}). An `except` is not a deny: it only
 *    removes addresses from what this rule allows (or denies), exactly as in Cilium.
 * 2. The caller gives each such prefix a local CIDR identity (Cilium: `1<<24 | n`) whose labels are
 *    {@link cidrIdentityLabels}: `cidr:<prefix>` plus `reserved:world` (CIDR peers are outside the
 *    cluster, so the `world` entity also selects them), and puts `prefix -> identity` into the
 *    ipcache LPM trie. Endpoint IPs have /32 (/128) ipcache entries, so the longest match gives
 *    endpoints their own identity and CIDR rules never apply to them.
 * 3. Compilation treats CIDR identities like any other identity: a CIDR peer selects an identity
 *    whose own prefix lies inside one of the peer's prefixes ({@link cidrPeerSelects}). Because the
 *    ipcache resolves an address to its longest known prefix p, and every rule prefix that contains
 *    the address also contains p, matching by containment gives the same answer as matching the
 *    address itself.
 */
import { LabelSet, SOURCE_RESERVED, type Label } from '../identity/labels.js';
import { PolicyValidationError } from '../util/errors.js';
import { parseIpv4 as parseIpv4Number, parsePrefixLength } from '../util/ipv4.js';

/** Label source of CIDR identities' labels (`cidr:10.0.0.0/8`), as in Cilium. */
export const SOURCE_CIDR = 'cidr';

/** An IPv4 or IPv6 prefix with host bits cleared. */
export interface IpPrefix {
  readonly family: 4 | 6;
  /** The network address as an unsigned integer (32 or 128 bits). */
  readonly address: bigint;
  /** Prefix length: 0-32 (IPv4) or 0-128 (IPv6). */
  readonly bits: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

function parseIpv4(text: string): bigint | undefined {
  const value = parseIpv4Number(text);
  return value === undefined ? undefined : BigInt(value);
}

function parseIpv6Groups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
    groups.push(parseInt(part, 16));
  }
  return groups;
}

function parseIpv6(text: string): bigint | undefined {
  if (text.includes('%')) return undefined; // zones make no sense in policy
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseIpv6Groups(halves[0]!);
    const tail = parseIpv6Groups(halves[1]!);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseIpv6Groups(text);
    if (all?.length !== 8) return undefined;
    groups = all;
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** Parses an IPv4 or IPv6 address (no prefix length). */
export function parseIpAddress(text: string): { family: 4 | 6; address: bigint } | undefined {
  if (text.includes(':')) {
    const address = parseIpv6(text);
    return address === undefined ? undefined : { family: 6, address };
  }
  const address = parseIpv4(text);
  return address === undefined ? undefined : { family: 4, address };
}

function hostMask(family: 4 | 6, bits: number): bigint {
  return (1n << BigInt(WIDTH[family] - bits)) - 1n;
}

/** Builds a prefix, clearing host bits (`10.1.2.3/8` becomes `10.0.0.0/8`, as Go's `Masked()`). */
export function makePrefix(family: 4 | 6, address: bigint, bits: number): IpPrefix {
  return { family, address: address & ~hostMask(family, bits), bits };
}

/** Result of {@link parsePrefix}: the prefix, or a sentence saying what is wrong with the text. */
export type PrefixParseResult = { ok: true; prefix: IpPrefix } | { ok: false; reason: string };

/**
 * Parses `a.b.c.d/n` or `x::y/n`. With `allowBareAddress` a plain address means a host prefix
 * (/32 or /128), as Cilium accepts for `toCIDR`/`fromCIDR` but not for `cidr` in a CIDR set.
 */
export function parsePrefix(text: string, allowBareAddress: boolean): PrefixParseResult {
  const slash = text.indexOf('/');
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const ip = parseIpAddress(addressText);
  if (!ip) return { ok: false, reason: `"${addressText}" is not an IPv4 or IPv6 address` };
  const width = WIDTH[ip.family];
  if (slash < 0) {
    if (!allowBareAddress) return { ok: false, reason: `a prefix length is required (e.g. "${addressText}/${width}")` };
    return { ok: true, prefix: makePrefix(ip.family, ip.address, width) };
  }
  const bitsText = text.slice(slash + 1);
  const bits = parsePrefixLength(bitsText, width);
  if (bits === undefined) {
    return { ok: false, reason: `prefix length "${bitsText}" must be a number from 0 to ${width} for IPv${ip.family}` };
  }
  return { ok: true, prefix: makePrefix(ip.family, ip.address, bits) };
}

function formatIpv4(address: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((address >> s) & 0xffn)).join('.');
}

function formatIpv6(address: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((address >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the first longest run of two or more zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Formats an address in canonical form (dotted quad; RFC 5952 for IPv6). */
export function formatIpAddress(family: 4 | 6, address: bigint): string {
  return family === 4 ? formatIpv4(address) : formatIpv6(address);
}

/** `10.0.0.0/8`, `2001:db8::/32`. */
export function formatPrefix(prefix: IpPrefix): string {
  return `${formatIpAddress(prefix.family, prefix.address)}/${prefix.bits}`;
}

/** True if every address of `inner` is in `outer` (same family, not shorter, same network bits). */
export function prefixContains(outer: IpPrefix, inner: IpPrefix): boolean {
  if (outer.family !== inner.family || inner.bits < outer.bits) return false;
  return (inner.address & ~hostMask(outer.family, outer.bits)) === outer.address;
}

/** True if the two prefixes share at least one address (then one contains the other). */
export function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

function halves(prefix: IpPrefix): [IpPrefix, IpPrefix] {
  const bits = prefix.bits + 1;
  const high = 1n << BigInt(WIDTH[prefix.family] - bits);
  return [
    { family: prefix.family, address: prefix.address, bits },
    { family: prefix.family, address: prefix.address | high, bits },
  ];
}

/**
 * `base` minus every prefix in `excepts`, as the fewest disjoint prefixes, sorted by address.
 * Removing one /n from a /m yields n-m prefixes, so the result stays small (at most 128 per except).
 *
 * Recursive halving with the excepts partitioned between the halves: every except is looked at
 * once per level, so the cost is O(excepts x prefix length), not the O(excepts^2) of subtracting
 * the excepts one after another from a growing list.
 */
export function subtractPrefixes(base: IpPrefix, excepts: readonly IpPrefix[]): IpPrefix[] {
  const result: IpPrefix[] = [];
  const inside = excepts.filter((e) => prefixesOverlap(base, e));
  subtractInto(base, inside, result);
  return result;
}

/** Appends `base` minus `excepts` (all overlapping `base`) to `into`, in address order. */
function subtractInto(base: IpPrefix, excepts: readonly IpPrefix[], into: IpPrefix[]): void {
  if (excepts.length === 0) {
    into.push(base);
    return;
  }
  if (excepts.some((e) => e.bits <= base.bits)) return; // an except covers all of base
  const [low, high] = halves(base);
  const lowExcepts: IpPrefix[] = [];
  const highExcepts: IpPrefix[] = [];
  for (const e of excepts) (prefixContains(low, e) ? lowExcepts : highExcepts).push(e);
  subtractInto(low, lowExcepts, into);
  subtractInto(high, highExcepts, into);
}

/** Orders prefixes by family, address, then length (shorter first). */
export function comparePrefixes(a: IpPrefix, b: IpPrefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  return a.bits - b.bits;
}

/**
 * The label key of a prefix in a CIDR identity. Cilium writes IPv6 colons as `-`
 * (`cidr:2001-db8--/32`) because `:` separates the source from the key in label strings.
 */
export function cidrLabelKey(prefix: IpPrefix): string {
  return formatPrefix(prefix).replaceAll(':', '-');
}

/** Parses a {@link cidrLabelKey} back into a prefix. */
export function parseCidrLabelKey(key: string): IpPrefix | undefined {
  const text = key.includes('-') ? key.replaceAll('-', ':') : key;
  const result = parsePrefix(text, false);
  return result.ok ? result.prefix : undefined;
}

/**
 * Labels of the CIDR identity for `prefix`: `cidr:<prefix>` and `reserved:world`. The caller
 * allocates a (node-local) identity for these labels and maps the prefix to it in the ipcache.
 */
export function cidrIdentityLabels(prefix: IpPrefix | string): LabelSet {
  const p = typeof prefix === 'string' ? parsePrefixOrThrow(prefix) : prefix;
  const labels: Label[] = [
    { source: SOURCE_CIDR, key: cidrLabelKey(p), value: '' },
    { source: SOURCE_RESERVED, key: 'world', value: '' },
  ];
  return new LabelSet(labels);
}

/**
 * The prefix a CIDR identity stands for: the longest `cidr:` label of the set (Cilium 1.4 put
 * every covering prefix on the identity; the longest one is the identity's own).
 */
export function identityPrefix(labels: LabelSet): IpPrefix | undefined {
  let best: IpPrefix | undefined;
  for (const label of labels.labels) {
    if (label.source !== SOURCE_CIDR) continue;
    const p = parseCidrLabelKey(label.key);
    if (p && (!best || p.bits > best.bits)) best = p;
  }
  return best;
}

/**
 * True if a CIDR peer (the disjoint prefixes of `cidr` minus `except`) selects an identity whose
 * own prefix is `prefix`: the identity's prefix must lie inside one of the peer's prefixes.
 */
export function cidrPeerSelects(peerPrefixes: readonly IpPrefix[], prefix: IpPrefix): boolean {
  return peerPrefixes.some((p) => prefixContains(p, prefix));
}

function parsePrefixOrThrow(text: string): IpPrefix {
  const result = parsePrefix(text, true);
  if (!result.ok) throw new PolicyValidationError(`CIDR identity: "${text}" is not a valid prefix: ${result.reason}`);
  return result.prefix;
}
