/**
 * Addresses of endpoints whose links are gone when the daemon comes back (EndpointManager.restore
 * reports them as stale: the container went while the daemon was down): handed back to IPAM, so
 * that the pool does not leak one address per container that died during an outage.
 */
import type { Ipam } from '../ipam/ipam.js';
import type { EndpointRecord, NetworkRecord } from './endpoint.js';

/** What the release needs. */
export interface StaleAddressDeps {
  /** This node's network of an endpoint (its subnet names the pool). */
  getNetwork(networkId: string): NetworkRecord | undefined;
  ipam: Pick<Ipam, 'listPools' | 'releaseAddress'>;
}

/** Releases each stale endpoint's address in the pool of its network's subnet (none: nothing to release). */
export async function releaseStaleAddresses(
  stale: readonly EndpointRecord[],
  { getNetwork, ipam }: StaleAddressDeps,
): Promise<void> {
  for (const ep of stale) {
    const network = getNetwork(ep.networkId);
    const pools = await ipam.listPools();
    const pool = pools.find((p) => p.pool === network?.subnet);
    if (pool) await ipam.releaseAddress(pool.poolId, ep.ipv4);
  }
}
