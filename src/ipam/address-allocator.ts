/**
 * Address allocation inside one pool: the gateway, static addresses (--ip, --gateway,
 * --aux-address) and dynamic addresses from this node's blocks.
 *
 * Every allocated address is one create-only key, so two hosts can never hand out the same
 * address: whoever creates the key owns the address, the other retries with the next candidate.
 * Dynamic addresses come from per-node blocks (aligned `blockPrefixLength` slices of the pool's
 * range, claimed with create-only keys) so hosts do not contend for the same candidates.
 * Callers serialise calls per pool inside the process (see `Ipam`); this class does not lock.
 *
 * With a node-local store of its own (`PoolStore.split`), a container address inside a block this
 * node holds is a node-local key: allocating it needs no cluster store round trip that could fail
 * during an outage (block claims stay create-only keys in the cluster store). Every other address
 * key stays in the cluster store. Two rules keep addresses unique across hosts without the
 * holder's node-local keys being visible to others: an address inside another node's block is
 * never allocated statically here (only its holder hands it out), and a static address outside
 * any block is written first and the claims are read after it, while a node claiming a block
 * reads the cluster's address keys after its claim: whichever write comes second sees the other.
 */
import {
  AddressInUseError,
  AddressOutOfRangeError,
  BadRequestError,
  KvConflictError,
  PoolExhaustedError,
} from '../util/errors.js';
import type { Logger } from '../util/log.js';
import {
  formatIpv4,
  formatIpv4Cidr,
  hostAddressCount,
  isHostAddress,
  lastAddress,
  nthSubnet,
  parseIpv4,
  subnetCount,
  cidrContainsAddress,
  type Ipv4Cidr,
} from '../util/ipv4.js';
import type { AddressRecord, AddressScope, PoolStore, StoredBlock } from './pool-store.js';
import { describePool, type PoolView } from './pool-view.js';

/**
 * How many lost create-only races one request tolerates before giving up. Each loss means another
 * host took the candidate a moment earlier; the next candidate is tried at once.
 */
const MAX_CONFLICTS = 64;

/** Tracks lost races within one request. */
interface ConflictBudget {
  conflicts: number;
}

/** Allocates and releases addresses of one node through the store. */
export class AddressAllocator {
  private readonly store: PoolStore;
  private readonly node: string;
  private readonly blockPrefixLength: number;
  private readonly log: Logger;

  constructor(store: PoolStore, node: string, blockPrefixLength: number, log: Logger) {
    this.store = store;
    this.node = node;
    this.blockPrefixLength = blockPrefixLength;
    this.log = log;
  }

  /**
   * The pool's gateway. `requested` '' means the recorded gateway, or the first host address of
   * the subnet if none is recorded yet (Docker's default). Requesting the recorded gateway again
   * succeeds: dockerd replays it after a restart, and every host creating the network asks for it.
   */
  async allocateGateway(pool: PoolView, requested: string): Promise<number> {
    let address: number;
    if (requested === '') {
      address = pool.gateway ?? pool.subnet.network + 1;
    } else {
      address = parseRequestedAddress(pool, requested, '--gateway');
      if (pool.gateway !== undefined && pool.gateway !== address) {
        throw new BadRequestError(
          `cannot use gateway ${requested} for pool ${describePool(pool)}: the pool already has gateway ` +
            `${formatIpv4(pool.gateway)}; the same network on every host must use the same gateway: ` +
            `pass --gateway ${formatIpv4(pool.gateway)} or leave --gateway out`,
        );
      }
    }
    const budget: ConflictBudget = { conflicts: 0 };
    for (;;) {
      const result = await this.store.createAddress(pool.poolId, address, { node: this.node, kind: 'gateway' });
      if (result.ok) {
        this.log.info({ poolId: pool.poolId, address: formatIpv4(address) }, 'gateway allocated');
        break;
      }
      if (result.current?.record.kind === 'gateway') break;
      if (result.current) {
        throw new AddressInUseError(
          `cannot use ${formatIpv4(address)} as the gateway of pool ${describePool(pool)}: the address is already ` +
            `in use by ${describeHolder(result.current.record)}; ` +
            (requested === '' ? 'pass a free address with --gateway' : 'choose another --gateway'),
        );
      }
      // The key vanished between our create and the read of its value: try again.
      this.countConflict(budget, pool);
    }
    await this.setRecordedGateway(pool.poolId, address);
    return address;
  }

