/**
 * The IPAM's layout in the key-value store, and typed access to it. Nothing here decides anything:
 * the allocator (`ipam.ts`) holds the rules, this file knows keys and JSON.
 *
 * ```
 * ipam/v1/pools/<poolId>                 -> PoolRecord JSON
 * ipam/v1/pool-users/<poolId>/<node>     -> ''                  (nodes using the pool)
 * ipam/v1/blocks/<poolId>/<block cidr>   -> <node>              (create-only claim)
 * ipam/v1/addresses/<poolId>/<ip>        -> AddressRecord JSON  (create-only allocation)
 * ```
 *
 * A poolId never contains '/', so `<prefix>/<poolId>/` lists exactly one pool's keys. Keys sort
 * as strings in the store; everything returned here that is ordered by address is sorted
 * numerically instead.
 *
 * Two stores (`kvstore/store-scopes.ts`): every key above lives in the cluster store, except the
 * address keys of container addresses inside this node's blocks, which live under the same path
 * in the node-local store. When both are one object, everything is in it. Reads of the cluster
 * store that fail with KvUnavailableError answer the last value read (pool records, block claims,
 * cluster address keys): a node keeps allocating inside the blocks it holds during an outage.
 * That is safe because only this node allocates in its blocks, and claims are never taken away
 * from a node that still uses the pool.
 */
import type { CasResult, KvStore } from '../kvstore/kvstore.js';
import { KvUnavailableError } from '../util/errors.js';
import { formatIpv4, formatIpv4Cidr, parseIpv4, parseIpv4Cidr, type Ipv4Cidr } from '../util/ipv4.js';
import type { AddressKind } from './types.js';

/** Top-level prefix of every IPAM key (one of the store layout's, daemon/store-layout.ts). */
export const IPAM_PREFIX = 'ipam/v1/';
const POOLS = `${IPAM_PREFIX}pools/`;
const POOL_USERS = `${IPAM_PREFIX}pool-users/`;
/** Block claims, `ipam/v1/blocks/<poolId>/<block cidr>` -> node: other nodes' peer watchers read them too. */
export const BLOCKS_PREFIX = `${IPAM_PREFIX}blocks/`;
const ADDRESSES = `${IPAM_PREFIX}addresses/`;

/** The stored definition of a pool. */
export interface PoolRecord {
  /** Canonical subnet CIDR. */
  subnet: string;
  /** Canonical `--ip-range` CIDR, if any. */
  subPool?: string;
  /** Gateway address once allocated. */
  gateway?: string;
  /** `--ipam-opt` values at creation. */
  options?: Record<string, string>;
  createdAt: string;
  createdBy: string;
  /** Touched whenever a node joins, so a concurrent "last user removes the pool" CAS fails. */
  updatedAt?: string;
}

/** A pool record with its revisions. */
export interface StoredPool {
  poolId: string;
  record: PoolRecord;
  createRevision: bigint;
  modRevision: bigint;
}

/** The stored value of an address key. */
export interface AddressRecord {
  node: string;
  kind: AddressKind;
  owner?: string;
}

/** Which store holds an address key (see `kvstore/store-scopes.ts`). */
export type AddressScope = 'cluster' | 'node';

/** An address key with its revision. */
export interface StoredAddress {
  poolId: string;
  address: number;
  record: AddressRecord;
  modRevision: bigint;
  /** The store it lives in ('cluster' whenever both scopes are one store). */
  scope: AddressScope;
}

/** A block claim with its revision. */
export interface StoredBlock {
  poolId: string;
  block: Ipv4Cidr;
  node: string;
  modRevision: bigint;
}

/** Result of a create-only write of an address key. */
export type CreateAddressResult = { ok: true } | { ok: false; current: StoredAddress | undefined };

/** The stable pool id of a subnet: `198.18.10.0/24` -> `198.18.10.0-24` (no '/', same on every host). */
export function poolIdForSubnet(subnet: Ipv4Cidr): string {
  return `${formatIpv4(subnet.network)}-${subnet.prefixLength}`;
}

/** The subnet a pool id names, as text: `198.18.10.0-24` -> `198.18.10.0/24` (not validated). */
export function subnetOfPoolId(poolId: string): string {
  return poolId.replace('-', '/');
}

/** The parts of a block claim's key, as written (not validated: any node may have written it). */
export interface BlockKey {
  poolId: string;
  /** The block's CIDR text. */
  cidr: string;
}

