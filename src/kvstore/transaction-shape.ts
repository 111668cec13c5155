/**
 * The limits every backend enforces on {@link KvStore.transaction} before sending anything, so
 * that a transaction valid on one backend is valid on all of them.
 */
import { BadRequestError } from '../util/errors.js';
import { MAX_TXN_OPERATIONS, type TxnCondition, type TxnOperation, type TxnRequest } from './kvstore.js';

/**
 * Throws BadRequestError when the transaction has more than {@link MAX_TXN_OPERATIONS}
 * conditions plus operations, or writes one key twice (etcd refuses "duplicate key given in txn
 * request"; Consul would apply both in order), or compares a mod revision <= 0 (etcd reads an
 * absent key's revision as 0; say `absent` for that).
 */
export function assertTransactionShape(conditions: readonly TxnCondition[], operations: readonly TxnOperation[]): void {
  const size = conditions.length + operations.length;
  if (size > MAX_TXN_OPERATIONS) {
    throw new BadRequestError(
      `kvstore transaction with ${conditions.length} conditions and ${operations.length} operations: ` +
        `at most ${MAX_TXN_OPERATIONS} in all; split it`,
    );
  }
  for (const condition of conditions) {
    if ('modRevision' in condition && condition.modRevision <= 0n) {
      throw new BadRequestError(
        `kvstore transaction: condition on ${condition.key} at revision ${condition.modRevision}: ` +
          'no key has it; use { absent: true }',
      );
    }
  }
  const written = new Set<string>();
  for (const operation of operations) {
    if (written.has(operation.key))
      throw new BadRequestError(`kvstore transaction writes key ${operation.key} twice; write each key once`);
    written.add(operation.key);
  }
}

/**
 * Throws BadRequestError when a batch has more than {@link MAX_TXN_OPERATIONS} transactions, one
 * of them breaks {@link assertTransactionShape}, or two of them write the same key.
 */
export function assertBatchShape(requests: readonly TxnRequest[]): void {
  if (requests.length > MAX_TXN_OPERATIONS) {
    throw new BadRequestError(
      `kvstore transaction batch of ${requests.length}: at most ${MAX_TXN_OPERATIONS} transactions; split it`,
    );
  }
  const written = new Set<string>();
  for (const request of requests) {
    assertTransactionShape(request.conditions, request.operations);
    for (const operation of request.operations) {
      if (written.has(operation.key))
        throw new BadRequestError(
          `kvstore transaction batch writes key ${operation.key} in two transactions; batch them apart`,
        );
      written.add(operation.key);
    }
  }
}
