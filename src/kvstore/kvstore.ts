/**
 * The key-value store contract every backend (embedded SQLite, etcd, consul) implements.
 *
 * Prior art: libkv (Get/Put/Delete/List/Watch/WatchTree/AtomicPut/AtomicDelete, `LastIndex` for
 * CAS) and Cilium's kvstore. Revisions are bigint: etcd's mod revision and consul's ModifyIndex are
 * both 64-bit and must never pass through a float.
 *
 * Leases: each store instance owns at most one lease (etcd lease / consul session / a row in the
 * embedded store) created lazily on the first leased write and kept alive by the backend. Keys
 * written with `{ leased: true }` disappear when that lease expires (daemon dead for longer than
 * the TTL).
 */

/** One stored key with its revisions. */
export interface KvPair {
  key: string;
  value: string;
  /** Revision at which the key was created (0n never happens for an existing key). */
  createRevision: bigint;
  /** Revision of the last write to the key; the CAS token. */
  modRevision: bigint;
  /** Lease id the key is bound to, if any. */
  lease?: string;
}

/** Options of a write. */
export interface PutOptions {
  /** Bind the key to this store instance's lease (it vanishes if the daemon stops renewing). */
  leased?: boolean;
}

/** Result of a conditional write. */
export type CasResult = { ok: true; revision: bigint } | { ok: false; current: KvPair | undefined };

/** A change seen by a watch. Events arrive in revision order. */
export type WatchEvent =
  | { type: 'put'; key: string; value: string; modRevision: bigint; createRevision: bigint }
  | { type: 'delete'; key: string; modRevision: bigint };

/** Handle of a running watch; `close()` stops delivery. */
export interface Watcher {
  close(): void;
}

/** Callbacks of a watch. */
export interface WatchHandlers {
  /** Called for every change after `fromRevision`, in order. */
  onEvent(event: WatchEvent): void;
  /**
   * The backend could not deliver every event since `fromRevision` (history compacted, or the
   * connection was lost and resumed). The caller must re-list the prefix and watch again from
   * the new list's revision.
   */
  onResyncNeeded?(reason: string): void;
}

/** Result of listing a prefix: the pairs and the store revision the list is consistent with. */
export interface ListResult {
  pairs: KvPair[];
  revision: bigint;
}

/**
 * One condition of a {@link KvStore.transaction}: the key is absent, has this mod revision, or
 * has this value.
 */
export type TxnCondition =
  | { key: string; absent: true }
  | { key: string; modRevision: bigint }
  | { key: string; value: string };

/** One write of a {@link KvStore.transaction}. */
export type TxnOperation = { op: 'put'; key: string; value: string; leased?: boolean } | { op: 'delete'; key: string };

/**
 * Result of a transaction: committed at `revision`, or not applied because a condition did not
 * hold, with the current pair (undefined = absent) of every key the conditions name.
 */
export type TxnResult = { ok: true; revision: bigint } | { ok: false; current: Map<string, KvPair | undefined> };

/** One transaction of a {@link KvStore.transactions} batch. */
export interface TxnRequest {
  conditions: readonly TxnCondition[];
  operations: readonly TxnOperation[];
}

/**
 * Most conditions plus operations in one transaction (and most transactions in one batch): Consul's limit (64
 * operations per `/v1/txn`); etcd's default `--max-txn-ops` is 128.
 */
export const MAX_TXN_OPERATIONS = 64;

/** Health as shown by `cilium status`. */
export interface KvStatus {
  backend: 'local' | 'etcd' | 'consul';
  healthy: boolean;
  /** Human-readable details: endpoints, file path, last error. */
  detail: string;
  /** Lease id and TTL in seconds, when a lease exists. */
  lease?: { id: string; ttlSeconds: number };
}

/** The store contract. All methods reject with KvUnavailableError when the backend cannot be reached. */
export interface KvStore {
  /** The value of one key, or undefined. */
  get(key: string): Promise<KvPair | undefined>;
  /** Every key under `prefix` (string prefix match), sorted by key. */
  list(prefix: string): Promise<ListResult>;
  /** Unconditional write; returns the new mod revision. */
  put(key: string, value: string, options?: PutOptions): Promise<bigint>;
  /** Create-only write: succeeds only if the key does not exist. */
  create(key: string, value: string, options?: PutOptions): Promise<CasResult>;
  /**
   * Compare-and-swap: write only if the key's current mod revision is `prevRevision`
   * (or, for `'absent'`, if the key does not exist).
   */
  atomicPut(key: string, value: string, prevRevision: bigint | 'absent', options?: PutOptions): Promise<CasResult>;
  /** Unconditional delete; true if a key was removed. */
  delete(key: string): Promise<boolean>;
  /** Delete only if the key's mod revision is `prevRevision`; true if removed. */
  atomicDelete(key: string, prevRevision: bigint): Promise<boolean>;
  /** Delete every key under `prefix`; returns how many were removed. */
  deletePrefix(prefix: string): Promise<number>;
  /**
   * All `operations` at one revision if every condition holds, none otherwise (etcd's Txn, a
   * Consul `/v1/txn`). At most {@link MAX_TXN_OPERATIONS} conditions plus operations (a
   * BadRequestError beyond); a key may be written at most once. A failed condition is not an
   * error: the result carries the conditions' keys as they are now.
   */
  transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult>;
  /**
   * Several independent transactions in one round trip where the backend can (etcd: nested
   * transactions in one Txn; consul and the embedded store run them one by one): each applies or
   * not on its own conditions, and the results come in request order. At most
   * {@link MAX_TXN_OPERATIONS} transactions, each within the limits of `transaction`, and no key
   * written by two of them (etcd refuses that; BadRequestError here, before anything is sent).
   * A condition should not name a key another transaction of the batch writes: etcd evaluates
   * every condition before any write, the other backends one transaction after another.
   */
  transactions(requests: readonly TxnRequest[]): Promise<TxnResult[]>;
  /** Watch changes under `prefix` strictly after `fromRevision`. */
  watch(prefix: string, fromRevision: bigint, handlers: WatchHandlers): Watcher;
  /** Backend health and lease. */
  status(): Promise<KvStatus>;
  /** Releases connections and timers; does not revoke the lease (keys survive a restart within TTL). */
  close(): Promise<void>;
}