/** Splits `ipam/v1/blocks/<poolId>/<block cidr>`; undefined when no '/' follows the pool id. */
export function parseBlockKey(key: string): BlockKey | undefined {
  const rest = key.slice(BLOCKS_PREFIX.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? undefined : { poolId: rest.slice(0, slash), cidr: rest.slice(slash + 1) };
}

/** Typed reads and writes of the IPAM keys. */
export class PoolStore {
  private readonly store: KvStore;
  private readonly node: KvStore;
  /** Last successful cluster reads, answered while the cluster store is unreachable. */
  private readonly lastKnown = new Map<string, unknown>();

  /** `node` omitted or the same object as `cluster`: one store for every key. */
  constructor(cluster: KvStore, node: KvStore = cluster) {
    this.store = cluster;
    this.node = node;
  }

  /** True when node-local address keys live in a store of their own. */
  get split(): boolean {
    return this.node !== this.store;
  }

  /**
   * A cluster read remembered under `cacheKey`; when the cluster store is unreachable the last
   * value read is answered instead (and the KvUnavailableError is thrown if there is none).
   */
  private async clusterRead<T>(cacheKey: string, read: () => Promise<T>): Promise<T> {
    try {
      const value = await read();
      this.lastKnown.set(cacheKey, value);
      return value;
    } catch (err) {
      if (err instanceof KvUnavailableError && this.lastKnown.has(cacheKey)) return this.lastKnown.get(cacheKey) as T;
      throw err;
    }
  }

  /** The pool record, or undefined. */
  getPool(poolId: string): Promise<StoredPool | undefined> {
    return this.clusterRead(`pool:${poolId}`, async () => {
      const pair = await this.store.get(POOLS + poolId);
      if (!pair) return undefined;
      return {
        poolId,
        record: decodePoolRecord(pair.key, pair.value),
        createRevision: pair.createRevision,
        modRevision: pair.modRevision,
      };
    });
  }

  /** Every pool record, in key order. */
  async listPools(): Promise<StoredPool[]> {
    const { pairs } = await this.clusterRead('pools', () => this.store.list(POOLS));
    return pairs.map((pair) => ({
      poolId: pair.key.slice(POOLS.length),
      record: decodePoolRecord(pair.key, pair.value),
      createRevision: pair.createRevision,
      modRevision: pair.modRevision,
    }));
  }

  /** Create-only write of a pool record. */
  createPool(poolId: string, record: PoolRecord): Promise<CasResult> {
    return this.store.create(POOLS + poolId, JSON.stringify(record));
  }

  /** Rewrites a pool record if it is still at `prevRevision`; true on success. */
  async updatePool(poolId: string, record: PoolRecord, prevRevision: bigint): Promise<boolean> {
    const result = await this.store.atomicPut(POOLS + poolId, JSON.stringify(record), prevRevision);
    return result.ok;
  }

  /** Deletes a pool record if it is still at `prevRevision`; true if removed. */
  deletePool(poolId: string, prevRevision: bigint): Promise<boolean> {
    return this.store.atomicDelete(POOLS + poolId, prevRevision);
  }

  /** Nodes using the pool, sorted. */
  async listPoolUsers(poolId: string): Promise<string[]> {
    const prefix = `${POOL_USERS}${poolId}/`;
    const { pairs } = await this.store.list(prefix);
    return pairs.map((pair) => pair.key.slice(prefix.length)).sort();
  }

  /** Every pool's users: poolId -> sorted node names. */
  async listAllPoolUsers(): Promise<Map<string, string[]>> {
    const { pairs } = await this.store.list(POOL_USERS);
    const users = new Map<string, string[]>();
    for (const pair of pairs) {
      const [poolId, node] = splitOnce(pair.key.slice(POOL_USERS.length));
      if (node === '') continue;
      const list = users.get(poolId) ?? [];
      list.push(node);
      users.set(poolId, list);
    }
    for (const list of users.values()) list.sort();
    return users;
  }

  /** Records that `node` uses the pool. */
  async addPoolUser(poolId: string, node: string): Promise<void> {
    await this.store.put(`${POOL_USERS}${poolId}/${node}`, '');
  }

  /** Removes `node` from the pool's users; true if it was one. */
  removePoolUser(poolId: string, node: string): Promise<boolean> {
    return this.store.delete(`${POOL_USERS}${poolId}/${node}`);
  }

  /** Block claims of one pool, or of every pool, in address order. */
  async listBlocks(poolId?: string): Promise<StoredBlock[]> {
    const prefix = poolId === undefined ? BLOCKS_PREFIX : `${BLOCKS_PREFIX}${poolId}/`;
    const { pairs } = await this.clusterRead(`list:${prefix}`, () => this.store.list(prefix));
    const blocks: StoredBlock[] = [];
    for (const pair of pairs) {
      const claim = parseBlockKey(pair.key);
      const block = claim && parseIpv4Cidr(claim.cidr);
      if (!claim || !block) throw new Error(`ipam: malformed block key ${pair.key} in the store`);
      blocks.push({ poolId: claim.poolId, block, node: pair.value, modRevision: pair.modRevision });
    }
    return blocks.sort((a, b) => compareIds(a.poolId, b.poolId) || a.block.network - b.block.network);
  }

  /** Claims a block for `node` with a create-only write; true if this call created the claim. */
  async claimBlock(poolId: string, block: Ipv4Cidr, node: string): Promise<boolean> {
    const result = await this.store.create(`${BLOCKS_PREFIX}${poolId}/${formatIpv4Cidr(block)}`, node);
    // The remembered claims must include this one before an outage needs them.
    if (result.ok) await this.listBlocks(poolId).catch(() => undefined);
    return result.ok;
  }

  /** Drops a block claim if it is still at `prevRevision`; true if removed. */
  deleteBlock(poolId: string, block: Ipv4Cidr, prevRevision: bigint): Promise<boolean> {
    return this.store.atomicDelete(`${BLOCKS_PREFIX}${poolId}/${formatIpv4Cidr(block)}`, prevRevision);
  }

  /** One address key (node-local first, then cluster), or undefined. */
  async getAddress(poolId: string, address: number): Promise<StoredAddress | undefined> {
    const key = addressKey(poolId, address);
    if (this.split) {
      const local = await this.node.get(key);
      if (local)
        return {
          poolId,
          address,
          record: decodeAddressRecord(key, local.value),
          modRevision: local.modRevision,
          scope: 'node',
        };
    }
    const pair = await this.store.get(key);
    if (!pair) return undefined;
    return {
      poolId,
      address,
      record: decodeAddressRecord(key, pair.value),
      modRevision: pair.modRevision,
      scope: 'cluster',
    };
  }

  /** Address keys of one pool, or of every pool, from both scopes, sorted by pool then address. */
  async listAddresses(poolId?: string): Promise<StoredAddress[]> {
    const cluster = await this.listClusterAddresses(poolId);
    if (!this.split) return cluster;
    const prefix = poolId === undefined ? ADDRESSES : `${ADDRESSES}${poolId}/`;
    const local = decodeAddresses((await this.node.list(prefix)).pairs, 'node');
    return [...cluster, ...local].sort((a, b) => compareIds(a.poolId, b.poolId) || a.address - b.address);
  }

  /** Address keys in the cluster store only (the last ones read while it is unreachable). */
  async listClusterAddresses(poolId?: string): Promise<StoredAddress[]> {
    const prefix = poolId === undefined ? ADDRESSES : `${ADDRESSES}${poolId}/`;
    const { pairs } = await this.clusterRead(`list:${prefix}`, () => this.store.list(prefix));
    return decodeAddresses(pairs, 'cluster').sort((a, b) => compareIds(a.poolId, b.poolId) || a.address - b.address);
  }

  /** Create-only write of an address key in `scope`; on conflict returns the key that is there. */
  async createAddress(
    poolId: string,
    address: number,
    record: AddressRecord,
    scope: AddressScope = 'cluster',
  ): Promise<CreateAddressResult> {
    const key = addressKey(poolId, address);
    const result = await this.scoped(scope).create(key, JSON.stringify(compactAddressRecord(record)));
    if (result.ok) {
      // The remembered cluster keys (gateway, reservations) must include this one before an outage needs them.
      if (scope === 'cluster') await this.listClusterAddresses(poolId).catch(() => undefined);
      return { ok: true };
    }
    const current = result.current
      ? {
          poolId,
          address,
          record: decodeAddressRecord(key, result.current.value),
          modRevision: result.current.modRevision,
          scope,
        }
      : undefined;
    return { ok: false, current };
  }

  /** Deletes an address key of `scope` if it is still at `prevRevision`; true if removed. */
  deleteAddress(
    poolId: string,
    address: number,
    prevRevision: bigint,
    scope: AddressScope = 'cluster',
  ): Promise<boolean> {
    return this.scoped(scope).atomicDelete(addressKey(poolId, address), prevRevision);
  }

  private scoped(scope: AddressScope): KvStore {
    return scope === 'node' ? this.node : this.store;
  }

  /** Deletes every block claim and address key of a pool (its last user is gone); returns the count. */
  async deletePoolContents(poolId: string): Promise<number> {
    const blocks = await this.store.deletePrefix(`${BLOCKS_PREFIX}${poolId}/`);
    const addresses = await this.store.deletePrefix(`${ADDRESSES}${poolId}/`);
    const local = this.split ? await this.node.deletePrefix(`${ADDRESSES}${poolId}/`) : 0;
    return blocks + addresses + local;
  }
}

function decodeAddresses(
  pairs: readonly { key: string; value: string; modRevision: bigint }[],
  scope: AddressScope,
): StoredAddress[] {
  return pairs.map((pair) => {
    const [id, ipText] = splitOnce(pair.key.slice(ADDRESSES.length));
    const address = parseIpv4(ipText);
    if (address === undefined) throw new Error(`ipam: malformed address key ${pair.key} in the store`);
    return {
      poolId: id,
      address,
      record: decodeAddressRecord(pair.key, pair.value),
      modRevision: pair.modRevision,
      scope,
    };
  });
}

function addressKey(poolId: string, address: number): string {
  return `${ADDRESSES}${poolId}/${formatIpv4(address)}`;
}

/** `a/b/c` -> [`a`, `b/c`]; the pool id never contains '/', the rest (a block CIDR) may. */
function splitOnce(rest: string): [string, string] {
  const slash = rest.indexOf('/');
  return slash < 0 ? [rest, ''] : [rest.slice(0, slash), rest.slice(slash + 1)];
}

/** Orders pool ids by subnet address (then length) rather than as strings. */
function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const [aNet, aLen] = a.split('-');
  const [bNet, bLen] = b.split('-');
  return (parseIpv4(aNet ?? '') ?? 0) - (parseIpv4(bNet ?? '') ?? 0) || Number(aLen) - Number(bLen);
}

