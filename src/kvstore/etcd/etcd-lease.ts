/**
 * The etcd store's lease (etcd-store.ts): one per store, granted on the first leased write with
 * the configured TTL and kept alive by etcd3's Lease (a keepalive every TTL/3). When it is lost
 * (etcd says it expired, or no keepalive got through for 2 TTLs) it is forgotten, the store hears
 * of it once (`lease-lost` for its listeners), and the next leased write grants a new one. A
 * leased write that etcd rejects with "lease not found" does the same and is retried once.
 */
import { EtcdLeaseInvalidError, type Etcd3, type Lease } from 'etcd3';
import { KvUnavailableError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';

/** What the lease needs from its store. */
export interface EtcdLeaseContext {
  client: Etcd3;
  ttlSeconds: number;
  logger: Logger;
  /** Runs one etcd call with the store's deadline and error mapping (KvUnavailableError). */
  call<T>(what: string, op: () => Promise<T>): Promise<T>;
  /** Throws KvUnavailableError once the store is closed. */
  assertOpen(what: string): void;
  isClosed(): boolean;
  /** A keepalive got through. */
  onKeepaliveSucceeded(): void;
  /** A keepalive failed. */
  onKeepaliveFailed(err: unknown): void;
  /** The lease is gone, and with it every key written with it. */
  onLost(lease: string, reason: string): void;
}

/** A granted lease and its keepalive handle. */
interface ActiveLease {
  id: string;
  handle: Lease;
}

/** The lease one store writes leased keys with. */
export class EtcdLease {
  /** The granted lease, or the grant in flight (shared by concurrent first leased writes). */
  private lease: Promise<ActiveLease> | undefined;
  private activeLease: ActiveLease | undefined;

  constructor(private readonly context: EtcdLeaseContext) {}

  /** The id of the granted lease, if there is one. */
  get id(): string | undefined {
    return this.activeLease?.id;
  }

  /**
   * Runs a write with this store's lease when `leased` (granting it first if needed), else with
   * lease '0'. If etcd no longer knows the lease, it is reported lost and the write retried once
   * with a new one.
   */
  async write<T>(what: string, leased: boolean | undefined, write: (lease: string) => Promise<T>): Promise<T> {
    if (!leased) return write('0');
    for (let attempt = 1; ; attempt++) {
      const lease = await this.acquire(what);
      try {
        return await write(lease.id);
      } catch (err) {
        if (!(err instanceof KvUnavailableError && err.cause instanceof EtcdLeaseInvalidError) || attempt > 1)
          throw err;
        this.lost(lease, `etcd no longer knows lease ${lease.id} (expired)`);
      }
    }
  }

  /**
   * Stops the keepalive (also of a grant still in flight). The lease is not revoked: leased keys
   * live out their TTL, so a daemon restarting within it keeps them.
   */
  release(): void {
    this.activeLease?.handle.release();
    this.lease?.then((lease) => lease.handle.release()).catch(() => undefined);
    this.activeLease = undefined;
    this.lease = undefined;
  }

  /** This store's lease, granting it on first use; concurrent callers share one grant. */
  private acquire(what: string): Promise<ActiveLease> {
    this.context.assertOpen(what);
    if (this.lease !== undefined) return this.lease;
    const handle = this.context.client.lease(this.context.ttlSeconds);
    const granting = this.context
      .call(`lease grant for ${what}`, () => handle.grant())
      .then(
        (id) => {
          const lease: ActiveLease = { id, handle };
          if (this.context.isClosed()) {
            handle.release();
            return lease;
          }
          this.activeLease = lease;
          handle.on('lost', (err) => this.lost(lease, `keepalive failed: ${err.message}`));
          handle.on('keepaliveSucceeded', () => this.context.onKeepaliveSucceeded());
          handle.on('keepaliveFailed', (err) => this.context.onKeepaliveFailed(err));
          this.context.logger.info({ lease: id, ttlSeconds: this.context.ttlSeconds }, 'lease granted');
          return lease;
        },
        (err: unknown) => {
          // Nothing was granted (or the grant's answer was lost and the lease will just expire);
          // the next leased write tries again.
          handle.release();
          if (this.lease === granting) this.lease = undefined;
          throw err;
        },
      );
    this.lease = granting;
    return granting;
  }

  /** Forgets `lease` (if still current) and tells the store once. */
  private lost(lease: ActiveLease, reason: string): void {
    if (this.activeLease !== lease) return;
    lease.handle.release();
    this.activeLease = undefined;
    this.lease = undefined;
    this.context.logger.warn(
      { lease: lease.id, reason },
      'lease lost; leased keys are gone or going, a new lease is granted on the next leased write',
    );
    this.context.onLost(lease.id, reason);
  }
}
