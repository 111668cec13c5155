/**
 * Writes of the consul store (consul-store.ts) and the keys they bind to its session.
 *
 * Writes go through `/v1/txn` rather than `PUT`/`DELETE /v1/kv/<key>`, because the KV endpoint
 * cannot express this contract (checked against Consul's `agent/kvs_endpoint.go` and state store):
 * - a KV PUT answers only `true`/`false`, never the new ModifyIndex, so `put`/`create` could not
 *   return their revision without a racy read-back; a transaction returns the written entry;
 * - `?cas`, `?acquire` and `?release` cannot be combined in one PUT (400 "Conflicting flags"), so
 *   a leased create-only or leased compare-and-swap write is impossible; in a transaction it is
 *   `check-not-exists`/`check-index` followed by `lock`, atomically;
 * - `DELETE ?cas=N` answers `true` for a key that does not exist, so `atomicDelete` could not
 *   report a missing key; `check-index` + `delete` fails for it.
 *
 * A leased write is a `lock` with the store's session: Consul ignores a session on a plain write,
 * and only `acquire`/`lock` binds a key, so that the key is deleted when the session is
 * invalidated. An unleased write to a key this store holds releases it (`unlock`), matching the
 * other backends where a put without `leased` detaches the key. A leased write to a key another
 * session holds (say this daemon's previous run, whose session has not yet expired) deletes and
 * re-creates the key under this store's session in one transaction, since only the holder may
 * release a key: its createRevision changes.
 *
 * Every write resolves only once the store's watchers covering its keys have seen it (the
 * store's `settleWrite`/`settleDeletes`), so a caller's own writes are observed one by one.
 */