function compactAddressRecord(record: AddressRecord): AddressRecord {
  return record.owner === undefined
    ? { node: record.node, kind: record.kind }
    : { node: record.node, kind: record.kind, owner: record.owner };
}

function decodePoolRecord(key: string, value: string): PoolRecord {
  const parsed = parseJsonObject(key, value);
  const { subnet, subPool, gateway, options, createdAt, createdBy, updatedAt } = parsed;
  if (typeof subnet !== 'string' || !parseIpv4Cidr(subnet)) throw malformed(key, 'subnet');
  if (subPool !== undefined && (typeof subPool !== 'string' || !parseIpv4Cidr(subPool)))
    throw malformed(key, 'subPool');
  if (gateway !== undefined && (typeof gateway !== 'string' || parseIpv4(gateway) === undefined))
    throw malformed(key, 'gateway');
  if (options !== undefined && !isStringMap(options)) throw malformed(key, 'options');
  if (typeof createdAt !== 'string') throw malformed(key, 'createdAt');
  if (typeof createdBy !== 'string') throw malformed(key, 'createdBy');
  if (updatedAt !== undefined && typeof updatedAt !== 'string') throw malformed(key, 'updatedAt');
  const record: PoolRecord = { subnet, createdAt, createdBy };
  if (subPool !== undefined) record.subPool = subPool;
  if (gateway !== undefined) record.gateway = gateway;
  if (options !== undefined) record.options = options;
  if (updatedAt !== undefined) record.updatedAt = updatedAt;
  return record;
}

function decodeAddressRecord(key: string, value: string): AddressRecord {
  const { node, kind, owner } = parseJsonObject(key, value);
  if (typeof node !== 'string') throw malformed(key, 'node');
  if (kind !== 'gateway' && kind !== 'reserved' && kind !== 'endpoint') throw malformed(key, 'kind');
  if (owner !== undefined && typeof owner !== 'string') throw malformed(key, 'owner');
  return owner === undefined ? { node, kind } : { node, kind, owner };
}

function parseJsonObject(key: string, value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new Error(`ipam: key ${key} in the store does not hold JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw malformed(key, 'value');
  return parsed as Record<string, unknown>;
}

function isStringMap(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string')
  );
}

function malformed(key: string, field: string): Error {
  return new Error(`ipam: key ${key} in the store has a malformed ${field}`);
}
