/**
 * The datapath ABI: the mirror of bpf/include/abi.h (map keys and values, event records, the
 * numbers stored in them) and of the load-time constants in bpf/include/config.h, with encoders
 * and decoders between domain values and the Buffers the kernel exchanges.
 *
 * `structLayouts` is the single description every codec here writes through; the ABI test
 * compares it, struct by struct and field by field, with the BTF of the compiled bpf/lxc.bpf.o.
 * Host-order fields are little-endian: clang -target bpf emits host byte order and every host we
 * run on (x86-64, arm64) is little-endian. Addresses and ports are network order, as in the C.
 *
 * Why one file of ~800 lines (issue 17 sets ~450): it is the single mirror of one wire, the C
 * headers, section by section in abi.h's order (one section per map, then the event records), and
 * test/unit/datapath/abi.test.ts checks all of it against one object's BTF. Split per map, every
 * codec would still write through `structLayouts`, and a change to abi.h would have to be
 * mirrored across files instead of in the one place DEVELOPERS.md names for it.
 */
import { endianness } from 'node:os';
import { parseIpv4, parsePrefixLength } from '../../util/ipv4.js';

if (endianness() !== 'LE') throw new Error('datapath ABI: only little-endian hosts are supported');

/** Names of the pinned maps (LIBBPF_PIN_BY_NAME: also their file names under the pin root). */
export const mapNames = {
  endpoints: 'cilium_endpoints',
  policy: 'cilium_policy',
  ipcache: 'cilium_ipcache',
  ct: 'cilium_ct',
  metrics: 'cilium_metrics',
  events: 'cilium_events',
} as const;

/** One of the datapath's maps, by role. */
export type MapRole = keyof typeof mapNames;

/** Reserved security identities (RemoteNode: the VNI of a host's own traffic into the tunnel, link/peer-routes.ts). */
export const Identity = { Unknown: 0, Host: 1, World: 2, RemoteNode: 6 } as const;

/** Address family codes in endpoint and ipcache keys. */
export const AddrFamily = { IPv4: 1, IPv6: 2 } as const;

/** Direction of traffic relative to the container. */
export type Direction = 'ingress' | 'egress';

/** Drop reasons (positive, as in metrics keys and events); Cilium's numbers where it has one. */
export const DropReason = {
  InvalidSourceMac: 130,
  InvalidSourceIp: 132,
  Policy: 133,
  InvalidPacket: 134,
  UnsupportedL3: 139,
  WriteError: 141,
  NoLocalEndpoint: 152,
  NoTunnelKey: 160,
  CtCreateFailed: 155,
  PolicyDeny: 181,
  NetworkIsolation: 240,
} as const;

/** Metrics reason of forwarded packets. */
export const REASON_FORWARDED = 0;
/** Metrics-only reason: event records the ring buffer had no room for. */
export const REASON_EVENTS_LOST = 255;

const dropReasonNames: Record<number, string> = {
  [DropReason.InvalidSourceMac]: 'Invalid source mac',
  [DropReason.InvalidSourceIp]: 'Invalid source ip',
  [DropReason.Policy]: 'Policy denied',
  [DropReason.InvalidPacket]: 'Invalid packet',
  [DropReason.UnsupportedL3]: 'Unsupported L3 protocol',
  [DropReason.WriteError]: 'Error writing to packet',
  [DropReason.NoLocalEndpoint]: 'No matching local container found',
  [DropReason.NoTunnelKey]: 'No tunnel metadata on an overlay packet',
  [DropReason.CtCreateFailed]: 'CT: Map insertion failed',
  [DropReason.PolicyDeny]: 'Policy denied by denylist',
  [DropReason.NetworkIsolation]: 'Denied by Docker network isolation',
};

/** Human-readable name of a drop reason (Cilium's wording where it has one). */
export function dropReasonName(reason: number): string {
  if (reason === REASON_FORWARDED) return 'Forwarded';
  if (reason === REASON_EVENTS_LOST) return 'Events lost';
  return dropReasonNames[reason] ?? `Unknown reason ${reason}`;
}

/** Where a trace event observed the packet (Cilium's observation-point numbers). */
export const TracePoint = {
  0: 'to-endpoint',
  2: 'to-overlay',
  3: 'to-stack',
  5: 'from-endpoint',
} as const satisfies Record<number, string>;

/** Which key of the policy map matched (Cilium v1.19 match types). */
export const PolicyMatch = {
  0: 'none',
  1: 'l3-only',
  2: 'l3-l4',
  3: 'l4-only',
  4: 'all',
  5: 'l3-proto',
  6: 'proto-only',
} as const satisfies Record<number, string>;

