/**
 * The Docker plugin endpoint: `POST /<Interface>.<Method>` on a Unix socket in
 * /run/docker/plugins/ (the socket's file name is the driver name). One process implements both
 * NetworkDriver and IpamDriver, as cilium-docker and kuryr do.
 */
import type { Server } from 'node:net';
import { basename } from 'node:path';
import type { Logger } from '../util/log.js';
import {
  createJsonApp,
  finishJsonApp,
  listenOnUnixSocket,
  closeUnixServer,
  type Request,
  type Response,
} from '../util/http-server.js';
import { CiliumDockerError } from '../util/errors.js';
import { pluginErrorReply, type PluginApi } from './error-response.js';
import { PLUGIN_MEDIA_TYPE, type ActivateResponse } from './wire.js';

/** A plugin method handler: decoded body in, reply object out (or a thrown error). */
export type PluginHandler = (body: unknown) => Promise<unknown>;

/** Observes every call (for metrics and tests). */
export type CallObserver = (call: string, durationMs: number, error?: CiliumDockerError) => void;

/** The running plugin server. */
export class PluginServer {
  private server: Server | undefined;

  constructor(
    private readonly options: {
      socketPath: string;
      network: Record<string, PluginHandler>;
      ipam: Record<string, PluginHandler>;
      log: Logger;
      observe?: CallObserver;
    },
  ) {}

  /** Driver name dockerd knows us by (socket file name without `.sock`). */
  get driverName(): string {
    return basename(this.options.socketPath).replace(/\.sock$/, '');
  }

  /** Starts listening (removing a stale socket file). */
  async start(): Promise<void> {
    const { log } = this.options;
    // A 1 MB body is accepted and then refused by validation; larger ones are refused here.
    const app = createJsonApp({ limit: '2mb' });
    const routes = new Map<string, { api: PluginApi; handler: PluginHandler }>();
    routes.set('Plugin.Activate', {
      api: 'Plugin',
      handler: async (): Promise<ActivateResponse> => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
    });
    for (const [m, h] of Object.entries(this.options.network))
      routes.set(`NetworkDriver.${m}`, { api: 'NetworkDriver', handler: h });
    for (const [m, h] of Object.entries(this.options.ipam))
      routes.set(`IpamDriver.${m}`, { api: 'IpamDriver', handler: h });

    app.post(/^\/([A-Za-z]+\.[A-Za-z]+)$/, async (req: Request, res: Response) => {
      const call = req.path.slice(1);
      const route = routes.get(call);
      const started = performance.now();
      if (!route) {
        res
          .status(404)
          .type(PLUGIN_MEDIA_TYPE)
          .send(JSON.stringify({ Err: `${call} is not implemented by the cilium driver` }));
        return;
      }
      try {
        const reply = await route.handler(req.body);
        const ms = performance.now() - started;
        log.debug({ call, ms: Math.round(ms * 100) / 100 }, 'plugin call');
        this.options.observe?.(call, ms);
        res.status(200).type(PLUGIN_MEDIA_TYPE).send(JSON.stringify(reply));
      } catch (err) {
        const ms = performance.now() - started;
        const reply = pluginErrorReply(route.api, err);
        const e = err instanceof CiliumDockerError ? err : undefined;
        log.warn({ call, ms: Math.round(ms), code: e?.code ?? 'ERR_INTERNAL', err }, 'plugin call failed');
        this.options.observe?.(call, ms, e);
        res.status(reply.status).type(PLUGIN_MEDIA_TYPE).send(JSON.stringify(reply.body));
      }
    });
    app.use((req: Request, res: Response) => {
      res
        .status(404)
        .type(PLUGIN_MEDIA_TYPE)
        .send(JSON.stringify({ Err: `${req.method} ${req.path} is not a plugin call` }));
    });
    // Errors before a handler ran (undecodable body, bad encoding or charset) in the shape of the
    // call's API: an IPAM call gets 200 + Error like any other IPAM failure.
    finishJsonApp(app, {
      contentType: PLUGIN_MEDIA_TYPE,
      reply: (err, path) => {
        const call = /^\/[A-Za-z]+\.[A-Za-z]+$/.test(path) ? path.slice(1) : undefined;
        return pluginErrorReply(
          apiOf(path),
          call ? new CiliumDockerError(err.kind, err.code, `${call}: ${err.message}`) : err,
        );
      },
      log,
    });
    this.server = await listenOnUnixSocket(app, this.options.socketPath, 0o660);
    log.info({ socket: this.options.socketPath, driver: this.driverName }, 'plugin API listening');
  }

  /** Stops listening and removes the socket file. */
  async stop(): Promise<void> {
    if (this.server) await closeUnixServer(this.server, this.options.socketPath);
    this.server = undefined;
  }
}

function apiOf(path: string): PluginApi {
  if (path.startsWith('/IpamDriver.')) return 'IpamDriver';
  if (path.startsWith('/NetworkDriver.')) return 'NetworkDriver';
  return 'Plugin';
}
