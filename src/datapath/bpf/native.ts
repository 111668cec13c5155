/**
 * The bpf-napi addon (native/bpf-napi), loaded with createRequire, and the types of its surface.
 *
 * The addon takes and returns primitives only: numbers (fds, ifindexes, ids), strings, Buffers
 * laid out as the kernel expects. Fds are owned by the caller and closed with closeFd(). Calls
 * that can block (object load, batch map operations) return Promises and run on the libuv thread
 * pool; while one is in flight its Buffers must not be touched. Everything else is synchronous
 * and costs one or two bpf()/netlink calls. Failures throw (or reject with) BpfError.
 *
 * The addon is loaded on first use, so modules that only need the types work without it.
 * CILIUM_DOCKER_BPF_NAPI overrides the path of the .node file.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UnsupportedError } from '../../util/errors.js';
import { BpfError, type BpfErrorDetails } from './errors.js';

/** Options of loadObject(). */
export interface NativeLoadOptions {
  /** bpffs directory for maps with `pinning = LIBBPF_PIN_BY_NAME`; libbpf's default is /sys/fs/bpf. */
  pinRoot?: string;
  /** `const volatile` globals to set in .rodata before load, by name, bytes of the exact size. */
  constants?: Record<string, Buffer>;
  /** max_entries overrides, by map name. */
  maxEntries?: Record<string, number>;
}

/** A program of a loaded object; `fd` belongs to the caller. */
export interface NativeProgram {
  name: string;
  section: string;
  /** enum bpf_prog_type (3 = SCHED_CLS). */
  type: number;
  id: number;
  fd: number;
}

/** What the kernel says about a map (BPF_OBJ_GET_INFO_BY_FD). */
export interface NativeMapInfo {
  /** enum bpf_map_type. */
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

/** A map of a loaded object; `fd` belongs to the caller. */
export interface NativeMap extends NativeMapInfo {
  /** Where libbpf pinned (or found) it; null for unpinned maps. */
  pinPath: string | null;
  fd: number;
}

/** Result of loadObject(). The internal .rodata/.bss maps are not listed. */
export interface NativeLoadedObject {
  programs: NativeProgram[];
  maps: NativeMap[];
  /** libbpf's warnings during the load (usually empty). */
  log: string;
}

/** A tc filter: where it is and which program it runs. */
export interface NativeTcFilter {
  handle: number;
  priority: number;
  progId: number;
}

/** 'ingress' or 'egress' of the clsact qdisc. */
export type TcAttachPoint = 'ingress' | 'egress';

/** One step of a batch lookup: entries written and where to continue (null: finished). */
export interface NativeBatchLookup {
  count: number;
  cursor: Buffer | null;
}

/** What the kernel says about a program. */
export interface NativeProgramInfo {
  type: number;
  id: number;
  name: string;
  /** Hex of the program's 8-byte tag (hash of its instructions). */
  tag: string;
}

/** Outcome of BPF_PROG_TEST_RUN. */
export interface NativeTestRun {
  retval: number;
  durationNs: number;
  packetOut: Buffer;
}

/** A ring-buffer reader: records go to the callback until close() resolves. */
export interface NativeRingBufferReader {
  close(): Promise<void>;
}

/** The functions the addon exports. */
export interface BpfNative {
  /** Makes the addon throw `new ctor(message, details)` (done once by this module). */
  setErrorClass(ctor: new (message: string, details: BpfErrorDetails) => Error): void;

  /** Opens, configures and loads an ELF object; the bpf_object is closed, fds are returned. */
  loadObject(path: string, options: NativeLoadOptions): Promise<NativeLoadedObject>;

  /** Creates the clsact qdisc if needed and attaches progFd (direct action). handle/priority 0:
   *  kernel's choice. replace: swap the program of the existing filter atomically. */
  tcAttach(
    ifindex: number,
    point: TcAttachPoint,
    progFd: number,
    handle: number,
    priority: number,
    replace: boolean,
  ): NativeTcFilter;
  tcDetach(ifindex: number, point: TcAttachPoint, handle: number, priority: number): void;
  /** The id of the program in that filter, or null when there is no such filter. */
  tcQuery(ifindex: number, point: TcAttachPoint, handle: number, priority: number): number | null;
  /** Deletes the clsact qdisc of ifindex with all its filters. */
  tcHookDestroy(ifindex: number): void;

  mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, flags: number, name: string): number;
  /** Fills valueOut; false when the key is absent. flags: BPF_F_LOCK or 0. */
  mapLookup(fd: number, key: Buffer, valueOut: Buffer, flags: number): boolean;
  /** flags: BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2. */
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  /** false when the key was absent. */
  mapDelete(fd: number, key: Buffer): boolean;
  /** Fills nextKeyOut with the key after key (null: the first); false after the last. */
  mapGetNextKey(fd: number, key: Buffer | null, nextKeyOut: Buffer): boolean;
  /** Writes n = keys.length / keySize entries (values: n values back to back). Resolves to n. */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, elemFlags: number): Promise<number>;
  /** Deletes the keys; absent ones are skipped. Resolves to how many were deleted. */
  mapDeleteBatch(fd: number, keys: Buffer): Promise<number>;
  /** Reads up to keysOut.length / keySize entries after cursor (null: from the start). */
  mapLookupBatch(fd: number, cursor: Buffer | null, keysOut: Buffer, valuesOut: Buffer): Promise<NativeBatchLookup>;

  closeFd(fd: number): void;
  objPin(fd: number, path: string): void;
  /** Opens a pinned map or program. */
  objGet(path: string): number;
  objUnpin(path: string): void;
  mapInfo(fd: number): NativeMapInfo;
  progInfo(fd: number): NativeProgramInfo;
  /** Opens the loaded program with that id (as tcQuery reports it); the fd belongs to the caller. */
  progGetFdById(id: number): number;
  /** Runs a program once per repeat on a copy of packet (BPF_PROG_TEST_RUN). */
  progTestRun(fd: number, packet: Buffer, repeat: number): NativeTestRun;
  /** Value slots per key of a per-CPU map. */
  numPossibleCpus(): number;

  /** Delivers each drained batch of records; on a poll failure (null, error) and then stops. */
  RingBufferReader: new (
    mapFd: number,
    onRecords: (records: Buffer[] | null, error?: Error) => void,
  ) => NativeRingBufferReader;
}

/** Where the compiled addon is expected (src/ and dist/ sit at the same depth). */
export const addonPath: string =
  process.env.CILIUM_DOCKER_BPF_NAPI ??
  fileURLToPath(new URL('../../../native/bpf-napi/build/Release/bpf_napi.node', import.meta.url));

let addon: BpfNative | undefined;

/** The addon, loaded on first call. Throws UnsupportedError when it was not built. */
export function bpfNative(): BpfNative {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  let loaded: BpfNative;
  try {
    loaded = require(addonPath) as BpfNative;
  } catch (err) {
    throw new UnsupportedError(
      `cannot load the bpf-napi addon from ${addonPath}: build it with scripts/build-native.sh`,
      { cause: err },
    );
  }
  loaded.setErrorClass(BpfError);
  addon = loaded;
  return addon;
}
