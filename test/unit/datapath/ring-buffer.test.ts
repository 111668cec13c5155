/**
 * The ring-buffer reader delivers what a BPF program submits, in order and complete, off the main
 * thread; load-time constants reach the program. Records come from fixtures/ringbuf.bpf.c, driven
 * by BPF_PROG_TEST_RUN.
 */
import t from 'tap';
import { bpfNative } from '../../../src/datapath/bpf/native.js';
import { loadObject } from '../../../src/datapath/bpf/programs.js';
import { bpfSkipReason, compileFixture } from './fixtures/bpf-sandbox.js';

const skip = bpfSkipReason();
const TC_ACT_OK = 0;

/** Collects records until `count` have arrived (or the timeout passes). */
function collector() {
  const records: Buffer[] = [];
  let waiter: { count: number; resolve: () => void } | undefined;
  return {
    records,
    onRecords(batch: Buffer[] | null, error?: Error) {
      if (!batch) throw error;
      records.push(...batch);
      if (waiter && records.length >= waiter.count) waiter.resolve();
    },
    async waitFor(count: number, ms = 5000): Promise<void> {
      if (records.length >= count) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${records.length} of ${count} records after ${ms} ms`)), ms);
        waiter = {
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    },
  };
}

t.test('records arrive as Buffers, in order, with the load-time constant set', { skip }, async (t) => {
  const object = await loadObject(compileFixture(t, 'ringbuf'), { constants: { marker: Buffer.from([0x5a]) } });
  t.teardown(() => object.close());
  const received = collector();
  const reader = new (bpfNative().RingBufferReader)(object.map('records').fd, received.onRecords);
  t.teardown(() => reader.close());

  const packets = [1, 2, 3].map((n) => Buffer.alloc(64, n));
  for (const packet of packets) t.equal(object.program('emit_record').testRun(packet).retval, TC_ACT_OK);
  await received.waitFor(3);
  t.same(
    received.records.map((r) => [...r]),
    packets.map((p) => [0x5a, ...p.subarray(0, 15)]),
    'marker, then the packet bytes, one record per run',
  );
});

t.test('a burst of records is delivered completely, and close() stops the reader', { skip }, async (t) => {
  const object = await loadObject(compileFixture(t, 'ringbuf'));
  t.teardown(() => object.close());
  const received = collector();
  const reader = new (bpfNative().RingBufferReader)(object.map('records').fd, received.onRecords);
  t.teardown(() => reader.close());

  // One run per call: a test run with repeat > 1 stops with EINTR when a signal arrives.
  for (let i = 0; i < 5000; i++) object.program('emit_record').testRun(Buffer.alloc(64, 7));
  await received.waitFor(5000);
  t.equal(received.records.length, 5000, 'every record of 5000 runs');
  t.ok(
    received.records.every((r) => r.length === 16 && r[0] === 0 && r[1] === 7),
    'intact',
  );

  await reader.close();
  await reader.close();
  t.pass('close() resolves, twice');
  object.program('emit_record').testRun(Buffer.alloc(64, 8));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(received.records.length, 5000, 'nothing is delivered after close');
});
