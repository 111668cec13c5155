/**
 * The consul backend's lease: one Consul session per store instance, created on the first leased
 * write, renewed every TTL/3, and replaced when lost.
 *
 * The session is created with `Behavior: delete` (keys it holds are deleted when it is
 * invalidated: Consul's ephemeral keys, the counterpart of etcd's lease-bound keys), no health
 * checks (`Checks: []`, so only the TTL decides, as with an etcd lease) and `LockDelay: 0s`.
 * Consul's default lock-delay of 15 s would refuse, for 15 s after a lost session, the very
 * re-binding of keys that recovery needs.
 *
 * A renewal answered with 404 (or a write that Consul refuses with "invalid session") means the
 * session is gone and its keys with it. The keeper then creates a new session at once (retrying
 * while Consul is unreachable) and calls `onReplaced`, so the owner can re-assert its keys.
 */
import { ConfigError, KvUnavailableError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { ConsulHttpClient } from './consul-client.js';
import { formatGoDuration, parseGoDurationMs } from './consul-options.js';
import {
  parseConsulJson,
  stringifyConsulJson,
  type SessionCreateRequest,
  type SessionCreateResponse,
  type SessionEntry,
} from './consul-wire.js';

/** Options of {@link ConsulSession}. */
export interface ConsulSessionOptions {
  client: ConsulHttpClient;
  ttlMs: number;
  name: string;
  logger: Logger;
  /** Called, asynchronously, once a lost session has been replaced by a new one. */
  onReplaced(reason: string): void;
}

/** Longest pause between attempts to renew or re-create a session while Consul is unreachable. */
const MAX_RETRY_MS = 2_000;

/** Keeper of one store's Consul session. */
export class ConsulSession {
  private id: string | undefined;
  private creating: Promise<string> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Set while a lost session awaits its replacement; reported through onReplaced. */
  private replacementReason: string | undefined;
  private renewIntervalMs: number;
  private closed = false;

  constructor(private readonly options: ConsulSessionOptions) {
    this.renewIntervalMs = Math.max(1, Math.floor(options.ttlMs / 3));
  }

  /** The live session's ID, if one exists. */
  get current(): string | undefined {
    return this.id;
  }

  /** The session's ID, creating the session first if there is none. */
  async ensure(): Promise<string> {
    if (this.closed)
      throw new KvUnavailableError(`consul ${this.options.client.address}: the store is closed; no session`);
    if (this.id !== undefined) return this.id;
    this.creating ??= this.create().finally(() => {
      this.creating = undefined;
    });
    return this.creating;
  }

  /**
   * Consul no longer knows session `id` (its keys are gone): forget it and create another.
   * Ignored if `id` was already replaced.
   */
  lost(id: string, reason: string): void {
    if (this.id !== id || this.closed) return;
    this.id = undefined;
    clearTimeout(this.renewTimer);
    this.options.logger.warn(
      { session: id, reason },
      'consul session lost; its leased keys were deleted; creating a new one',
    );
    this.replacementReason = reason;
    this.retryCreate(0);
  }

  /** Stops renewing. The session is not destroyed: its keys outlive a quick restart, as with etcd. */
  close(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.retryTimer);
  }

  private async create(): Promise<string> {
    const { client, ttlMs, name, logger } = this.options;
    const request: SessionCreateRequest = {
      Name: name,
      TTL: formatGoDuration(ttlMs),
      Behavior: 'delete',
      LockDelay: '0s',
      Checks: [],
    };
    let body: string;
    try {
      ({ body } = await client.request({
        method: 'PUT',
        path: '/v1/session/create',
        body: stringifyConsulJson(request),
        accept: [200],
        what: 'create a session',
      }));
    } catch (err) {
      if (err instanceof KvUnavailableError && /Invalid Session TTL/i.test(err.message)) {
        throw new ConfigError(
          `${err.message}; the lease TTL ${request.TTL} is outside what this consul agent accepts (its ` +
            'session_ttl_min, default 10s, to 24h): change consul.lease-ttl',
          { cause: err },
        );
      }
      throw err;
    }
    const { ID } = parseConsulJson(body) as SessionCreateResponse;
    if (this.closed) return ID;
    this.id = ID;
    this.renewIntervalMs = Math.max(1, Math.floor(ttlMs / 3));
    this.scheduleRenewal(this.renewIntervalMs);
    logger.info({ session: ID, ttl: request.TTL }, 'consul session created');
    if (this.replacementReason !== undefined) {
      const reason = this.replacementReason;
      this.replacementReason = undefined;
      clearTimeout(this.retryTimer);
      queueMicrotask(() => this.options.onReplaced(reason));
    }
    return ID;
  }

  private retryCreate(delayMs: number): void {
    clearTimeout(this.retryTimer);
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      if (this.closed || this.id !== undefined) return;
      this.ensure().catch((err: unknown) => {
        this.options.logger.warn({ err }, 'creating a replacement consul session failed; retrying');
        this.retryCreate(Math.min(Math.max(delayMs * 2, 100), MAX_RETRY_MS));
      });
    }, delayMs);
    this.retryTimer.unref();
  }

  private scheduleRenewal(delayMs: number): void {
    clearTimeout(this.renewTimer);
    if (this.closed) return;
    this.renewTimer = setTimeout(() => void this.renew(), delayMs);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    const id = this.id;
    if (id === undefined || this.closed) return;
    try {
      const reply = await this.options.client.request({
        method: 'PUT',
        path: `/v1/session/renew/${encodeURIComponent(id)}`,
        accept: [200, 404],
        what: `renew session ${id}`,
      });
      if (this.id !== id) return;
      if (reply.status === 404) {
        this.lost(
          id,
          `consul no longer knows session ${id}: it expired (no renewal for up to twice its TTL) or was destroyed`,
        );
        return;
      }
      // Consul may return a higher TTL than requested, asking for slower renewals under load.
      const [entry] = parseConsulJson(reply.body) as SessionEntry[];
      const ttlMs = entry !== undefined ? parseGoDurationMs(entry.TTL) : undefined;
      this.renewIntervalMs = Math.max(1, Math.floor(Math.max(ttlMs ?? 0, this.options.ttlMs) / 3));
      this.scheduleRenewal(this.renewIntervalMs);
    } catch (err) {
      if (this.closed || this.id !== id) return;
      this.options.logger.warn({ err, session: id }, 'consul session renewal failed; retrying');
      this.scheduleRenewal(Math.min(this.renewIntervalMs, MAX_RETRY_MS));
    }
  }
}
