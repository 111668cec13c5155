/**
 * The etcd3 client as the etcd store (etcd-store.ts) configures it: TLS material, credentials,
 * fault handling tuned for quick convergence after an outage, deadlines and gRPC keepalives; and
 * how the store tells the client's failures apart (unreachable, or a refused request) and words
 * them.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen } from 'cockatiel';
import { KvUnavailableError } from '../../util/errors.js';
import type { EtcdStoreOptions } from './etcd-options.js';

/** How long etcd3's circuit for a host stays open after 3 failed calls before one is tried. */
const HOST_RETRY_MS = 1_000;
/** Longest wait between attempts to re-open a watch stream. */
const WATCH_BACKOFF_MAX_MS = 2_000;
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * A client for `options.endpoints` whose unary calls have a deadline of `requestTimeoutMs`.
 * Throws KvUnavailableError (naming the endpoints) when the TLS files cannot be read or the
 * client settings are refused. Connects lazily: nothing is sent yet.
 */
export function createEtcdClient(options: EtcdStoreOptions, requestTimeoutMs: number): Etcd3 {
  const endpoints = options.endpoints.join(', ');
  let credentials: IOptions['credentials'];
  if (options.tls !== undefined) {
    try {
      const { caFile, certFile, keyFile } = options.tls;
      credentials = {
        // grpc-js reads a null root certificate as "use the system CAs".
        rootCertificate: (caFile !== undefined ? readFileSync(caFile) : null) as Buffer,
        ...(keyFile !== undefined && { privateKey: readFileSync(keyFile) }),
        ...(certFile !== undefined && { certChain: readFileSync(certFile) }),
      };
    } catch (err) {
      throw new KvUnavailableError(`etcd ${endpoints}: cannot read TLS files: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  try {
    return new Etcd3({
      hosts: [...options.endpoints],
      ...(credentials !== undefined && { credentials }),
      ...(options.auth !== undefined && { auth: { username: options.auth.username, password: options.auth.password } }),
      // After an outage, etcd should be tried again soon: etcd3's defaults keep a host's circuit
      // open for 5 s after 3 failed calls and back a watch off to 30 s, which delayed
      // convergence after etcd returned by up to that much (measured 8–9 s with a 2 s resync).
      faultHandling: {
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: HOST_RETRY_MS,
            breaker: new ConsecutiveBreaker(3),
          }),
        // etcd3 types this as an IBackoff but uses it as the factory its own default is.
        watchBackoff: new ExponentialBackoff({
          initialDelay: 100,
          maxDelay: WATCH_BACKOFF_MAX_MS,
        }) as unknown as WatchBackoff,
      },
      // A deadline on every unary call (the auth token exchange included); streams have none.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
      grpcOptions: {
        // Notice a dead connection (a host gone without a reset) under a quiet watch or lease
        // keepalive stream. etcd answers pings more often than every 5 s, or pings without an
        // open stream, with GOAWAY (--grpc-keepalive-min-time, PermitWithoutStream false).
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
    });
  } catch (err) {
    throw new KvUnavailableError(`etcd ${endpoints}: invalid client settings: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Our own deadline fired before the client gave up. */
export class CallTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** Whether `err` says etcd could not be reached or did not answer (as opposed to refusing the request). */
export function isConnectivityError(err: unknown): boolean {
  if (err instanceof CallTimeoutError || isBrokenCircuit(err)) return true;
  return typeof err === 'object' && err !== null && isRecoverableError(err as Error);
}

/** etcd3's per-host circuit breaker refused to try (the last calls to that host failed). */
function isBrokenCircuit(err: unknown): boolean {
  return (err as { isBrokenCircuitError?: boolean } | null)?.isBrokenCircuitError === true;
}

/** A short reason from a client error. */
export function describeError(err: unknown): string {
  if (isBrokenCircuit(err))
    return `not attempted: the last calls to etcd failed, next attempt within ${HOST_RETRY_MS / 1000} s`;
  if (err instanceof Error) return err.message.replace(/^\w+Error: /, '');
  return String(err);
}
