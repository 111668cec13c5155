/**
 * Route groups: agent API routes that live in their own module (`kvstore-routes.ts`,
 * `node-routes.ts`, `version-routes.ts`) with the dependencies they need, mounted by the
 * ApiServer next to the routes of its AgentBackend. A handler returns the 200 JSON reply; what it
 * throws goes through the server's one error mapping (`apiErrorReply`).
 */
import { BadRequestError } from '../util/errors.js';
import type { Request } from '../util/http-server.js';

/** One route's handler: the reply body, or a thrown error. */
export type RouteHandler = (req: Request) => Promise<unknown>;

/** Where a route group adds its routes (paths in express syntax, e.g. `/v1/node`). */
export interface RouteTable {
  get(path: string, handler: RouteHandler): void;
  put(path: string, handler: RouteHandler): void;
  post(path: string, handler: RouteHandler): void;
  delete(path: string, handler: RouteHandler): void;
}

/** Adds a module's routes to the server (see ApiServer's `routes` option). */
export type RouteGroup = (routes: RouteTable) => void;

/** A query parameter as one string (undefined when absent); repeated parameters are refused. */
export function singleQueryValue(query: Request['query'], name: string): string | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestError(`query parameter "${name}" must be given once`);
  return value;
}

/** A `true`/`false` query parameter; `fallback` when absent. */
export function booleanQueryValue(query: Request['query'], name: string, fallback: boolean): boolean {
  const text = singleQueryValue(query, name);
  if (text === undefined) return fallback;
  if (text !== 'true' && text !== 'false')
    throw new BadRequestError(`query parameter "${name}" must be true or false; got "${text}"`);
  return text === 'true';
}
