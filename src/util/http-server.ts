/**
 * HTTP over Unix sockets (express 5), shared by the Docker plugin API and the agent API.
 * This is the only module that imports express.
 *
 * Stale sockets: a socket file left by a killed daemon makes `listen` fail with EADDRINUSE, and
 * dockerd would keep dialling it ("connection refused"). At start we probe the path: if nothing
 * answers, the file is stale and removed; if a live process answers, we refuse to steal it.
 */
import express, { type Express, type Request, type Response, type NextFunction, type Router } from 'express';
import { mkdirSync, chmodSync, unlinkSync, existsSync, lstatSync, statSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { connect, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { BadRequestError, CiliumDockerError } from './errors.js';
import type { Logger } from './log.js';

export type { Express, Request, Response, NextFunction, Router };

/**
 * A JSON app: every body is parsed as JSON whatever its Content-Type (dockerd sends none), up to
 * `limit` bytes. Add the routes, then call {@link finishJsonApp}: body errors (invalid JSON, too
 * large, an unknown Content-Encoding or charset) travel past the routes to its error handler.
 */
export function createJsonApp(options: { limit: string }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use(express.json({ type: () => true, limit: options.limit, strict: false }));
  return app;
}

/**
 * Status and JSON body of an error reply, in the shape of the server's protocol. `path` is the
 * request's path, or '' when the request could not even be parsed as HTTP.
 */
export type ErrorReplier = (err: CiliumDockerError, path: string) => { status: number; body: unknown };

/** How a server answers errors that no route handled itself. */
export interface ErrorReplies {
  /** Media type of error bodies (the plugin API's own, or application/json). */
  readonly contentType: string;
  readonly reply: ErrorReplier;
  /** Unexpected errors are logged here with their stack; the client never sees it. */
  readonly log: Logger;
}

/** Apps whose error replies finishJsonApp installed (listenOnUnixSocket refuses any other). */
const finishedApps = new WeakMap<Express, ErrorReplies>();

/** Body-parser's and the router's errors: http-errors with a 4xx status and a `type`. */
interface HttpLayerError extends Error {
  status?: number;
  statusCode?: number;
  type?: string;
  limit?: number;
  encoding?: string;
  charset?: string;
}

/**
 * What the client is told about an error raised outside a route's own handling: a request
 * error for the 4xx errors of body parsing and path decoding (with what to do), an opaque
 * internal error for anything else (its stack goes to the log, never to the client).
 */
export function requestError(err: unknown): CiliumDockerError {
  if (err instanceof CiliumDockerError) return err;
  const e = (err ?? {}) as HttpLayerError;
  const status = e.status ?? e.statusCode;
  if (!(err instanceof Error) || typeof status !== 'number' || status < 400 || status > 499) {
    return new CiliumDockerError(
      'Internal',
      'ERR_INTERNAL',
      'internal error while handling the request; the daemon log has the details',
      { cause: err },
    );
  }
  switch (e.type) {
    case 'entity.parse.failed':
      return new BadRequestError(`request body is not valid JSON (${e.message})`, { cause: err });
    case 'entity.too.large':
      return new BadRequestError(`request body is larger than the limit of ${e.limit} bytes`, { cause: err });
    case 'encoding.unsupported':
      return new BadRequestError(
        `unsupported Content-Encoding "${e.encoding}"; send the body unencoded (or gzip, deflate, br)`,
        { cause: err },
      );
    case 'charset.unsupported':
      return new BadRequestError(`unsupported charset "${e.charset}" in Content-Type; send the JSON body as UTF-8`, {
        cause: err,
      });
  }
  if (err instanceof URIError)
    return new BadRequestError(`the request path is not valid percent-encoding (${e.message})`, { cause: err });
  return new BadRequestError(`bad request: ${e.message}`, { cause: err });
}

function sendErrorReply(replies: ErrorReplies, err: CiliumDockerError, req: Request, res: Response): void {
  const reply = replies.reply(err, req.path);
  res.status(reply.status).type(replies.contentType).send(JSON.stringify(reply.body));
}

/**
 * Ends a JSON app after its last route: every error raised while handling a request reaches one
 * handler that answers in the server's protocol shape (`reply`, sent as `contentType`) — body
 * errors, an undecodable path parameter (`%ZZ`), anything a route let escape — never Express's
 * HTML page with its stack trace and file paths. Requests that are not even HTTP get the same
 * JSON shape (see listenOnUnixSocket). The server's own 404 handler goes before this call.
 */
export function finishJsonApp(app: Express, replies: ErrorReplies): void {
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = requestError(err);
    if (e.kind === 'Internal' && !(err instanceof CiliumDockerError)) {
      replies.log.error({ path: req.path, err }, 'unexpected error while handling a request');
    } else {
      replies.log.warn({ path: req.path, code: e.code, err: e }, 'request refused before reaching its route');
    }
    // A streaming reply already under way cannot change its status any more: cut it.
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendErrorReply(replies, e, req, res);
  });
  finishedApps.set(app, replies);
}

