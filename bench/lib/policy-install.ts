/**
 * Policy install rate through bpf-napi (src/datapath/bpf/), run by bench/datapath.ts inside a lab
 * host (whose /sys/fs/bpf is a private bpffs) as
 *
 *   node --import=<tap TS loader> bench/lib/policy-install.ts PIN_ROOT ENTRIES REPS
 *
 * Loads bpf/lxc.bpf.o with its maps pinned under PIN_ROOT (a fresh directory; removed at the
 * end), with cilium_policy sized for ENTRIES, and per repetition times:
 *
 *  - typed:  PolicyMap.setMany(ENTRIES domain entries) = encode every key and value (abi.ts),
 *            concatenate, one BPF_MAP_UPDATE_BATCH on the thread pool: what a regeneration pays;
 *  - raw:    the addon's mapUpdateBatch on pre-encoded buffers: the kernel + addon cost alone;
 *  - delete: BpfMap.deleteBatch of every key (the map is emptied between writes);
 *  - encode: the typed path's encoding alone (abi.ts writers into two packed buffers, no syscall);
 *  - hash:   the raw batch into a BPF_MAP_TYPE_HASH of the same key/value size (reference: what
 *            the kernel's LPM trie costs over a hash table);
 *  - sync1:  (first repetition) PolicyMap.syncEndpoint of ONE endpoint's 100 entries while the
 *            map holds ENTRIES entries of other endpoints: the first loads PolicyMap's mirror (a
 *            full read, as after a restart), the next (2 entries changed) diffs against it.
 *
 * Prints one JSON object on stdout. Progress goes to stderr.
 */
import { readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { loadLxcDatapath } from '../../src/datapath/bpf/programs.js';
import { bpfNative } from '../../src/datapath/bpf/native.js';
import { BpfMap, MapType } from '../../src/datapath/bpf/bpf-map.js';
import type { EndpointPolicyEntry } from '../../src/datapath/bpf/maps.js';
import type { PolicyKey, PolicyValue } from '../../src/datapath/bpf/abi.js';
import { encodePolicyKey, encodePolicyValue, writePolicyKey, writePolicyValue } from '../../src/datapath/bpf/abi.js';

const [pinRoot, entriesArg = '1000000', repsArg = '3'] = process.argv.slice(2);
if (!pinRoot) throw new Error('usage: policy-install.ts PIN_ROOT [ENTRIES] [REPS]');
const N = Number(entriesArg);
const REPS = Number(repsArg);

/**
 * The i-th of N distinct, realistic keys: endpoints 1..8, both directions, 1 000 peer identities
 * from 256, 64 TCP/UDP ports (like 8 endpoints each allowing 1 000 peers on a port list).
 */
function key(i: number): PolicyKey {
  const port = i % 64;
  const peer = Math.floor(i / 64) % 1000;
  const dir = Math.floor(i / 64_000) % 2;
  const ep = Math.floor(i / 128_000);
  return {
    epId: 1 + ep,
    direction: dir === 0 ? 'ingress' : 'egress',
    peer: 256 + peer,
    protocol: port % 2 === 0 ? 6 : 17,
    dport: 1000 + port,
    portPrefixLen: 16,
  };
}

function progress(msg: string): void {
  process.stderr.write(`  [policy-install] ${msg}\n`);
}

const ms = (t0: number) => performance.now() - t0;

const dp = await loadLxcDatapath({ pinRoot, maxEntries: { policy: N + 1024 } });
try {
  const policy = dp.policy;
  const map = policy.map;
  if (map.info.maxEntries < N) throw new Error(`cilium_policy has max_entries ${map.info.maxEntries} < ${N}`);
  const entries: Array<[PolicyKey, PolicyValue]> = [];
  for (let i = 0; i < N; i++) entries.push([key(i), { verdict: 'allow', cookie: 1 + (i % 50) }]);
  const keyBytes = map.info.keySize;
  const valueBytes = map.info.valueSize;
  const keysBuf = Buffer.alloc(N * keyBytes);
  const valuesBuf = Buffer.alloc(N * valueBytes);
  for (let i = 0; i < N; i++) {
    encodePolicyKey(entries[i]![0]).copy(keysBuf, i * keyBytes);
    encodePolicyValue(entries[i]![1], entries[i]![0]).copy(valuesBuf, i * valueBytes);
  }
  const keyList: Buffer[] = [];
  for (let i = 0; i < N; i++) keyList.push(keysBuf.subarray(i * keyBytes, (i + 1) * keyBytes));

  const hash = BpfMap.create({
    name: 'bench_install',
    type: MapType.Hash,
    keySize: keyBytes,
    valueSize: valueBytes,
    maxEntries: N,
  });
  const reps: Array<Record<string, number>> = [];
  for (let r = 0; r < REPS; r++) {
    let t0 = performance.now();
    const written = await policy.setMany(entries);
    const typedMs = ms(t0);
    if (written !== N) throw new Error(`typed batch wrote ${written} of ${N}`);
    // First repetition only (each reads the whole map): count what the kernel holds (the write
    // really happened), and sync one endpoint (id 999, not among the N) beside the N entries.
    let countAfterTyped = NaN;
    let sync1Ms = NaN;
    let sync1Written = NaN;
    let sync1SteadyMs = NaN;
    let sync1SteadyWritten = NaN;
    if (r === 0) {
      countAfterTyped = 0;
      for await (const _ of map.entries(8192)) countAfterTyped++;
      if (countAfterTyped !== N) throw new Error(`map holds ${countAfterTyped} entries after writing ${N}`);
      const own: EndpointPolicyEntry[] = [];
      for (let i = 0; i < 100; i++)
        own.push({
          direction: 'ingress',
          peer: 5000 + i,
          protocol: 6,
          dport: 80,
          portPrefixLen: 16,
          verdict: 'allow',
          cookie: 7,
        });
      // The first sync after a bulk write loads the policy map's mirror (a full read, as after a
      // restart); later ones diff against it.
      t0 = performance.now();
      sync1Written = (await policy.syncEndpoint(999, own)).written;
      sync1Ms = ms(t0);
      own[0] = { ...own[0]!, cookie: 8 };
      own.push({ ...own[1]!, peer: 6000 });
      t0 = performance.now();
      sync1SteadyWritten = (await policy.syncEndpoint(999, own.slice(0, 100).concat(own.slice(100)))).written;
      sync1SteadyMs = ms(t0);
      await policy.removeEndpoint(999);
    }

    t0 = performance.now();
    const deleted = await map.deleteBatch(keyList);
    const deleteMs = ms(t0);
    if (deleted !== N) throw new Error(`delete batch removed ${deleted} of ${N}`);

    t0 = performance.now();
    const rawWritten = await bpfNative().mapUpdateBatch(map.fd, keysBuf, valuesBuf, 0);
    const rawMs = ms(t0);
    if (rawWritten !== N) throw new Error(`raw batch wrote ${rawWritten} of ${N}`);
    await map.deleteBatch(keyList);

    // What PolicyMap.setMany does before its syscall: encode straight into two packed buffers.
    t0 = performance.now();
    const ek = Buffer.alloc(N * keyBytes);
    const ev = Buffer.alloc(N * valueBytes);
    for (let i = 0; i < N; i++) {
      const [k, v] = entries[i]!;
      writePolicyKey(ek, i * keyBytes, k, k.epId);
      writePolicyValue(ev, i * valueBytes, v, k);
    }
    const encodeMs = ms(t0);
    if (!ek.equals(keysBuf) || !ev.equals(valuesBuf))
      throw new Error('packed encoding differs from the per-entry encoders');

    t0 = performance.now();
    const hashWritten = await bpfNative().mapUpdateBatch(hash.fd, keysBuf, valuesBuf, 0);
    const hashRawMs = ms(t0);
    if (hashWritten !== N) throw new Error(`hash batch wrote ${hashWritten} of ${N}`);
    await hash.deleteBatch(keyList);

    reps.push({
      typedMs,
      rawMs,
      deleteMs,
      encodeMs,
      hashRawMs,
      sync1Ms,
      sync1Written,
      sync1SteadyMs,
      sync1SteadyWritten,
      countAfterTyped,
    });
    progress(
      `rep ${r + 1}/${REPS}: typed ${typedMs.toFixed(0)} ms (encoding ${encodeMs.toFixed(0)} ms), ` +
        `raw ${rawMs.toFixed(0)} ms (hash map ${hashRawMs.toFixed(0)} ms), ` +
        `delete ${deleteMs.toFixed(0)} ms` +
        (r === 0
          ? `, sync of 100 entries beside ${N}: first ${sync1Ms.toFixed(0)} ms (loads the mirror), ` +
            `next ${sync1SteadyMs.toFixed(1)} ms (${sync1SteadyWritten} written)`
          : ''),
    );
  }
  hash.close();
  const summary = { entries: N, keyBytes, valueBytes, mapType: map.info.type, maxEntries: map.info.maxEntries, reps };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  dp.close();
  // The pins are the maps' last references: unlinking them frees the maps.
  for (const f of readdirSync(pinRoot)) unlinkSync(join(pinRoot, f));
  rmdirSync(pinRoot);
}
