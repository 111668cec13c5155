/**
 * BpfMap: an open BPF map (an fd this process owns) with raw Buffer operations. Keys and values
 * are the exact bytes the kernel stores; typed views over them live in maps.ts.
 */
import { DatapathError } from '../../util/errors.js';
import { bpfNative, type NativeMapInfo } from './native.js';

/** enum bpf_map_type values this project uses. */
export const MapType = {
  Hash: 1,
  Array: 2,
  PercpuHash: 5,
  PercpuArray: 6,
  LruHash: 9,
  LruPercpuHash: 10,
  LpmTrie: 11,
  Ringbuf: 27,
} as const;

/** BPF_F_NO_PREALLOC: required for LPM tries. */
export const BPF_F_NO_PREALLOC = 1;

/** Update semantics: any (BPF_ANY), only create (BPF_NOEXIST), only replace (BPF_EXIST). */
export type UpdateMode = 'any' | 'noexist' | 'exist';

const updateFlags: Record<UpdateMode, number> = { any: 0, noexist: 1, exist: 2 };

const perCpuTypes = new Set<number>([MapType.PercpuHash, MapType.PercpuArray, MapType.LruPercpuHash]);

/** What a new map is. */
export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
}

/** Entries read per batch-lookup call unless asked otherwise. */
const DEFAULT_BATCH = 4096;

/** An open map. Owns its fd: close() it. */
export class BpfMap {
  /** Bytes of one value as user space sees it: per-CPU maps hold one 8-aligned slot per CPU. */
  readonly valueBytes: number;
  private ownedFd: number;

  /** Takes ownership of fd. */
  constructor(
    fd: number,
    readonly info: NativeMapInfo,
    readonly pinPath?: string,
  ) {
    this.ownedFd = fd;
    this.valueBytes = perCpuTypes.has(info.type)
      ? Math.ceil(info.valueSize / 8) * 8 * bpfNative().numPossibleCpus()
      : info.valueSize;
  }

  /** Creates an unpinned map. */
  static create(spec: MapSpec): BpfMap {
    const native = bpfNative();
    const fd = native.mapCreate(spec.type, spec.keySize, spec.valueSize, spec.maxEntries, spec.flags ?? 0, spec.name);
    return BpfMap.adopt(fd);
  }

  /** Opens the map pinned at path. */
  static openPinned(path: string): BpfMap {
    return BpfMap.adopt(bpfNative().objGet(path), path);
  }

  /** Wraps an fd (taking ownership), asking the kernel what the map is. */
  static adopt(fd: number, pinPath?: string): BpfMap {
    try {
      return new BpfMap(fd, bpfNative().mapInfo(fd), pinPath);
    } catch (err) {
      bpfNative().closeFd(fd);
      throw err;
    }
  }

  /** The fd, for handing to the addon (e.g. a ring-buffer reader). Throws once closed. */
  get fd(): number {
    if (this.ownedFd < 0) throw new DatapathError(`map ${this.info.name} is closed`);
    return this.ownedFd;
  }

  get name(): string {
    return this.info.name;
  }

  get keySize(): number {
    return this.info.keySize;
  }

  /** The value of key, or undefined when absent. */
  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueBytes);
    return bpfNative().mapLookup(this.fd, key, value, 0) ? value : undefined;
  }

  update(key: Buffer, value: Buffer, mode: UpdateMode = 'any'): void {
    bpfNative().mapUpdate(this.fd, key, value, updateFlags[mode]);
  }

  /** Deletes key; false when it was absent. */
  delete(key: Buffer): boolean {
    return bpfNative().mapDelete(this.fd, key);
  }

  /** Every key, one get_next_key call each (for maps read rarely; entries() is faster). */
  *keys(): Generator<Buffer> {
    let key: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      if (!bpfNative().mapGetNextKey(this.fd, key, next)) return;
      yield next;
      key = next;
    }
  }

  /**
   * Every entry, read in batches off the main thread. The Buffers yielded are views into the
   * batch just read and stay valid. A concurrently changing map may be seen partly old, partly new.
   */
  async *entries(batchSize = DEFAULT_BATCH): AsyncGenerator<[key: Buffer, value: Buffer]> {
    for await (const { keys, values, count } of this.batches(batchSize)) {
      for (let i = 0; i < count; i++) {
        yield [
          keys.subarray(i * this.keySize, (i + 1) * this.keySize),
          values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes),
        ];
      }
    }
  }

  /**
   * Every entry, a batch lookup at a time: `count` keys and values packed back to back in
   * `keys`/`values` (for readers of millions of entries, which a generator step per entry slows).
   */
  async *batches(batchSize = DEFAULT_BATCH): AsyncGenerator<{ keys: Buffer; values: Buffer; count: number }> {
    let cursor: Buffer | null = null;
    do {
      const keys = Buffer.alloc(batchSize * this.keySize);
      const values = Buffer.alloc(batchSize * this.valueBytes);
      const step = await bpfNative().mapLookupBatch(this.fd, cursor, keys, values);
      if (step.count > 0) yield { keys, values, count: step.count };
      cursor = step.cursor;
    } while (cursor);
  }

  /** Writes many entries in one batch call. Resolves to the number written. */
  async updateBatch(keys: readonly Buffer[], values: readonly Buffer[], mode: UpdateMode = 'any'): Promise<number> {
    if (keys.length !== values.length)
      throw new TypeError(`updateBatch: ${keys.length} keys but ${values.length} values`);
    if (keys.length === 0) return 0;
    return bpfNative().mapUpdateBatch(this.fd, Buffer.concat(keys), Buffer.concat(values), updateFlags[mode]);
  }

  /**
   * updateBatch on keys and values already packed back to back (keySize / valueSize bytes each):
   * no per-entry Buffer, for writes of up to millions of entries.
   */
  async updateBatchPacked(keys: Buffer, values: Buffer, mode: UpdateMode = 'any'): Promise<number> {
    const count = keys.length / this.keySize;
    if (!Number.isInteger(count) || values.length !== count * this.valueBytes) {
      throw new TypeError(
        `updateBatchPacked: ${keys.length} key bytes and ${values.length} value bytes are not whole ` +
          `${this.keySize}/${this.valueBytes}-byte entries`,
      );
    }
    if (count === 0) return 0;
    return bpfNative().mapUpdateBatch(this.fd, keys, values, updateFlags[mode]);
  }

  /** deleteBatch on keys packed back to back. */
  async deleteBatchPacked(keys: Buffer): Promise<number> {
    if (keys.length % this.keySize !== 0)
      throw new TypeError(`deleteBatchPacked: ${keys.length} bytes are not whole ${this.keySize}-byte keys`);
    if (keys.length === 0) return 0;
    return bpfNative().mapDeleteBatch(this.fd, keys);
  }

  /** Deletes many keys in one batch call; absent keys are skipped. Resolves to the number deleted. */
  async deleteBatch(keys: readonly Buffer[]): Promise<number> {
    if (keys.length === 0) return 0;
    return bpfNative().mapDeleteBatch(this.fd, Buffer.concat(keys));
  }

  /** Pins the map at path (a bpffs file). */
  pin(path: string): void {
    bpfNative().objPin(this.fd, path);
  }

  /** Closes the fd; the map lives on while pinned or used by a program. Idempotent. */
  close(): void {
    if (this.ownedFd < 0) return;
    const fd = this.ownedFd;
    this.ownedFd = -1;
    bpfNative().closeFd(fd);
  }
}
