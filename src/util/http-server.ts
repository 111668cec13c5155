/**
 * HTTP over Unix sockets (express 5), shared by the Docker plugin API and the agent API.
 * This is the only module that imports express.
 *
 * Stale sockets: a socket file left by a killed daemon makes `listen` fail with EADDRINUSE, and
 * dockerd would keep dialling it ("connection refused"). At start we probe the path: if nothing
 * answers, the file is stale and removed; if a live process answers, we refuse to steal it.
 */
import express, { type Express, type Request, type Response, type NextFunction, type Router } from 'express';
import { mkdirSync, chmodSync, unlinkSync, existsSync, lstatSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';
import { CiliumDockerError } from './errors.js';

export type { Express, Request, Response, NextFunction, Router };

/**
 * A JSON app: every body is parsed as JSON whatever its Content-Type (dockerd sends none), up to
 * `limit` bytes. Undecodable or oversized bodies reach `onBodyError` so each API can answer in
 * its own error format.
 */
export function createJsonApp(options: {
  limit: string;
  onBodyError: (err: Error & { status?: number; type?: string }, req: Request, res: Response) => void;
}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(express.json({ type: () => true, limit: options.limit, strict: false }));
  app.use((err: Error & { status?: number; type?: string }, req: Request, res: Response, next: NextFunction) => {
    if (err && (err.type === 'entity.parse.failed' || err.type === 'entity.too.large' || err.status === 400 || err.status === 413)) {
      options.onBodyError(err, req, res);
      return;
    }
    next(err);
  });
  return app;
}

/** A new express Router (so no other module imports express). */
export function createRouter(): Router {
  return express.Router();
}

async function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (live: boolean) => {
      sock.destroy();
      resolve(live);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

/** Removes `path` if it is a socket nobody listens on; throws if a live process owns it. */
export async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) {
    throw new CiliumDockerError('Conflict', 'ERR_SOCKET_PATH', `${path} exists and is not a socket; remove it or choose another path`);
  }
  if (await socketIsLive(path)) {
    throw new CiliumDockerError('Conflict', 'ERR_SOCKET_IN_USE', `another process is listening on ${path}; stop it first (is a cilium-docker daemon already running?)`);
  }
  unlinkSync(path);
}

/** Listens on a Unix socket (creating its directory, cleaning a stale file) and sets its mode. */
export async function listenOnUnixSocket(app: Express, path: string, mode: number): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  await removeStaleSocket(path);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(path, (err?: Error) => (err ? reject(err) : resolve(s as unknown as Server))) as unknown as Server;
    s.once('error', reject);
  });
  chmodSync(path, mode);
  // No idle timeout on keep-alive connections: with Node's default (5 s) dockerd sometimes reuses
  // an idle connection just as we close it, gets "connection reset", and resends the call WITHOUT
  // its body (protocol reference 1) — `docker run` then fails. Shutdown closes every connection.
  (server as Server & { keepAliveTimeout?: number }).keepAliveTimeout = 0;
  return server;
}

/** Closes a server and removes its socket file. */
export async function closeUnixServer(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}
