/**
 * A pool record decoded into address arithmetic: the subnet, the range dynamic addresses come
 * from, and the gateway. Built fresh from the store for every request, never cached.
 */
import { formatIpv4Cidr, parseIpv4, parseIpv4Cidr, type Ipv4Cidr } from '../util/ipv4.js';
import type { StoredPool } from './pool-store.js';

/** A pool ready for allocation decisions. */
export interface PoolView {
  poolId: string;
  subnet: Ipv4Cidr;
  /** `--ip-range` if given, else the subnet: where dynamic addresses and blocks come from. */
  range: Ipv4Cidr;
  /** True if `range` came from `--ip-range`. */
  hasSubPool: boolean;
  gateway: number | undefined;
  stored: StoredPool;
}

/** Decodes a stored pool (its fields were validated when read). */
export function toPoolView(stored: StoredPool): PoolView {
  const subnet = parseIpv4Cidr(stored.record.subnet);
  const subPool = stored.record.subPool === undefined ? undefined : parseIpv4Cidr(stored.record.subPool);
  if (!subnet) throw new Error(`ipam: pool ${stored.poolId} has an unreadable subnet`);
  return {
    poolId: stored.poolId,
    subnet,
    range: subPool ?? subnet,
    hasSubPool: subPool !== undefined,
    gateway: stored.record.gateway === undefined ? undefined : parseIpv4(stored.record.gateway),
    stored,
  };
}

/** How messages name a pool: `198.18.10.0/24`, or `198.18.10.0/24 (--ip-range 198.18.10.128/25)`. */
export function describePool(pool: PoolView): string {
  const subnet = formatIpv4Cidr(pool.subnet);
  return pool.hasSubPool ? `${subnet} (--ip-range ${formatIpv4Cidr(pool.range)})` : subnet;
}
