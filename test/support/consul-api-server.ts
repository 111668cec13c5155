/**
 * An in-memory HTTP server that answers the parts of Consul's HTTP API the consul KvStore backend
 * uses, the way Consul documents (and implements) them. No Consul server can be installed on the
 * machines these tests run on, so this stands in for one; its own test
 * (`test/unit/kvstore/consul-api-server.test.ts`) pins the documented behaviour it relies on.
 *
 * Endpoints (https://developer.hashicorp.com/consul/api-docs):
 * - `/v1/kv/<key>`: GET (single, `?recurse`, `?keys[&separator=]`, `?raw`), PUT (plain, `?cas=`,
 *   `?acquire=`, `?release=`, `?flags=`; body = raw value; answer `true`/`false`), DELETE (plain,
 *   `?cas=`, `?recurse`). Blocking queries with `?index=&wait=` on every GET. `X-Consul-Index` on
 *   every read, including the 404 of a missing key.
 * - `/v1/txn`: KV operations only (every KV verb), all-or-nothing, 409 with `Errors` on rollback.
 * - `/v1/session/create|renew/<id>|destroy/<id>|info/<id>`, TTL sessions with `Behavior`
 *   `release` or `delete` and `LockDelay`.
 * - `/v1/status/leader`, `/v1/status/peers`.
 *
 * Index semantics follow Consul's state store (`agent/consul/state/kvs.go`): one raft index,
 * bumped by every write; a single key reads at its ModifyIndex (a missing one at the KV table
 * index); a prefix reads at the highest ModifyIndex or tombstone under it (or the KV table index
 * when there is none), so deletes move a prefix's index forward. Tombstones are never reaped, so
 * an index never goes backwards here (in Consul it can, after tombstone GC or a snapshot restore).
 * A write that stores an identical entry changes nothing and keeps the ModifyIndex (kvsSetTxn).
 *
 * Sessions: the TTL is a lower bound; like Consul the server invalidates a session only after
 * twice its TTL without renewal (SessionTTLMultiplier). Invalidation deletes (`delete`) or
 * releases (`release`) every key the session holds and starts the lock-delay on those keys.
 *
 * Test controls: `stop()` closes the listener and every open connection (an outage), `start()`
 * listens again on the same port with state intact, `expireSession(id)` invalidates a session as
 * if its TTL had run out.
 *
 * Known simplifications: one datacenter, no consistency modes (`?stale`/`?consistent` are
 * accepted and ignored), no namespaces/partitions, ACLs are one all-powerful token, sessions have
 * no health checks, and a blocking query on a single missing key wakes on any KV write (Consul
 * wakes it on writes near the key; both are allowed by the blocking-query contract, which warns of
 * spurious wake-ups).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';

/** Options of {@link ConsulApiServer.listen}. */
export interface ConsulApiServerOptions {
  /**
   * ACL token. When set, every request except `/v1/status/*` must carry it (`X-Consul-Token`,
   * `Authorization: Bearer`, or `?token=`); others get 403, as with `default_policy = "deny"`.
   */
  token?: string;
  /** Consul's `session_ttl_min` agent setting in milliseconds. Default 10 s, Consul's default. */
  sessionTtlMinMs?: number;
  /** The raft index before the first write (a real cluster starts in the low hundreds). Default 10. */
  initialIndex?: bigint;
  /** Node name of the agent; sessions are created on it. Default `consul-test`. */
  nodeName?: string;
  /** TCP port; default 0 (any free port). */
  port?: number;
  /** Address to listen on; default 127.0.0.1 (e2e tests bind it on a lab underlay address). */
  host?: string;
}

/** A KV entry as the state store keeps it. */
interface Entry {
  key: string;
  value: Buffer;
  flags: bigint;
  createIndex: bigint;
  modifyIndex: bigint;
  lockIndex: bigint;
  /** Holding session, or '' when unlocked. */
  session: string;
}

/** A session as the state store keeps it. */
interface Session {
  id: string;
  name: string;
  node: string;
  behavior: 'release' | 'delete';
  /** The TTL string exactly as given at create time ('' for none). */
  ttl: string;
  ttlMs: number;
  lockDelayNs: bigint;
  createIndex: bigint;
  modifyIndex: bigint;
  timer?: NodeJS.Timeout;
}

/** One KV operation of a `/v1/txn` request, as it arrives on the wire. */
interface TxnKvOp {
  Verb?: string;
  Key?: string;
  Value?: string | null;
  Flags?: bigint | number;
  Index?: bigint | number;
  Session?: string;
}

