/**
 * The etcd store's keys inside etcd's keyspace (etcd-store.ts): every key under the configured
 * namespace, as bytes; prefixes as `[key, range_end)` ranges; and the compares and Txn requests a
 * create, compare-and-swap or `KvStore.transaction` becomes, with their answers read back.
 */
import type { ICompare, IKeyValue, IRequestOp, IResponseOp, ITxnRequest } from 'etcd3';
import type { KvPair, TxnCondition, TxnOperation, TxnResult } from '../kvstore.js';

/** Keys, pairs and transactions of one store on the wire; `namespace` is prepended to every key. */
export class EtcdKeyspace {
  private readonly namespace: Buffer;

  constructor(namespace: string) {
    this.namespace = Buffer.from(namespace, 'utf8');
  }

  /** The wire key of `key`: namespace + UTF-8. */
  encodeKey(key: string): Buffer {
    return Buffer.concat([this.namespace, Buffer.from(key, 'utf8')]);
  }

  /** The caller's key of a wire key (the namespace stripped). */
  decodeKey(key: Buffer): string {
    return key.subarray(this.namespace.length).toString('utf8');
  }

  /** Wire range `[key, rangeEnd)` of every key starting with `prefix` (inside the namespace). */
  prefixRange(prefix: string): { key: Buffer; rangeEnd: Buffer } {
    const key = this.encodeKey(prefix);
    // etcd's "from key" form: key "\0" with range_end "\0" means every key.
    if (key.length === 0) return { key: Buffer.from([0]), rangeEnd: Buffer.from([0]) };
    return { key, rangeEnd: prefixEnd(key) };
  }

  /** The pair of a wire key-value. */
  toPair(kv: IKeyValue): KvPair {
    return {
      key: this.decodeKey(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: BigInt(kv.create_revision),
      modRevision: BigInt(kv.mod_revision),
      ...(kv.lease !== '0' && kv.lease !== '' && { lease: kv.lease }),
    };
  }

  /** The compare of a CAS: create revision 0 for `'absent'`, else mod revision equality. */
  revisionCompare(key: Buffer, prevRevision: bigint | 'absent'): ICompare {
    return prevRevision === 'absent'
      ? { key, target: 'Create', result: 'Equal', create_revision: '0' }
      : { key, target: 'Mod', result: 'Equal', mod_revision: prevRevision.toString() };
  }

  /**
   * The Txn of a create (`'absent'`) or compare-and-swap: the put (with `lease`, '0' for none) if
   * the compare holds, else a read of the key's current pair.
   */
  casRequest(key: string, value: string, prevRevision: bigint | 'absent', lease: string): ITxnRequest {
    const wireKey = this.encodeKey(key);
    return {
      compare: [this.revisionCompare(wireKey, prevRevision)],
      success: [{ request_put: { key: wireKey, value: Buffer.from(value, 'utf8'), lease } }],
      failure: [{ request_range: { key: wireKey } }],
    };
  }

  /**
   * One transaction as an etcd Txn: the conditions as compares (create revision 0, mod revision,
   * or value), the operations as the success branch (leased puts with `lease`, else lease 0), and
   * a range of every condition's key as the failure branch, so a failed transaction costs no
   * second round trip.
   */
  txnRequest(conditions: readonly TxnCondition[], operations: readonly TxnOperation[], lease: string) {
    const compare: ICompare[] = conditions.map((c) => {
      const key = this.encodeKey(c.key);
      if ('absent' in c) return this.revisionCompare(key, 'absent');
      if ('modRevision' in c) return this.revisionCompare(key, c.modRevision);
      return { key, target: 'Value', result: 'Equal', value: Buffer.from(c.value, 'utf8') };
    });
    const success: IRequestOp[] = operations.map((o) =>
      o.op === 'put'
        ? {
            request_put: {
              key: this.encodeKey(o.key),
              value: Buffer.from(o.value, 'utf8'),
              lease: o.leased === true ? lease : '0',
            },
          }
        : { request_delete_range: { key: this.encodeKey(o.key) } },
    );
    const failure: IRequestOp[] = conditions.map((c) => ({ request_range: { key: this.encodeKey(c.key) } }));
    return { compare, success, failure };
  }

  /**
   * The result of a Txn built by {@link txnRequest}: committed at `revision`, or the conditions' keys as they are now.
   */
  txnResult(
    conditions: readonly TxnCondition[],
    succeeded: boolean,
    responses: readonly IResponseOp[],
    revision: string,
  ): TxnResult {
    if (succeeded) return { ok: true, revision: BigInt(revision) };
    const current = new Map<string, KvPair | undefined>();
    conditions.forEach((c, i) => {
      const kv = responses[i]?.response_range.kvs[0];
      current.set(c.key, kv && this.toPair(kv));
    });
    return { ok: false, current };
  }
}

/**
 * The smallest byte string greater than every string starting with `prefix` (clientv3's
 * `GetPrefixRangeEnd`): drop trailing 0xff bytes, increment the last; "\0" if none is left.
 */
function prefixEnd(prefix: Buffer): Buffer {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return Buffer.from([0]);
  const rangeEnd = Buffer.from(prefix.subarray(0, end));
  rangeEnd[end - 1] = rangeEnd[end - 1]! + 1;
  return rangeEnd;
}
