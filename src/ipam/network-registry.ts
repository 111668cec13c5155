/**
 * Docker networks by name across hosts: `networks/v1/<name>` holds the cluster's definition of a
 * network name (subnet, --ip-range, gateway, --internal, -o mtu), and
 * `networks/v1/<name>/users/<node>` (leased) says that a node has a network of that name and what
 * its own definition is. The cilium driver is local-scope (DESIGN "Network create"): users run the
 * same `docker network create` on every host, and this record is what makes the hosts agree — or
 * tells them, clearly, that they do not.
 *
 * Docker never sends a network's name to a driver (protocol reference 0.2), so a name arrives in
 * one of two ways:
 * - explicitly, `--ipam-opt cilium.network=<name>` ({@link NETWORK_NAME_OPTION}) on RequestPool:
 *   the record is read (or created) before the pool is chosen, so a host without --subnet gets the
 *   cluster's subnet and a different --subnet fails `docker network create` itself;
 * - implicitly, from the Docker API (the watcher learns the name of a network this node created):
 *   the definition is registered or compared then, and a conflict refuses new endpoints on that
 *   network (`docker run` fails with the conflict) until it is resolved.
 *
 * This module keeps the local networks' claims on names and decides when to register, compare,
 * release and sweep: the keys are network-records.ts's, the protocol between hosts (user key
 * first, create-only or compare-and-swap, removal at the revision read) network-claims.ts's, the
 * comparison and the conflict's wording network-definition.ts's.
 */
import type { KvStore, WatchEvent, Watcher } from '../kvstore/kvstore.js';
import { BadRequestError, KvConflictError, NetworkConflictError } from '../util/errors.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type { Logger } from '../util/log.js';
import type { Ipam } from './ipam.js';
import { parseIpv4Cidr } from '../util/ipv4.js';
import { poolIdForSubnet } from './pool-store.js';
import type { RequestPoolRequest, RequestPoolResult } from './types.js';
import { MAX_CLAIM_ATTEMPTS, NetworkNameClaims, type ClaimOutcome } from './network-claims.js';
import {
  NETWORK_NAME_OPTION,
  canonicalDefinition,
  conflictMessage,
  differences,
  requestedDefinition,
  subnetTaken,
  type ClusterNetwork,
  type NetworkDefinition,
  type NetworkDetails,
} from './network-definition.js';
import {
  NETWORKS_PREFIX,
  listNetworkRecords,
  networkNameOfRecordKey,
  subnetOwner,
  type ClusterNetworkInfo,
} from './network-records.js';

/** Docker's own rule for network names (daemon/network: `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Explicit reservations (RequestPool) not followed by CreateNetwork within this time are dropped. */
const PENDING_TTL_MS = 120_000;

/** How this node's network stands with the cluster record of its name. */
export type ClaimStatus = 'agreed' | 'conflict' | 'unregistered';

/** One local network's claim on a cluster name. */
export interface NetworkClaim {
  networkId: string;
  name: string;
  /** True when the name came from `--ipam-opt cilium.network`. */
  explicit: boolean;
  definition: NetworkDefinition;
  status: ClaimStatus;
  /** Conflict message, or why the claim is not registered yet (store unreachable). */
  detail?: string;
  /** The cluster record, as last seen. */
  record?: ClusterNetwork;
}

/** Construction options. */
export interface NetworkRegistryOptions {
  store: KvStore;
  nodeName: string;
  ipam: Ipam;
  log: Logger;
}

/** The `networks/v1/` records of one node: claims, comparisons, release and resync. */
export class NetworkRegistry {
  private readonly store: KvStore;
  private readonly node: string;
  private readonly ipam: Ipam;
  private readonly log: Logger;
  private readonly locks = new KeyedMutex();
  private readonly names: NetworkNameClaims;
  /** Local networks by Docker network id. */
  private readonly claimsByNetworkId = new Map<string, NetworkClaim>();
  /** Explicit RequestPool reservations waiting for their CreateNetwork, by pool id. */
  private readonly pending = new Map<string, { name: string; definition: NetworkDefinition; since: number }>();
  private watcher: Watcher | undefined;
  private stopped = false;
  /** Names whose claims are being re-registered because their record changed. */
  private readonly rechecking = new Set<string>();
  /**
   * Networks (by id) whose --ip-range is still to be read from their pool: CreateNetwork does not
   * carry it and this node's network record does not keep it. Such a claim is registered only once
   * the read succeeded, so a store failure never makes a network claim "no --ip-range".
   */
  private readonly rangeUnread = new Set<string>();

