/**
 * The agent REST API on a Unix socket (default /run/cilium/cilium.sock, mode 0660 root), used by
 * the `cilium` CLI and tests. JSON in and out; errors as `{"error": {code, message}}` with the
 * status of their kind.
 *
 * `GET /v1/monitor` is the one streaming route: NDJSON (one MonitorEventModel per line), written
 * as each event arrives, with a bare newline every {@link MONITOR_HEARTBEAT_MS} so that an idle
 * stream still carries bytes (clients and proxies drop connections that stay silent) and a client
 * can tell a quiet daemon from a dead one.
 */
import type { Server } from 'node:net';
import { asCiliumDockerError, statusForKind, NotFoundError, BadRequestError } from '../util/errors.js';
import {
  createJsonApp,
  finishJsonApp,
  listenOnUnixSocket,
  closeUnixServer,
  type Request,
  type Response,
} from '../util/http-server.js';
import type { Logger } from '../util/log.js';
import type { RouteGroup } from './route-group.js';
import {
  parseMonitorTypes,
  parsePolicyImportBody,
  parsePolicyLabelsQuery,
  parseTraceRequest,
  parseWaitTimeout,
} from './request-parsing.js';

import type {
  EndpointModel,
  IdentityModel,
  IpModel,
  NetworkModel,
  StatusModel,
  ErrorModel,
  PolicyRevisionModel,
  PolicyListModel,
  TraceRequestModel,
  TraceModel,
  PolicyWaitModel,
  MonitorEventModel,
  BpfEndpointPolicyModel,
  BpfIpcacheModel,
  BpfConntrackModel,
  BpfEndpointModel,
} from './models.js';

/** What the API reads from the rest of the daemon (wired by main.ts). */
export interface AgentBackend {
  status(): Promise<StatusModel>;
  listEndpoints(): EndpointModel[];
  getEndpoint(ref: string): EndpointModel | undefined;
  listIdentities(): Promise<IdentityModel[]>;
  getIdentity(id: number): Promise<IdentityModel | undefined>;
  listIps(): Promise<IpModel[]>;
  /** Cluster network records and this node's networks (`cilium network list`). */
  listNetworks(): Promise<NetworkModel[]>;
  cleanup(): Promise<{ removed: string[] }>;
  /** Imports CiliumNetworkPolicy YAML/JSON text; rejects with PolicyValidationError. */
  importPolicy(text: string): Promise<PolicyRevisionModel>;
  /** Stored policies (one by name, or all). NotFoundError for an unknown name. */
  getPolicy(name?: string): Promise<PolicyListModel>;
  /** Deletes one policy by name, or all when name is undefined. */
  deletePolicy(name?: string): Promise<PolicyRevisionModel>;
  /** Stored policies with a rule carrying all these labels (`source:key=value`, no source = any). */
  getPolicyByLabels(labels: readonly string[]): Promise<PolicyListModel>;
  /** Deletes the policies whose rules carry all these labels; NotFoundError if none does. */
  deletePolicyByLabels(labels: readonly string[]): Promise<PolicyRevisionModel>;
  tracePolicy(request: TraceRequestModel): Promise<TraceModel>;
  /** Resolves once every local endpoint applied `revision`; rejects Unavailable after timeoutMs. */
  waitPolicy(revision: number, timeoutMs: number): Promise<PolicyWaitModel>;
  /** Streams datapath events of the given types (all when undefined); returns an unsubscribe function. */
  subscribeMonitor(types: ReadonlySet<string> | undefined, onEvent: (event: MonitorEventModel) => void): () => void;
  bpfPolicy(endpointRef: string): Promise<BpfEndpointPolicyModel>;
  bpfIpcache(): Promise<BpfIpcacheModel[]>;
  bpfConntrack(): Promise<BpfConntrackModel[]>;
  bpfEndpoints(): Promise<BpfEndpointModel[]>;
}

/** The one mapping from errors to the API's error replies. */
export function apiErrorReply(err: unknown): { status: number; body: ErrorModel } {
  const e = asCiliumDockerError(err);
  return { status: statusForKind[e.kind], body: { error: { code: e.code, message: e.message } } };
}

/** Interval of the bare-newline heartbeat on an idle `GET /v1/monitor` stream. */
export const MONITOR_HEARTBEAT_MS = 15_000;