  /**
   * A specific address (--ip, --aux-address). Static addresses may lie anywhere in the subnet,
   * outside `--ip-range` too, as with Docker's built-in IPAM. A `reserved` request for an address
   * that is already a reservation succeeds (the same network created on another host).
   */
  async allocateStatic(
    pool: PoolView,
    requested: string,
    kind: 'endpoint' | 'reserved',
    owner?: string,
  ): Promise<number> {
    const flag = kind === 'reserved' ? '--aux-address' : '--ip';
    const address = parseRequestedAddress(pool, requested, flag);
    const record: AddressRecord = owner === undefined ? { node: this.node, kind } : { node: this.node, kind, owner };
    if (this.store.split) return this.allocateStaticSplit(pool, requested, address, record, flag);
    const budget: ConflictBudget = { conflicts: 0 };
    for (;;) {
      const result = await this.store.createAddress(pool.poolId, address, record);
      if (result.ok) return address;
      if (result.current) {
        if (kind === 'reserved' && result.current.record.kind === 'reserved') return address;
        throw addressInUse(pool, requested, result.current.record, flag);
      }
      this.countConflict(budget, pool);
    }
  }

  /** allocateStatic with a node-local store of its own (see the module comment for the rules). */
  private async allocateStaticSplit(
    pool: PoolView,
    requested: string,
    address: number,
    record: AddressRecord,
    flag: string,
  ): Promise<number> {
    const existing = (await this.store.listClusterAddresses(pool.poolId)).find((a) => a.address === address);
    if (existing) {
      if (record.kind === 'reserved' && existing.record.kind === 'reserved') return address;
      throw addressInUse(pool, requested, existing.record, flag);
    }
    const holder = blockHolding(await this.store.listBlocks(pool.poolId), address);
    if (holder && holder.node !== this.node) throw heldByOtherNode(pool, requested, holder, flag);
    if (holder && record.kind === 'endpoint') {
      const result = await this.store.createAddress(pool.poolId, address, record, 'node');
      if (result.ok) return address;
      throw addressInUse(pool, requested, result.current?.record ?? record, flag);
    }
    const result = await this.store.createAddress(pool.poolId, address, record, 'cluster');
    if (!result.ok) {
      if (record.kind === 'reserved' && result.current?.record.kind === 'reserved') return address;
      throw addressInUse(pool, requested, result.current?.record ?? record, flag);
    }
    // Fence against a node claiming the block at the same moment: our key is written, now read the claims.
    const after = blockHolding(await this.store.listBlocks(pool.poolId), address);
    if (after && after.node !== this.node) {
      const mine = await this.store.getAddress(pool.poolId, address);
      if (mine?.scope === 'cluster') await this.store.deleteAddress(pool.poolId, address, mine.modRevision, 'cluster');
      throw heldByOtherNode(pool, requested, after, flag);
    }
    return address;
  }

  /**
   * The lowest free address of this node's blocks; when they are full, claims the next unclaimed
   * block of the range and allocates from it. Throws PoolExhaustedError when neither works.
   */
  async allocateNext(pool: PoolView, owner?: string): Promise<number> {
    const [blocks, addresses] = await Promise.all([
      this.store.listBlocks(pool.poolId),
      this.store.listAddresses(pool.poolId),
    ]);
    const taken = new Set(addresses.map((a) => a.address));
    const budget: ConflictBudget = { conflicts: 0 };
    const scope: AddressScope = this.store.split ? 'node' : 'cluster';

    for (const claim of blocks) {
      if (claim.node !== this.node) continue;
      const address = await this.allocateInBlock(pool, claim.block, taken, budget, owner, scope);
      if (address !== undefined) return address;
    }

    const claimed = new Set(blocks.map((b) => b.block.network));
    const blockLength = Math.max(this.blockPrefixLength, pool.range.prefixLength);
    const count = subnetCount(pool.range, blockLength);
    for (let index = 0; index < count; index++) {
      const block = nthSubnet(pool.range, blockLength, index);
      if (claimed.has(block.network)) continue;
      // A block whose every address is already taken (static addresses) is not worth a claim.
      if (lowestFree(pool.subnet, block, taken) === undefined) continue;
      if (!(await this.store.claimBlock(pool.poolId, block, this.node))) {
        claimed.add(block.network);
        this.countConflict(budget, pool);
        continue;
      }
      this.log.info({ poolId: pool.poolId, block: formatIpv4Cidr(block), node: this.node }, 'address block claimed');
      if (this.store.split) {
        // The other half of the fence in #allocateStaticSplit: static keys written before our claim are seen now.
        for (const a of await this.store.listClusterAddresses(pool.poolId)) taken.add(a.address);
      }
      const address = await this.allocateInBlock(pool, block, taken, budget, owner, scope);
      if (address !== undefined) return address;
    }

    throw this.exhausted(pool, blocks);
  }

