/**
 * The IPAM: Docker's IpamDriver semantics (pools from --subnet / --ip-range or carved from a
 * default pool, gateway, static and dynamic addresses) on top of the shared key-value store, so
 * that the same network created on several hosts shares one pool and hosts never hand out the
 * same address.
 *
 * State lives only in the stores (layout in `pool-store.ts`; container addresses inside this
 * node's blocks in the node-local store, see `kvstore/store-scopes.ts`); a new instance over the
 * same stores sees exactly what the previous one left. Inside the process, pool creation/release is
 * serialised globally and address operations per pool (dockerd sends many RequestAddress calls
 * at once when containers start together); between hosts, create-only keys and CAS decide.
 *
 * IPv4 only for now: IPv6 pool requests get a BadRequestError that says so. Creating, joining
 * and removing pool records across hosts is pool-lifecycle.ts; addresses, address-allocator.ts.
 */
import {
  BadRequestError,
  ConfigError,
  KvUnavailableError,
  NotAllocatedError,
  PoolNotFoundError,
} from '../util/errors.js';
import { log as rootLog, type Logger } from '../util/log.js';
import { AddressAllocator } from './address-allocator.js';
import { cidrContainsCidr, formatIpv4, formatIpv4Cidr, parseIpv4, parseIpv4Cidr, type Ipv4Cidr } from '../util/ipv4.js';
import { PoolStore, poolIdForSubnet, type StoredPool } from './pool-store.js';
import { toPoolView } from './pool-view.js';
import { PoolLifecycle, subnetOf } from './pool-lifecycle.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type {
  AddressAllocation,
  IpamOptions,
  PoolInfo,
  RequestAddressRequest,
  RequestAddressResult,
  RequestPoolRequest,
  RequestPoolResult,
} from './types.js';

export type {
  AddressAllocation,
  AddressKind,
  BlockInfo,
  IpamOptions,
  PoolInfo,
  RequestAddressRequest,
  RequestAddressResult,
  RequestPoolRequest,
  RequestPoolResult,
} from './types.js';

/** Longest subnet prefix accepted: a /30 still has two host addresses (gateway + one container). */
const MAX_POOL_PREFIX_LENGTH = 30;

/** Lock key for pool creation and release; pool ids never start with '#'. */
const POOLS_LOCK = '#pools';

/** Docker IPAM semantics over the shared store, for one node. */
export class Ipam {
  private readonly pools: PoolStore;
  private readonly node: string;
  private readonly lifecycle: PoolLifecycle;
  private readonly allocator: AddressAllocator;
  private readonly locks = new KeyedMutex();
  private readonly log: Logger;

  /** Validates the options (ConfigError if unusable); touches nothing in the store. */
  constructor(options: IpamOptions) {
    const { nodeName, defaultPool, defaultPoolPrefixLength, blockPrefixLength } = options;
    if (nodeName === '' || nodeName.includes('/')) {
      throw new ConfigError(`invalid IPAM node name "${nodeName}": it must be non-empty and contain no '/'`);
    }
    const pool = parseIpv4Cidr(defaultPool);
    if (!pool)
      throw new ConfigError(`invalid default pool "${defaultPool}": expected an IPv4 CIDR such as 10.200.0.0/16`);
    if (
      !Number.isInteger(defaultPoolPrefixLength) ||
      defaultPoolPrefixLength < pool.prefixLength ||
      defaultPoolPrefixLength > MAX_POOL_PREFIX_LENGTH
    ) {
      throw new ConfigError(
        `invalid default pool prefix length ${defaultPoolPrefixLength}: it must be between ${pool.prefixLength} ` +
          `(the default pool ${formatIpv4Cidr(pool)}) and ${MAX_POOL_PREFIX_LENGTH}`,
      );
    }
    if (!Number.isInteger(blockPrefixLength) || blockPrefixLength < 1 || blockPrefixLength > 32) {
      throw new ConfigError(
        `invalid block prefix length ${blockPrefixLength}: ` +
          'it must be between 1 and 32 (26 = 64 addresses per node block)',
      );
    }
    this.pools = new PoolStore(options.store, options.nodeStore);
    this.node = nodeName;
    this.log = rootLog.child({ component: 'ipam', node: nodeName });
    this.lifecycle = new PoolLifecycle({
      pools: this.pools,
      node: nodeName,
      defaultPool: pool,
      defaultPoolPrefixLength,
      log: this.log,
    });
    this.allocator = new AddressAllocator(this.pools, nodeName, blockPrefixLength, this.log);
  }

