/**
 * How the addon fails: every kernel or libbpf failure is a BpfError with the errno name as code,
 * the failing call as syscall, and for a rejected program the verifier's log.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BpfMap, MapType } from '../../../src/datapath/bpf/bpf-map.js';
import { BpfError } from '../../../src/datapath/bpf/errors.js';
import { bpfNative } from '../../../src/datapath/bpf/native.js';
import { defaultLxcObjectPath, loadObject } from '../../../src/datapath/bpf/programs.js';
import { attachTcProgram } from '../../../src/datapath/bpf/tc.js';
import { bpfSkipReason, compileFixture, pinRoot } from './fixtures/bpf-sandbox.js';

const skip = bpfSkipReason();

t.test('a missing object file: ENOENT from bpf_object__open_file', { skip }, async (t) => {
  const err = await loadObject('/nonexistent/cdtest.bpf.o').then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, BpfError);
  t.match(err, { code: 'ENOENT', errno: 2, syscall: 'bpf_object__open_file', kind: 'NotFound' });
  t.match((err as Error).message, /\/nonexistent\/cdtest\.bpf\.o/, 'message names the file');
});

t.test('a file that is not an ELF object: libbpf format error with its log', { skip }, async (t) => {
  const path = join(tmpdir(), `cdtest-not-elf-${process.pid}.o`);
  writeFileSync(path, 'this is not an ELF file\n');
  t.teardown(() => rmSync(path, { force: true }));
  const err = await loadObject(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, BpfError);
  t.match(err, { syscall: 'bpf_object__open_file', code: /^(LIBBPF_ERRNO__|E)/ });
  t.match((err as BpfError).log, /elf/i, 'libbpf explains what it found');
});

t.test('a program the verifier rejects: the error carries the verifier log', { skip }, async (t) => {
  const object = compileFixture(t, 'bad');
  const err = await loadObject(object).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, BpfError);
  const bpfErr = err as BpfError;
  t.equal(bpfErr.syscall, 'bpf_object__load');
  t.ok(['EACCES', 'EINVAL', 'EPERM'].includes(bpfErr.code), `verifier errno (${bpfErr.code})`);
  t.match(bpfErr.log, /unchecked_read/, 'log names the program');
  t.match(bpfErr.verifierLog, /invalid access to packet/, 'verifier log says what is wrong');
});

t.test('a load-time constant the object does not have: ENOENT naming it', { skip }, async (t) => {
  const err = await loadObject(defaultLxcObjectPath, { constants: { cfg_no_such_setting: Buffer.from([1]) } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'ENOENT', message: /cfg_no_such_setting/ });
});

t.test('a load-time constant of the wrong size: EINVAL', { skip }, async (t) => {
  const err = await loadObject(defaultLxcObjectPath, { constants: { cfg_ct_lifetime_tcp: Buffer.from([1]) } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'EINVAL', syscall: 'bpf_map__set_initial_value', message: /cfg_ct_lifetime_tcp/ });
});

t.test('a pinned map that no longer matches the object: the load fails, the pin stays', { skip }, async (t) => {
  const root = pinRoot(t);
  const stale = BpfMap.create({ name: 'cilium_ct', type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 8 });
  stale.pin(join(root, 'cilium_ct'));
  stale.close();
  const err = await loadObject(defaultLxcObjectPath, { pinRoot: root }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'EINVAL', syscall: 'bpf_object__load' });
  t.match((err as BpfError).log, /couldn't reuse pinned map .*cilium_ct/, 'log names the map');
  t.same(readdirSync(root), ['cilium_ct'], 'the stale pin is kept, the maps pinned by the failed load are removed');
});

t.test('tc attach to a device that does not exist', { skip }, async (t) => {
  const object = await loadObject(defaultLxcObjectPath, { pinRoot: pinRoot(t) });
  t.teardown(() => object.close());
  t.throws(() => attachTcProgram(0x7ffffff0, 'ingress', object.program('from_container')), {
    code: /^(ENODEV|EINVAL|ENOENT)$/,
    syscall: 'bpf_tc_hook_create',
  });
});

t.test('map calls with wrong sizes are TypeErrors, not kernel writes', { skip }, async (t) => {
  const map = BpfMap.create({ name: 'cdtest_sizes', type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 4 });
  t.teardown(() => map.close());
  t.throws(() => map.update(Buffer.alloc(3), Buffer.alloc(8)), TypeError);
  t.throws(() => map.update(Buffer.alloc(4), Buffer.alloc(7)), TypeError);
  t.throws(() => bpfNative().mapLookup(map.fd, Buffer.alloc(4), Buffer.alloc(4), 0), TypeError);
  await t.rejects(() => bpfNative().mapUpdateBatch(map.fd, Buffer.alloc(6), Buffer.alloc(8), 0), TypeError);
});

t.test('kernel refusals come back as codes', { skip }, async (t) => {
  const map = BpfMap.create({ name: 'cdtest_full', type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 1 });
  t.teardown(() => map.close());
  map.update(Buffer.from([1, 0, 0, 0]), Buffer.alloc(4));
  t.throws(
    () => map.update(Buffer.from([2, 0, 0, 0]), Buffer.alloc(4)),
    { code: 'E2BIG', syscall: 'bpf_map_update_elem' },
    'map full',
  );
  t.throws(
    () => map.update(Buffer.from([1, 0, 0, 0]), Buffer.alloc(4), 'noexist'),
    { code: 'EEXIST', kind: 'Conflict' },
    'noexist on an existing key',
  );
  t.throws(() => BpfMap.openPinned(join(pinRoot(t), 'does-not-exist')), { code: 'ENOENT', syscall: 'bpf_obj_get' });
  const err = await map
    .updateBatch([Buffer.from([1, 0, 0, 0]), Buffer.from([3, 0, 0, 0])], [Buffer.alloc(4), Buffer.alloc(4)])
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.match(err, { code: 'E2BIG', syscall: 'bpf_map_update_batch', count: 1 }, 'batch failure says how far it got');
  map.close();
  t.throws(() => map.lookup(Buffer.alloc(4)), { code: 'ERR_DATAPATH', message: /closed/ }, 'a closed map says so');
});
