/**
 * `cilium kvstore get|set|delete`: the cluster store (embedded, etcd or consul, whichever the
 * daemon runs with) through the KvStore contract, as Cilium's `cilium kvstore` reaches its etcd.
 * main.ts hands it the cluster's view of the store, below the key prefix (`--kvstore-opt
 * prefix`): keys are named as the daemon names them everywhere else (`identities/v1/…`, as in its
 * messages), and one cluster's operator cannot reach another's keys in a shared etcd.
 *
 *   GET    /v1/kvstore?key=K[&recursive=true][&limit=N]  -> KvstoreGetModel
 *   PUT    /v1/kvstore  {"key": K, "value": V}            -> KvstoreSetModel
 *   DELETE /v1/kvstore?key=K[&recursive=true]            -> KvstoreDeleteModel
 *
 * Writes are an operator's tool, as in Cilium: unconditional and unleased, past every check the
 * daemon makes on its own keys (the API socket is root's). Keys are bounded (length, no control
 * characters), values to Consul's 512 KiB, and a recursive get's reply to a number of keys and of
 * bytes (the store's list itself is not paged: the daemon holds the whole prefix once).
 */
import type { KvPair, KvStore } from '../kvstore/kvstore.js';
import { BadRequestError, NotFoundError } from '../util/errors.js';
import type { KvstoreDeleteModel, KvstoreEntryModel, KvstoreGetModel, KvstoreSetModel } from './models.js';
import { booleanQueryValue, singleQueryValue, type RouteGroup } from './route-group.js';

/** Longest key accepted, in UTF-8 bytes (the daemon's own longest keys are label sets, far below). */
export const MAX_KVSTORE_KEY_BYTES = 4096;
/** Largest value `set` writes: Consul's KV limit (etcd's default request limit is 1.5 MiB). */
export const MAX_KVSTORE_VALUE_BYTES = 512 * 1024;
/** Most keys one recursive get returns (`?limit=` may ask for fewer). */
export const MAX_KVSTORE_ENTRIES = 10_000;
/** Most key and value bytes one recursive get returns; the keys past it are counted, not sent. */
export const MAX_KVSTORE_REPLY_BYTES = 16 * 1024 * 1024;

/** What the routes use of the store. */
export type KvstoreAccess = Pick<KvStore, 'get' | 'list' | 'put' | 'delete' | 'deletePrefix'>;

// biome-ignore lint/suspicious/noControlCharactersInRegex: keys must be printable: this finds control characters.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/** Validates a key (or a prefix, which may be empty when `allowEmpty`). */
export function parseKvstoreKey(key: unknown, allowEmpty: boolean): string {
  if (typeof key !== 'string')
    throw new BadRequestError('key must be given: ?key=<key> (a prefix with recursive=true)');
  if (key === '' && !allowEmpty) throw new BadRequestError('empty key; give a key, or a prefix with recursive=true');
  if (Buffer.byteLength(key, 'utf8') > MAX_KVSTORE_KEY_BYTES)
    throw new BadRequestError(`key is longer than ${MAX_KVSTORE_KEY_BYTES} bytes`);
  if (CONTROL_CHARACTERS.test(key)) throw new BadRequestError(`key ${JSON.stringify(key)} contains control characters`);
  return key;
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return MAX_KVSTORE_ENTRIES;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_KVSTORE_ENTRIES) {
    throw new BadRequestError(`limit must be a number of keys from 1 to ${MAX_KVSTORE_ENTRIES}; got "${text}"`);
  }
  return Number(text);
}

/** Validates `PUT /v1/kvstore` bodies. */
export function parseKvstoreSetBody(body: unknown): { key: string; value: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BadRequestError('kvstore set body must be a JSON object {"key": "...", "value": "..."}');
  const { key, value, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new BadRequestError(`unknown field "${unknown[0]}" in kvstore set body; expected key, value`);
  if (typeof value !== 'string') throw new BadRequestError('value must be a string');
  if (Buffer.byteLength(value, 'utf8') > MAX_KVSTORE_VALUE_BYTES)
    throw new BadRequestError(`value is larger than ${MAX_KVSTORE_VALUE_BYTES} bytes`);
  return { key: parseKvstoreKey(key, false), value };
}

function toModel(p: KvPair): KvstoreEntryModel {
  return {
    key: p.key,
    value: p.value,
    createRevision: String(p.createRevision),
    modRevision: String(p.modRevision),
    ...(p.lease !== undefined ? { lease: p.lease } : {}),
  };
}

/** The first pairs that fit both bounds. */
export function boundedEntries(
  pairs: readonly KvPair[],
  limit: number,
  maxBytes = MAX_KVSTORE_REPLY_BYTES,
): KvstoreGetModel {
  const entries: KvstoreEntryModel[] = [];
  let bytes = 0;
  for (const p of pairs) {
    bytes += Buffer.byteLength(p.key, 'utf8') + Buffer.byteLength(p.value, 'utf8');
    if (entries.length >= limit || (bytes > maxBytes && entries.length > 0)) break;
    entries.push(toModel(p));
  }
  return { entries, total: pairs.length, truncated: entries.length < pairs.length };
}

/** The `/v1/kvstore` routes over `store` (the daemon's cluster store). */
export function kvstoreRoutes(store: KvstoreAccess): RouteGroup {
  return (routes) => {
    routes.get('/v1/kvstore', async (req): Promise<KvstoreGetModel> => {
      const recursive = booleanQueryValue(req.query, 'recursive', false);
      const key = parseKvstoreKey(singleQueryValue(req.query, 'key'), recursive);
      const limit = parseLimit(singleQueryValue(req.query, 'limit'));
      if (recursive) return boundedEntries((await store.list(key)).pairs, limit);
      const pair = await store.get(key);
      if (!pair)
        throw new NotFoundError(
          `key "${key}" not found in the kvstore; ` +
            '"cilium kvstore get --recursive <prefix>" lists the keys under a prefix',
        );
      return { entries: [toModel(pair)], total: 1, truncated: false };
    });
    routes.put('/v1/kvstore', async (req): Promise<KvstoreSetModel> => {
      const { key, value } = parseKvstoreSetBody(req.body);
      return { key, revision: String(await store.put(key, value)) };
    });
    routes.delete('/v1/kvstore', async (req): Promise<KvstoreDeleteModel> => {
      const recursive = booleanQueryValue(req.query, 'recursive', false);
      // Never the whole store: an empty prefix is refused even with recursive=true.
      const key = parseKvstoreKey(singleQueryValue(req.query, 'key'), false);
      return { deleted: recursive ? await store.deletePrefix(key) : Number(await store.delete(key)) };
    });
  };
}