/** A field: byte offset and size (arrays: total bytes). */
export interface FieldLayout {
  offset: number;
  size: number;
}

/** A C struct of abi.h: total size and every field, padding included. */
export interface StructLayout {
  size: number;
  fields: Record<string, FieldLayout>;
}

function layout(size: number, fields: Array<[name: string, offset: number, size: number]>): StructLayout {
  return { size, fields: Object.fromEntries(fields.map(([n, offset, s]) => [n, { offset, size: s }])) };
}

/** Every struct of bpf/include/abi.h, as the C compiler lays it out. */
export const structLayouts = {
  endpoint_key: layout(20, [
    ['addr', 0, 16],
    ['family', 16, 1],
    ['pad', 17, 3],
  ]),
  endpoint_info: layout(28, [
    ['ifindex', 0, 4],
    ['ep_id', 4, 2],
    ['flags', 6, 2],
    ['sec_identity', 8, 4],
    ['net_id', 12, 4],
    ['mac', 16, 6],
    ['node_mac', 22, 6],
  ]),
  policy_key: layout(16, [
    ['prefixlen', 0, 4],
    ['ep_id', 4, 2],
    ['direction', 6, 1],
    ['pad1', 7, 1],
    ['sec_identity', 8, 4],
    ['pad2', 12, 1],
    ['protocol', 13, 1],
    ['dport', 14, 2],
  ]),
  policy_entry: layout(8, [
    ['deny', 0, 1],
    ['l4_prefixlen', 1, 1],
    ['pad', 2, 2],
    ['cookie', 4, 4],
  ]),
  ipcache_key: layout(24, [
    ['prefixlen', 0, 4],
    ['pad1', 4, 2],
    ['pad2', 6, 1],
    ['family', 7, 1],
    ['addr', 8, 16],
  ]),
  ipcache_entry: layout(16, [
    ['sec_identity', 0, 4],
    ['tunnel_endpoint', 4, 4],
    ['net_id', 8, 4],
    ['tunnel_nexthop', 12, 4],
  ]),
  ct_key: layout(16, [
    ['saddr', 0, 4],
    ['daddr', 4, 4],
    ['sport', 8, 2],
    ['dport', 10, 2],
    ['protocol', 12, 1],
    ['pad', 13, 3],
  ]),
  ct_entry: layout(48, [
    ['packets_fwd', 0, 8],
    ['bytes_fwd', 8, 8],
    ['packets_rev', 16, 8],
    ['bytes_rev', 24, 8],
    ['created', 32, 4],
    ['expires', 36, 4],
    ['src_identity', 40, 4],
    ['tcp_flags_fwd', 44, 1],
    ['tcp_flags_rev', 45, 1],
    ['flags', 46, 2],
  ]),
  metrics_key: layout(4, [
    ['reason', 0, 1],
    ['direction', 1, 1],
    ['pad', 2, 2],
  ]),
  metrics_value: layout(16, [
    ['packets', 0, 8],
    ['bytes', 8, 8],
  ]),
  event: layout(184, [
    ['type', 0, 1],
    ['subtype', 1, 1],
    ['ep_id', 2, 2],
    ['ifindex', 4, 4],
    ['timestamp', 8, 8],
    ['src_identity', 16, 4],
    ['dst_identity', 20, 4],
    ['saddr', 24, 4],
    ['daddr', 28, 4],
    ['sport', 32, 2],
    ['dport', 34, 2],
    ['protocol', 36, 1],
    ['direction', 37, 1],
    ['verdict', 38, 1],
    ['pad1', 39, 1],
    ['cookie', 40, 4],
    ['len_orig', 44, 4],
    ['len_cap', 48, 2],
    ['pad2', 50, 2],
    ['payload', 52, 128],
    ['pad3', 180, 4],
  ]),
} as const satisfies Record<string, StructLayout>;

/** Name of a struct of abi.h. */
export type StructName = keyof typeof structLayouts;

const L = structLayouts;
const off = <S extends StructName>(s: S, field: keyof (typeof structLayouts)[S]['fields']): number =>
  (structLayouts[s].fields as Record<string, FieldLayout>)[field as string]!.offset;

// ---- load-time constants (bpf/include/config.h) ------------------------------------------------

