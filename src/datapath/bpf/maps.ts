/**
 * Typed views over the datapath's maps: domain values in, domain values out, through the codecs
 * of abi.ts. The write path for whole states is diff-apply: read what the kernel holds, write
 * only what differs in one batch, then delete what is no longer wanted in another. Reading the
 * map (not a cache) makes it correct after an agent restart, when the pinned maps hold the state
 * of the previous run; writing before deleting means a replaced entry is never briefly missing.
 */
import type { BpfMap } from './bpf-map.js';
import * as abi from './abi.js';

/** How a typed view turns keys and values into bytes and back. */
export interface MapCodec<K, V> {
  encodeKey(key: K): Buffer;
  decodeKey(buf: Buffer): K;
  /** key is given for maps whose value repeats facts of the key (cilium_policy). */
  encodeValue(value: V, key: K): Buffer;
  decodeValue(buf: Buffer): V;
}

/** What a diff-apply changed. */
export interface DiffResult {
  /** Entries written: absent before or with a different value. */
  written: number;
  /** Entries removed. */
  deleted: number;
  /** Entries already as desired. */
  unchanged: number;
}

/** A map seen through a codec. The BpfMap stays owned by whoever opened it. */
export class TypedMap<K, V> {
  constructor(
    readonly map: BpfMap,
    readonly codec: MapCodec<K, V>,
  ) {}

  get(key: K): V | undefined {
    const value = this.map.lookup(this.codec.encodeKey(key));
    return value && this.codec.decodeValue(value);
  }

  set(key: K, value: V): void {
    this.map.update(this.codec.encodeKey(key), this.codec.encodeValue(value, key));
  }

  /** false when the key was absent. */
  delete(key: K): boolean {
    return this.map.delete(this.codec.encodeKey(key));
  }

  /** Every entry, decoded (batch reads off the main thread). */
  async *entries(): AsyncGenerator<[K, V]> {
    for await (const [key, value] of this.map.entries())
      yield [this.codec.decodeKey(key), this.codec.decodeValue(value)];
  }

  /** Every entry as an array. */
  async list(): Promise<Array<[K, V]>> {
    const out: Array<[K, V]> = [];
    for await (const entry of this.entries()) out.push(entry);
    return out;
  }

  /** Writes all entries in one batch. */
  async setMany(entries: Iterable<readonly [K, V]>): Promise<number> {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const [key, value] of entries) {
      keys.push(this.codec.encodeKey(key));
      values.push(this.codec.encodeValue(value, key));
    }
    return this.map.updateBatch(keys, values);
  }

  /** Deletes all keys in one batch; absent keys are skipped. */
  async deleteMany(keys: Iterable<K>): Promise<number> {
    return this.map.deleteBatch([...keys].map((key) => this.codec.encodeKey(key)));
  }

  /**
   * Makes the entries within scope (all, by default) exactly `desired`: writes the differing ones
   * in one batch, then deletes the ones not desired in another. Entries outside scope are left alone.
   */
  async diffApply(desired: Iterable<readonly [K, V]>, scope: (key: K) => boolean = () => true): Promise<DiffResult> {
    const current = new Map<string, Buffer>();
    for await (const [key, value] of this.map.entries()) {
      if (scope(this.codec.decodeKey(key))) current.set(key.toString('latin1'), value);
    }
    const writeKeys: Buffer[] = [];
    const writeValues: Buffer[] = [];
    let unchanged = 0;
    for (const [key, value] of desired) {
      const keyBytes = this.codec.encodeKey(key);
      const valueBytes = this.codec.encodeValue(value, key);
      const id = keyBytes.toString('latin1');
      const existing = current.get(id);
      current.delete(id);
      if (existing?.equals(valueBytes)) {
        unchanged++;
      } else {
        writeKeys.push(keyBytes);
        writeValues.push(valueBytes);
      }
    }
    const written = await this.map.updateBatch(writeKeys, writeValues);
    const deleted = await this.map.deleteBatch([...current.keys()].map((id) => Buffer.from(id, 'latin1')));
    return { written, deleted, unchanged };
  }
}

const endpointCodec: MapCodec<string, abi.EndpointInfo> = {
  encodeKey: abi.encodeEndpointKey,
  decodeKey: abi.decodeEndpointKey,
  encodeValue: abi.encodeEndpointInfo,
  decodeValue: abi.decodeEndpointInfo,
};

/** cilium_endpoints: local endpoints by IPv4 address. */
export class EndpointsMap extends TypedMap<string, abi.EndpointInfo> {
  constructor(map: BpfMap) {
    super(map, endpointCodec);
  }
}

