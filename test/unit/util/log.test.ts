/**
 * Errors keep their identity in the log: `{ err }` goes through pino's error serializer, so a
 * typed error's class, code, kind, stack and cause reach the JSON line (not only its message).
 */
import t from 'tap';
import type { DestinationStream } from 'pino';
import { createLogger } from '../../../src/util/log.js';
import { CleanupStack } from '../../../src/util/cleanup-stack.js';
import { KvUnavailableError, DatapathError } from '../../../src/util/errors.js';

/** A logger whose JSON lines are kept in `lines`. */
function capture(): { lines: Array<Record<string, unknown>>; destination: DestinationStream } {
  const lines: Array<Record<string, unknown>> = [];
  return {
    lines,
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  };
}

t.test('a logged typed error keeps its type, code, kind, message, stack and cause', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger(destination, 'info').child({ component: 'test' });
  const cause = new Error('connect ECONNREFUSED 127.0.0.1:2379');
  log.warn({ key: 'k', err: new KvUnavailableError('etcd is unreachable', { cause }) }, 'store call failed');
  t.equal(lines.length, 1);
  const err = lines[0]!.err as Record<string, unknown>;
  t.equal(err.type, 'KvUnavailableError');
  t.equal(err.code, 'ERR_KV_UNAVAILABLE');
  t.equal(err.kind, 'Unavailable');
  // pino's serializer folds the cause chain into the message and the stack.
  t.equal(err.message, 'etcd is unreachable: connect ECONNREFUSED 127.0.0.1:2379');
  t.match(
    err.stack,
    /^KvUnavailableError: etcd is unreachable\n\s+at .*log\.test\.ts/,
    'the stack, from where it was made',
  );
  t.match(err.stack, /caused by: Error: connect ECONNREFUSED 127\.0\.0\.1:2379/, 'and the cause');
  t.equal(lines[0]!.key, 'k', 'the other fields stay');
});

t.test('something thrown that is not an Error is logged as it is', async (t) => {
  const { lines, destination } = capture();
  createLogger(destination, 'info').warn({ err: 'plain text' }, 'odd throw');
  t.equal(lines[0]!.err, 'plain text');
});

t.test('a failing undo step logs the error itself (code and stack), not only its message', async (t) => {
  const { lines, destination } = capture();
  const stack = new CleanupStack();
  stack.push('remove the datapath', () => {
    throw new DatapathError('tc filter del failed on cilium_host');
  });
  await stack.unwind(createLogger(destination, 'info'));
  const warning = lines.find((l) => l.step === 'remove the datapath' && l.level === 40);
  t.ok(warning, 'the failure is logged');
  t.match(warning?.err, {
    type: 'DatapathError',
    code: 'ERR_DATAPATH',
    message: 'tc filter del failed on cilium_host',
    stack: /DatapathError: tc filter del failed/,
  });
});