/** Datapath settings fixed at load time. */
export interface DatapathConfig {
  /** Conntrack lifetime of established TCP, seconds (default 21600). */
  ctLifetimeTcp: number;
  /** ... of TCP before the reply is seen (default 60). */
  ctLifetimeSyn: number;
  /** ... of TCP after FIN or RST (default 10). */
  ctLifetimeClose: number;
  /** ... of UDP, ICMP and other protocols (default 60). */
  ctLifetimeNonTcp: number;
  /** Packet and byte counters in conntrack entries (default on). */
  ctAccounting: boolean;
  /** A drop event for every dropped packet (default on). */
  dropNotify: boolean;
  /** A policy-verdict event for the first packet of each connection (default on). */
  policyVerdictNotify: boolean;
  /** A trace event for every forwarded packet (default off). */
  traceNotify: boolean;
  /** ifindex of the tunnel device; 0 = no overlay (default). */
  tunnelIfindex: number;
  /** ifindex of the underlay device: the program encapsulates itself (encap.h); 0 = through the tunnel device. */
  underlayIfindex: number;
  /** This node's underlay IPv4 as a host-order integer (the outer source address). */
  underlaySaddr: number;
  /** Destination UDP port of the overlay. */
  tunnelPort: number;
}

/** The `const volatile` globals of config.h: C name and size for each setting. */
export const loadTimeConstants = {
  ctLifetimeTcp: { name: 'cfg_ct_lifetime_tcp', size: 4 },
  ctLifetimeSyn: { name: 'cfg_ct_lifetime_syn', size: 4 },
  ctLifetimeClose: { name: 'cfg_ct_lifetime_close', size: 4 },
  ctLifetimeNonTcp: { name: 'cfg_ct_lifetime_nontcp', size: 4 },
  ctAccounting: { name: 'cfg_ct_accounting', size: 1 },
  dropNotify: { name: 'cfg_drop_notify', size: 1 },
  policyVerdictNotify: { name: 'cfg_policy_verdict_notify', size: 1 },
  traceNotify: { name: 'cfg_trace_notify', size: 1 },
  tunnelIfindex: { name: 'cfg_tunnel_ifindex', size: 4 },
  underlayIfindex: { name: 'cfg_underlay_ifindex', size: 4 },
  underlaySaddr: { name: 'cfg_underlay_saddr', size: 4 },
  tunnelPort: { name: 'cfg_tunnel_port', size: 4 },
} as const satisfies Record<keyof DatapathConfig, { name: string; size: 1 | 4 }>;

/** The .rodata bytes for the given settings (settings left out keep the compiled default). */
export function encodeLoadTimeConstants(config: Partial<DatapathConfig>): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(config) as Array<[keyof DatapathConfig, number | boolean]>) {
    if (value === undefined) continue;
    const { name, size } = loadTimeConstants[key];
    const buf = Buffer.alloc(size);
    if (size === 1) buf.writeUInt8(Number(value));
    else buf.writeUInt32LE(Number(value));
    out[name] = buf;
  }
  return out;
}

// ---- addresses ----------------------------------------------------------------------------

/** Bytes of a dotted-quad IPv4 address (util/ipv4.ts's strict form); throws TypeError for anything else. */
export function ipv4Bytes(address: string): Buffer {
  const value = parseIpv4(address);
  if (value === undefined) throw new TypeError(`not an IPv4 address: '${address}'`);
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(value);
  return buf;
}