const policyCodec: MapCodec<abi.PolicyKey, abi.PolicyValue> = {
  encodeKey: abi.encodePolicyKey,
  decodeKey: abi.decodePolicyKey,
  encodeValue: abi.encodePolicyValue,
  decodeValue: abi.decodePolicyValue,
};

/**
 * One policy entry of an endpoint: key without the endpoint id, plus verdict and cookie. The
 * policy compiler's PolicyEntry has this shape, so its output can be passed as it is.
 */
export type EndpointPolicyEntry = Omit<abi.PolicyKey, 'epId'> & abi.PolicyValue;

/**
 * cilium_policy: the policy of every endpoint, namespaced by endpoint id.
 *
 * Keeps a mirror of what the kernel holds, per endpoint (key bytes -> value bytes): read from the
 * map once (so a restarted agent adopts the pinned state of the previous run), then kept in step
 * with every write made through syncEndpoint. A regeneration then diffs against its own
 * endpoint's entries instead of reading the whole map (which holds every endpoint's entries: a
 * full read of 1M entries costs ~1 s). Writes through the generic TypedMap methods drop the mirror
 * (it is re-read on the next sync), as does a failed batch.
 */
export class PolicyMap extends TypedMap<abi.PolicyKey, abi.PolicyValue> {
  /** epId -> (key bytes -> value bytes), both as latin1 strings (cheap to hold and compare). */
  private mirrorLoad: Promise<Map<number, Map<string, string>>> | undefined;

  constructor(map: BpfMap) {
    super(map, policyCodec);
  }

  private mirror(): Promise<Map<number, Map<string, string>>> {
    this.mirrorLoad ??= (async () => {
      const byEndpoint = new Map<number, Map<string, string>>();
      const KS = abi.POLICY_KEY_SIZE;
      const VS = abi.POLICY_VALUE_SIZE;
      for await (const { keys, values, count } of this.map.batches(8192)) {
        for (let i = 0; i < count; i++) {
          const epId = abi.policyKeyEndpoint(keys, i * KS);
          let own = byEndpoint.get(epId);
          if (!own) {
            own = new Map();
            byEndpoint.set(epId, own);
          }
          own.set(keys.toString('latin1', i * KS, (i + 1) * KS), values.toString('latin1', i * VS, (i + 1) * VS));
        }
      }
      return byEndpoint;
    })();
    const loading = this.mirrorLoad;
    loading.catch(() => {
      if (this.mirrorLoad === loading) this.mirrorLoad = undefined;
    });
    return loading;
  }