/** Consul's limits: `kv_max_value_size` and the transaction operation cap. */
const MAX_VALUE_BYTES = 512 * 1024;
const MAX_TXN_OPS = 128;
const SESSION_TTL_MAX_MS = 86_400_000;
/** Consul invalidates a TTL session after TTL * SessionTTLMultiplier without renewal. */
const SESSION_TTL_MULTIPLIER = 2;
const MAX_LOCK_DELAY_MS = 60_000;
const DEFAULT_LOCK_DELAY_NS = 15_000_000_000n;
/** Blocking query wait: default 5 minutes, capped at 10 minutes (agent/http.go). */
const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
const LEADER = '127.0.0.1:8300';

/** A request failure with the status and plain-text body Consul would send. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Undo record of one key inside a transaction. */
interface Undo {
  key: string;
  entry: Entry | undefined;
  tombstone: bigint | undefined;
}

/**
 * The in-memory Consul stand-in. Start with {@link ConsulApiServer.listen}; always `close()` it.
 */
export class ConsulApiServer {
  private readonly server: Server;
  private readonly options: Required<Omit<ConsulApiServerOptions, 'token'>> & { token?: string };
  private readonly entries = new Map<string, Entry>();
  /** Key -> raft index of its deletion (Consul's graveyard). */
  private readonly tombstones = new Map<string, bigint>();
  private readonly sessions = new Map<string, Session>();
  /** Key -> wall-clock ms until which `acquire` is refused (lock-delay after invalidation). */
  private readonly lockDelays = new Map<string, number>();
  /** Blocked queries, re-evaluated after every state change. */
  private readonly waiters = new Set<{ check(): void; cancel(): void }>();
  private raftIndex: bigint;
  /** Highest index of the kvs and tombstones tables (kvsMaxIndex). */
  private kvTableIndex: bigint;
  private sessionTableIndex: bigint;
  private boundPort = 0;
  private listening = false;
  private closed = false;

  private constructor(options: ConsulApiServerOptions) {
    this.options = {
      sessionTtlMinMs: options.sessionTtlMinMs ?? 10_000,
      initialIndex: options.initialIndex ?? 10n,
      nodeName: options.nodeName ?? 'consul-test',
      port: options.port ?? 0,
      host: options.host ?? '127.0.0.1',
      ...(options.token !== undefined && { token: options.token }),
    };
    this.raftIndex = this.options.initialIndex;
    this.kvTableIndex = 0n;
    this.sessionTableIndex = 0n;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String((err as Error).message ?? err));
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  /** Starts a server on `options.host` (127.0.0.1 by default; a free port unless `options.port`). */
  static async listen(options: ConsulApiServerOptions = {}): Promise<ConsulApiServer> {
    const server = new ConsulApiServer(options);
    await server.start();
    return server;
  }

  /** `http://<host>:<port>`, the address clients use. */
  get address(): string {
    return `http://${this.options.host}:${this.boundPort}`;
  }

  /** The TCP port (stable across stop/start). */
  get port(): number {
    return this.boundPort;
  }

  /** The current raft index (the last write's). */
  get index(): bigint {
    return this.raftIndex;
  }

