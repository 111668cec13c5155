/**
 * Consul's HTTP API shapes, named exactly as the wire names them (`/v1/kv`, `/v1/txn`,
 * `/v1/session`), and the JSON codec that keeps Consul's uint64 fields exact.
 *
 * Consul's indexes (`CreateIndex`, `ModifyIndex`, `LockIndex`, `X-Consul-Index`) and `Flags` are
 * uint64. `JSON.parse` would turn them into floats, which silently corrupts anything above 2^53,
 * so {@link parseConsulJson} reads those fields from their source text as bigint, and
 * {@link stringifyConsulJson} writes bigint back as exact JSON integers. Nothing outside
 * `kvstore/consul/` sees these types.
 */

/** A KV entry (Consul's `DirEntry`) as `GET /v1/kv/<key>` and `/v1/txn` results carry it. */
export interface KVPair {
  Key: string;
  /** Base64 of the raw value; null for an empty value, and in results of write operations. */
  Value: string | null;
  Flags: bigint;
  /** Raft index of the key's creation. */
  CreateIndex: bigint;
  /** Raft index of the key's last change: the CAS token. */
  ModifyIndex: bigint;
  /** How many times the key was acquired by a session. */
  LockIndex: bigint;
  /** The session holding the key (set by `acquire`/`lock`); absent when unlocked. */
  Session?: string;
}

/** KV verbs of a `/v1/txn` operation (the API's table of KV operations). */
export type TxnKVVerb =
  | 'set'
  | 'cas'
  | 'lock'
  | 'unlock'
  | 'get'
  | 'get-or-empty'
  | 'get-tree'
  | 'check-index'
  | 'check-session'
  | 'check-not-exists'
  | 'delete'
  | 'delete-tree'
  | 'delete-cas';

/** One KV operation of a transaction. */
export interface TxnKVOp {
  Verb: TxnKVVerb;
  Key: string;
  /** Base64 of the value, for the verbs that write one. */
  Value?: string;
  Flags?: bigint;
  /** ModifyIndex for `cas`, `check-index` and `delete-cas` (0 with `cas` = create-only). */
  Index?: bigint;
  /** Session for `lock`, `unlock` and `check-session`. */
  Session?: string;
}

/** One element of the `/v1/txn` request array (this backend uses KV operations only). */
export interface TxnOp {
  KV: TxnKVOp;
}

/** One result of a committed transaction; verbs that delete add none. */
export interface TxnResult {
  KV?: KVPair;
}

/** Why one operation of a rolled-back transaction failed. */
export interface TxnError {
  /** Position of the failed operation in the request array. */
  OpIndex: number;
  /** Consul's message, e.g. `failed to lock key "k", lock is already held`. */
  What: string;
}

/** Body of a `/v1/txn` answer: 200 with `Results`, or 409 with `Errors`. */
export interface TxnResponse {
  Results: TxnResult[] | null;
  Errors: TxnError[] | null;
}

/** Body of `PUT /v1/session/create`. */
export interface SessionCreateRequest {
  Name: string;
  /** Go duration string; Consul enforces `session_ttl_min` (default 10s) to 24h. */
  TTL: string;
  /** What happens to held keys when the session is invalidated. */
  Behavior: 'release' | 'delete';
  /** How long keys stay un-acquirable after the session is invalidated (0s to 60s). */
  LockDelay: string;
  /** An empty list means "no health checks": the session lives by its TTL alone. */
  Checks: string[];
}

/** Answer of `PUT /v1/session/create`. */
export interface SessionCreateResponse {
  ID: string;
}

/** A session as `/v1/session/info` and `/v1/session/renew` return it. */
export interface SessionEntry {
  ID: string;
  Name: string;
  Node: string;
  /** In nanoseconds. */
  LockDelay: bigint;
  Behavior: 'release' | 'delete';
  /** The TTL Consul wants renewals to follow; may be higher than requested when servers are loaded. */
  TTL: string;
  CreateIndex: bigint;
  ModifyIndex: bigint;
}

/** Fields that are uint64 on the wire and become bigint here. */
const UINT64_FIELDS = new Set(['CreateIndex', 'ModifyIndex', 'LockIndex', 'Flags', 'Index', 'LockDelay']);

/** Parses a Consul JSON body, reading the uint64 fields as exact bigint. */
export function parseConsulJson(text: string): unknown {
  return JSON.parse(text, (key, value: unknown, context?: { source?: string }) =>
    UINT64_FIELDS.has(key) && typeof value === 'number' && context?.source !== undefined
      ? BigInt(context.source)
      : value,
  );
}

/** Serializes a request body, writing bigint as exact JSON integers. */
export function stringifyConsulJson(value: unknown): string {
  const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? rawJSON(v.toString()) : v));
}