  /**
   * Docker RequestPool. `pool` '' carves the next free `defaultPoolPrefixLength` subnet from the
   * default pool. A subnet another node already uses is joined (the same network created on every
   * host); the same subnet twice on this node, an overlapping different subnet, or the same subnet
   * with a different --ip-range is a PoolOverlapError.
   */
  async requestPool(req: RequestPoolRequest): Promise<RequestPoolResult> {
    if (req.v6) {
      throw new BadRequestError(
        `cannot create IPv6 pool ${req.pool === '' ? '(default)' : req.pool}: ` +
          'the cilium IPAM driver supports IPv4 only ' +
          'for now; create the network without --ipv6',
      );
    }
    const subnet = req.pool === '' ? undefined : parsePoolCidr(req.pool, '--subnet');
    const subPool = req.subPool === '' ? undefined : parsePoolCidr(req.subPool, '--ip-range');
    if (subPool && !subnet) {
      throw new BadRequestError(`--ip-range ${req.subPool} needs a --subnet that contains it; pass --subnet as well`);
    }
    if (subnet && subnet.prefixLength > MAX_POOL_PREFIX_LENGTH) {
      throw new BadRequestError(
        `subnet ${req.pool} is too small: ` +
          `a pool needs at least a /${MAX_POOL_PREFIX_LENGTH} (gateway plus one container); use a larger --subnet`,
      );
    }
    if (subnet && subPool && !cidrContainsCidr(subnet, subPool)) {
      throw new BadRequestError(
        `--ip-range ${req.subPool} is not inside --subnet ${formatIpv4Cidr(subnet)}; choose a range within the subnet`,
      );
    }
    const options = { ...req.options };
    return this.locks.run(POOLS_LOCK, async () => {
      const poolId = subnet
        ? await this.lifecycle.createOrJoin(subnet, subPool, options)
        : await this.lifecycle.carveDefault(options);
      const stored = await this.pools.getPool(poolId);
      return { poolId, pool: stored?.record.subnet ?? poolId, data: {} };
    });
  }

  /**
   * Docker ReleasePool: this node stops using the pool. Removes this node's pool-user key, its
   * blocks and any container addresses it still holds there; the last node to leave also removes
   * the pool record, the gateway and reservations. PoolNotFoundError if the pool is unknown.
   */
  async releasePool(poolId: string): Promise<void> {
    await this.locks.run(POOLS_LOCK, () =>
      this.locks.run(poolId, async () => {
        if (!(await this.pools.getPool(poolId))) throw poolNotFound(poolId);
        await this.pools.removePoolUser(poolId, this.node);
        for (const claim of await this.pools.listBlocks(poolId)) {
          if (claim.node === this.node) await this.pools.deleteBlock(poolId, claim.block, claim.modRevision);
        }
        for (const entry of await this.pools.listAddresses(poolId)) {
          if (entry.record.kind === 'endpoint' && entry.record.node === this.node) {
            await this.pools.deleteAddress(poolId, entry.address, entry.modRevision, entry.scope);
          }
        }
        await this.lifecycle.removeIfUnused(poolId);
      }),
    );
  }