  /** IDs of the live sessions. */
  sessionIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** Listens (again) on the same port; state kept in memory survives stop/start. */
  async start(): Promise<void> {
    if (this.closed) throw new Error('ConsulApiServer is closed');
    if (this.listening) return;
    const port = this.boundPort || this.options.port;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, this.options.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /**
   * Simulates an outage: stops listening and destroys every open connection (pending blocking
   * queries included), so clients see connection errors until `start()`. Session TTLs keep
   * running, as they would on a cluster the client merely cannot reach.
   */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Stops the server for good and cancels every session timer. */
  async close(): Promise<void> {
    await this.stop();
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.cancel();
    for (const session of this.sessions.values()) clearTimeout(session.timer);
    this.sessions.clear();
  }

  /**
   * Invalidates a session as if its TTL had expired: its keys are deleted (`Behavior=delete`) or
   * released (`release`). Returns false if no such session exists.
   */
  expireSession(id: string): boolean {
    const session = this.sessions.get(id);
    if (session === undefined) return false;
    this.invalidateSession(session);
    return true;
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul');
    try {
      let path: string;
      try {
        path = decodeURIComponent(url.pathname);
      } catch {
        throw new HttpError(400, 'Invalid URL path encoding');
      }
      // Go's ServeMux redirects non-canonical paths (`//`, `/./`, `/../`) instead of serving them.
      const clean = cleanPath(path);
      if (clean !== path) {
        throw new HttpError(301, '', { Location: encodeURI(clean) + url.search });
      }
      const body = await readBody(req);
      if (!path.startsWith('/v1/status/')) this.checkToken(req, url);

      if (path.startsWith('/v1/kv/')) return await this.handleKv(req, res, url, path.slice('/v1/kv/'.length), body);
      if (path === '/v1/txn') return this.handleTxn(req, res, body);
      if (path.startsWith('/v1/session/')) return this.handleSession(req, res, path.slice('/v1/session/'.length), body);
      if (path === '/v1/status/leader') return this.sendJson(res, 200, LEADER);
      if (path === '/v1/status/peers') return this.sendJson(res, 200, [LEADER]);
      throw new HttpError(404, '404 page not found');
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      res.writeHead(err.status, { 'Content-Type': 'text/plain; charset=utf-8', ...err.headers });
      res.end(err.message);
    }
  }

  private checkToken(req: IncomingMessage, url: URL): void {
    if (this.options.token === undefined) return;
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const given =
      (req.headers['x-consul-token'] as string | undefined) ?? bearer ?? url.searchParams.get('token') ?? '';
    if (given === '') throw new HttpError(403, 'Permission denied');
    if (given !== this.options.token) throw new HttpError(403, 'ACL not found');
  }

  private sendJson(res: ServerResponse, status: number, value: unknown, index?: bigint): void {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (index !== undefined) {
      headers['X-Consul-Index'] = String(index);
      headers['X-Consul-KnownLeader'] = 'true';
      headers['X-Consul-LastContact'] = '0';
    }
    res.writeHead(status, headers);
    res.end(value === undefined ? '' : toJson(value));
  }

  // ---------------------------------------------------------------- KV endpoint

  private async handleKv(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    key: string,
    body: Buffer,
  ): Promise<void> {
    const params = url.searchParams;
    if (key !== '') validateKey(key);
    switch (req.method) {
      case 'GET':
        return this.kvGet(res, params, key);
      case 'PUT':
        return this.kvPut(res, params, key, body);
      case 'DELETE':
        return this.kvDelete(res, params, key);
      default:
        throw new HttpError(405, `method ${req.method} not allowed`, { Allow: 'GET,PUT,DELETE' });
    }
  }

  private async kvGet(res: ServerResponse, params: URLSearchParams, key: string): Promise<void> {
    if (params.has('keys')) {
      const separator = params.get('separator') ?? params.get('seperator') ?? '';
      const [index, keys] = await this.blockingQuery(res, params, () => this.listKeys(key, separator));
      if (keys.length === 0 && key !== '') return this.sendJson(res, 404, undefined, index);
      return this.sendJson(res, 200, keys, index);
    }
    if (params.has('recurse')) {
      const [index, entries] = await this.blockingQuery(res, params, () => [
        this.prefixIndex(key),
        this.entriesUnder(key),
      ]);
      if (entries.length === 0) return this.sendJson(res, 404, undefined, index);
      return this.sendJson(
        res,
        200,
        entries.map((entry) => entryJson(entry, true)),
        index,
      );
    }
    if (key === '') throw new HttpError(400, 'Missing key name');
    const [index, entry] = await this.blockingQuery(res, params, () => {
      const found = this.entries.get(key);
      return [found?.modifyIndex ?? this.kvMaxIndex(), found];
    });
    if (entry === undefined) return this.sendJson(res, 404, undefined, index);
    if (params.has('raw')) {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Consul-Index': String(index) });
      res.end(entry.value);
      return;
    }
    return this.sendJson(res, 200, [entryJson(entry, true)], index);
  }

  private kvPut(res: ServerResponse, params: URLSearchParams, key: string, body: Buffer): void {
    if (key === '') throw new HttpError(400, 'Missing key name');
    conflictingFlags(params, ['cas', 'acquire', 'release']);
    const flags = params.has('flags') ? parseUint(params.get('flags')!, 'flags') : 0n;
    if (body.length > MAX_VALUE_BYTES) {
      throw new HttpError(413, `Request body(${body.length} bytes) too large, max size: ${MAX_VALUE_BYTES} bytes.`);
    }
    const entry = newEntry(key, body, flags);
    if (params.has('acquire')) {
      entry.session = params.get('acquire')!;
      // kvsPreApply: lock-delay is checked outside raft, before the apply.
      if (this.inLockDelay(key)) {
        this.sendJson(res, 200, false);
        return;
      }
    } else if (params.has('release')) {
      entry.session = params.get('release')!;
    }
    const cas = params.has('cas') ? parseUint(params.get('cas')!, 'cas') : undefined;
    const result = this.write((idx) => {
      if (params.has('acquire')) return this.kvsLock(idx, entry);
      if (params.has('release')) return this.kvsUnlock(idx, entry);
      if (cas !== undefined) return this.kvsSetCas(idx, entry, cas);
      this.kvsSet(idx, entry, false);
      return true;
    });
    this.sendJson(res, 200, result);
  }

  private kvDelete(res: ServerResponse, params: URLSearchParams, key: string): void {
    conflictingFlags(params, ['recurse', 'cas']);
    if (params.has('recurse')) {
      this.write((idx) => this.kvsDeleteTree(idx, key));
      this.sendJson(res, 200, true);
      return;
    }
    if (key === '') throw new HttpError(400, 'Missing key name');
    if (params.has('cas')) {
      const cas = parseUint(params.get('cas')!, 'cas');
      this.sendJson(
        res,
        200,
        this.write((idx) => this.kvsDeleteCas(idx, key, cas)),
      );
      return;
    }
    this.write((idx) => this.kvsDelete(idx, key));
    this.sendJson(res, 200, true);
  }

  /**
   * Runs `query` at once, or — with `?index=N` (N > 0) — holds the request until the query's
   * index passes N or `?wait` (plus up to wait/16 jitter, as Consul adds) runs out, then answers
   * with whatever the query returns at that moment.
   */
  private async blockingQuery<T>(
    res: ServerResponse,
    params: URLSearchParams,
    query: () => [bigint, T],
  ): Promise<[bigint, T]> {
    const minIndex = params.has('index') ? parseUint(params.get('index')!, 'index') : 0n;
    let result = query();
    if (minIndex === 0n || result[0] > minIndex) return ensureIndex(result);
    let waitMs = params.has('wait') ? parseDurationMs(params.get('wait')!) : DEFAULT_WAIT_MS;
    if (waitMs === undefined) throw new HttpError(400, `Invalid wait time: ${params.get('wait')}`);
    waitMs = Math.min(waitMs || DEFAULT_WAIT_MS, MAX_WAIT_MS);
    waitMs += Math.random() * (waitMs / 16);
    await new Promise<void>((resolve) => {
      const waiter = {
        check: () => {
          result = query();
          if (result[0] > minIndex) waiter.cancel();
        },
        cancel: () => {
          clearTimeout(timer);
          res.off('close', waiter.cancel);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.cancel, waitMs);
      // A client that goes away (or stop() cutting the connection) ends the wait.
      res.on('close', waiter.cancel);
      this.waiters.add(waiter);
    });
    return ensureIndex(query());
  }

  // ---------------------------------------------------------------- transactions

  private handleTxn(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    if (req.method !== 'PUT') throw new HttpError(405, `method ${req.method} not allowed`, { Allow: 'PUT' });
    let ops: unknown;
    try {
      // Index and Flags are uint64: read them from the source text, not through a float.
      ops = JSON.parse(body.toString('utf8') || 'null', (key, value: unknown, context?: { source?: string }) =>
        (key === 'Index' || key === 'Flags') && typeof value === 'number' && context?.source !== undefined
          ? BigInt(context.source)
          : value,
      );
    } catch (err) {
      throw new HttpError(400, `Failed to parse body: ${(err as Error).message}`);
    }
    if (!Array.isArray(ops)) throw new HttpError(400, 'Failed to parse body: expected a JSON array of operations');
    if (ops.length > MAX_TXN_OPS) {
      throw new HttpError(413, `Transaction contains too many operations (${ops.length} > ${MAX_TXN_OPS})`);
    }
    const kvOps: { verb: string; entry: Entry; index: bigint }[] = [];
    for (const op of ops as { KV?: TxnKvOp }[]) {
      if (op === null || typeof op !== 'object' || op.KV === undefined) {
        throw new HttpError(400, 'Failed to parse body: this server supports KV operations only');
      }
      const kv = op.KV;
      let value: Buffer;
      if (kv.Value === undefined || kv.Value === null) value = Buffer.alloc(0);
      else if (typeof kv.Value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(kv.Value))
        value = Buffer.from(kv.Value, 'base64');
      else throw new HttpError(400, `Failed to parse body: illegal base64 data in Value of ${JSON.stringify(kv.Key)}`);
      if (value.length > MAX_VALUE_BYTES) {
        throw new HttpError(
          413,
          `Value for key ${JSON.stringify(kv.Key)} is too large (${value.length} > ${MAX_VALUE_BYTES} bytes)`,
        );
      }
      const entry = newEntry(kv.Key ?? '', value, BigInt(kv.Flags ?? 0));
      entry.session = kv.Session ?? '';
      kvOps.push({ verb: kv.Verb ?? '', entry, index: BigInt(kv.Index ?? 0) });
    }

    // Pre-checks outside raft (txn_endpoint.go): the lock-delay of `lock` operations.
    const preErrors = kvOps.flatMap((op, i) =>
      op.verb === 'lock' && this.inLockDelay(op.entry.key)
        ? [{ OpIndex: i, What: `failed to lock key ${JSON.stringify(op.entry.key)} due to lock delay` }]
        : [],
    );
    if (preErrors.length > 0) {
      this.sendJson(res, 409, { Results: null, Errors: preErrors });
      return;
    }

    const readOnly = kvOps.every((op) => READ_VERBS.has(op.verb));
    const run = (idx: bigint, undo: Map<string, Undo>) => {
      const results: unknown[] = [];
      const errors: { OpIndex: number; What: string }[] = [];
      kvOps.forEach((op, i) => {
        try {
          results.push(...this.txnKv(idx, op.verb, op.entry, op.index, undo));
        } catch (err) {
          errors.push({ OpIndex: i, What: (err as Error).message });
        }
      });
      return { results, errors };
    };

    if (readOnly) {
      const { results, errors } = run(this.raftIndex, new Map());
      if (errors.length > 0) {
        this.sendJson(res, 409, { Results: null, Errors: errors });
        return;
      }
      this.sendJson(res, 200, { Results: results, Errors: null }, this.kvMaxIndex());
      return;
    }
    const outcome = this.write((idx) => {
      const undo = new Map<string, Undo>();
      const kvBefore = this.kvTableIndex;
      const result = run(idx, undo);
      if (result.errors.length > 0) {
        // All or nothing: put back every key the failed transaction touched.
        for (const saved of undo.values()) {
          if (saved.entry === undefined) this.entries.delete(saved.key);
          else this.entries.set(saved.key, saved.entry);
          if (saved.tombstone === undefined) this.tombstones.delete(saved.key);
          else this.tombstones.set(saved.key, saved.tombstone);
        }
        this.kvTableIndex = kvBefore;
      }
      return result;
    });
    if (outcome.errors.length > 0) {
      this.sendJson(res, 409, { Results: null, Errors: outcome.errors });
      return;
    }
    this.sendJson(res, 200, { Results: outcome.results, Errors: null });
  }

  /** One KV operation of a transaction (state/txn.go txnKVS); throws with Consul's message on failure. */
  private txnKv(idx: bigint, verb: string, entry: Entry, index: bigint, undo: Map<string, Undo>): unknown[] {
    const key = entry.key;
    const q = JSON.stringify(key);
    const remember = (k: string) => {
      if (!undo.has(k)) undo.set(k, { key: k, entry: this.entries.get(k), tombstone: this.tombstones.get(k) });
    };
    const written = (): unknown[] => [{ KV: entryJson(this.entries.get(key)!, false) }];
    switch (verb) {
      case 'set':
        remember(key);
        this.kvsSet(idx, entry, false);
        return written();
      case 'cas':
        remember(key);
        if (!this.kvsSetCas(idx, entry, index)) throw new Error(`failed to set key ${q}, index is stale`);
        return written();
      case 'lock':
        remember(key);
        if (!this.kvsLock(idx, entry)) throw new Error(`failed to lock key ${q}, lock is already held`);
        return written();
      case 'unlock':
        remember(key);
        if (!this.kvsUnlock(idx, entry)) {
          throw new Error(`failed to unlock key ${q}, lock isn't held, or is held by another session`);
        }
        return written();
      case 'get': {
        const found = this.entries.get(key);
        if (found === undefined) throw new Error(`key ${q} doesn't exist`);
        return [{ KV: entryJson(found, true) }];
      }
      case 'get-or-empty': {
        const found = this.entries.get(key);
        return [
          {
            KV: found
              ? entryJson(found, true)
              : { ...entryJson(entry, false), CreateIndex: 0n, ModifyIndex: 0n, LockIndex: 0n },
          },
        ];
      }
      case 'get-tree':
        return this.entriesUnder(key).map((found) => ({ KV: entryJson(found, true) }));
      case 'check-index': {
        const found = this.entries.get(key);
        if (found === undefined) throw new Error(`key ${q} doesn't exist`);
        if (found.modifyIndex !== index) throw new Error(`current modify index ${found.modifyIndex} != ${index}`);
        return [{ KV: entryJson(found, false) }];
      }
      case 'check-session': {
        const found = this.entries.get(key);
        if (found === undefined) throw new Error(`failed to check session, key ${q} doesn't exist`);
        if (found.session !== entry.session) {
          throw new Error(
            `failed session check for key ${q}, ` +
              `current session ${JSON.stringify(found.session)} != ${JSON.stringify(entry.session)}`,
          );
        }
        return [{ KV: entryJson(found, false) }];
      }
      case 'check-not-exists':
        if (this.entries.has(key)) throw new Error(`key ${q} exists`);
        return [];
      case 'delete':
        remember(key);
        this.kvsDelete(idx, key);
        return [];
      case 'delete-cas':
        remember(key);
        if (!this.kvsDeleteCas(idx, key, index)) throw new Error(`failed to delete key ${q}, index is stale`);
        return [];
      case 'delete-tree':
        for (const found of this.entriesUnder(key)) remember(found.key);
        this.kvsDeleteTree(idx, key);
        return [];
      default:
        throw new Error(`unknown KV verb ${JSON.stringify(verb)}`);
    }
  }

  // ---------------------------------------------------------------- sessions

  private handleSession(req: IncomingMessage, res: ServerResponse, rest: string, body: Buffer): void {
    const [action, id = ''] = splitOnce(rest, '/');
    const needPut = action === 'create' || action === 'renew' || action === 'destroy';
    if (needPut && req.method !== 'PUT') throw new HttpError(405, `method ${req.method} not allowed`, { Allow: 'PUT' });
    if (action === 'info' && req.method !== 'GET')
      throw new HttpError(405, `method ${req.method} not allowed`, { Allow: 'GET' });
    switch (action) {
      case 'create':
        this.sendJson(res, 200, { ID: this.createSession(body) });
        return;
      case 'renew': {
        const session = this.sessions.get(id);
        if (session === undefined) throw new HttpError(404, `Session id '${id}' not found`);
        this.armSessionTimer(session);
        this.sendJson(res, 200, [sessionJson(session)], this.sessionTableIndex);
        return;
      }
      case 'destroy': {
        const session = this.sessions.get(id);
        if (session !== undefined) this.invalidateSession(session);
        this.sendJson(res, 200, true);
        return;
      }
      case 'info': {
        const session = this.sessions.get(id);
        this.sendJson(res, 200, session ? [sessionJson(session)] : [], this.sessionTableIndex || 1n);
        return;
      }
      default:
        throw new HttpError(404, '404 page not found');
    }
  }

  private createSession(body: Buffer): string {
    let request: Record<string, unknown> = {};
    if (body.length > 0) {
      try {
        request = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
      }
    }
    const ttl = typeof request.TTL === 'string' ? request.TTL : '';
    let ttlMs = 0;
    if (ttl !== '') {
      const parsed = parseDurationMs(ttl);
      if (parsed === undefined) throw new HttpError(400, `Request decode failed: time: invalid duration "${ttl}"`);
      ttlMs = parsed;
      // Session.Apply rejects it as an RPC error, which the HTTP layer reports as a 500.
      if (ttlMs !== 0 && (ttlMs < this.options.sessionTtlMinMs || ttlMs > SESSION_TTL_MAX_MS)) {
        throw new HttpError(
          500,
          `Invalid Session TTL '${BigInt(Math.round(ttlMs)) * 1_000_000n}', ` +
            `must be between [${goDuration(this.options.sessionTtlMinMs)}=${goDuration(SESSION_TTL_MAX_MS)}]`,
        );
      }
    }
    const behavior = request.Behavior === undefined || request.Behavior === '' ? 'release' : request.Behavior;
    if (behavior !== 'release' && behavior !== 'delete')
      throw new HttpError(500, `Invalid Behavior setting '${String(behavior)}'`);
    let lockDelayNs = DEFAULT_LOCK_DELAY_NS;
    if (typeof request.LockDelay === 'string') {
      const ms = parseDurationMs(request.LockDelay);
      if (ms === undefined)
        throw new HttpError(400, `Request decode failed: time: invalid duration "${request.LockDelay}"`);
      lockDelayNs = BigInt(Math.round(ms * 1_000_000));
    } else if (typeof request.LockDelay === 'number') {
      // FixupLockDelay: small numbers are seconds, larger ones nanoseconds.
      lockDelayNs = request.LockDelay < 1000 ? BigInt(request.LockDelay) * 1_000_000_000n : BigInt(request.LockDelay);
    }
    const idx = this.nextIndex();
    const session: Session = {
      id: randomUUID(),
      name: typeof request.Name === 'string' ? request.Name : '',
      node: typeof request.Node === 'string' && request.Node !== '' ? request.Node : this.options.nodeName,
      behavior,
      ttl,
      ttlMs,
      lockDelayNs,
      createIndex: idx,
      modifyIndex: idx,
    };
    this.sessions.set(session.id, session);
    this.sessionTableIndex = idx;
    this.armSessionTimer(session);
    return session.id;
  }

  private armSessionTimer(session: Session): void {
    clearTimeout(session.timer);
    if (session.ttlMs <= 0) return;
    session.timer = setTimeout(() => this.invalidateSession(session), session.ttlMs * SESSION_TTL_MULTIPLIER);
    session.timer.unref();
  }

  /** Destroys a session and deletes or releases its keys in one raft index (state/session.go). */
  private invalidateSession(session: Session): void {
    clearTimeout(session.timer);
    if (!this.sessions.has(session.id)) return;
    const delayMs = Math.min(Number(session.lockDelayNs / 1_000_000n), MAX_LOCK_DELAY_MS);
    const now = Date.now();
    this.write((idx) => {
      for (const entry of [...this.entries.values()]) {
        if (entry.session !== session.id) continue;
        if (session.behavior === 'delete') this.kvsDelete(idx, entry.key);
        else this.kvsSet(idx, { ...entry, session: '' }, true);
        if (delayMs > 0) this.lockDelays.set(entry.key, now + delayMs);
      }
      this.sessions.delete(session.id);
      this.sessionTableIndex = idx;
    });
  }

  private inLockDelay(key: string): boolean {
    const until = this.lockDelays.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.lockDelays.delete(key);
    return false;
  }

  // ---------------------------------------------------------------- state store

  private nextIndex(): bigint {
    this.raftIndex += 1n;
    return this.raftIndex;
  }

  /** Applies one write at a fresh raft index, then wakes blocked queries. */
  private write<T>(apply: (idx: bigint) => T): T {
    const result = apply(this.nextIndex());
    for (const waiter of [...this.waiters]) waiter.check();
    return result;
  }

  private kvMaxIndex(): bigint {
    return this.kvTableIndex;
  }

  /** kvsListTxn's index: highest ModifyIndex or tombstone under the prefix, else the table index. */
  private prefixIndex(prefix: string): bigint {
    if (prefix === '') return this.kvMaxIndex();
    let max = 0n;
    for (const entry of this.entries.values())
      if (entry.key.startsWith(prefix) && entry.modifyIndex > max) max = entry.modifyIndex;
    for (const [key, index] of this.tombstones) if (key.startsWith(prefix) && index > max) max = index;
    return max !== 0n ? max : this.kvMaxIndex();
  }

  private entriesUnder(prefix: string): Entry[] {
    return [...this.entries.values()]
      .filter((entry) => entry.key.startsWith(prefix))
      .sort((a, b) => compareKeys(a.key, b.key));
  }

  private listKeys(prefix: string, separator: string): [bigint, string[]] {
    const keys = new Set<string>();
    for (const entry of this.entriesUnder(prefix)) {
      const cut = separator === '' ? -1 : entry.key.indexOf(separator, prefix.length);
      keys.add(cut === -1 ? entry.key : entry.key.slice(0, cut + separator.length));
    }
    return [this.prefixIndex(prefix), [...keys].sort(compareKeys)];
  }

  /** kvsSetTxn: upsert keeping CreateIndex (and the session unless `updateSession`); no-op if unchanged. */
  private kvsSet(idx: bigint, entry: Entry, updateSession: boolean): void {
    const existing = this.entries.get(entry.key);
    const next: Entry = { ...entry, createIndex: existing?.createIndex ?? idx };
    if (!updateSession) next.session = existing?.session ?? '';
    if (
      existing !== undefined &&
      existing.lockIndex === next.lockIndex &&
      existing.flags === next.flags &&
      existing.session === next.session &&
      existing.value.equals(next.value)
    ) {
      entry.modifyIndex = existing.modifyIndex;
      return;
    }
    next.modifyIndex = idx;
    this.entries.set(next.key, next);
    this.tombstones.delete(next.key);
    this.kvTableIndex = idx;
  }

  /** kvsSetCASTxn: index 0 means create-only; otherwise the ModifyIndex must match. */
  private kvsSetCas(idx: bigint, entry: Entry, cas: bigint): boolean {
    const existing = this.entries.get(entry.key);
    if (cas === 0n && existing !== undefined) return false;
    if (cas !== 0n && existing?.modifyIndex !== cas) return false;
    this.kvsSet(idx, entry, false);
    return true;
  }

  /** kvsLockTxn: the session must exist; succeeds if the key is free or already held by it. */
  private kvsLock(idx: bigint, entry: Entry): boolean {
    if (entry.session === '') throw new HttpError(500, 'missing session');
    if (!this.sessions.has(entry.session)) throw new HttpError(500, `invalid session "${entry.session}"`);
    const existing = this.entries.get(entry.key);
    if (existing !== undefined) {
      if (existing.session === entry.session) entry.lockIndex = existing.lockIndex;
      else if (existing.session !== '') return false;
      else entry.lockIndex = existing.lockIndex + 1n;
    } else {
      entry.lockIndex = 1n;
    }
    this.kvsSet(idx, entry, true);
    return true;
  }

  /** kvsUnlockTxn: only the holding session may release; the value is written too. */
  private kvsUnlock(idx: bigint, entry: Entry): boolean {
    if (entry.session === '') throw new HttpError(500, 'missing session');
    const existing = this.entries.get(entry.key);
    if (existing === undefined || existing.session !== entry.session) return false;
    this.kvsSet(idx, { ...entry, session: '', lockIndex: existing.lockIndex }, true);
    return true;
  }

  private kvsDelete(idx: bigint, key: string): void {
    if (!this.entries.delete(key)) return;
    this.tombstones.set(key, idx);
    this.kvTableIndex = idx;
  }

  /** kvsDeleteCASTxn: note that a missing key counts as success, as in Consul. */
  private kvsDeleteCas(idx: bigint, key: string, cas: bigint): boolean {
    const existing = this.entries.get(key);
    if (existing === undefined) return true;
    if (existing.modifyIndex !== cas) return false;
    this.kvsDelete(idx, key);
    return true;
  }

  private kvsDeleteTree(idx: bigint, prefix: string): void {
    for (const entry of this.entriesUnder(prefix)) this.kvsDelete(idx, entry.key);
  }
}

/** Verbs that only read; a transaction made of them takes the read-only path (no raft index). */
const READ_VERBS = new Set(['get', 'get-or-empty', 'get-tree', 'check-index', 'check-session', 'check-not-exists']);

function newEntry(key: string, value: Buffer, flags: bigint): Entry {
  return { key, value, flags, createIndex: 0n, modifyIndex: 0n, lockIndex: 0n, session: '' };
}

/** The JSON shape of a DirEntry: Value base64 (null when empty or not returned), Session omitted when empty. */
function entryJson(entry: Entry, withValue: boolean): Record<string, unknown> {
  return {
    LockIndex: entry.lockIndex,
    Key: entry.key,
    Flags: entry.flags,
    Value: withValue && entry.value.length > 0 ? entry.value.toString('base64') : null,
    ...(entry.session !== '' && { Session: entry.session }),
    CreateIndex: entry.createIndex,
    ModifyIndex: entry.modifyIndex,
  };
}

function sessionJson(session: Session): Record<string, unknown> {
  return {
    ID: session.id,
    Name: session.name,
    Node: session.node,
    LockDelay: session.lockDelayNs,
    Behavior: session.behavior,
    TTL: session.ttl,
    NodeChecks: null,
    ServiceChecks: null,
    CreateIndex: session.createIndex,
    ModifyIndex: session.modifyIndex,
  };
}

/** JSON with bigint written as exact integers (Consul's indexes are uint64). */
function toJson(value: unknown): string {
  const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? raw(v.toString()) : v));
}

