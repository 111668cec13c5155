/**
 * Consul's KV, txn and status endpoints as the consul store (consul-store.ts) calls them: reads
 * of a key or a prefix (blocking or not), one `/v1/txn`, the raft leader, and the highest raft
 * index any answer showed (every index up to it is committed).
 */
import { KvUnavailableError } from '../../util/errors.js';
import type { KvPair } from '../kvstore.js';
import type { ConsulHttpClient } from './consul-client.js';
import { kvPath } from './consul-keys.js';
import { formatGoDuration } from './consul-options.js';
import type { PrefixState } from './consul-watcher.js';
import {
  parseConsulJson,
  stringifyConsulJson,
  type KVPair,
  type TxnError,
  type TxnOp,
  type TxnResponse,
} from './consul-wire.js';

/** Outcome of one `/v1/txn` call. */
export type TxnOutcome = { ok: true; results: KVPair[] } | { ok: false; errors: TxnError[] };

/** Options of {@link ConsulKvApi}. */
export interface ConsulKvApiOptions {
  client: ConsulHttpClient;
  /** The agent's address, as error messages name it. */
  address: string;
  /** Deadline of every call except blocking queries. */
  requestTimeoutMs: number;
  /** How long one blocking query waits for a change. */
  watchWaitMs: number;
}

/** The calls of one consul store. */
export class ConsulKvApi {
  private readonly client: ConsulHttpClient;
  private readonly address: string;
  private readonly requestTimeoutMs: number;
  private readonly watchWaitMs: number;
  /** Highest raft index seen in any KV answer: every index up to it is committed. */
  private highestIndex = 0n;

  constructor(options: ConsulKvApiOptions) {
    this.client = options.client;
    this.address = options.address;
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.watchWaitMs = options.watchWaitMs;
  }

  /** Highest raft index seen in any KV answer. */
  get knownIndex(): bigint {
    return this.highestIndex;
  }

  /** The value of one key, or undefined (`GET /v1/kv/<key>`). */
  async get(key: string): Promise<KvPair | undefined> {
    const reply = await this.client.request({
      method: 'GET',
      path: kvPath(key),
      accept: [200, 404],
      what: `get ${key}`,
    });
    if (reply.index !== undefined) this.observeIndex(reply.index);
    if (reply.status === 404) return undefined;
    const [entry] = parseConsulJson(reply.body) as KVPair[];
    return entry === undefined ? undefined : toPair(entry);
  }

  /**
   * Every key under `prefix`, sorted, and the answer's `X-Consul-Index`. Without `index` at once;
   * with it, a blocking query answering when the prefix's index passes `index` or the wait ends.
   */
  async readPrefix(prefix: string, index: bigint | undefined, signal?: AbortSignal): Promise<PrefixState> {
    const blocking = index !== undefined;
    const query = blocking ? `?recurse&index=${index}&wait=${formatGoDuration(this.watchWaitMs)}` : '?recurse';
    const reply = await this.client.request({
      method: 'GET',
      path: kvPath(prefix) + query,
      accept: [200, 404],
      what: blocking ? `watch ${prefix}` : `list ${prefix}`,
      // Consul adds up to wait/16 of jitter to a blocking query's wait.
      ...(blocking && { timeoutMs: Math.ceil(this.watchWaitMs * (17 / 16)) + this.requestTimeoutMs }),
      ...(signal !== undefined && { signal }),
    });
    if (reply.index === undefined) {
      throw new KvUnavailableError(
        `consul ${this.address}: ${blocking ? 'watch' : 'list'} ${prefix}: the answer has no X-Consul-Index`,
      );
    }
    this.observeIndex(reply.index);
    const entries = reply.status === 200 ? (parseConsulJson(reply.body) as KVPair[]) : [];
    const pairs = entries.map(toPair).sort((a, b) => compareUtf8(a.key, b.key));
    return { index: reply.index, pairs };
  }

  /** One `/v1/txn`: the written entries, or (409) why it was not applied. */
  async txn(what: string, ops: TxnOp[]): Promise<TxnOutcome> {
    const reply = await this.client.request({
      method: 'PUT',
      path: '/v1/txn',
      body: stringifyConsulJson(ops),
      accept: [200, 409],
      what,
    });
    const response = parseConsulJson(reply.body) as TxnResponse;
    if (reply.status === 409) return { ok: false, errors: response.Errors ?? [] };
    const results = (response.Results ?? []).flatMap((result) => (result.KV !== undefined ? [result.KV] : []));
    for (const entry of results) this.observeIndex(entry.ModifyIndex);
    return { ok: true, results };
  }

  /** The error of a transaction Consul refused for a reason the caller does not handle. */
  txnFailure(what: string, errors: TxnError[]): KvUnavailableError {
    return new KvUnavailableError(
      `consul ${this.address}: ${what} failed: ` +
        `${errors.map((error) => `operation ${error.OpIndex}: ${error.What}`).join('; ')}`,
    );
  }

  /** The raft leader's address, '' when the cluster has none. */
  async leader(): Promise<string> {
    const reply = await this.client.request({
      method: 'GET',
      path: '/v1/status/leader',
      accept: [200],
      what: 'read the raft leader',
    });
    const leader = JSON.parse(reply.body) as unknown;
    return typeof leader === 'string' ? leader : '';
  }

  private observeIndex(index: bigint): void {
    if (index > this.highestIndex) this.highestIndex = index;
  }
}

function toPair(entry: KVPair): KvPair {
  return {
    key: entry.Key,
    value: entry.Value === null ? '' : Buffer.from(entry.Value, 'base64').toString('utf8'),
    createRevision: entry.CreateIndex,
    modRevision: entry.ModifyIndex,
    ...(entry.Session !== undefined && entry.Session !== '' && { lease: entry.Session }),
  };
}

/** UTF-8 byte order (Consul's radix-tree order; also code point order). */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