  /**
   * Docker RequestAddress. `gateway` selects the gateway rules; an `address` is a static request;
   * '' is the next free address of this node's blocks. Returns the plain IP and the pool's prefix
   * length. PoolNotFoundError for an unknown pool.
   */
  async requestAddress(req: RequestAddressRequest): Promise<RequestAddressResult> {
    return this.locks.run(req.poolId, async () => {
      const stored = await this.pools.getPool(req.poolId);
      if (!stored) throw poolNotFound(req.poolId);
      const pool = toPoolView(stored);
      let address: number;
      if (req.gateway) {
        address = await this.allocator.allocateGateway(pool, req.address);
      } else if (req.address !== '') {
        address = await this.allocator.allocateStatic(
          pool,
          req.address,
          req.reserved ? 'reserved' : 'endpoint',
          req.owner,
        );
      } else {
        address = await this.allocator.allocateNext(pool, req.owner);
      }
      return { address: formatIpv4(address), prefixLength: pool.subnet.prefixLength };
    });
  }

  /**
   * Docker ReleaseAddress. Idempotent: an unknown pool or address (or one that is not an IPv4
   * address at all) succeeds. Deletes a container address only if this node allocated it; the
   * gateway and reservations stay while other nodes use the pool.
   */
  async releaseAddress(poolId: string, address: string): Promise<void> {
    const ip = parseIpv4(address);
    if (ip === undefined) {
      this.log.warn({ poolId, address }, 'release of a malformed address ignored');
      return;
    }
    await this.locks.run(poolId, () => this.allocator.release(poolId, ip));
  }

  /** One pool with its users and blocks, or undefined. */
  async getPool(poolId: string): Promise<PoolInfo | undefined> {
    const stored = await this.pools.getPool(poolId);
    if (!stored) return undefined;
    const [nodes, blocks] = await Promise.all([this.pools.listPoolUsers(poolId), this.pools.listBlocks(poolId)]);
    return toPoolInfo(
      stored,
      nodes,
      blocks.map((b) => ({ cidr: formatIpv4Cidr(b.block), node: b.node })),
    );
  }

  /** Every pool, in subnet order. */
  async listPools(): Promise<PoolInfo[]> {
    const [pools, users, blocks] = await Promise.all([
      this.pools.listPools(),
      this.pools.listAllPoolUsers(),
      this.pools.listBlocks(),
    ]);
    return pools
      .map((stored) =>
        toPoolInfo(
          stored,
          users.get(stored.poolId) ?? [],
          blocks
            .filter((b) => b.poolId === stored.poolId)
            .map((b) => ({ cidr: formatIpv4Cidr(b.block), node: b.node })),
        ),
      )
      .sort((a, b) => comparePoolInfo(a, b));
  }

  /** Allocated addresses of one pool, or of all pools, in pool then address order (`cilium ip list`). */
  async listAddresses(poolId?: string): Promise<AddressAllocation[]> {
    const entries = await this.pools.listAddresses(poolId);
    return entries.map((entry) => {
      const allocation: AddressAllocation = {
        poolId: entry.poolId,
        address: formatIpv4(entry.address),
        node: entry.record.node,
        kind: entry.record.kind,
      };
      if (entry.record.owner !== undefined) allocation.owner = entry.record.owner;
      return allocation;
    });
  }

  /**
   * CreateNetwork's pool must be one this IPAM handed out: `subnet` is exactly the subnet of a
   * pool this node requested (RequestPool) and has not released, and `gateway` (when given) is
   * the gateway allocated in it (RequestAddress of the gateway, which dockerd always sends first).
   * Returns the pool id; NotAllocatedError otherwise.
   */
  async checkNetworkPool(subnet: string, gateway: string): Promise<string> {
    const cidr = parseIpv4Cidr(subnet);
    const stored = cidr ? await this.pools.getPool(poolIdForSubnet(cidr)) : undefined;
    if (
      !cidr ||
      !stored ||
      stored.record.subnet !== subnet ||
      !(await this.pools.listPoolUsers(stored.poolId)).includes(this.node)
    ) {
      throw new NotAllocatedError(
        `pool ${subnet} was not handed out to node ${this.node} by the cilium IPAM (no RequestPool for it); ` +
          'create cilium networks with --ipam-driver cilium so that the pool comes from this daemon',
      );
    }
    if (gateway !== '' && stored.record.gateway !== gateway) {
      throw new NotAllocatedError(
        `gateway ${gateway} is not the gateway allocated in pool ${subnet} ` +
          `(${stored.record.gateway ?? 'none allocated yet'}); ` +
          'create cilium networks with --ipam-driver cilium so that the gateway comes from this daemon',
      );
    }
    return stored.poolId;
  }

