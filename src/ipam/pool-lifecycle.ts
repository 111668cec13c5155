/**
 * Pool records across hosts: creating or joining the pool of a subnet, carving one from the
 * default pool, settling two hosts' overlapping creations, and removing a pool when its last
 * user leaves. Hosts agree through create-only keys and compare-and-swap on the pool record;
 * the caller (ipam.ts) serialises these calls inside this process (its pools lock).
 */
import { KvConflictError, PoolExhaustedError, PoolOverlapError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { cidrsOverlap, formatIpv4Cidr, nthSubnet, subnetCount, type Ipv4Cidr } from '../util/ipv4.js';
import { poolIdForSubnet, type PoolRecord, type PoolStore, type StoredPool } from './pool-store.js';
import { toPoolView } from './pool-view.js';

/** Bound on optimistic retries of pool-record writes that lose a race with another host. */
const MAX_POOL_ATTEMPTS = 16;

/** What the pool lifecycle works on: the stores, this node, the default pool it carves from. */
export interface PoolLifecycleOptions {
  pools: PoolStore;
  node: string;
  defaultPool: Ipv4Cidr;
  defaultPoolPrefixLength: number;
  log: Logger;
}

/** Creation, joining and removal of pool records for one node. */
export class PoolLifecycle {
  private readonly pools: PoolStore;
  private readonly node: string;
  private readonly defaultPool: Ipv4Cidr;
  private readonly defaultPoolPrefixLength: number;
  private readonly log: Logger;

  constructor(options: PoolLifecycleOptions) {
    this.pools = options.pools;
    this.node = options.node;
    this.defaultPool = options.defaultPool;
    this.defaultPoolPrefixLength = options.defaultPoolPrefixLength;
    this.log = options.log;
  }

  /** Creates the pool record for `subnet`, or joins the existing one; returns the pool id. */
  async createOrJoin(
    subnet: Ipv4Cidr,
    subPool: Ipv4Cidr | undefined,
    options: Record<string, string>,
  ): Promise<string> {
    const poolId = poolIdForSubnet(subnet);
    const subnetText = formatIpv4Cidr(subnet);
    const subPoolText = subPool ? formatIpv4Cidr(subPool) : undefined;
    for (let attempt = 0; attempt < MAX_POOL_ATTEMPTS; attempt++) {
      const pools = await this.pools.listPools();
      const overlapping = pools.find((p) => p.poolId !== poolId && cidrsOverlap(subnetOf(p), subnet));
      if (overlapping) throw overlapError(subnetText, overlapping);

      const existing = pools.find((p) => p.poolId === poolId);
      if (existing) {
        const users = await this.pools.listPoolUsers(poolId);
        if (users.includes(this.node)) {
          throw new PoolOverlapError(
            `cannot create another network with subnet ${subnetText} on node ${this.node}: pool ${subnetText} is ` +
              'already used by a network on this host; remove that network (docker network rm) ' +
              'or choose a different --subnet',
          );
        }
        if (existing.record.subPool !== subPoolText) {
          throw new PoolOverlapError(
            `pool ${subnetText} already exists ` +
              `${existing.record.subPool ? `with --ip-range ${existing.record.subPool}` : 'without --ip-range'} ` +
              `(created by node ${existing.record.createdBy}), ` +
              `and this request ${subPoolText ? `has --ip-range ${subPoolText}` : 'has none'}; ` +
              'the same network on every host must use the same options: ' +
              `${existing.record.subPool ? `pass --ip-range ${existing.record.subPool}` : 'leave --ip-range out'}`,
          );
        }
        // Register first, then touch the record: a last user removing the pool concurrently either
        // sees this key or fails its CAS on the record (see removeIfUnused).
        await this.pools.addPoolUser(poolId, this.node);
        const touched = { ...existing.record, updatedAt: new Date().toISOString() };
        if (await this.pools.updatePool(poolId, touched, existing.modRevision)) {
          this.log.info({ poolId, subnet: subnetText }, 'joined existing pool');
          return poolId;
        }
        await this.pools.removePoolUser(poolId, this.node);
        continue;
      }

      const record: PoolRecord = { subnet: subnetText, createdAt: new Date().toISOString(), createdBy: this.node };
      if (subPoolText) record.subPool = subPoolText;
      if (Object.keys(options).length > 0) record.options = options;
      const created = await this.pools.createPool(poolId, record);
      if (!created.ok) continue; // another host created it a moment ago: join it on the next pass
      const loser = await this.loseOverlapRace(poolId, subnet, created.revision);
      if (loser) throw overlapError(subnetText, loser);
      await this.pools.addPoolUser(poolId, this.node);
      this.log.info({ poolId, subnet: subnetText, subPool: subPoolText }, 'pool created');
      return poolId;
    }
    throw new KvConflictError(
      `could not create or join pool ${subnetText}: other hosts kept changing it; retry the command`,
    );
  }

  /** Creates a pool for the next free default-sized subnet of the default pool; returns its id. */
  async carveDefault(options: Record<string, string>): Promise<string> {
    const count = subnetCount(this.defaultPool, this.defaultPoolPrefixLength);
    let pools = await this.pools.listPools();
    let lostRaces = 0;
    for (let index = 0; index < count; index++) {
      const candidate = nthSubnet(this.defaultPool, this.defaultPoolPrefixLength, index);
      if (pools.some((p) => cidrsOverlap(subnetOf(p), candidate))) continue;
      const poolId = poolIdForSubnet(candidate);
      const record: PoolRecord = {
        subnet: formatIpv4Cidr(candidate),
        createdAt: new Date().toISOString(),
        createdBy: this.node,
      };
      if (Object.keys(options).length > 0) record.options = options;
      const created = await this.pools.createPool(poolId, record);
      const lost = created.ok ? await this.loseOverlapRace(poolId, candidate, created.revision) : true;
      if (lost) {
        if (++lostRaces > MAX_POOL_ATTEMPTS) break;
        pools = await this.pools.listPools();
        continue;
      }
      await this.pools.addPoolUser(poolId, this.node);
      this.log.info({ poolId, subnet: record.subnet }, 'pool carved from the default pool');
      return poolId;
    }
    if (lostRaces > MAX_POOL_ATTEMPTS) {
      throw new KvConflictError(
        `could not carve a subnet from the default pool ${formatIpv4Cidr(this.defaultPool)}: ` +
          'other hosts kept taking the candidates; retry the command',
      );
    }
    throw new PoolExhaustedError(
      `no free /${this.defaultPoolPrefixLength} left in the default pool ` +
        `${formatIpv4Cidr(this.defaultPool)}: all ${count} are ` +
        'used by or overlap other networks; pass --subnet, or remove unused networks',
    );
  }

  /**
   * Removes the pool record and what is left under it once no node uses the pool. The record is
   * deleted by CAS on the revision read before listing users, so a node that joins meanwhile
   * (which touches the record after adding its user key) keeps the pool alive.
   */
  async removeIfUnused(poolId: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_POOL_ATTEMPTS; attempt++) {
      const stored = await this.pools.getPool(poolId);
      if (!stored) return;
      const users = await this.pools.listPoolUsers(poolId);
      if (users.length > 0) {
        this.log.info({ poolId, users }, 'pool released by this node; still used by others');
        return;
      }
      if (await this.pools.deletePool(poolId, stored.modRevision)) {
        const removed = await this.pools.deletePoolContents(poolId);
        this.log.info({ poolId, subnet: stored.record.subnet, removedKeys: removed }, 'pool removed');
        return;
      }
    }
    throw new KvConflictError(`could not remove pool ${poolId}: its record kept changing; retry the command`);
  }

  /**
   * After creating a pool record: if another host created an overlapping pool at the same time,
   * the one created later (higher create revision) loses and deletes its record. Returns the
   * winning pool when this one lost.
   */
  private async loseOverlapRace(
    poolId: string,
    subnet: Ipv4Cidr,
    createRevision: bigint,
  ): Promise<StoredPool | undefined> {
    const pools = await this.pools.listPools();
    const winner = pools.find(
      (p) => p.poolId !== poolId && p.createRevision < createRevision && cidrsOverlap(subnetOf(p), subnet),
    );
    if (winner) await this.pools.deletePool(poolId, createRevision);
    return winner;
  }
}

/** The subnet of a stored pool. */
export function subnetOf(pool: StoredPool): Ipv4Cidr {
  return toPoolView(pool).subnet;
}

function overlapError(requested: string, existing: StoredPool): PoolOverlapError {
  const existingSubnet = existing.record.subnet;
  return new PoolOverlapError(
    `cannot create pool ${requested}: ` +
      `it overlaps existing pool ${existingSubnet} (created by node ${existing.record.createdBy}); ` +
      `choose a --subnet that does not overlap ${existingSubnet}, or remove the networks that use it on every host`,
  );
}
