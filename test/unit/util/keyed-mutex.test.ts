/**
 * KeyedMutex: same key runs one at a time in call order, different keys run together, and a
 * failing task neither blocks the queue nor leaks the key.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { KeyedMutex } from '../../../src/util/keyed-mutex.js';

t.test('tasks with the same key never overlap and run in call order', async (t) => {
  const mutex = new KeyedMutex();
  let running = 0;
  let maxRunning = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      mutex.run('pool', async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await sleep(Math.random() * 3);
        order.push(i);
        running -= 1;
      }),
    ),
  );
  t.equal(maxRunning, 1);
  t.same(
    order,
    Array.from({ length: 20 }, (_, i) => i),
  );
  t.equal(mutex.activeKeys, 0, 'the key is forgotten once idle');
});

t.test('tasks with different keys run concurrently', async (t) => {
  const mutex = new KeyedMutex();
  let running = 0;
  let maxRunning = 0;
  await Promise.all(
    ['a', 'b', 'c'].map((key) =>
      mutex.run(key, async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await sleep(5);
        running -= 1;
      }),
    ),
  );
  t.equal(maxRunning, 3);
});

t.test('a rejected task passes its error on and the next task still runs', async (t) => {
  const mutex = new KeyedMutex();
  const failing = mutex.run('k', async () => {
    throw new Error('boom');
  });
  const next = mutex.run('k', async () => 'ran');
  await t.rejects(failing, { message: 'boom' });
  t.equal(await next, 'ran');
  t.equal(mutex.activeKeys, 0);
});