  constructor(options: NetworkRegistryOptions) {
    this.store = options.store;
    this.node = options.nodeName;
    this.ipam = options.ipam;
    this.log = options.log;
    this.names = new NetworkNameClaims(options.store, options.nodeName, options.log);
  }

  /**
   * RequestPool with `--ipam-opt cilium.network=<name>`: without --subnet the cluster's subnet
   * (and --ip-range) for the name, or a new one carved from the default pool when the name is new;
   * with a --subnet that differs from the cluster's, NetworkConflictError (the create fails).
   */
  async requestPool(name: string, req: RequestPoolRequest): Promise<RequestPoolResult> {
    if (!NAME.test(name)) {
      throw new BadRequestError(
        `--ipam-opt ${NETWORK_NAME_OPTION}="${name}" is not a network name: use letters, digits, '_', '.' and '-', ` +
          'starting with a letter or digit',
      );
    }
    return this.locks.run(name, async () => {
      for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
        const { records } = await listNetworkRecords(this.store, this.log);
        const existing = records.get(name);
        const asked = requestedDefinition(req);
        const owner = asked && subnetOwner(records, name, asked.subnet);
        if (owner)
          throw new NetworkConflictError(
            conflictMessage(name, owner.record, subnetTaken(asked.subnet, owner.record), true),
          );
        let poolRequest = req;
        if (existing) {
          if (asked) {
            const message = differences(existing.record, asked, this.node);
            if (message) throw new NetworkConflictError(conflictMessage(name, existing.record, message, true));
          }
          poolRequest = { ...req, pool: existing.record.subnet, subPool: existing.record.ipRange ?? '' };
        }
        const result = await this.ipam.requestPool(poolRequest);
        const definition: NetworkDefinition = { subnet: result.pool };
        const pool = await this.ipam.getPool(result.poolId);
        if (pool?.subPool !== undefined) definition.ipRange = pool.subPool;
        let outcome: ClaimOutcome;
        try {
          outcome = await this.names.claim(name, definition, undefined);
        } catch (err) {
          await this.ipam.releasePool(result.poolId).catch(() => undefined);
          throw err;
        }
        if (outcome.ok) {
          this.pending.set(result.poolId, { name, definition, since: Date.now() });
          this.log.info({ network: name, subnet: result.pool }, 'network name reserved in the cluster');
          return result;
        }
        await this.ipam.releasePool(result.poolId).catch(() => undefined);
        // Another host defined the name while this one carved a subnet: take the cluster's.
        if (req.pool === '' && !existing) continue;
        throw new NetworkConflictError(conflictMessage(name, outcome.record, outcome.message, true));
      }
      throw new KvConflictError(
        `could not reserve network name "${name}": other hosts kept changing its record; retry the command`,
      );
    });
  }

  /**
   * CreateNetwork: if the network's pool was requested with a name, settles the record's details
   * (gateway, --internal, mtu) or compares them (NetworkConflictError if they differ), and returns
   * the name. Otherwise undefined: the name comes later from the Docker API ({@link nameLearned}).
   */
  async networkCreated(networkId: string, subnet: string, details: NetworkDetails): Promise<string | undefined> {
    const existing = this.claimsByNetworkId.get(networkId);
    if (existing) return existing.explicit ? existing.name : undefined;
    const cidr = parseIpv4Cidr(subnet);
    const poolId = cidr ? poolIdForSubnet(cidr) : subnet;
    const pending = this.pending.get(poolId);
    if (!pending || Date.now() - pending.since > PENDING_TTL_MS) return undefined;
    const { name } = pending;
    return this.locks.run(name, async () => {
      const definition: NetworkDefinition = { ...pending.definition, details };
      const outcome = await this.names.claim(name, definition, networkId);
      if (!outcome.ok) throw new NetworkConflictError(conflictMessage(name, outcome.record, outcome.message, true));
      this.pending.delete(poolId);
      this.claimsByNetworkId.set(networkId, {
        networkId,
        name,
        explicit: true,
        definition,
        status: 'agreed',
        record: outcome.record,
      });
      return name;
    });
  }

  /**
   * The Docker API told us the network's name: registers it, or records the conflict with the
   * cluster's definition (logged as an error; new endpoints on it are refused by {@link check}).
   * A store failure leaves the claim `unregistered`; the resync retries. Never throws.
   */
  async nameLearned(networkId: string, dockerName: string, definition: NetworkDefinition): Promise<NetworkClaim> {
    const known = this.claimsByNetworkId.get(networkId);
    if (known) {
      if (known.explicit && known.name !== dockerName) {
        this.log.warn(
          { network: networkId, dockerName, clusterName: known.name },
          `network is named "${dockerName}" in Docker but "${known.name}" in the cluster (--ipam-opt ` +
            `${NETWORK_NAME_OPTION}); the cluster name counts`,
        );
      }
      return known;
    }
    const claim: NetworkClaim = {
      networkId,
      name: dockerName,
      explicit: false,
      definition: canonicalDefinition(definition),
      status: 'unregistered',
    };
    this.claimsByNetworkId.set(networkId, claim);
    if (claim.definition.ipRange === undefined) this.rangeUnread.add(networkId);
    await this.locks.run(claim.name, () => this.register(claim));
    return claim;
  }

  /**
   * Re-adopts a network restored from this node's state after a restart (no store round trip).
   * A definition without --ip-range gets the pool's at its first registration (the node's network
   * record does not keep it): a restart claims exactly the definition the network was created with.
   */
  adopt(networkId: string, name: string, explicit: boolean, definition: NetworkDefinition): void {
    if (this.claimsByNetworkId.has(networkId)) return;
    const claim: NetworkClaim = {
      networkId,
      name,
      explicit,
      definition: canonicalDefinition(definition),
      status: 'unregistered',
    };
    this.claimsByNetworkId.set(networkId, claim);
    if (claim.definition.ipRange === undefined) this.rangeUnread.add(networkId);
  }

  /** NetworkConflictError if the network's name is defined differently in the cluster (CreateEndpoint). */
  check(networkId: string): void {
    const claim = this.claimsByNetworkId.get(networkId);
    if (claim?.status === 'conflict')
      throw new NetworkConflictError(claim.detail ?? `network "${claim.name}" conflicts with the cluster's definition`);
  }

  /** The claim of a local network, if its name is known. */
  claimOf(networkId: string): NetworkClaim | undefined {
    const claim = this.claimsByNetworkId.get(networkId);
    return claim ? { ...claim } : undefined;
  }

  /** DeleteNetwork: this node stops using the name; the last user removes the record. */
  async networkDeleted(networkId: string): Promise<void> {
    const claim = this.claimsByNetworkId.get(networkId);
    if (!claim) return;
    this.claimsByNetworkId.delete(networkId);
    this.rangeUnread.delete(networkId);
    await this.locks.run(claim.name, () => this.release(claim.name));
  }

  /**
   * ReleasePool: drops an explicit reservation whose CreateNetwork never came (a failed
   * `docker network create`) and the claims of networks on that pool (`docker network rm` releases
   * the pool before DeleteNetwork).
   */
  async poolReleased(poolId: string): Promise<void> {
    const names = new Set<string>();
    const pending = this.pending.get(poolId);
    if (pending) {
      this.pending.delete(poolId);
      names.add(pending.name);
    }
    for (const [networkId, claim] of this.claimsByNetworkId) {
      const cidr = parseIpv4Cidr(claim.definition.subnet);
      if (cidr && poolIdForSubnet(cidr) === poolId) {
        this.claimsByNetworkId.delete(networkId);
        this.rangeUnread.delete(networkId);
        names.add(claim.name);
      }
    }
    for (const name of names) await this.locks.run(name, () => this.release(name));
  }

  /**
   * Resync: re-asserts this node's user keys and the records it agrees with (re-creating deleted
   * ones), re-compares conflicting claims (a conflict clears once the other definition is gone),
   * and removes records whose users are all gone (their leases expired).
   */
  async reassert(): Promise<void> {
    for (const claim of [...this.claimsByNetworkId.values()]) {
      await this.locks.run(claim.name, () => this.register(claim));
    }
    for (const [poolId, pending] of this.pending)
      if (Date.now() - pending.since > PENDING_TTL_MS) this.pending.delete(poolId);
    const { records, users } = await listNetworkRecords(this.store, this.log);
    for (const name of records.keys()) {
      if ((users.get(name) ?? []).length > 0) continue;
      if ([...this.pending.values()].some((p) => p.name === name)) continue;
      await this.locks.run(name, () => this.names.removeIfUnused(name));
    }
  }

  /**
   * Watches the records: when the record of a name this node claims changes or disappears, the
   * claim is compared again at once (a conflict clears as soon as the other definition is gone, a
   * deleted record is re-created) instead of at the next resync. Failures only log: the resync
   * covers everything the watch would.
   */
  async start(): Promise<void> {
    this.stopped = false;
    const { revision } = await this.store.list(NETWORKS_PREFIX);
    if (this.stopped) return;
    this.watcher?.close();
    this.watcher = this.store.watch(NETWORKS_PREFIX, revision, {
      onEvent: (event) => this.onRecordEvent(event),
      onResyncNeeded: (reason) => {
        this.log.info({ reason }, 'network registry watch lost events: re-listing');
        void this.start().catch((err: unknown) =>
          this.log.warn({ err }, 'network registry watch not restarted; the resync covers it'),
        );
        void this.reassert().catch(() => undefined);
      },
    });
  }

  /** Stops the watch. */
  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private onRecordEvent(event: WatchEvent): void {
    const name = networkNameOfRecordKey(event.key);
    if (name === undefined) return; // user keys: only records decide
    const claims = [...this.claimsByNetworkId.values()].filter((c) => c.name === name);
    // Our own touches and creations come back as puts of a record we agree with: nothing to do.
    if (claims.length === 0 || (event.type === 'put' && claims.every((c) => c.status === 'agreed'))) return;
    if (this.rechecking.has(name)) return;
    this.rechecking.add(name);
    void this.locks
      .run(name, async () => {
        this.rechecking.delete(name);
        for (const claim of claims)
          if (this.claimsByNetworkId.get(claim.networkId) === claim) await this.register(claim);
      })
      .catch(() => undefined);
  }

  /** Every cluster record with its users, by name. */
  async list(): Promise<ClusterNetworkInfo[]> {
    const { records, users } = await listNetworkRecords(this.store, this.log);
    return [...records.values()].map((stored) => ({
      record: stored.record,
      users: users.get(stored.record.name) ?? [],
    }));
  }

  /** Local claims, by network id. */
  claims(): NetworkClaim[] {
    return [...this.claimsByNetworkId.values()].map((c) => ({ ...c }));
  }

  private async register(claim: NetworkClaim): Promise<void> {
    try {
      if (this.rangeUnread.has(claim.networkId)) {
        claim.definition = await this.withIpRange(claim.definition);
        this.rangeUnread.delete(claim.networkId);
      }
      const outcome = await this.names.claim(claim.name, claim.definition, claim.networkId);
      claim.record = outcome.record;
      if (outcome.ok) {
        if (claim.status !== 'agreed')
          this.log.info(
            { network: claim.networkId, name: claim.name, subnet: claim.definition.subnet },
            'network agrees with the cluster definition',
          );
        claim.status = 'agreed';
        claim.detail = undefined;
      } else {
        const message = conflictMessage(claim.name, outcome.record, outcome.message, false);
        if (claim.status !== 'conflict' || claim.detail !== message)
          this.log.error({ network: claim.networkId, name: claim.name, code: NetworkConflictError.code }, message);
        claim.status = 'conflict';
        claim.detail = message;
      }
    } catch (err) {
      claim.detail = `not registered yet: ${err instanceof Error ? err.message : String(err)}`;
      if (claim.status !== 'conflict') claim.status = 'unregistered';
      this.log.warn(
        { network: claim.networkId, name: claim.name, err: claim.detail },
        'network name not registered; the resync retries',
      );
    }
  }

  private async release(name: string): Promise<void> {
    // Another local network of the same name (re-created at once) still needs the key.
    if ([...this.claimsByNetworkId.values()].some((c) => c.name === name && c.status === 'agreed')) return;
    if ([...this.pending.values()].some((p) => p.name === name)) return;
    await this.names.release(name);
  }

  /**
   * Fills --ip-range from the pool record (CreateNetwork does not carry it; a node has at most one
   * network per subnet, so the subnet's pool is this network's). Store failures are thrown: the
   * caller must not guess "no range".
   */
  private async withIpRange(definition: NetworkDefinition): Promise<NetworkDefinition> {
    if (definition.ipRange !== undefined) return definition;
    const cidr = parseIpv4Cidr(definition.subnet);
    if (!cidr) return definition;
    const pool = await this.ipam.getPool(poolIdForSubnet(cidr));
    return pool?.subPool === undefined ? definition : canonicalDefinition({ ...definition, ipRange: pool.subPool });
  }
}
