/**
 * Tells `--aux-address` reservations apart from a container's `--ip`.
 *
 * Docker's wire format does not mark aux addresses: they arrive as plain RequestAddress calls
 * with an Address, exactly like a static `--ip`. But dockerd sends them only while it creates a
 * network — after RequestPool (and the gateway request) and before CreateNetwork (protocol
 * reference 3.2) — and no container can start on a network that does not exist yet. So a
 * specific-address request for a pool whose network is still being created is a reservation.
 */

const PENDING_TTL_MS = 120_000;

/** Pools whose `docker network create` is in progress. */
export class NetworkCreationTracker {
  private readonly pending = new Map<string, { subnet: string; since: number }>();

  /** RequestPool answered `poolId` for `subnet`: a network create has begun. */
  poolRequested(poolId: string, subnet: string): void {
    this.pending.set(poolId, { subnet, since: Date.now() });
  }

  /** True while the network of `poolId` is being created. */
  isCreating(poolId: string): boolean {
    const entry = this.pending.get(poolId);
    if (!entry) return false;
    if (Date.now() - entry.since > PENDING_TTL_MS) {
      this.pending.delete(poolId);
      return false;
    }
    return true;
  }

  /** CreateNetwork (or its failure's ReleasePool) ended the creation of the network on `subnet`. */
  networkCreated(subnet: string): void {
    for (const [poolId, entry] of this.pending) if (entry.subnet === subnet) this.pending.delete(poolId);
  }

  /** ReleasePool: the pool is gone. */
  poolReleased(poolId: string): void {
    this.pending.delete(poolId);
  }
}