/**
 * Node's own answer to a request it cannot parse (bad request line or headers, oversized headers)
 * is a bare `400` without a body; this one carries the server's JSON error shape too.
 */
function replyToUnparsableRequest(replies: ErrorReplies, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : undefined;
  const reply = replies.reply(new BadRequestError(`malformed HTTP request (${err.code ?? 'parse error'})`), '');
  const body = JSON.stringify(reply.body);
  const code = status ?? reply.status;
  socket.end(
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}\r\nContent-Type: ${replies.contentType}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
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

/**
 * Whether a Unix socket can be listened on at `path`, changing nothing: 'absent' (its nearest
 * existing ancestor is a directory) or 'stale' (a socket file nobody answers on). Throws
 * ERR_SOCKET_PATH when the path or an ancestor is something else, ERR_SOCKET_IN_USE when a live
 * process listens there.
 */
export async function checkUnixSocketPath(path: string): Promise<'absent' | 'stale'> {
  if (!existsSync(path)) {
    let ancestor = dirname(path);
    while (!existsSync(ancestor) && ancestor !== dirname(ancestor)) ancestor = dirname(ancestor);
    if (!statSync(ancestor).isDirectory()) {
      throw new CiliumDockerError(
        'Conflict',
        'ERR_SOCKET_PATH',
        `${path} cannot be created: ${ancestor} is not a directory; choose another path`,
      );
    }
    return 'absent';
  }
  if (!lstatSync(path).isSocket()) {
    throw new CiliumDockerError(
      'Conflict',
      'ERR_SOCKET_PATH',
      `${path} exists and is not a socket; remove it or choose another path`,
    );
  }
  if (await socketIsLive(path)) {
    throw new CiliumDockerError(
      'Conflict',
      'ERR_SOCKET_IN_USE',
      `another process is listening on ${path}; stop it first (is a cilium-docker daemon already running?)`,
    );
  }
  return 'stale';
}

/** Removes `path` if it is a socket nobody listens on; throws if a live process owns it. */
export async function removeStaleSocket(path: string): Promise<void> {
  if ((await checkUnixSocketPath(path)) === 'stale') unlinkSync(path);
}

/** Listens on a Unix socket (creating its directory, cleaning a stale file) and sets its mode. */
export async function listenOnUnixSocket(app: Express, path: string, mode: number): Promise<Server> {
  const replies = finishedApps.get(app);
  if (!replies) throw new Error(`listenOnUnixSocket(${path}): call finishJsonApp after the last route first`);
  mkdirSync(dirname(path), { recursive: true });
  await removeStaleSocket(path);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(path, (err?: Error) =>
      err ? reject(err) : resolve(s as unknown as Server),
    ) as unknown as Server;
    s.once('error', reject);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
    replyToUnparsableRequest(replies, err, socket),
  );
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