  /**
   * CreateEndpoint's address must be one this IPAM handed out: `address` is a container address
   * this node allocated (RequestAddress, dynamic or --ip) in the pool of `subnet`, and
   * `prefixLength` is the pool's. The gateway, --aux-address reservations, another node's
   * addresses and addresses nobody requested get a NotAllocatedError.
   */
  async checkEndpointAddress(subnet: string, address: string, prefixLength: number): Promise<void> {
    const cidr = parseIpv4Cidr(subnet);
    const ip = parseIpv4(address);
    if (!cidr || ip === undefined)
      throw new NotAllocatedError(`address ${address} is not an IPv4 address of pool ${subnet}`);
    if (prefixLength !== cidr.prefixLength) {
      throw new NotAllocatedError(
        `address ${address}/${prefixLength} does not have the prefix length of pool ${subnet}; ` +
          `the cilium IPAM hands out /${cidr.prefixLength} addresses in it`,
      );
    }
    const poolId = poolIdForSubnet(cidr);
    const held = await this.pools.getAddress(poolId, ip).catch(async (err: unknown) => {
      // Cluster store unreachable: its address keys as last read (node-local keys were read first).
      if (!(err instanceof KvUnavailableError)) throw err;
      return (await this.pools.listClusterAddresses(poolId)).find((a) => a.address === ip);
    });
    const advice =
      'an endpoint gets the address the cilium IPAM handed out for it (RequestAddress); use --ipam-driver cilium';
    if (!held)
      throw new NotAllocatedError(
        `address ${address} was not allocated in pool ${subnet} by the cilium IPAM; ${advice}`,
      );
    if (held.record.kind !== 'endpoint') {
      const what = held.record.kind === 'gateway' ? "the network's gateway" : 'an --aux-address reservation';
      throw new NotAllocatedError(
        `address ${address} is ${what} in pool ${subnet}, not a container address; ${advice}`,
      );
    }
    if (held.record.node !== this.node) {
      throw new NotAllocatedError(
        `address ${address} in pool ${subnet} was allocated by node ${held.record.node}, ` +
          `not by this node (${this.node}); ${advice}`,
      );
    }
  }
}

/** Parses a pool or range CIDR from a request (BadRequestError naming the flag if unusable). */
function parsePoolCidr(text: string, flag: string): Ipv4Cidr {
  if (text.includes(':')) {
    throw new BadRequestError(`${flag} ${text} is an IPv6 prefix: the cilium IPAM driver supports IPv4 only for now`);
  }
  const cidr = parseIpv4Cidr(text);
  if (!cidr) throw new BadRequestError(`invalid ${flag} "${text}": expected an IPv4 CIDR such as 10.200.1.0/24`);
  return cidr;
}

function poolNotFound(poolId: string): PoolNotFoundError {
  return new PoolNotFoundError(
    `unknown pool ${poolId}: it was released or never created in this cluster's store; ` +
      'remove and re-create the network (docker network rm, docker network create)',
  );
}

function toPoolInfo(stored: StoredPool, nodes: string[], blocks: PoolInfo['blocks']): PoolInfo {
  const { record } = stored;
  const info: PoolInfo = {
    poolId: stored.poolId,
    pool: record.subnet,
    prefixLength: subnetOf(stored).prefixLength,
    options: { ...(record.options ?? {}) },
    createdAt: record.createdAt,
    createdBy: record.createdBy,
    nodes,
    blocks,
  };
  if (record.subPool !== undefined) info.subPool = record.subPool;
  if (record.gateway !== undefined) info.gateway = record.gateway;
  return info;
}

function comparePoolInfo(a: PoolInfo, b: PoolInfo): number {
  const x = parseIpv4Cidr(a.pool);
  const y = parseIpv4Cidr(b.pool);
  if (!x || !y) return a.pool < b.pool ? -1 : 1;
  return x.network - y.network || x.prefixLength - y.prefixLength;
}
