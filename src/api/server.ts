/**
 * The agent REST API on a Unix socket (default /run/cilium/cilium.sock, mode 0660 root), used by
 * the `cilium` CLI and tests. JSON in and out; errors as `{"error": {code, message}}` with the
 * status of their kind.
 */
import type { Server } from 'node:net';
import { asCiliumDockerError, statusForKind, NotFoundError, BadRequestError } from '../util/errors.js';
import { createJsonApp, listenOnUnixSocket, closeUnixServer, type Request, type Response } from '../util/http-server.js';
import type { Logger } from '../util/log.js';
import type { EndpointModel, IdentityModel, IpModel, StatusModel, ErrorModel } from './models.js';

/** What the API reads from the rest of the daemon (wired by main.ts). */
export interface AgentBackend {
  status(): Promise<StatusModel>;
  listEndpoints(): EndpointModel[];
  getEndpoint(ref: string): EndpointModel | undefined;
  listIdentities(): Promise<IdentityModel[]>;
  getIdentity(id: number): Promise<IdentityModel | undefined>;
  listIps(): Promise<IpModel[]>;
  cleanup(): Promise<{ removed: string[] }>;
}

/** The one mapping from errors to the API's error replies. */
export function apiErrorReply(err: unknown): { status: number; body: ErrorModel } {
  const e = asCiliumDockerError(err);
  return { status: statusForKind[e.kind], body: { error: { code: e.code, message: e.message } } };
}

type Handler = (req: Request) => Promise<unknown>;

/** The running agent API server. */
export class ApiServer {
  private server: Server | undefined;

  constructor(private readonly options: { socketPath: string; backend: AgentBackend; log: Logger }) {}

  /** Starts listening. */
  async start(): Promise<void> {
    const { backend, log } = this.options;
    const app = createJsonApp({
      limit: '8mb',
      onBodyError: (err, _req, res) => {
        const reply = apiErrorReply(new BadRequestError(`request body is not valid JSON: ${err.message}`));
        res.status(reply.status).json(reply.body);
      },
    });
    const route = (handler: Handler) => async (req: Request, res: Response) => {
      try {
        res.status(200).json(await handler(req));
      } catch (err) {
        const reply = apiErrorReply(err);
        if (reply.status >= 500) log.warn({ path: req.path, err: reply.body.error.message }, 'API call failed');
        res.status(reply.status).json(reply.body);
      }
    };
    app.get('/v1/healthz', route(async () => ({ ok: true })));
    app.get('/v1/status', route(() => backend.status()));
    app.get('/v1/endpoint', route(async () => backend.listEndpoints()));
    app.get(
      '/v1/endpoint/:ref',
      route(async (req) => {
        const ref = String(req.params.ref);
        const ep = backend.getEndpoint(ref);
        if (!ep) throw new NotFoundError(`endpoint "${ref}" not found; "cilium endpoint list" shows the endpoints of this node`);
        return ep;
      }),
    );
    app.get('/v1/identity', route(() => backend.listIdentities()));
    app.get(
      '/v1/identity/:id',
      route(async (req) => {
        const text = String(req.params.id);
        if (!/^\d+$/.test(text)) throw new BadRequestError(`identity "${text}" is not a number`);
        const identity = await backend.getIdentity(Number(text));
        if (!identity) throw new NotFoundError(`identity ${text} not found; "cilium identity list" shows the known identities`);
        return identity;
      }),
    );
    app.get('/v1/ip', route(() => backend.listIps()));
    app.post('/v1/cleanup', route(() => backend.cleanup()));
    app.use((req: Request, res: Response) => {
      res.status(404).json({ error: { code: 'ERR_NOT_FOUND', message: `no API route ${req.method} ${req.path}` } });
    });
    this.server = await listenOnUnixSocket(app, this.options.socketPath, 0o660);
    log.info({ socket: this.options.socketPath }, 'agent API listening');
  }

  /** Stops listening and removes the socket file. */
  async stop(): Promise<void> {
    if (this.server) await closeUnixServer(this.server, this.options.socketPath);
    this.server = undefined;
  }
}