/**
 * A monitor client that reads slower than events arrive would make the daemon buffer without
 * bound; past this many unsent bytes, events for that client are dropped (and counted in a log
 * line when it disconnects), as Cilium's monitor reports lost events rather than stall.
 */
const MONITOR_MAX_BUFFERED_BYTES = 1 << 20;

type Handler = (req: Request) => Promise<unknown>;

/** The running agent API server. */
export class ApiServer {
  private server: Server | undefined;
  /** Open `GET /v1/monitor` responses, ended by stop() so their clients see a clean end of stream. */
  private readonly monitorStreams = new Set<Response>();

  /**
   * `monitorHeartbeatMs` defaults to {@link MONITOR_HEARTBEAT_MS} (tests shorten it); `routes`:
   * route groups of their own modules (kvstore, nodes, version), mounted after the backend's.
   */
  constructor(
    private readonly options: {
      socketPath: string;
      backend: AgentBackend;
      log: Logger;
      monitorHeartbeatMs?: number;
      routes?: readonly RouteGroup[];
    },
  ) {}

  /** Starts listening. */
  async start(): Promise<void> {
    const { backend, log } = this.options;
    const app = createJsonApp({ limit: '8mb' });
    const route = (handler: Handler) => async (req: Request, res: Response) => {
      try {
        res.status(200).json(await handler(req));
      } catch (err) {
        this.replyError(req, res, err);
      }
    };
    app.get(
      '/v1/healthz',
      route(async () => ({ ok: true })),
    );
    app.get(
      '/v1/status',
      route(() => backend.status()),
    );
    app.get(
      '/v1/endpoint',
      route(async () => backend.listEndpoints()),
    );
    app.get(
      '/v1/endpoint/:ref',
      route(async (req) => {
        const ref = String(req.params.ref);
        const ep = backend.getEndpoint(ref);
        if (!ep)
          throw new NotFoundError(
            `endpoint "${ref}" not found; "cilium endpoint list" shows the endpoints of this node`,
          );
        return ep;
      }),
    );
    app.get(
      '/v1/network',
      route(() => backend.listNetworks()),
    );
    app.get(
      '/v1/identity',
      route(() => backend.listIdentities()),
    );
    app.get(
      '/v1/identity/:id',
      route(async (req) => {
        const text = String(req.params.id);
        if (!/^\d+$/.test(text)) throw new BadRequestError(`identity "${text}" is not a number`);
        const identity = await backend.getIdentity(Number(text));
        if (!identity)
          throw new NotFoundError(`identity ${text} not found; "cilium identity list" shows the known identities`);
        return identity;
      }),
    );
    app.get(
      '/v1/ip',
      route(() => backend.listIps()),
    );
    app.post(
      '/v1/cleanup',
      route(() => backend.cleanup()),
    );

    app.post(
      '/v1/policy',
      route((req) => backend.importPolicy(parsePolicyImportBody(req.body))),
    );
    app.get(
      '/v1/policy',
      route((req) =>
        req.query['labels'] === undefined
          ? backend.getPolicy()
          : backend.getPolicyByLabels(parsePolicyLabelsQuery(req.query)),
      ),
    );
    app.delete(
      '/v1/policy',
      route(async (req) => {
        // Non-strict routing also sends `DELETE /v1/policy/` here: a client that built the path
        // from an empty name must not delete every policy.
        if (req.path !== '/v1/policy')
          throw new BadRequestError('empty policy name; to delete every policy use DELETE /v1/policy');
        if (req.query['labels'] !== undefined) return backend.deletePolicyByLabels(parsePolicyLabelsQuery(req.query));
        return backend.deletePolicy();
      }),
    );
    app.post(
      '/v1/policy/trace',
      route((req) => backend.tracePolicy(parseTraceRequest(req.body))),
    );
    app.get(
      '/v1/policy/wait/:revision',
      route(async (req) => {
        const text = String(req.params.revision);
        if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)))
          throw new BadRequestError(`policy revision "${text}" is not a number`);
        return backend.waitPolicy(Number(text), parseWaitTimeout(req.query));
      }),
    );
    app.get(
      '/v1/policy/:name',
      route((req) => backend.getPolicy(String(req.params.name))),
    );
    app.delete(
      '/v1/policy/:name',
      route((req) => backend.deletePolicy(String(req.params.name))),
    );

    app.get('/v1/monitor', (req: Request, res: Response) => this.streamMonitor(req, res));

    app.get(
      '/v1/bpf/policy/:endpoint',
      route((req) => backend.bpfPolicy(String(req.params.endpoint))),
    );
    app.get(
      '/v1/bpf/ipcache',
      route(() => backend.bpfIpcache()),
    );
    app.get(
      '/v1/bpf/ct',
      route(() => backend.bpfConntrack()),
    );
    app.get(
      '/v1/bpf/endpoint',
      route(() => backend.bpfEndpoints()),
    );

    for (const mount of this.options.routes ?? []) {
      mount({
        get: (path, handler) => app.get(path, route(handler)),
        put: (path, handler) => app.put(path, route(handler)),
        post: (path, handler) => app.post(path, route(handler)),
        delete: (path, handler) => app.delete(path, route(handler)),
      });
    }

    app.use((req: Request, res: Response) => {
      res.status(404).json({ error: { code: 'ERR_NOT_FOUND', message: `no API route ${req.method} ${req.path}` } });
    });
    // Body errors, an undecodable path parameter and anything a route let escape: the same JSON.
    finishJsonApp(app, { contentType: 'application/json', reply: (err) => apiErrorReply(err), log });
    this.server = await listenOnUnixSocket(app, this.options.socketPath, 0o660);
    log.info({ socket: this.options.socketPath }, 'agent API listening');
  }

  /** Ends open monitor streams, stops listening and removes the socket file. */
  async stop(): Promise<void> {
    await Promise.all([...this.monitorStreams].map((res) => endResponse(res)));
    if (this.server) await closeUnixServer(this.server, this.options.socketPath);
    this.server = undefined;
  }

  private replyError(req: Request, res: Response, err: unknown): void {
    const reply = apiErrorReply(err);
    if (reply.status >= 500)
      this.options.log.warn({ path: req.path, err: reply.body.error.message }, 'API call failed');
    res.status(reply.status).json(reply.body);
  }

  /**
   * `GET /v1/monitor`: subscribes to the backend and writes each event as one JSON line until the
   * client goes away (the response's 'close', which fires on disconnect as well as after stop()
   * ends it), then unsubscribes.
   */
  private streamMonitor(req: Request, res: Response): void {
    const { backend, log } = this.options;
    let types: Set<string> | undefined;
    try {
      types = parseMonitorTypes(req.query.type);
    } catch (err) {
      this.replyError(req, res, err);
      return;
    }
    let open = true;
    let dropped = 0;
    const onEvent = (event: MonitorEventModel) => {
      if (!open) return;
      if (res.writableLength > MONITOR_MAX_BUFFERED_BYTES) {
        dropped++;
        return;
      }
      let line: string;
      try {
        line = JSON.stringify(event) + '\n';
      } catch (err) {
        log.warn({ err, type: event.type }, 'monitor event is not serializable; skipped');
        return;
      }
      res.write(line);
    };
    res.status(200);
    res.setHeader('content-type', 'application/x-ndjson');
    res.setHeader('cache-control', 'no-store');
    let unsubscribe: () => void;
    try {
      unsubscribe = backend.subscribeMonitor(types, onEvent);
    } catch (err) {
      open = false;
      if (res.headersSent) res.end();
      else this.replyError(req, res, err);
      return;
    }
    // Send the headers now: the client learns the subscription is live before the first event.
    res.flushHeaders();
    const heartbeat = setInterval(() => res.write('\n'), this.options.monitorHeartbeatMs ?? MONITOR_HEARTBEAT_MS);
    this.monitorStreams.add(res);
    const finish = () => {
      if (!open) return;
      open = false;
      clearInterval(heartbeat);
      this.monitorStreams.delete(res);
      try {
        unsubscribe();
      } catch (err) {
        // Runs in a 'close' listener: a throw here would be an uncaught exception in the daemon.
        log.warn({ err }, 'monitor unsubscribe failed');
      }
      if (dropped > 0) log.warn({ dropped }, 'monitor client read too slowly; events were dropped');
      log.debug({ types: types ? [...types] : 'all' }, 'monitor client disconnected');
    };
    res.on('close', finish);
    // The client may already be gone (its 'close' then fired before the listener existed).
    if (req.socket.destroyed) finish();
  }
}

/** Ends a streaming response and resolves once it is flushed or closed (at most one second). */
function endResponse(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    res.once('close', done);
    res.once('finish', done);
    res.end();
  });
}
