/**
 * CleanupStack: undo steps run newest first, once; a failing undo is reported and the older ones
 * still run.
 */
import t from 'tap';
import { CleanupStack } from '../../../src/util/cleanup-stack.js';

const quiet = { info: () => undefined, warn: () => undefined };

t.test('undoes newest first, each once', async (t) => {
  const stack = new CleanupStack();
  const order: string[] = [];
  stack.push('links', () => void order.push('links'));
  stack.push('pins', async () => {
    await new Promise((r) => setTimeout(r, 5));
    order.push('pins');
  });
  stack.push('socket', () => void order.push('socket'));
  t.equal(stack.size, 3);
  t.same(await stack.unwind(quiet), [], 'nothing failed');
  t.same(order, ['socket', 'pins', 'links']);
  t.equal(stack.size, 0, 'emptied');
  await stack.unwind(quiet);
  t.same(order, ['socket', 'pins', 'links'], 'a second unwind runs nothing again');
});

t.test('a failing undo is reported and the rest still run', async (t) => {
  const stack = new CleanupStack();
  const order: string[] = [];
  const warnings: unknown[] = [];
  stack.push('links', () => void order.push('links'));
  stack.push('rule', () => {
    throw new Error('iptables: no chain');
  });
  stack.push('socket', async () => {
    order.push('socket');
    throw new Error('gone');
  });
  const failed = await stack.unwind({ info: () => undefined, warn: (o: unknown) => void warnings.push(o) });
  t.same(failed, ['socket', 'rule']);
  t.same(order, ['socket', 'links'], 'links undone after two failures');
  t.match(warnings, [
    { step: 'socket', err: { message: 'gone' } },
    { step: 'rule', err: { message: 'iptables: no chain' } },
  ]);
});