  /** Makes endpoint epId's entries exactly `entries` (the result of a regeneration). */
  async syncEndpoint(epId: number, entries: Iterable<EndpointPolicyEntry>): Promise<DiffResult> {
    const byEndpoint = await this.mirror();
    const current = byEndpoint.get(epId) ?? new Map<string, string>();
    const list = Array.isArray(entries) ? (entries as EndpointPolicyEntry[]) : [...entries];
    const KS = abi.POLICY_KEY_SIZE;
    const VS = abi.POLICY_VALUE_SIZE;
    // Every desired entry encoded once, back to back (no per-entry Buffer).
    const keys = Buffer.alloc(list.length * KS);
    const values = Buffer.alloc(list.length * VS);
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      abi.writePolicyKey(keys, i * KS, e, epId);
      abi.writePolicyValue(values, i * VS, e, e);
    }
    // Desired entries by key (a repeated key: the last one wins, as in one batch update).
    const index = new Map<string, number>();
    for (let i = 0; i < list.length; i++) index.set(keys.toString('latin1', i * KS, (i + 1) * KS), i);
    const next = new Map<string, string>();
    const changed: number[] = [];
    for (const [id, i] of index) {
      const value = values.toString('latin1', i * VS, (i + 1) * VS);
      if (current.get(id) !== value) changed.push(i);
      next.set(id, value);
    }
    const unchanged = next.size - changed.length;
    let writeKeys = keys;
    let writeValues = values;
    if (changed.length < list.length) {
      writeKeys = Buffer.alloc(changed.length * KS);
      writeValues = Buffer.alloc(changed.length * VS);
      changed.forEach((src, dst) => {
        keys.copy(writeKeys, dst * KS, src * KS, (src + 1) * KS);
        values.copy(writeValues, dst * VS, src * VS, (src + 1) * VS);
      });
    }
    const doomed = [...current.keys()].filter((id) => !next.has(id));
    try {
      // Writes before deletes: a replaced entry is never briefly missing.
      const written = await this.map.updateBatchPacked(writeKeys, writeValues);
      const deleted =
        doomed.length === 0 ? 0 : await this.map.deleteBatchPacked(Buffer.from(doomed.join(''), 'latin1'));
      if (next.size === 0) byEndpoint.delete(epId);
      else byEndpoint.set(epId, next);
      return { written, deleted, unchanged };
    } catch (err) {
      this.mirrorLoad = undefined;
      throw err;
    }
  }

  /** Removes every entry of endpoint epId. */
  async removeEndpoint(epId: number): Promise<number> {
    return (await this.syncEndpoint(epId, [])).deleted;
  }

  override set(key: abi.PolicyKey, value: abi.PolicyValue): void {
    this.mirrorLoad = undefined;
    super.set(key, value);
  }

  override delete(key: abi.PolicyKey): boolean {
    this.mirrorLoad = undefined;
    return super.delete(key);
  }

  /** Writes all entries in one batch, encoded straight into one buffer. */
  override async setMany(entries: Iterable<readonly [abi.PolicyKey, abi.PolicyValue]>): Promise<number> {
    this.mirrorLoad = undefined;
    const list = Array.isArray(entries) ? (entries as Array<readonly [abi.PolicyKey, abi.PolicyValue]>) : [...entries];
    const keys = Buffer.alloc(list.length * abi.POLICY_KEY_SIZE);
    const values = Buffer.alloc(list.length * abi.POLICY_VALUE_SIZE);
    for (let i = 0; i < list.length; i++) {
      const [k, v] = list[i]!;
      abi.writePolicyKey(keys, i * abi.POLICY_KEY_SIZE, k, k.epId);
      abi.writePolicyValue(values, i * abi.POLICY_VALUE_SIZE, v, k);
    }
    return this.map.updateBatchPacked(keys, values);
  }

  override async deleteMany(keys: Iterable<abi.PolicyKey>): Promise<number> {
    this.mirrorLoad = undefined;
    return super.deleteMany(keys);
  }

  override async diffApply(
    desired: Iterable<readonly [abi.PolicyKey, abi.PolicyValue]>,
    scope?: (key: abi.PolicyKey) => boolean,
  ): Promise<DiffResult> {
    this.mirrorLoad = undefined;
    return super.diffApply(desired, scope);
  }
}

const ipcacheCodec: MapCodec<string, abi.IpcacheEntry> = {
  encodeKey: abi.encodeIpcacheKey,
  decodeKey: abi.decodeIpcacheKey,
  encodeValue: abi.encodeIpcacheEntry,
  decodeValue: abi.decodeIpcacheEntry,
};

/** cilium_ipcache: prefixes ('10.0.0.0/8', '10.0.1.5/32') -> identity, tunnel endpoint, network. */
export class IpcacheMap extends TypedMap<string, abi.IpcacheEntry> {
  constructor(map: BpfMap) {
    super(map, ipcacheCodec);
  }
}

const ctCodec: MapCodec<abi.CtKey, abi.CtEntry> = {
  encodeKey: abi.encodeCtKey,
  decodeKey: abi.decodeCtKey,
  encodeValue: abi.encodeCtEntry,
  decodeValue: abi.decodeCtEntry,
};

/** cilium_ct: conntrack entries (written by the datapath; read, flushed or deleted here). */
export class ConntrackMap extends TypedMap<abi.CtKey, abi.CtEntry> {
  constructor(map: BpfMap) {
    super(map, ctCodec);
  }

  /** Deletes the connections of which `match` says true (e.g. those of a removed endpoint). */
  async deleteWhere(match: (key: abi.CtKey, entry: abi.CtEntry) => boolean): Promise<number> {
    const doomed: abi.CtKey[] = [];
    for await (const [key, entry] of this.entries()) if (match(key, entry)) doomed.push(key);
    return this.deleteMany(doomed);
  }
}

/** One counter of cilium_metrics, summed over CPUs. */
export interface MetricsSample extends abi.MetricsKey, abi.MetricsValue {}

/** cilium_metrics: forward and drop counters by reason and direction (per-CPU). */
export class MetricsMap {
  constructor(readonly map: BpfMap) {}

  /**
   * Every counter that counted something, summed over CPUs. The map is an array (every index
   * exists); an index's 4 bytes are its metrics_key.
   */
  async read(): Promise<MetricsSample[]> {
    const samples: MetricsSample[] = [];
    for await (const [key, value] of this.map.entries()) {
      const counts = abi.decodePerCpuMetricsValue(value);
      if (counts.packets === 0n && counts.bytes === 0n) continue;
      samples.push({ ...abi.decodeMetricsKey(key), ...counts });
    }
    return samples;
  }
}
