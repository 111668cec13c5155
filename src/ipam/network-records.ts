/**
 * The `networks/v1/` keys: `networks/v1/<name>` holds the cluster's definition of a network name
 * (a {@link ClusterNetwork}, created create-only, then touched by compare-and-swap) and
 * `networks/v1/<name>/users/<node>` (leased) says that a node has a network of that name and what
 * its own definition is. This module owns the prefix, builds the keys and reads them back; one
 * unreadable key (written by something else) is skipped with a warning, never fatal.
 */
import type { KvPair, KvStore } from '../kvstore/kvstore.js';
import { cidrsOverlap, parseIpv4, parseIpv4Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import type { ClusterNetwork, NetworkDefinition } from './network-definition.js';

/** Top-level prefix of the network-name keys (one of the store layout's, daemon/store-layout.ts). */
export const NETWORKS_PREFIX = 'networks/v1/';
const USERS = '/users/';

/** One node's user key: it has a network of this name, with this definition. */
export interface NetworkUser {
  node: string;
  networkId?: string;
  definition: NetworkDefinition;
}

/** A record with its users (`cilium network list`). */
export interface ClusterNetworkInfo {
  record: ClusterNetwork;
  users: NetworkUser[];
}

/** A cluster record as read, with the revisions compare-and-swap and the overlap race need. */
export interface StoredNetworkRecord {
  record: ClusterNetwork;
  modRevision: bigint;
  createRevision: bigint;
}

/** Every record and every user key, by name. */
export interface NetworkRecordListing {
  records: Map<string, StoredNetworkRecord>;
  users: Map<string, NetworkUser[]>;
}

/** Key of the cluster record of `name`. */
export function networkRecordKey(name: string): string {
  return NETWORKS_PREFIX + name;
}

/** Key saying that `node` uses `name`. */
export function networkUserKey(name: string, node: string): string {
  return `${NETWORKS_PREFIX}${name}${USERS}${node}`;
}

/** Prefix of the user keys of `name`. */
export function networkUsersPrefix(name: string): string {
  return NETWORKS_PREFIX + name + USERS;
}

/** The name whose record `key` is, or undefined for a user key. */
export function networkNameOfRecordKey(key: string): string | undefined {
  const name = key.slice(NETWORKS_PREFIX.length);
  return name.includes(USERS) ? undefined : name;
}

/** The record of `name`, if there is one (throws when it is unreadable). */
export async function readNetworkRecord(store: KvStore, name: string): Promise<StoredNetworkRecord | undefined> {
  const pair = await store.get(networkRecordKey(name));
  return pair ? decodeRecord(pair) : undefined;
}

/** Every record and user key; unreadable keys are skipped and logged. */
export async function listNetworkRecords(store: KvStore, log: Logger): Promise<NetworkRecordListing> {
  const { pairs } = await store.list(NETWORKS_PREFIX);
  const records = new Map<string, StoredNetworkRecord>();
  const users = new Map<string, NetworkUser[]>();
  for (const pair of pairs) {
    // One unreadable key (written by something else) must not stop every resync: skip it, say so.
    try {
      const rest = pair.key.slice(NETWORKS_PREFIX.length);
      const slash = rest.indexOf(USERS);
      if (slash < 0) {
        records.set(rest, decodeRecord(pair));
        continue;
      }
      const name = rest.slice(0, slash);
      const node = rest.slice(slash + USERS.length);
      const value = parseObject(pair);
      const user: NetworkUser = { node, definition: decodeDefinition(pair.key, value.definition) };
      if (typeof value.networkId === 'string') user.networkId = value.networkId;
      users.set(name, [...(users.get(name) ?? []), user]);
    } catch (err) {
      log.warn({ key: pair.key, err }, 'unreadable network registry key skipped');
    }
  }
  return { records, users };
}

/** A record of another name whose subnet overlaps `subnet` (created before `before`, if given). */
export function subnetOwner(
  records: Map<string, StoredNetworkRecord>,
  name: string,
  subnet: string,
  before?: bigint,
): StoredNetworkRecord | undefined {
  const cidr = parseIpv4Cidr(subnet);
  if (!cidr) return undefined;
  for (const stored of records.values()) {
    if (stored.record.name === name) continue;
    if (before !== undefined && stored.createRevision >= before) continue;
    const other = parseIpv4Cidr(stored.record.subnet);
    if (other && cidrsOverlap(cidr, other)) return stored;
  }
  return undefined;
}

function decodeRecord(pair: KvPair): StoredNetworkRecord {
  const value = parseObject(pair);
  const { name, createdBy, createdAt } = value;
  if (typeof name !== 'string' || typeof createdBy !== 'string' || typeof createdAt !== 'string') {
    throw new Error(`network registry: key ${pair.key} in the store is not a network record`);
  }
  return {
    record: { name, ...decodeDefinition(pair.key, value), createdBy, createdAt },
    modRevision: pair.modRevision,
    createRevision: pair.createRevision,
  };
}

function decodeDefinition(key: string, raw: unknown): NetworkDefinition {
  const bad = (field: string) => new Error(`network registry: key ${key} in the store has a malformed ${field}`);
  if (typeof raw !== 'object' || raw === null) throw bad('definition');
  const { subnet, ipRange, details } = raw as Record<string, unknown>;
  if (typeof subnet !== 'string' || !parseIpv4Cidr(subnet)) throw bad('subnet');
  const definition: NetworkDefinition = { subnet };
  if (ipRange !== undefined) {
    if (typeof ipRange !== 'string' || !parseIpv4Cidr(ipRange)) throw bad('ipRange');
    definition.ipRange = ipRange;
  }
  if (details !== undefined) {
    const d = details as Record<string, unknown>;
    if (typeof d !== 'object' || d === null || typeof d.gateway !== 'string' || typeof d.internal !== 'boolean')
      throw bad('details');
    if (d.gateway !== '' && parseIpv4(d.gateway) === undefined) throw bad('details.gateway');
    if (d.mtu !== undefined && typeof d.mtu !== 'number') throw bad('details.mtu');
    definition.details = { gateway: d.gateway, internal: d.internal };
    if (typeof d.mtu === 'number') definition.details.mtu = d.mtu;
  }
  return definition;
}

function parseObject(pair: KvPair): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(pair.value);
  } catch (err) {
    throw new Error(`network registry: key ${pair.key} in the store does not hold JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`network registry: key ${pair.key} in the store does not hold an object`);
  return parsed as Record<string, unknown>;
}