/** Consul never answers a query with index 0 ("Index 1 is impossible anyways"). */
function ensureIndex<T>(result: [bigint, T]): [bigint, T] {
  return result[0] > 0n ? result : [1n, result[1]];
}

/** Byte order of UTF-8, which is what Consul's radix tree sorts by. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Current Consul's KV key checks (after CVE-2025-11392): no traversal, no surrounding spaces. */
function validateKey(key: string): void {
  if (/(\.\.[\\/])|(\.\.\\)|(^\.\.)|(\.\.$)/.test(key))
    throw new HttpError(400, 'key contains path traversal sequence');
  if (/(%2e%2e(%2f|%5c|\/))|(\.\.%2f)|(\.\.%5c)/i.test(key)) {
    throw new HttpError(400, 'key contains encoded path traversal sequence');
  }
  if (key !== key.trim()) throw new HttpError(400, 'key must not begin or end with spaces');
  // Consul (since 1.0.3) refuses unprintable characters in request paths.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Consul's check, on control characters.
  if (/[\u0000-\u001f\u007f]/.test(key))
    throw new HttpError(400, `Path contains unprintable characters: ${JSON.stringify(key)}`);
}

function conflictingFlags(params: URLSearchParams, flags: string[]): void {
  if (flags.filter((flag) => params.has(flag)).length > 1) {
    throw new HttpError(400, `Conflicting flags: ${params.toString()}\n`);
  }
}

function parseUint(text: string, what: string): bigint {
  if (!/^\d+$/.test(text))
    throw new HttpError(400, `strconv.ParseUint: parsing ${JSON.stringify(text)}: invalid syntax (${what})`);
  const value = BigInt(text);
  if (value >= 1n << 64n)
    throw new HttpError(400, `strconv.ParseUint: parsing ${JSON.stringify(text)}: value out of range (${what})`);
  return value;
}

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.ParseDuration, in milliseconds; undefined if malformed. A bare "0" is allowed. */
function parseDurationMs(text: string): number | undefined {
  if (text === '0') return 0;
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (match === null) return undefined;
    total += Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
    at = pattern.lastIndex;
  }
  return text === '' ? undefined : total;
}

/** Go's Duration.String for whole seconds: 10s, 1m30s, 24h0m0s. */
function goDuration(ms: number): string {
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Go's path.Clean as ServeMux applies it, keeping a trailing slash. */
function cleanPath(path: string): string {
  if (path === '') return '/';
  let clean = posix.normalize(path.startsWith('/') ? path : `/${path}`);
  if (path.endsWith('/') && !clean.endsWith('/')) clean += '/';
  return clean;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