  /**
   * Releases an address. Unknown addresses succeed (dockerd replays releases after crashes). A
   * container's address is deleted only by the node that allocated it; the gateway and
   * reservations belong to the network's definition and go only when no other node uses the pool.
   */
  async release(poolId: string, address: number): Promise<void> {
    const current = await this.store.getAddress(poolId, address);
    const fields = { poolId, address: formatIpv4(address) };
    if (!current) {
      this.log.debug(fields, 'release of an unallocated address ignored');
      return;
    }
    const { record } = current;
    if (record.kind === 'endpoint') {
      if (record.node !== this.node) {
        this.log.warn({ ...fields, owner: record.node }, 'release of an address another node allocated ignored');
        return;
      }
      await this.store.deleteAddress(poolId, address, current.modRevision, current.scope);
      this.log.debug(fields, 'address released');
      return;
    }
    const otherUsers = (await this.store.listPoolUsers(poolId)).filter((node) => node !== this.node);
    if (otherUsers.length > 0) {
      this.log.info({ ...fields, kind: record.kind, otherUsers }, 'address kept: other nodes still use the pool');
      return;
    }
    if (await this.store.deleteAddress(poolId, address, current.modRevision, current.scope)) {
      if (record.kind === 'gateway') await this.clearRecordedGateway(poolId, address);
      this.log.info({ ...fields, kind: record.kind }, 'address released');
    }
  }

  private async allocateInBlock(
    pool: PoolView,
    block: Ipv4Cidr,
    taken: Set<number>,
    budget: ConflictBudget,
    owner: string | undefined,
    scope: AddressScope,
  ): Promise<number | undefined> {
    for (;;) {
      const candidate = lowestFree(pool.subnet, block, taken);
      if (candidate === undefined) return undefined;
      const record: AddressRecord =
        owner === undefined ? { node: this.node, kind: 'endpoint' } : { node: this.node, kind: 'endpoint', owner };
      const result = await this.store.createAddress(pool.poolId, candidate, record, scope);
      taken.add(candidate);
      if (result.ok) return candidate;
      this.countConflict(budget, pool);
    }
  }

  private countConflict(budget: ConflictBudget, pool: PoolView): void {
    budget.conflicts += 1;
    if (budget.conflicts > MAX_CONFLICTS) {
      throw new KvConflictError(
        `gave up allocating in pool ${describePool(pool)} after ${MAX_CONFLICTS} lost races with other hosts ` +
          'allocating at the same time; retry the command',
      );
    }
  }

  private exhausted(pool: PoolView, blocks: StoredBlock[]): PoolExhaustedError {
    const usable = hostAddressCount(pool.subnet, pool.range);
    const otherNodes = [...new Set(blocks.filter((b) => b.node !== this.node).map((b) => b.node))].sort();
    if (otherNodes.length === 0) {
      return new PoolExhaustedError(
        `no free address in pool ${describePool(pool)}: all ${usable} usable addresses are in use; ` +
          'use a larger --subnet or --ip-range, or remove containers',
      );
    }
    return new PoolExhaustedError(
      `no free address in pool ${describePool(pool)} for node ${this.node}: this node's address blocks are full ` +
        `and the rest of the ${usable} usable addresses are in blocks held by ${otherNodes.join(', ')}; ` +
        'use a larger --subnet or --ip-range, or remove containers',
    );
  }

  private async setRecordedGateway(poolId: string, address: number): Promise<void> {
    await this.updateGatewayField(poolId, (current) =>
      current === formatIpv4(address) ? undefined : formatIpv4(address),
    );
  }

