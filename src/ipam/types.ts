/**
 * Public types of the IPAM: its options, the requests the plugin's IpamDriver handlers make, and
 * the read-only views shown by `cilium ip list` and the agent API. camelCase domain types; the
 * PascalCase wire types live in `plugin/wire.ts` only.
 */
import type { KvStore } from '../kvstore/kvstore.js';

/** What an address key records: the pool's gateway, a reserved (aux) address, or a container's. */
export type AddressKind = 'gateway' | 'reserved' | 'endpoint';

/** Construction options of `Ipam`. */
export interface IpamOptions {
  /**
   * The cluster store: pools, pool users, block claims, gateways, reservations, static
   * addresses outside this node's blocks.
   */
  store: KvStore;
  /**
   * The node-local store for container addresses inside blocks this node holds (see
   * `kvstore/store-scopes.ts`). Omitted or the same object as `store`: everything in `store`.
   */
  nodeStore?: KvStore;
  /** This host's node name: owner of its blocks and of the addresses it hands out. No '/'. */
  nodeName: string;
  /** CIDR the IPAM carves networks from when `docker network create` has no --subnet, e.g. 10.200.0.0/16. */
  defaultPool: string;
  /** Prefix length of each network carved from `defaultPool`, e.g. 24. */
  defaultPoolPrefixLength: number;
  /** Prefix length of the per-node address blocks a pool's range is divided into (26 = 64 addresses). */
  blockPrefixLength: number;
}

/** Docker's RequestPool, in domain terms. */
export interface RequestPoolRequest {
  /** `--subnet` as a CIDR, or '' to carve the next free subnet from the default pool. */
  pool: string;
  /** `--ip-range` as a CIDR inside `pool`, or ''. Dynamic addresses come only from it. */
  subPool: string;
  /** `--ipam-opt` key/values; kept with the pool record, not interpreted. */
  options: Record<string, string>;
  /** True for an IPv6 pool (rejected for now). */
  v6: boolean;
}

/** Answer to RequestPool. */
export interface RequestPoolResult {
  /** Stable id derived from the subnet (e.g. `198.18.10.0-24`), the same on every host. */
  poolId: string;
  /** The pool's subnet as a canonical CIDR. */
  pool: string;
  /** Extra data for dockerd (none today). */
  data: Record<string, string>;
}

/** Docker's RequestAddress, in domain terms. */
export interface RequestAddressRequest {
  poolId: string;
  /** A specific address (--ip, --gateway, --aux-address), or '' for the next free one. */
  address: string;
  /** True for the network's gateway request (`RequestAddressType: com.docker.network.gateway`). */
  gateway: boolean;
  /** Who asked (e.g. the container name Engine 29+ passes); informational only. */
  owner?: string;
  /**
   * The address is an `--aux-address` reservation, part of the network's definition rather than
   * a container's: another host (or a replay) may request the same reservation again and it
   * succeeds, and only the last host using the pool removes it. Docker's wire format does not mark
   * aux addresses, so the caller sets this only when it can tell.
   */
  reserved?: boolean;
}

/** Answer to RequestAddress: the plain IP and the pool's prefix length (Docker wants `ip/len`). */
export interface RequestAddressResult {
  address: string;
  prefixLength: number;
}

/** One per-node block of a pool. */
export interface BlockInfo {
  /** The block as a CIDR. */
  cidr: string;
  /** The node that claimed it. */
  node: string;
}

/** A pool as the store knows it. */
export interface PoolInfo {
  poolId: string;
  /** The subnet, canonical CIDR. */
  pool: string;
  /** The `--ip-range`, if one was given. */
  subPool?: string;
  /** Prefix length of the subnet (what containers get). */
  prefixLength: number;
  /** The gateway address once one was allocated. */
  gateway?: string;
  /** `--ipam-opt` values given when the pool was first created. */
  options: Record<string, string>;
  /** ISO time the pool record was created. */
  createdAt: string;
  /** Node that created the pool record. */
  createdBy: string;
  /** Nodes that currently use the pool (ran RequestPool and have not released it), sorted. */
  nodes: string[];
  /** Blocks claimed by nodes, in address order. */
  blocks: BlockInfo[];
}

/** One allocated address (`cilium ip list`). */
export interface AddressAllocation {
  poolId: string;
  address: string;
  /** Node that allocated it. */
  node: string;
  kind: AddressKind;
  owner?: string;
}