import { KvUnavailableError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { CasResult, KvPair, TxnCondition, TxnOperation, TxnResult } from '../kvstore.js';
import type { ConsulKvApi } from './consul-kv-api.js';
import type { ConsulSession } from './consul-session.js';
import type { KVPair, TxnOp } from './consul-wire.js';

/** Attempts of a leased write whose session is lost or whose key another session holds. */
const LEASED_WRITE_ATTEMPTS = 4;
/**
 * Attempts of a transaction: besides the leased-write causes, a value condition (read, then
 * `check-index`) whose key was rewritten with the same value between the read and the commit.
 */
const TRANSACTION_ATTEMPTS = 8;

/** Outcome of a conditional write before the current pair is looked up. */
type WriteOutcome = { ok: true; revision: bigint } | { ok: false };

/** A deleted key and the revision the store's watchers must see it deleted at (or after). */
export interface DeletedKey {
  key: string;
  modRevision: bigint;
}

/** What the writer needs from its store. */
export interface ConsulWriteContext {
  api: ConsulKvApi;
  session: ConsulSession;
  /** The agent's address, as error messages name it. */
  address: string;
  logger: Logger;
  /** The store's read of one key (it fails once the store is closed). */
  get(key: string): Promise<KvPair | undefined>;
  /** Waits (bounded) until the store's watchers covering `key` have seen `revision`. */
  settleWrite(key: string, revision: bigint): Promise<void>;
  /** Waits (bounded) until the store's watchers covering each key have seen it deleted. */
  settleDeletes(deleted: DeletedKey[]): Promise<void>;
}

/** The writes of one consul store. */
export class ConsulWriter {
  private readonly api: ConsulKvApi;
  private readonly session: ConsulSession;
  private readonly address: string;
  private readonly logger: Logger;
  /** Keys this store bound with `lock`, and the session they were bound to. */
  private readonly boundKeys = new Map<string, string>();

  constructor(private readonly context: ConsulWriteContext) {
    this.api = context.api;
    this.session = context.session;
    this.address = context.address;
    this.logger = context.logger;
  }

  /** Forgets every binding (the session they were bound to is gone). */
  forgetBindings(): void {
    this.boundKeys.clear();
  }

  /** Unconditional write; returns the key's new ModifyIndex (unchanged if the value and binding were already so). */
  async put(key: string, value: string, leased: boolean | undefined): Promise<bigint> {
    const outcome = leased
      ? await this.writeLeased('put', key, value, undefined)
      : await this.writeUnleased('put', key, value, undefined);
    if (!outcome.ok) throw new KvUnavailableError(`consul ${this.address}: put ${key} failed unexpectedly`);
    await this.context.settleWrite(key, outcome.revision);
    return outcome.revision;
  }

  /**
   * Create-only (`'absent'`: `cas` with index 0, or `check-not-exists` + `lock` when leased) or
   * compare-and-swap write (`prevRevision` > 0: `cas`, or `check-index` + `lock`).
   */
  async conditionalPut(
    what: string,
    key: string,
    value: string,
    prevRevision: bigint | 'absent',
    leased: boolean | undefined,
  ): Promise<CasResult> {
    const outcome = leased
      ? await this.writeLeased(what, key, value, prevRevision)
      : await this.writeUnleased(what, key, value, prevRevision === 'absent' ? 0n : prevRevision);
    return this.casResult(key, outcome);
  }

  /** Unconditional delete; true if a key was removed. */
  async delete(key: string): Promise<boolean> {
    const outcome = await this.api.txn(`delete ${key}`, [
      { KV: { Verb: 'get', Key: key } },
      { KV: { Verb: 'delete', Key: key } },
    ]);
    if (!outcome.ok) {
      if (outcome.errors.every((error) => error.OpIndex === 0)) return false; // "key doesn't exist"
      throw this.api.txnFailure(`delete ${key}`, outcome.errors);
    }
    this.boundKeys.delete(key);
    await this.context.settleDeletes([{ key, modRevision: outcome.results[0]!.ModifyIndex }]);
    return true;
  }

  /** Deletes only if the key's ModifyIndex is `prevRevision` (> 0); true if removed. */
  async atomicDelete(key: string, prevRevision: bigint): Promise<boolean> {
    const outcome = await this.api.txn(`atomicDelete ${key}`, [
      { KV: { Verb: 'check-index', Key: key, Index: prevRevision } },
      { KV: { Verb: 'delete', Key: key } },
    ]);
    if (!outcome.ok) {
      if (outcome.errors.every((error) => error.OpIndex === 0)) return false;
      throw this.api.txnFailure(`atomicDelete ${key}`, outcome.errors);
    }
    this.boundKeys.delete(key);
    await this.context.settleDeletes([{ key, modRevision: prevRevision }]);
    return true;
  }

  /** Deletes every key under `prefix` in one transaction; returns how many were removed. */
  async deletePrefix(prefix: string): Promise<number> {
    const outcome = await this.api.txn(`deletePrefix ${prefix}`, [
      { KV: { Verb: 'get-tree', Key: prefix } },
      { KV: { Verb: 'delete-tree', Key: prefix } },
    ]);
    if (!outcome.ok) throw this.api.txnFailure(`deletePrefix ${prefix}`, outcome.errors);
    for (const entry of outcome.results) this.boundKeys.delete(entry.Key);
    await this.context.settleDeletes(
      outcome.results.map((entry) => ({ key: entry.Key, modRevision: entry.ModifyIndex })),
    );
    return outcome.results.length;
  }

  /**
   * One `/v1/txn`: conditions as `check-not-exists` / `check-index` (Consul cannot compare values:
   * a value condition reads the key first and checks the ModifyIndex it read, retried when the key
   * was rewritten meanwhile), then the operations: leased puts as `lock` with this store's session
   * (a key another session holds is taken over by `delete-cas` + `lock`, as in a single leased
   * write), unleased puts as `set` (`unlock` for a key this store holds), deletes as
   * `get-or-empty` + `delete` (the read tells the revision this store's watchers must see deleted).
   * The caller checked the transaction's shape and keys.
   */
  async transaction(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): Promise<TxnResult> {
    const what = `transaction on ${[...conditions, ...operations].map((x) => x.key).join(', ')}`;
    /** Keys held by another session and the ModifyIndex to take them over at. */
    const takeOver = new Map<string, bigint>();
    let lastError = '';
    for (let attempt = 1; attempt <= TRANSACTION_ATTEMPTS; attempt++) {
      const ops: TxnOp[] = [];
      /** What each op stands for: a condition index, or an operation index. */
      const origin: ({ condition: number } | { operation: number })[] = [];
      for (const [i, condition] of conditions.entries()) {
        if ('absent' in condition) ops.push({ KV: { Verb: 'check-not-exists', Key: condition.key } });
        else if ('modRevision' in condition)
          ops.push({ KV: { Verb: 'check-index', Key: condition.key, Index: condition.modRevision } });
        else {
          const pair = await this.context.get(condition.key);
          if (pair?.value !== condition.value) return this.failedTransaction(conditions);
          ops.push({ KV: { Verb: 'check-index', Key: condition.key, Index: pair.modRevision } });
        }
        origin.push({ condition: i });
      }
      const session = operations.some((o) => o.op === 'put' && o.leased === true)
        ? await this.session.ensure()
        : this.session.current;
      for (const [i, operation] of operations.entries()) {
        const key = operation.key;
        if (operation.op === 'delete') {
          ops.push({ KV: { Verb: 'get-or-empty', Key: key } }, { KV: { Verb: 'delete', Key: key } });
          origin.push({ operation: i }, { operation: i });
          continue;
        }
        const encoded = Buffer.from(operation.value, 'utf8').toString('base64');
        const base = takeOver.get(key);
        if (operation.leased === true && base !== undefined) {
          ops.push({ KV: { Verb: 'delete-cas', Key: key, Index: base } });
          origin.push({ operation: i });
        }
        if (operation.leased === true) ops.push({ KV: { Verb: 'lock', Key: key, Value: encoded, Session: session! } });
        else if (session !== undefined && this.boundKeys.get(key) === session)
          ops.push({ KV: { Verb: 'unlock', Key: key, Value: encoded, Session: session } });
        else ops.push({ KV: { Verb: 'set', Key: key, Value: encoded } });
        origin.push({ operation: i });
      }

      const outcome = await this.api.txn(what, ops);
      if (outcome.ok) return this.committedTransaction(ops, outcome.results, operations, session);

      let retry = false;
      for (const error of outcome.errors) {
        const from = origin[error.OpIndex];
        if (from === undefined) throw this.api.txnFailure(what, outcome.errors);
        if ('condition' in from) {
          // A value condition's key changed after it was read: read it again.
          if ('value' in conditions[from.condition]!) {
            retry = true;
            continue;
          }
          return this.failedTransaction(conditions);
        }
        const operation = operations[from.operation]!;
        const verb = ops[error.OpIndex]!.KV.Verb;
        lastError = error.What;
        if (/invalid session/i.test(error.What) && session !== undefined)
          this.session.lost(session, `consul refused session ${session} in ${what}: ${error.What}`);
        else if (verb === 'unlock')
          this.boundKeys.delete(operation.key); // no longer ours: a plain set next time
        else if (verb === 'delete-cas')
          takeOver.delete(operation.key); // changed again: look again
        else if (verb === 'lock' && /already held/i.test(error.What)) {
          const current = (await this.context.get(operation.key))?.modRevision;
          if (current !== undefined) takeOver.set(operation.key, current);
        } else if (verb === 'lock' && /lock delay/i.test(error.What)) {
          throw new KvUnavailableError(
            `consul ${this.address}: ${what}: ` +
              `${operation.key} is in its lock-delay after the session that held it ended; retry shortly`,
          );
        } else throw this.api.txnFailure(what, outcome.errors);
        retry = true;
      }
      if (!retry) throw this.api.txnFailure(what, outcome.errors);
    }
    throw new KvUnavailableError(
      `consul ${this.address}: ${what} failed ${TRANSACTION_ATTEMPTS} times; last error: ` +
        `${lastError || 'a value condition kept changing'}`,
    );
  }

  /** The not-applied result: every condition key as it is now. */
  private async failedTransaction(conditions: readonly TxnCondition[]): Promise<TxnResult> {
    const current = new Map<string, KvPair | undefined>();
    for (const { key } of conditions) if (!current.has(key)) current.set(key, await this.context.get(key));
    return { ok: false, current };
  }

  /** Records bindings of a committed transaction and waits for this store's watchers to see it. */
  private async committedTransaction(
    ops: readonly TxnOp[],
    results: readonly KVPair[],
    operations: readonly TxnOperation[],
    session: string | undefined,
  ): Promise<TxnResult> {
    // Results come in op order from every verb but check-not-exists, delete and delete-cas.
    const byOp = new Map<number, KVPair>();
    let next = 0;
    ops.forEach((op, i) => {
      if (!['check-not-exists', 'delete', 'delete-cas'].includes(op.KV.Verb)) byOp.set(i, results[next++]!);
    });
    let revision = 0n;
    const written: { key: string; revision: bigint }[] = [];
    const deleted: DeletedKey[] = [];
    ops.forEach((op, i) => {
      const entry = byOp.get(i);
      const { Verb: verb, Key: key } = op.KV;
      if (entry !== undefined && ['lock', 'unlock', 'set'].includes(verb)) {
        written.push({ key, revision: entry.ModifyIndex });
        if (entry.ModifyIndex > revision) revision = entry.ModifyIndex;
      }
      if (verb === 'get-or-empty' && entry !== undefined && entry.ModifyIndex > 0n)
        deleted.push({ key, modRevision: entry.ModifyIndex });
    });
    for (const operation of operations) {
      if (operation.op === 'put' && operation.leased === true && session !== undefined)
        this.boundKeys.set(operation.key, session);
      else this.boundKeys.delete(operation.key);
    }
    await Promise.all([
      ...written.map((w) => this.context.settleWrite(w.key, w.revision)),
      this.context.settleDeletes(deleted),
    ]);
    // A transaction that only deleted (or did nothing) leaves no index in its answer.
    return { ok: true, revision: revision > 0n ? revision : this.api.knownIndex };
  }

  /**
   * A write without a lease: `set`, or `cas` when `prevRevision` is given (0 = create-only). A key
   * this store holds is released (`unlock`) by the same write instead.
   */
  private async writeUnleased(
    what: string,
    key: string,
    value: string,
    prevRevision: bigint | undefined,
  ): Promise<WriteOutcome> {
    const encoded = Buffer.from(value, 'utf8').toString('base64');
    const session = this.session.current;
    if (session !== undefined && this.boundKeys.get(key) === session && prevRevision !== 0n) {
      const ops: TxnOp[] = [];
      if (prevRevision !== undefined) ops.push({ KV: { Verb: 'check-index', Key: key, Index: prevRevision } });
      ops.push({ KV: { Verb: 'unlock', Key: key, Value: encoded, Session: session } });
      const released = await this.api.txn(`${what} ${key}`, ops);
      if (released.ok) {
        this.boundKeys.delete(key);
        return { ok: true, revision: released.results.at(-1)!.ModifyIndex };
      }
      if (prevRevision !== undefined && released.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      // No longer ours (deleted, or re-bound by another session): an ordinary write below.
      this.boundKeys.delete(key);
    }
    const op: TxnOp =
      prevRevision === undefined
        ? { KV: { Verb: 'set', Key: key, Value: encoded } }
        : { KV: { Verb: 'cas', Key: key, Value: encoded, Index: prevRevision } };
    const outcome = await this.api.txn(`${what} ${key}`, [op]);
    if (outcome.ok) return { ok: true, revision: outcome.results.at(-1)!.ModifyIndex };
    if (prevRevision !== undefined) return { ok: false };
    throw this.api.txnFailure(`${what} ${key}`, outcome.errors);
  }

  /**
   * A write bound to this store's session: `lock`, after `check-not-exists` (`'absent'`) or
   * `check-index` (a revision) when conditional. Replaces a lost session, and takes over a key
   * another session holds by deleting and re-creating it in one transaction.
   */
  private async writeLeased(
    what: string,
    key: string,
    value: string,
    condition: 'absent' | bigint | undefined,
  ): Promise<WriteOutcome> {
    const encoded = Buffer.from(value, 'utf8').toString('base64');
    let lastError = '';
    for (let attempt = 1; attempt <= LEASED_WRITE_ATTEMPTS; attempt++) {
      const session = await this.session.ensure();
      const lock: TxnOp = { KV: { Verb: 'lock', Key: key, Value: encoded, Session: session } };
      const ops: TxnOp[] = [];
      if (condition === 'absent') ops.push({ KV: { Verb: 'check-not-exists', Key: key } });
      else if (condition !== undefined) ops.push({ KV: { Verb: 'check-index', Key: key, Index: condition } });
      ops.push(lock);
      const outcome = await this.api.txn(`${what} ${key}`, ops);
      if (outcome.ok) {
        this.boundKeys.set(key, session);
        return { ok: true, revision: outcome.results.at(-1)!.ModifyIndex };
      }
      if (condition !== undefined && outcome.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      lastError = outcome.errors.map((error) => error.What).join('; ');

      if (/invalid session/i.test(lastError)) {
        this.session.lost(session, `consul refused session ${session} writing ${key}: ${lastError}`);
        continue;
      }
      if (/lock delay/i.test(lastError)) {
        throw new KvUnavailableError(
          `consul ${this.address}: ${what} ${key}: ` +
            'the key is in its lock-delay after the session that held it ended; retry shortly',
        );
      }
      if (!/already held/i.test(lastError)) throw this.api.txnFailure(`${what} ${key}`, outcome.errors);

      // Another session holds the key. Only the holder may release it, so take it over by
      // deleting and re-creating it, conditional on the revision we expect, in one transaction.
      const base = typeof condition === 'bigint' ? condition : (await this.context.get(key))?.modRevision;
      if (base === undefined) continue; // gone meanwhile: a plain lock will do
      const rebind = await this.api.txn(`${what} ${key} (take over from another session)`, [
        { KV: { Verb: 'delete-cas', Key: key, Index: base } },
        lock,
      ]);
      if (rebind.ok) {
        this.boundKeys.set(key, session);
        this.logger.info({ key, session }, 'took over a key held by another consul session');
        return { ok: true, revision: rebind.results.at(-1)!.ModifyIndex };
      }
      if (typeof condition === 'bigint' && rebind.errors.some((error) => error.OpIndex === 0)) return { ok: false };
      lastError = rebind.errors.map((error) => error.What).join('; ');
      if (/invalid session/i.test(lastError))
        this.session.lost(session, `consul refused session ${session} writing ${key}: ${lastError}`);
    }
    throw new KvUnavailableError(
      `consul ${this.address}: ${what} ${key} with this store's session failed ${LEASED_WRITE_ATTEMPTS} ` +
        `times; last error: ${lastError}`,
    );
  }

  private async casResult(key: string, outcome: WriteOutcome): Promise<CasResult> {
    if (!outcome.ok) return { ok: false, current: await this.context.get(key) };
    await this.context.settleWrite(key, outcome.revision);
    return { ok: true, revision: outcome.revision };
  }
}
