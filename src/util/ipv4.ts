/**
 * IPv4 addresses and prefixes: the one parser of address text in the daemon (plugin requests,
 * IPAM, flags, store keys, BPF map keys, policy CIDRs, resolv.conf all go through it).
 *
 * An address is an unsigned 32-bit integer held in a JS number (every value 0 .. 2^32-1 is exact in
 * a double, and arithmetic stays below 2^33, so nothing rounds). Bitwise operators are avoided for
 * masks because they work on signed 32-bit values; `Math.floor(x / size) * size` is used instead.
 *
 * Parsing is strict, as Go's net.ParseIP is since Go 1.17 (what dockerd uses, so dockerd only ever
 * sends this form): four decimal octets 0-255, no leading zeros (`010` is octal to inet_aton and
 * decimal to others, so it is refused rather than guessed), no whitespace, no other notations.
 * Prefix lengths likewise: decimal, no leading zeros.
 *
 * IPv6 goes beside this file when the daemon supports it (`ipv6.ts`: 128-bit bigint addresses,
 * the same function names with `Ipv6`); {@link parsePrefixLength} is already family-neutral, and
 * policy/cidr.ts shows the family-tagged form (`{ family, address: bigint, bits }`) both fit in.
 * ipaddr.js is not used: its `parse` accepts octal, hex and short forms (`10.1` = 10.0.0.1).
 */

/** An IPv4 prefix in canonical form: `network` has no host bits set. */
export interface Ipv4Cidr {
  /** First address of the prefix, as an unsigned 32-bit integer. */
  readonly network: number;
  /** Prefix length, 0..32. */
  readonly prefixLength: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parses a dotted-quad IPv4 address; undefined if `text` is anything else. */
export function parseIpv4(text: string): number | undefined {
  if (text.length > 15) return undefined; // 255.255.255.255; hostile text is not split
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** Formats an unsigned 32-bit integer as a dotted-quad IPv4 address. */
export function formatIpv4(value: number): string {
  return (
    `${Math.floor(value / 2 ** 24) % 256}.${Math.floor(value / 2 ** 16) % 256}.` +
    `${Math.floor(value / 2 ** 8) % 256}.${value % 256}`
  );
}

/** Number of addresses in a prefix of this length (2^(32-len)). */
export function prefixSize(prefixLength: number): number {
  return 2 ** (32 - prefixLength);
}

/** The canonical prefix of length `prefixLength` that contains `address` (host bits cleared). */
export function cidrContaining(address: number, prefixLength: number): Ipv4Cidr {
  const size = prefixSize(prefixLength);
  return { network: Math.floor(address / size) * size, prefixLength };
}

/**
 * Parses a prefix length of an address family `width` bits wide (32 for IPv4): decimal digits
 * without leading zeros, 0..width. Undefined otherwise.
 */
export function parsePrefixLength(text: string, width: number): number | undefined {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text)) return undefined;
  const length = Number(text);
  return length <= width ? length : undefined;
}

/** An address with the prefix length of its subnet, as an interface is configured (`198.18.0.5/24`). */
export interface Ipv4AddressWithPrefix {
  /** The address itself (host bits kept), as an unsigned 32-bit integer. */
  readonly address: number;
  /** Prefix length, 0..32. */
  readonly prefixLength: number;
}

/** Parses `a.b.c.d/len` keeping the host bits (an interface address); undefined if not that form. */
export function parseIpv4WithPrefix(text: string): Ipv4AddressWithPrefix | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const prefixLength = parsePrefixLength(text.slice(slash + 1), 32);
  if (address === undefined || prefixLength === undefined) return undefined;
  return { address, prefixLength };
}

/** True if `address` has bits set beyond the first `prefixLength` (so `address/len` is not a network). */
export function hasHostBits(address: number, prefixLength: number): boolean {
  return cidrContaining(address, prefixLength).network !== address;
}

/**
 * Parses `a.b.c.d/len` and clears host bits (Docker's built-in IPAM canonicalises the same way:
 * `--subnet 10.1.2.3/24` means 10.1.2.0/24). Undefined if `text` is not an IPv4 CIDR.
 */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const parsed = parseIpv4WithPrefix(text);
  return parsed && cidrContaining(parsed.address, parsed.prefixLength);
}

/** `a.b.c.d/len`. */
export function formatIpv4Cidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

/** Last address of the prefix (the broadcast address for prefixes shorter than /31). */
export function lastAddress(cidr: Ipv4Cidr): number {
  return cidr.network + prefixSize(cidr.prefixLength) - 1;
}

/** True if `address` lies inside `cidr`. */
export function cidrContainsAddress(cidr: Ipv4Cidr, address: number): boolean {
  return address >= cidr.network && address <= lastAddress(cidr);
}

/** True if `inner` lies entirely inside `outer`. */
export function cidrContainsCidr(outer: Ipv4Cidr, inner: Ipv4Cidr): boolean {
  return inner.prefixLength >= outer.prefixLength && cidrContainsAddress(outer, inner.network);
}

/** True if the two prefixes share at least one address (for aligned prefixes: one contains the other). */
export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return cidrContainsAddress(a, b.network) || cidrContainsAddress(b, a.network);
}

/** True if both describe the same prefix. */
export function cidrsEqual(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return a.network === b.network && a.prefixLength === b.prefixLength;
}

/** How many prefixes of length `prefixLength` `cidr` splits into (1 if `prefixLength` is not longer). */
export function subnetCount(cidr: Ipv4Cidr, prefixLength: number): number {
  return prefixLength <= cidr.prefixLength ? 1 : 2 ** (prefixLength - cidr.prefixLength);
}

/**
 * The `index`-th prefix of length `prefixLength` inside `cidr`, in address order. If `prefixLength`
 * is not longer than the prefix of `cidr`, `cidr` itself is the only one.
 */
export function nthSubnet(cidr: Ipv4Cidr, prefixLength: number, index: number): Ipv4Cidr {
  if (prefixLength <= cidr.prefixLength) return cidr;
  return { network: cidr.network + index * prefixSize(prefixLength), prefixLength };
}

/**
 * True if `address` can be given to a host in `subnet`: inside it and neither its network nor
 * its broadcast address. /31 and /32 have no such exclusions (RFC 3021), though the IPAM refuses
 * pools that small anyway.
 */
export function isHostAddress(subnet: Ipv4Cidr, address: number): boolean {
  if (!cidrContainsAddress(subnet, address)) return false;
  if (subnet.prefixLength >= 31) return true;
  return address !== subnet.network && address !== lastAddress(subnet);
}

/** Number of addresses of `range` that are host addresses of `subnet` (`range` inside `subnet`). */
export function hostAddressCount(subnet: Ipv4Cidr, range: Ipv4Cidr): number {
  let count = prefixSize(range.prefixLength);
  if (subnet.prefixLength < 31) {
    if (cidrContainsAddress(range, subnet.network)) count -= 1;
    if (cidrContainsAddress(range, lastAddress(subnet))) count -= 1;
  }
  return count;
}
