/**
 * A small Consul HTTP client on Node's global `fetch`, used only by the consul KvStore backend.
 *
 * Why not the npm `consul` package (installed, but unmaintained): it parses responses with plain
 * `JSON.parse`, so `ModifyIndex` and `X-Consul-Index` pass through floats (the project's rule is
 * that revisions never do); it is CommonJS over `papi` with no per-call deadline we control; and
 * the backend needs only a handful of calls (KV reads and blocking queries, `/v1/txn`, sessions,
 * `/v1/status/leader`). This client gives every call a deadline, exact uint64 parsing
 * ({@link parseConsulJson}), an optional caller abort (for blocking queries), and one mapping of
 * failures to the project's errors:
 *
 * - connection refused/reset, DNS failure, deadline passed, 5xx -> KvUnavailableError naming the
 *   address and the operation;
 * - 403 (ACL) -> KvUnavailableError telling the operator to check `consul.token`;
 * - 400/413 (a request Consul refuses as malformed or too large) -> BadRequestError.
 *
 * Redirects are never followed: Consul's router redirects non-canonical KV paths (`a//b`) to a
 * different key, which must be an error, not a silent read of another key.
 */
import { BadRequestError, KvUnavailableError } from '../../util/errors.js';

/** One HTTP call. */
export interface ConsulRequest {
  method: 'GET' | 'PUT' | 'DELETE';
  /** Path with query, already encoded, e.g. `/v1/kv/a/b?recurse`. */
  path: string;
  /** Request body (JSON text or a raw value). */
  body?: string;
  /** Status codes handed back to the caller; any other status throws. */
  accept: readonly number[];
  /** What the call does, for error messages: `get cilium/state/x`. */
  what: string;
  /** Deadline of this call; default the client's request timeout. */
  timeoutMs?: number;
  /** Aborts the call (rejects with the signal's reason, not a KvUnavailableError). */
  signal?: AbortSignal;
}

/** Answer of one call. */
export interface ConsulReply {
  status: number;
  /** `X-Consul-Index`, when the answer has one (KV reads, session info). */
  index: bigint | undefined;
  body: string;
}

/** Hooks telling the owner whether Consul is reachable (for status and reconnect callbacks). */
export interface ConsulClientObserver {
  /** A call got an HTTP answer. */
  onAnswer(): void;
  /** A call could not reach Consul (network error or deadline). */
  onUnreachable(err: KvUnavailableError): void;
}

/** Options of {@link ConsulHttpClient}. */
export interface ConsulHttpClientOptions {
  /** `http(s)://host:port`, no trailing slash. */
  address: string;
  /** ACL token sent as `X-Consul-Token`. */
  token?: string;
  /** Default deadline of a call. */
  requestTimeoutMs: number;
  observer?: ConsulClientObserver;
}

/** Consul HTTP client; stateless apart from fetch's connection pool. */
export class ConsulHttpClient {
  readonly address: string;
  private readonly token: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly observer: ConsulClientObserver | undefined;

  constructor(options: ConsulHttpClientOptions) {
    this.address = options.address;
    this.token = options.token;
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.observer = options.observer;
  }

  /** Performs one call; see the module comment for how failures map to errors. */
  async request(request: ConsulRequest): Promise<ConsulReply> {
    const timeoutMs = request.timeoutMs ?? this.requestTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, deadline]) : deadline;
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers['X-Consul-Token'] = this.token;
    if (request.body !== undefined) headers['Content-Type'] = 'application/json';

    let response: Response;
    let body: string;
    try {
      response = await fetch(`${this.address}${request.path}`, {
        method: request.method,
        headers,
        redirect: 'manual',
        signal,
        ...(request.body !== undefined && { body: request.body }),
      });
      body = await response.text();
    } catch (err) {
      if (request.signal?.aborted) throw request.signal.reason;
      const unavailable = deadline.aborted
        ? new KvUnavailableError(`consul ${this.address}: ${request.what} got no answer within ${timeoutMs} ms`, {
            cause: err,
          })
        : new KvUnavailableError(
            `consul ${this.address}: ${request.what} failed: ${describeFetchError(err)}; ` +
              'check that the consul agent is running and reachable',
            { cause: err },
          );
      this.observer?.onUnreachable(unavailable);
      throw unavailable;
    }
    this.observer?.onAnswer();

    const indexHeader = response.headers.get('x-consul-index');
    const reply: ConsulReply = {
      status: response.status,
      index: indexHeader !== null && /^\d+$/.test(indexHeader) ? BigInt(indexHeader) : undefined,
      body,
    };
    if (request.accept.includes(reply.status)) return reply;
    throw this.statusError(request.what, reply);
  }

  private statusError(what: string, reply: ConsulReply): Error {
    const detail = `${reply.status} ${reply.body.trim().slice(0, 500)}`.trim();
    if (reply.status === 403) {
      return new KvUnavailableError(
        `consul ${this.address}: ${what} was refused (${detail}); check consul.token: ` +
          'the ACL token needs key read/write on the kvstore prefix and session write',
      );
    }
    if (reply.status === 400 || reply.status === 413) {
      return new BadRequestError(`consul ${this.address}: ${what} was rejected as invalid (${detail})`);
    }
    if (reply.status >= 300 && reply.status < 400) {
      return new BadRequestError(
        `consul ${this.address}: ${what} was redirected (${detail}); the key is not in Consul's canonical form`,
      );
    }
    return new KvUnavailableError(`consul ${this.address}: ${what} failed (${detail})`);
  }
}

/** The most specific message of a fetch failure (undici wraps the socket error in `cause`). */
function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.message)
    return cause.code && !cause.message.includes(cause.code) ? `${cause.code} ${cause.message}` : cause.message;
  return (err as Error).message ?? String(err);
}
