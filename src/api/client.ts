/**
 * Typed client of the agent API over its Unix socket (used by the CLI and tests).
 */
import { request, type IncomingMessage } from 'node:http';
import { BadRequestError, CiliumDockerError, DaemonUnreachableError, type ErrorKind } from '../util/errors.js';
import type {
  BpfConntrackModel,
  BpfEndpointModel,
  BpfEndpointPolicyModel,
  BpfIpcacheModel,
  EndpointModel,
  ErrorModel,
  IdentityModel,
  IpModel,
  KvstoreDeleteModel,
  KvstoreGetModel,
  KvstoreSetModel,
  NetworkModel,
  NodeModel,
  MonitorEventModel,
  PolicyListModel,
  PolicyRevisionModel,
  PolicyWaitModel,
  StatusModel,
  TraceModel,
  TraceRequestModel,
  VersionModel,
} from './models.js';

/** Default agent API address. */
export const DEFAULT_API_HOST = 'unix:///run/cilium/cilium.sock';

/** Socket idle time after which a call is abandoned. */
const CALL_TIMEOUT_MS = 30_000;

/**
 * A monitor stream that carries nothing, not even the daemon's 15 s heartbeat, for this long is
 * taken as dead (daemon hung or the connection silently lost).
 */
const MONITOR_IDLE_TIMEOUT_MS = 45_000;

/** An open `GET /v1/monitor` stream (see {@link ApiClient.monitor}). */
export interface MonitorStream {
  /** Stops reading and disconnects (the daemon then unsubscribes); `done` resolves. */
  close(): void;
  /**
   * Resolves when the stream ends: closed here or ended by the daemon. Rejects with the daemon's
   * error when the stream cannot be opened (e.g. an unknown event type), with
   * DaemonUnreachableError when the connection fails or breaks off, and with whatever `onEvent`
   * throws.
   */
  readonly done: Promise<void>;
}

/** Client of one daemon's agent API. */
export class ApiClient {
  private readonly socketPath: string;

  /** `host` is `unix:///path/to.sock` or a plain socket path. */
  constructor(host: string = DEFAULT_API_HOST) {
    this.socketPath = host.startsWith('unix://') ? host.slice('unix://'.length) : host;
  }