  private async clearRecordedGateway(poolId: string, address: number): Promise<void> {
    await this.updateGatewayField(poolId, (current) => (current === formatIpv4(address) ? null : undefined));
  }

  /**
   * CAS loop on the pool record's gateway field. `decide` returns the new value, `null` to remove
   * the field, or undefined to leave the record alone. A missing record is left missing.
   */
  private async updateGatewayField(
    poolId: string,
    decide: (current: string | undefined) => string | null | undefined,
  ): Promise<void> {
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const stored = await this.store.getPool(poolId);
      if (!stored) return;
      const next = decide(stored.record.gateway);
      if (next === undefined) return;
      const record = { ...stored.record };
      if (next === null) delete record.gateway;
      else record.gateway = next;
      if (await this.store.updatePool(poolId, record, stored.modRevision)) return;
    }
    throw new KvConflictError(
      `could not record the gateway of pool ${poolId}: the pool record kept changing; retry the command`,
    );
  }
}

/** The lowest address of `block` that is a host address of `subnet` and not in `taken`. */
function lowestFree(subnet: Ipv4Cidr, block: Ipv4Cidr, taken: Set<number>): number | undefined {
  const last = lastAddress(block);
  for (let address = block.network; address <= last; address++) {
    if (!taken.has(address) && isHostAddress(subnet, address)) return address;
  }
  return undefined;
}

/** Parses and checks an address asked for by value (`flag` names the docker option in messages). */
function parseRequestedAddress(pool: PoolView, text: string, flag: string): number {
  if (text.includes(':')) {
    throw new BadRequestError(
      `cannot allocate ${text} (${flag}) in pool ${describePool(pool)}: IPv6 addresses are not supported by the ` +
        'cilium IPAM driver yet; use an IPv4 address',
    );
  }
  const address = parseIpv4(text);
  if (address === undefined) {
    throw new BadRequestError(
      `invalid address "${text}" (${flag}) for pool ${describePool(pool)}: expected a plain IPv4 address such as ` +
        `${formatIpv4(pool.subnet.network + 2)}`,
    );
  }
  if (!cidrContainsAddress(pool.subnet, address)) {
    throw new AddressOutOfRangeError(
      `address ${text} (${flag}) is outside pool ${describePool(pool)}: choose an address inside the network's subnet`,
    );
  }
  if (!isHostAddress(pool.subnet, address)) {
    const which = address === pool.subnet.network ? 'network' : 'broadcast';
    throw new AddressOutOfRangeError(
      `address ${text} (${flag}) is the ${which} address of pool ${describePool(pool)} and cannot be assigned; ` +
        `choose one from ${formatIpv4(pool.subnet.network + 1)} to ${formatIpv4(lastAddress(pool.subnet) - 1)}`,
    );
  }
  return address;
}

/** The claim of the block that contains `address`, if any. */
function blockHolding(blocks: readonly StoredBlock[], address: number): StoredBlock | undefined {
  return blocks.find((b) => cidrContainsAddress(b.block, address));
}

function addressInUse(pool: PoolView, requested: string, holder: AddressRecord, flag: string): AddressInUseError {
  return new AddressInUseError(
    `address ${requested} is already in use in pool ${describePool(pool)} (by ${describeHolder(holder)}); ` +
      `choose another ${flag}, or leave it out to get a free address`,
  );
}

/** A static address inside another node's block: only that node hands out its addresses (node-local keys). */
function heldByOtherNode(pool: PoolView, requested: string, holder: StoredBlock, flag: string): AddressInUseError {
  return new AddressInUseError(
    `address ${requested} (${flag}) ` +
      `is inside block ${formatIpv4Cidr(holder.block)} of pool ${describePool(pool)}, which node ` +
      `${holder.node} holds: only that node hands out its addresses; choose an address outside other nodes' blocks ` +
      '(create the network with --ip-range and pick static addresses outside it), or start the container on that node',
  );
}

/** Who holds an address, for messages. */
function describeHolder(record: AddressRecord): string {
  switch (record.kind) {
    case 'gateway':
      return `the network's gateway (node ${record.node})`;
    case 'reserved':
      return `an --aux-address reservation (node ${record.node})`;
    case 'endpoint':
      return record.owner === undefined
        ? `a container on node ${record.node}`
        : `container ${record.owner} on node ${record.node}`;
  }
}