/** Dotted-quad text of 4 bytes at offset. */
export function ipv4String(buf: Buffer, offset = 0): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** Bytes of a MAC address 'aa:bb:cc:dd:ee:ff'; throws TypeError for anything else. */
export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new TypeError(`not a MAC address: '${mac}'`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

/** 'aa:bb:cc:dd:ee:ff' text of 6 bytes at offset. */
export function macString(buf: Buffer, offset = 0): string {
  return [...buf.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Splits 'a.b.c.d/n' (a bare address means /32); throws TypeError when malformed. */
export function parseIpv4Prefix(prefix: string): { address: string; length: number } {
  const slash = prefix.indexOf('/');
  const address = slash < 0 ? prefix : prefix.slice(0, slash);
  const length = slash < 0 ? 32 : parsePrefixLength(prefix.slice(slash + 1), 32);
  if (parseIpv4(address) === undefined || length === undefined) throw new TypeError(`not an IPv4 prefix: '${prefix}'`);
  return { address, length };
}

// ---- cilium_endpoints ---------------------------------------------------------------------

/** A local container endpoint as the datapath sees it (value of cilium_endpoints). */
export interface EndpointInfo {
  /** ifindex of the host-side veth (lxc*). */
  ifindex: number;
  /** Endpoint id (1..65535): namespace of its policy entries, source of its events. */
  epId: number;
  /** The endpoint's own security identity. */
  identity: number;
  /** Docker network number; decides isolation while a direction is not enforced. */
  netId: number;
  /** A rule selects the endpoint for ingress: default deny, the policy map decides. */
  enforceIngress: boolean;
  /** A rule selects the endpoint for egress. */
  enforceEgress: boolean;
  /** MAC of the container's interface; '00:00:00:00:00:00' disables source-MAC checks. */
  mac: string;
  /** MAC of the lxc device: ARP answers and the source MAC of delivered packets. */
  nodeMac: string;
}

const EP_F_ENFORCE_INGRESS = 1;
const EP_F_ENFORCE_EGRESS = 2;

/** cilium_endpoints key for an IPv4 address. */
export function encodeEndpointKey(address: string): Buffer {
  const buf = Buffer.alloc(L.endpoint_key.size);
  ipv4Bytes(address).copy(buf, off('endpoint_key', 'addr'));
  buf.writeUInt8(AddrFamily.IPv4, off('endpoint_key', 'family'));
  return buf;
}

/** The IPv4 address of a cilium_endpoints key. */
export function decodeEndpointKey(buf: Buffer): string {
  return ipv4String(buf, off('endpoint_key', 'addr'));
}

/** cilium_endpoints value. */
export function encodeEndpointInfo(ep: EndpointInfo): Buffer {
  const buf = Buffer.alloc(L.endpoint_info.size);
  buf.writeUInt32LE(ep.ifindex, off('endpoint_info', 'ifindex'));
  buf.writeUInt16LE(ep.epId, off('endpoint_info', 'ep_id'));
  const flags = (ep.enforceIngress ? EP_F_ENFORCE_INGRESS : 0) | (ep.enforceEgress ? EP_F_ENFORCE_EGRESS : 0);
  buf.writeUInt16LE(flags, off('endpoint_info', 'flags'));
  buf.writeUInt32LE(ep.identity, off('endpoint_info', 'sec_identity'));
  buf.writeUInt32LE(ep.netId, off('endpoint_info', 'net_id'));
  macBytes(ep.mac).copy(buf, off('endpoint_info', 'mac'));
  macBytes(ep.nodeMac).copy(buf, off('endpoint_info', 'node_mac'));
  return buf;
}

/** Reads a cilium_endpoints value. */
export function decodeEndpointInfo(buf: Buffer): EndpointInfo {
  const flags = buf.readUInt16LE(off('endpoint_info', 'flags'));
  return {
    ifindex: buf.readUInt32LE(off('endpoint_info', 'ifindex')),
    epId: buf.readUInt16LE(off('endpoint_info', 'ep_id')),
    identity: buf.readUInt32LE(off('endpoint_info', 'sec_identity')),
    netId: buf.readUInt32LE(off('endpoint_info', 'net_id')),
    enforceIngress: (flags & EP_F_ENFORCE_INGRESS) !== 0,
    enforceEgress: (flags & EP_F_ENFORCE_EGRESS) !== 0,
    mac: macString(buf, off('endpoint_info', 'mac')),
    nodeMac: macString(buf, off('endpoint_info', 'node_mac')),
  };
}

// ---- cilium_policy --------------------------------------------------------------------------

/**
 * A policy map key. Field names match the policy compiler's PolicyEntryKey, plus the endpoint.
 * Wildcards: peer 0 = any identity; protocol 0 = any protocol (then dport and portPrefixLen are
 * 0); portPrefixLen 0 = any port, 16 = exactly dport, in between = the aligned block at dport.
 */
export interface PolicyKey {
  /** Endpoint the entry belongs to. */
  epId: number;
  direction: Direction;
  /** Peer identity (0 = any). */
  peer: number;
  /** IP protocol number (0 = any): 6 TCP, 17 UDP, 1 ICMP. */
  protocol: number;
  /** Destination port, host order; for protocol 1 (ICMP) the ICMP type (Cilium's `icmps` encoding). */
  dport: number;
  portPrefixLen: number;
}

/** A policy map value. */
export interface PolicyValue {
  /** A deny wins over every allow, whatever their specificity. */
  verdict: 'allow' | 'deny';
  /** Rule cookie, echoed in policy-verdict events. */
  cookie: number;
}

/** Prefix bits of ep_id, direction, pad1, sec_identity and pad2 (POLICY_PREFIX_FIXED). */
const POLICY_PREFIX_FIXED = 72;
/** ... plus the protocol byte; port prefix bits follow. */
const POLICY_PREFIX_PROTO = POLICY_PREFIX_FIXED + 8;

/** Bits of (protocol, dport) a key matches: the LPM prefix beyond the fixed part. */
function policyL4PrefixLen(key: Pick<PolicyKey, 'protocol' | 'portPrefixLen'>): number {
  return key.protocol === 0 ? 0 : POLICY_PREFIX_PROTO - POLICY_PREFIX_FIXED + key.portPrefixLen;
}

// Field offsets of the policy key/value, resolved once: a regeneration encodes up to millions.
const PK_PREFIXLEN = off('policy_key', 'prefixlen');
const PK_EP_ID = off('policy_key', 'ep_id');
const PK_DIRECTION = off('policy_key', 'direction');
const PK_SEC_IDENTITY = off('policy_key', 'sec_identity');
const PK_PROTOCOL = off('policy_key', 'protocol');
const PK_DPORT = off('policy_key', 'dport');
const PE_DENY = off('policy_entry', 'deny');
const PE_L4_PREFIXLEN = off('policy_entry', 'l4_prefixlen');
const PE_COOKIE = off('policy_entry', 'cookie');
/** Bytes of a cilium_policy key and value. */
export const POLICY_KEY_SIZE = L.policy_key.size;
export const POLICY_VALUE_SIZE = L.policy_entry.size;

/** cilium_policy key; throws TypeError for a key the trie cannot represent. */
export function encodePolicyKey(key: PolicyKey): Buffer {
  const buf = Buffer.alloc(POLICY_KEY_SIZE);
  writePolicyKey(buf, 0, key, key.epId);
  return buf;
}

/**
 * Writes a cilium_policy key of endpoint `epId` at `offset` of `buf`, whose key bytes must be zero
 * (padding is not written); throws TypeError for a key the trie cannot represent.
 */
export function writePolicyKey(buf: Buffer, offset: number, key: Omit<PolicyKey, 'epId'>, epId: number): void {
  const plen = key.portPrefixLen;
  if (!Number.isInteger(plen) || plen < 0 || plen > 16) {
    throw new TypeError(`policy key: port prefix length ${plen} is not in 0..16`);
  }
  if (key.protocol === 0 && (key.dport !== 0 || plen !== 0)) {
    throw new TypeError('policy key: a port needs a protocol (protocol 0 means any protocol and any port)');
  }
  buf.writeUInt32LE(POLICY_PREFIX_FIXED + policyL4PrefixLen(key), offset + PK_PREFIXLEN);
  buf.writeUInt16LE(epId, offset + PK_EP_ID);
  buf[offset + PK_DIRECTION] = key.direction === 'egress' ? 1 : 0;
  buf.writeUInt32LE(key.peer, offset + PK_SEC_IDENTITY);
  buf.writeUInt8(key.protocol, offset + PK_PROTOCOL);
  const portMask = plen === 0 ? 0 : (0xffff << (16 - plen)) & 0xffff;
  buf.writeUInt16BE(key.dport & portMask, offset + PK_DPORT);
}

/** The endpoint id of the cilium_policy key at `offset` of `buf`. */
export function policyKeyEndpoint(buf: Buffer, offset = 0): number {
  return buf.readUInt16LE(offset + PK_EP_ID);
}

/** Reads a cilium_policy key. */
export function decodePolicyKey(buf: Buffer): PolicyKey {
  const prefixlen = buf.readUInt32LE(off('policy_key', 'prefixlen'));
  return {
    epId: buf.readUInt16LE(off('policy_key', 'ep_id')),
    direction: buf.readUInt8(off('policy_key', 'direction')) === 1 ? 'egress' : 'ingress',
    peer: buf.readUInt32LE(off('policy_key', 'sec_identity')),
    protocol: buf.readUInt8(off('policy_key', 'protocol')),
    dport: buf.readUInt16BE(off('policy_key', 'dport')),
    portPrefixLen: Math.max(0, prefixlen - POLICY_PREFIX_PROTO),
  };
}

/** cilium_policy value; the key tells the datapath which match type the entry is. */
export function encodePolicyValue(value: PolicyValue, key: PolicyKey): Buffer {
  const buf = Buffer.alloc(POLICY_VALUE_SIZE);
  writePolicyValue(buf, 0, value, key);
  return buf;
}

/** Writes a cilium_policy value at `offset` of `buf` (value bytes zero beforehand). */
export function writePolicyValue(
  buf: Buffer,
  offset: number,
  value: PolicyValue,
  key: Pick<PolicyKey, 'protocol' | 'portPrefixLen'>,
): void {
  buf[offset + PE_DENY] = value.verdict === 'deny' ? 1 : 0;
  buf[offset + PE_L4_PREFIXLEN] = policyL4PrefixLen(key);
  buf.writeUInt32LE(value.cookie, offset + PE_COOKIE);
}

/** Reads a cilium_policy value. */
export function decodePolicyValue(buf: Buffer): PolicyValue {
  return {
    verdict: buf.readUInt8(off('policy_entry', 'deny')) !== 0 ? 'deny' : 'allow',
    cookie: buf.readUInt32LE(off('policy_entry', 'cookie')),
  };
}

// ---- cilium_ipcache -------------------------------------------------------------------------

/** What the datapath knows about a remote address or prefix. */
export interface IpcacheEntry {
  identity: number;
  /** Underlay IPv4 of the node hosting the address; undefined when not tunnelled. */
  tunnelEndpoint?: string;
  /** Docker network of a container address; 0 when not a container. */
  netId: number;
  /**
   * With encapsulation in BPF: the underlay next hop towards tunnelEndpoint, an IPv4 gateway
   * on the underlay device's link, or 'device' (not reachable through the underlay device: the
   * tunnel device routes the packet). Undefined: tunnelEndpoint itself.
   */
  tunnelNexthop?: string;
}

/** tunnel_nexthop of a peer the tunnel device routes (TUNNEL_NEXTHOP_DEVICE in abi.h). */
const TUNNEL_NEXTHOP_DEVICE = 0xffffffff;

/** Bits of pad1/pad2/family that precede the address in the LPM key (Cilium's layout). */
const IPCACHE_META_PREFIX_BITS = 32;

/** cilium_ipcache key for 'a.b.c.d/n' (or a bare address: /32). Host bits are cleared. */
export function encodeIpcacheKey(prefix: string): Buffer {
  const { address, length } = parseIpv4Prefix(prefix);
  const buf = Buffer.alloc(L.ipcache_key.size);
  buf.writeUInt32LE(IPCACHE_META_PREFIX_BITS + length, off('ipcache_key', 'prefixlen'));
  buf.writeUInt8(AddrFamily.IPv4, off('ipcache_key', 'family'));
  const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  buf.writeUInt32BE((ipv4Bytes(address).readUInt32BE(0) & mask) >>> 0, off('ipcache_key', 'addr'));
  return buf;
}

/** 'a.b.c.d/n' of a cilium_ipcache key. */
export function decodeIpcacheKey(buf: Buffer): string {
  const length = buf.readUInt32LE(off('ipcache_key', 'prefixlen')) - IPCACHE_META_PREFIX_BITS;
  return `${ipv4String(buf, off('ipcache_key', 'addr'))}/${length}`;
}

/** cilium_ipcache value. */
export function encodeIpcacheEntry(entry: IpcacheEntry): Buffer {
  const buf = Buffer.alloc(L.ipcache_entry.size);
  buf.writeUInt32LE(entry.identity, off('ipcache_entry', 'sec_identity'));
  if (entry.tunnelEndpoint) ipv4Bytes(entry.tunnelEndpoint).copy(buf, off('ipcache_entry', 'tunnel_endpoint'));
  buf.writeUInt32LE(entry.netId, off('ipcache_entry', 'net_id'));
  if (entry.tunnelNexthop === 'device')
    buf.writeUInt32BE(TUNNEL_NEXTHOP_DEVICE, off('ipcache_entry', 'tunnel_nexthop'));
  else if (entry.tunnelNexthop) ipv4Bytes(entry.tunnelNexthop).copy(buf, off('ipcache_entry', 'tunnel_nexthop'));
  return buf;
}

/** Reads a cilium_ipcache value. */
export function decodeIpcacheEntry(buf: Buffer): IpcacheEntry {
  const tunnelOffset = off('ipcache_entry', 'tunnel_endpoint');
  const entry: IpcacheEntry = {
    identity: buf.readUInt32LE(off('ipcache_entry', 'sec_identity')),
    netId: buf.readUInt32LE(off('ipcache_entry', 'net_id')),
  };
  if (buf.readUInt32BE(tunnelOffset) !== 0) entry.tunnelEndpoint = ipv4String(buf, tunnelOffset);
  const nexthopOffset = off('ipcache_entry', 'tunnel_nexthop');
  const nexthop = buf.readUInt32BE(nexthopOffset);
  if (nexthop === TUNNEL_NEXTHOP_DEVICE) entry.tunnelNexthop = 'device';
  else if (nexthop !== 0) entry.tunnelNexthop = ipv4String(buf, nexthopOffset);
  return entry;
}

// ---- cilium_ct ------------------------------------------------------------------------------

/** A connection in its original direction. ICMP echo: the identifier is the source port. */
export interface CtKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
}

/** Conntrack state; times are CLOCK_MONOTONIC seconds (process.hrtime / 1e9). */
export interface CtEntry {
  packetsFwd: bigint;
  bytesFwd: bigint;
  packetsRev: bigint;
  bytesRev: bigint;
  created: number;
  /** The entry is dead from this second on. */
  expires: number;
  /** Identity of the side that opened the connection. */
  srcIdentity: number;
  tcpFlagsFwd: number;
  tcpFlagsRev: number;
  /** A packet went in the reply direction. */
  replySeen: boolean;
  /** FIN or RST seen. */
  closing: boolean;
  /** Policy dropped the forward direction (the entry is kept; replies no longer extend it). */
  denied: boolean;
}

const CT_F_REPLY_SEEN = 1;
const CT_F_CLOSING = 2;
const CT_F_DENIED = 4;

/** cilium_ct key. */
export function encodeCtKey(key: CtKey): Buffer {
  const buf = Buffer.alloc(L.ct_key.size);
  ipv4Bytes(key.saddr).copy(buf, off('ct_key', 'saddr'));
  ipv4Bytes(key.daddr).copy(buf, off('ct_key', 'daddr'));
  buf.writeUInt16BE(key.sport, off('ct_key', 'sport'));
  buf.writeUInt16BE(key.dport, off('ct_key', 'dport'));
  buf.writeUInt8(key.protocol, off('ct_key', 'protocol'));
  return buf;
}

/** Reads a cilium_ct key. */
export function decodeCtKey(buf: Buffer): CtKey {
  return {
    saddr: ipv4String(buf, off('ct_key', 'saddr')),
    daddr: ipv4String(buf, off('ct_key', 'daddr')),
    sport: buf.readUInt16BE(off('ct_key', 'sport')),
    dport: buf.readUInt16BE(off('ct_key', 'dport')),
    protocol: buf.readUInt8(off('ct_key', 'protocol')),
  };
}

/** cilium_ct value (for restoring or testing; the datapath writes these). */
export function encodeCtEntry(entry: CtEntry): Buffer {
  const buf = Buffer.alloc(L.ct_entry.size);
  buf.writeBigUInt64LE(entry.packetsFwd, off('ct_entry', 'packets_fwd'));
  buf.writeBigUInt64LE(entry.bytesFwd, off('ct_entry', 'bytes_fwd'));
  buf.writeBigUInt64LE(entry.packetsRev, off('ct_entry', 'packets_rev'));
  buf.writeBigUInt64LE(entry.bytesRev, off('ct_entry', 'bytes_rev'));
  buf.writeUInt32LE(entry.created, off('ct_entry', 'created'));
  buf.writeUInt32LE(entry.expires, off('ct_entry', 'expires'));
  buf.writeUInt32LE(entry.srcIdentity, off('ct_entry', 'src_identity'));
  buf.writeUInt8(entry.tcpFlagsFwd, off('ct_entry', 'tcp_flags_fwd'));
  buf.writeUInt8(entry.tcpFlagsRev, off('ct_entry', 'tcp_flags_rev'));
  const flags =
    (entry.replySeen ? CT_F_REPLY_SEEN : 0) | (entry.closing ? CT_F_CLOSING : 0) | (entry.denied ? CT_F_DENIED : 0);
  buf.writeUInt16LE(flags, off('ct_entry', 'flags'));
  return buf;
}

/** Reads a cilium_ct value. */
export function decodeCtEntry(buf: Buffer): CtEntry {
  const flags = buf.readUInt16LE(off('ct_entry', 'flags'));
  return {
    packetsFwd: buf.readBigUInt64LE(off('ct_entry', 'packets_fwd')),
    bytesFwd: buf.readBigUInt64LE(off('ct_entry', 'bytes_fwd')),
    packetsRev: buf.readBigUInt64LE(off('ct_entry', 'packets_rev')),
    bytesRev: buf.readBigUInt64LE(off('ct_entry', 'bytes_rev')),
    created: buf.readUInt32LE(off('ct_entry', 'created')),
    expires: buf.readUInt32LE(off('ct_entry', 'expires')),
    srcIdentity: buf.readUInt32LE(off('ct_entry', 'src_identity')),
    tcpFlagsFwd: buf.readUInt8(off('ct_entry', 'tcp_flags_fwd')),
    tcpFlagsRev: buf.readUInt8(off('ct_entry', 'tcp_flags_rev')),
    replySeen: (flags & CT_F_REPLY_SEEN) !== 0,
    closing: (flags & CT_F_CLOSING) !== 0,
    denied: (flags & CT_F_DENIED) !== 0,
  };
}

// ---- cilium_metrics -------------------------------------------------------------------------

/** A metrics counter key: why (0 = forwarded, else a drop reason) and which way. */
export interface MetricsKey {
  reason: number;
  direction: Direction;
}

/** A counter summed over CPUs. */
export interface MetricsValue {
  packets: bigint;
  bytes: bigint;
}

const DIR_INGRESS = 1;
const DIR_EGRESS = 2;

function directionOf(code: number): Direction {
  return code === DIR_EGRESS ? 'egress' : 'ingress';
}

/** cilium_metrics key. */
export function encodeMetricsKey(key: MetricsKey): Buffer {
  const buf = Buffer.alloc(L.metrics_key.size);
  buf.writeUInt8(key.reason, off('metrics_key', 'reason'));
  buf.writeUInt8(key.direction === 'egress' ? DIR_EGRESS : DIR_INGRESS, off('metrics_key', 'direction'));
  return buf;
}

/** Reads a cilium_metrics key. */
export function decodeMetricsKey(buf: Buffer): MetricsKey {
  return {
    reason: buf.readUInt8(off('metrics_key', 'reason')),
    direction: directionOf(buf.readUInt8(off('metrics_key', 'direction'))),
  };
}

/** Sums the per-CPU values of one key (value_size 16 is a multiple of 8: no per-CPU padding). */
export function decodePerCpuMetricsValue(buf: Buffer): MetricsValue {
  const value = { packets: 0n, bytes: 0n };
  for (let cpu = 0; cpu + L.metrics_value.size <= buf.length; cpu += L.metrics_value.size) {
    value.packets += buf.readBigUInt64LE(cpu + off('metrics_value', 'packets'));
    value.bytes += buf.readBigUInt64LE(cpu + off('metrics_value', 'bytes'));
  }
  return value;
}

// ---- cilium_events --------------------------------------------------------------------------

/** Fields every event has. Ports are 0 when unknown (fragments); ICMP echo ids sit in the ports. */
export interface EventBase {
  /** Endpoint whose program or policy produced the event (0: the source was not an endpoint). */
  epId: number;
  ifindex: number;
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds. */
  timestamp: bigint;
  srcIdentity: number;
  dstIdentity: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  direction: Direction;
  /** Length of the packet. */
  length: number;
  /** Its first bytes (up to 128), from the Ethernet header on. */
  payload: Buffer;
}

/** A dropped packet. */
export interface DropEvent extends EventBase {
  type: 'drop';
  reason: number;
}

/** A forwarded packet, when tracing is on. */
export interface TraceEvent extends EventBase {
  type: 'trace';
  observationPoint: string;
}

/** A policy decision on the first packet of a connection (or on a denied packet). */
export interface PolicyVerdictEvent extends EventBase {
  type: 'policy-verdict';
  verdict: 'allow' | 'deny';
  match: string;
  cookie: number;
}

/** Any record of cilium_events. */
export type DatapathEvent = DropEvent | TraceEvent | PolicyVerdictEvent;

const EVENT_DROP = 1;
const EVENT_TRACE = 4;
const EVENT_POLICY_VERDICT = 5;
const VERDICT_DENY = 2;

/** Decodes one ring-buffer record; throws TypeError for a short or unknown record. */
export function decodeEvent(buf: Buffer): DatapathEvent {
  if (buf.length < L.event.size) throw new TypeError(`event record of ${buf.length} bytes, expected ${L.event.size}`);
  const subtype = buf.readUInt8(off('event', 'subtype'));
  const payloadOffset = off('event', 'payload');
  const base: EventBase = {
    epId: buf.readUInt16LE(off('event', 'ep_id')),
    ifindex: buf.readUInt32LE(off('event', 'ifindex')),
    timestamp: buf.readBigUInt64LE(off('event', 'timestamp')),
    srcIdentity: buf.readUInt32LE(off('event', 'src_identity')),
    dstIdentity: buf.readUInt32LE(off('event', 'dst_identity')),
    saddr: ipv4String(buf, off('event', 'saddr')),
    daddr: ipv4String(buf, off('event', 'daddr')),
    sport: buf.readUInt16BE(off('event', 'sport')),
    dport: buf.readUInt16BE(off('event', 'dport')),
    protocol: buf.readUInt8(off('event', 'protocol')),
    direction: directionOf(buf.readUInt8(off('event', 'direction'))),
    length: buf.readUInt32LE(off('event', 'len_orig')),
    payload: Buffer.from(
      buf.subarray(payloadOffset, payloadOffset + Math.min(buf.readUInt16LE(off('event', 'len_cap')), 128)),
    ),
  };
  const type = buf.readUInt8(off('event', 'type'));
  switch (type) {
    case EVENT_DROP:
      return { ...base, type: 'drop', reason: subtype };
    case EVENT_TRACE:
      return {
        ...base,
        type: 'trace',
        observationPoint: TracePoint[subtype as keyof typeof TracePoint] ?? `point-${subtype}`,
      };
    case EVENT_POLICY_VERDICT:
      return {
        ...base,
        type: 'policy-verdict',
        verdict: buf.readUInt8(off('event', 'verdict')) === VERDICT_DENY ? 'deny' : 'allow',
        match: PolicyMatch[subtype as keyof typeof PolicyMatch] ?? `match-${subtype}`,
        cookie: buf.readUInt32LE(off('event', 'cookie')),
      };
    default:
      throw new TypeError(`unknown event type ${type}`);
  }
}