  /**
   * Performs one call; rejects with the daemon's error (code preserved) or DaemonUnreachableError.
   * `timeoutMs` is how long the socket may stay idle (default 30 s); calls the daemon may hold
   * open on purpose (policy wait) pass more.
   */
  call<T>(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath,
          agent: false,
          method,
          path,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(
                new CiliumDockerError(
                  'Internal',
                  'ERR_BAD_REPLY',
                  `daemon sent a non-JSON reply to ${method} ${path}: ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              reject(replyError(res.statusCode ?? 500, parsed));
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.unreachable(err)));
      req.setTimeout(options.timeoutMs ?? CALL_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** `GET /v1/status`. */
  status(): Promise<StatusModel> {
    return this.call('GET', '/v1/status');
  }
  /** `GET /v1/endpoint`. */
  listEndpoints(): Promise<EndpointModel[]> {
    return this.call('GET', '/v1/endpoint');
  }
  /** `GET /v1/endpoint/:ref` (id, Docker endpoint id, container name or id). */
  getEndpoint(ref: string): Promise<EndpointModel> {
    return this.call('GET', `/v1/endpoint/${encodeURIComponent(ref)}`);
  }
  /** `GET /v1/identity`. */
  listIdentities(): Promise<IdentityModel[]> {
    return this.call('GET', '/v1/identity');
  }
  /** `GET /v1/identity/:id`. */
  getIdentity(id: string): Promise<IdentityModel> {
    return this.call('GET', `/v1/identity/${encodeURIComponent(id)}`);
  }
  /** `GET /v1/network`. */
  listNetworks(): Promise<NetworkModel[]> {
    return this.call('GET', '/v1/network');
  }
  /** `GET /v1/ip`. */
  listIps(): Promise<IpModel[]> {
    return this.call('GET', '/v1/ip');
  }
  /** `GET /v1/node`: every node with a record, this one included, with its health. */
  listNodes(): Promise<NodeModel[]> {
    return this.call('GET', '/v1/node');
  }
  /** `GET /v1/version`. */
  version(): Promise<VersionModel> {
    return this.call('GET', '/v1/version');
  }
  /** `GET /v1/kvstore`: one key, or every key under a prefix with `recursive` (at most `limit`). */
  kvstoreGet(key: string, options: { recursive?: boolean; limit?: number } = {}): Promise<KvstoreGetModel> {
    const query = new URLSearchParams({ key });
    if (options.recursive) query.set('recursive', 'true');
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    return this.call('GET', `/v1/kvstore?${query}`);
  }
  /** `PUT /v1/kvstore`: writes one key (unconditional, unleased). */
  kvstoreSet(key: string, value: string): Promise<KvstoreSetModel> {
    return this.call('PUT', '/v1/kvstore', { key, value });
  }
  /** `DELETE /v1/kvstore`: one key, or every key under a (non-empty) prefix with `recursive`. */
  kvstoreDelete(key: string, options: { recursive?: boolean } = {}): Promise<KvstoreDeleteModel> {
    const query = new URLSearchParams({ key });
    if (options.recursive) query.set('recursive', 'true');
    return this.call('DELETE', `/v1/kvstore?${query}`);
  }
  /** `POST /v1/cleanup`. */
  cleanup(): Promise<{ removed: string[] }> {
    return this.call('POST', '/v1/cleanup', {});
  }

  /** `POST /v1/policy`: imports CiliumNetworkPolicy YAML or JSON text (one or more documents). */
  importPolicy(text: string): Promise<PolicyRevisionModel> {
    return this.call('POST', '/v1/policy', { text });
  }
  /** `GET /v1/policy[/:name]`: every stored policy, or the one named. */
  getPolicy(name?: string): Promise<PolicyListModel> {
    return this.call('GET', name === undefined ? '/v1/policy' : `/v1/policy/${encodeURIComponent(name)}`);
  }
  /** `DELETE /v1/policy/:name`. */
  deletePolicy(name: string): Promise<PolicyRevisionModel> {
    if (name === '')
      return Promise.reject(new BadRequestError('empty policy name; use deleteAllPolicies() to delete every policy'));
    return this.call('DELETE', `/v1/policy/${encodeURIComponent(name)}`);
  }
  /** `GET /v1/policy?labels=...`: the policies with a rule carrying all these labels. */
  getPolicyByLabels(labels: readonly string[]): Promise<PolicyListModel> {
    if (labels.length === 0)
      return Promise.reject(new BadRequestError('no labels given; use getPolicy() for every policy'));
    return this.call('GET', `/v1/policy?${labels.map((l) => `labels=${encodeURIComponent(l)}`).join('&')}`);
  }
  /** `DELETE /v1/policy?labels=...`: deletes the policies whose rules carry all these labels. */
  deletePolicyByLabels(labels: readonly string[]): Promise<PolicyRevisionModel> {
    if (labels.length === 0 || labels.includes(''))
      return Promise.reject(new BadRequestError('no labels given; use deleteAllPolicies() to delete every policy'));
    return this.call('DELETE', `/v1/policy?${labels.map((l) => `labels=${encodeURIComponent(l)}`).join('&')}`);
  }
  /** `DELETE /v1/policy`: deletes every policy (a separate method so that no empty name deletes all). */
  deleteAllPolicies(): Promise<PolicyRevisionModel> {
    return this.call('DELETE', '/v1/policy');
  }
  /** `POST /v1/policy/trace`. */
  tracePolicy(trace: TraceRequestModel): Promise<TraceModel> {
    return this.call('POST', '/v1/policy/trace', trace);
  }
  /** `GET /v1/policy/wait/:revision`: resolves once every local endpoint applied `revision`. */
  waitPolicy(revision: number, timeoutMs: number): Promise<PolicyWaitModel> {
    // The daemon holds the request up to timeoutMs and then answers with its own error.
    return this.call('GET', `/v1/policy/wait/${revision}?timeout=${timeoutMs}`, undefined, {
      timeoutMs: timeoutMs + CALL_TIMEOUT_MS,
    });
  }

  /**
   * `GET /v1/monitor`: calls `onEvent` with each datapath event of the given types (every type
   * when undefined or empty) until closed here or by the daemon.
   */
  monitor(types: readonly string[] | undefined, onEvent: (event: MonitorEventModel) => void): MonitorStream {
    const query = types && types.length > 0 ? `?type=${encodeURIComponent(types.join(','))}` : '';
    const path = `/v1/monitor${query}`;
    let closedHere = false;
    let settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const finish = (err?: Error) => {
      const s = settle;
      settle = undefined;
      if (!s) return;
      if (err && !closedHere) s.reject(err);
      else s.resolve();
      req.destroy();
    };
    const req = request({ socketPath: this.socketPath, agent: false, method: 'GET', path }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        readErrorReply(res, path).then(finish, finish);
        return;
      }
      let pending = '';
      const deliver = (line: string) => {
        if (line.trim() === '') return; // heartbeat
        let event: MonitorEventModel;
        try {
          event = JSON.parse(line) as MonitorEventModel;
        } catch {
          throw new CiliumDockerError(
            'Internal',
            'ERR_BAD_REPLY',
            `daemon sent a non-JSON monitor event: ${line.slice(0, 200)}`,
          );
        }
        onEvent(event);
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (!settle) return;
        pending += chunk;
        try {
          for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            deliver(line);
            if (!settle) return; // closed by onEvent
          }
        } catch (err) {
          finish(err as Error);
        }
      });
      res.on('end', () => {
        try {
          deliver(pending);
          finish();
        } catch (err) {
          finish(err as Error);
        }
      });
      res.on('error', (err) => finish(this.unreachable(err, 'the monitor stream broke off')));
      res.on('close', () => {
        if (!res.complete) finish(this.unreachable(new Error('connection closed'), 'the monitor stream broke off'));
      });
    });
    req.on('error', (err) => finish(this.unreachable(err)));
    req.setTimeout(MONITOR_IDLE_TIMEOUT_MS, () =>
      finish(
        new DaemonUnreachableError(
          `the daemon at ${this.socketPath} sent nothing on the monitor stream for ` +
            `${MONITOR_IDLE_TIMEOUT_MS / 1000}s (not even a heartbeat)`,
        ),
      ),
    );
    req.end();
    return {
      close: () => {
        closedHere = true;
        finish();
      },
      done,
    };
  }

  /** `GET /v1/bpf/policy/:endpoint`: the endpoint's policy map as the datapath holds it. */
  bpfPolicy(endpointRef: string): Promise<BpfEndpointPolicyModel> {
    return this.call('GET', `/v1/bpf/policy/${encodeURIComponent(endpointRef)}`);
  }
  /** `GET /v1/bpf/ipcache`. */
  bpfIpcache(): Promise<BpfIpcacheModel[]> {
    return this.call('GET', '/v1/bpf/ipcache');
  }
  /** `GET /v1/bpf/ct`. */
  bpfConntrack(): Promise<BpfConntrackModel[]> {
    return this.call('GET', '/v1/bpf/ct');
  }
  /** `GET /v1/bpf/endpoint`. */
  bpfEndpoints(): Promise<BpfEndpointModel[]> {
    return this.call('GET', '/v1/bpf/endpoint');
  }

  private unreachable(
    err: NodeJS.ErrnoException,
    what = 'cannot reach the cilium-docker daemon',
  ): DaemonUnreachableError {
    return new DaemonUnreachableError(
      `${what} at ${this.socketPath} (${err.code ?? err.message}); ` +
        'is it running? start it with "sudo make run" or point --host / CILIUM_HOST at its API socket',
      { cause: err },
    );
  }
}

/** The daemon's `{"error": {code, message}}` reply as an error of the same code. */
function replyError(status: number, parsed: unknown): CiliumDockerError {
  const e = (parsed as ErrorModel | undefined)?.error;
  return new CiliumDockerError(kindOf(status), e?.code ?? 'ERR_INTERNAL', e?.message ?? `HTTP ${status}`);
}

/** Reads an error reply to the end; always resolves to the error to report. */
function readErrorReply(res: IncomingMessage, path: string): Promise<CiliumDockerError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', () => resolve(replyError(res.statusCode ?? 500, undefined)));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(replyError(res.statusCode ?? 500, JSON.parse(text)));
      } catch {
        resolve(
          new CiliumDockerError(
            kindOf(res.statusCode ?? 500),
            'ERR_BAD_REPLY',
            `daemon sent a non-JSON reply to GET ${path}: ${text.slice(0, 200)}`,
          ),
        );
      }
    });
  });
}

function kindOf(status: number): ErrorKind {
  if (status === 400) return 'BadRequest';
  if (status === 404) return 'NotFound';
  if (status === 409) return 'Conflict';
  if (status === 501) return 'Unsupported';
  if (status === 503) return 'Unavailable';
  return 'Internal';
}
