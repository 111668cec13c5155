/**
 * Loading BPF objects, and the container datapath (bpf/lxc.bpf.o) built on it.
 *
 * The lxc object is loaded once per agent and shared by every endpoint (per-endpoint facts live
 * in cilium_endpoints). Its maps are pinned by name under the pin root (LIBBPF_PIN_BY_NAME with
 * libbpf's pin_root_path): the first load creates and pins them, every later load, in particular
 * after an agent restart, reuses the pinned maps with their contents. Attaching an endpoint then
 * replaces the programs in the veth's existing filters atomically (tc.ts), so a restart leaves no
 * gap in enforcement and established connections keep their conntrack entries.
 */
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatapathError, UnsupportedError } from '../../util/errors.js';
import * as abi from './abi.js';
import { BpfMap, MapType } from './bpf-map.js';
import { BpfProgram } from './bpf-program.js';
import { ConntrackMap, EndpointsMap, IpcacheMap, MetricsMap, PolicyMap } from './maps.js';
import { bpfNative, type NativeMapInfo } from './native.js';
import { attachTcProgram, type TcAttachment } from './tc.js';

/** Options of loadObject(). */
export interface LoadObjectOptions {
  /** bpffs directory for pinned maps; created if missing. */
  pinRoot?: string;
  /** `const volatile` values by C name (see abi.encodeLoadTimeConstants). */
  constants?: Record<string, Buffer>;
  /** max_entries overrides by map name. */
  maxEntries?: Record<string, number>;
}

/** The programs and maps of a loaded object; each is a handle of its own. */
export class BpfObject {
  constructor(
    readonly path: string,
    readonly programs: Map<string, BpfProgram>,
    readonly maps: Map<string, BpfMap>,
  ) {}

  /** The program named name (the C function name); throws when there is none. */
  program(name: string): BpfProgram {
    const program = this.programs.get(name);
    if (!program) throw new DatapathError(`${this.path} has no program '${name}'`);
    return program;
  }

  /** The map named name; throws when there is none. */
  map(name: string): BpfMap {
    const map = this.maps.get(name);
    if (!map) throw new DatapathError(`${this.path} has no map '${name}'`);
    return map;
  }

  /** Closes every fd (maps first, then programs); pins and attachments stay. */
  close(): void {
    for (const map of this.maps.values()) map.close();
    for (const program of this.programs.values()) program.close();
  }
}

const BPF_FS_MAGIC = 0xcafe4a11;

/** Creates dir and checks it is on a bpffs (pins anywhere else fail with a less helpful error). */
export function ensureBpffsDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (statfsSync(dir).type !== BPF_FS_MAGIC) {
    throw new UnsupportedError(`${dir} is not on a bpf filesystem: mount one with 'mount -t bpf bpf /sys/fs/bpf'`);
  }
}

/** Loads an ELF object file into the kernel. Rejects with BpfError (with the verifier log). */
export async function loadObject(path: string, options: LoadObjectOptions = {}): Promise<BpfObject> {
  if (options.pinRoot) ensureBpffsDir(options.pinRoot);
  const loaded = await bpfNative().loadObject(path, options);
  const programs = new Map(loaded.programs.map((p) => [p.name, new BpfProgram(p.fd, p.name, p.id, p.type)]));
  const maps = new Map(loaded.maps.map((m) => [m.name, new BpfMap(m.fd, m, m.pinPath ?? undefined)]));
  return new BpfObject(path, programs, maps);
}

/** bpf/lxc.bpf.o of this checkout (src/ and dist/ sit at the same depth). */
export const defaultLxcObjectPath = fileURLToPath(new URL('../../../bpf/lxc.bpf.o', import.meta.url));

/** Options of loadLxcDatapath(). */
export interface LxcDatapathOptions {
  /** bpffs directory of the pinned maps, e.g. /sys/fs/bpf/cilium. */
  pinRoot: string;
  objectPath?: string;
  config?: Partial<abi.DatapathConfig>;
  /** Map sizes by role; a pinned map is only reused when its size matches. */
  maxEntries?: Partial<Record<abi.MapRole, number>>;
  /** Told the names of disposable pins of an older layout that were replaced (see dropIncompatiblePins). */
  onDroppedPins?: (names: string[]) => void;
}

/** Key and value struct of each map role, checked against the loaded object. */
const mapStructs: Partial<Record<abi.MapRole, [abi.StructName, abi.StructName]>> = {
  endpoints: ['endpoint_key', 'endpoint_info'],
  policy: ['policy_key', 'policy_entry'],
  ipcache: ['ipcache_key', 'ipcache_entry'],
  ct: ['ct_key', 'ct_entry'],
  metrics: ['metrics_key', 'metrics_value'],
};

/** The two filters of an endpoint's veth. */
export interface EndpointAttachment {
  /** from_container on tc ingress of lxc*. */
  fromContainer: TcAttachment;
  /** to_container on tc egress of lxc*. */
  toContainer: TcAttachment;
}

/** The loaded container datapath: its two programs and typed views of its pinned maps. */
export class LxcDatapath {
  readonly endpoints: EndpointsMap;
  readonly policy: PolicyMap;
  readonly ipcache: IpcacheMap;
  readonly ct: ConntrackMap;
  readonly metrics: MetricsMap;
  /** The ring buffer; read it with events.ts. */
  readonly events: BpfMap;

  constructor(readonly object: BpfObject) {
    for (const [role, [keyStruct, valueStruct]] of Object.entries(mapStructs) as Array<
      [abi.MapRole, [abi.StructName, abi.StructName]]
    >) {
      const { info } = object.map(abi.mapNames[role]);
      if (
        info.keySize !== abi.structLayouts[keyStruct].size ||
        info.valueSize !== abi.structLayouts[valueStruct].size
      ) {
        throw new DatapathError(
          `${object.path}: map ${info.name} has key/value ${info.keySize}/${info.valueSize} bytes, ` +
            `abi.ts says ${abi.structLayouts[keyStruct].size}/${abi.structLayouts[valueStruct].size}: ` +
            'rebuild with scripts/build-bpf.sh',
        );
      }
    }
    this.endpoints = new EndpointsMap(object.map(abi.mapNames.endpoints));
    this.policy = new PolicyMap(object.map(abi.mapNames.policy));
    this.ipcache = new IpcacheMap(object.map(abi.mapNames.ipcache));
    this.ct = new ConntrackMap(object.map(abi.mapNames.ct));
    this.metrics = new MetricsMap(object.map(abi.mapNames.metrics));
    this.events = object.map(abi.mapNames.events);
  }

  get fromContainer(): BpfProgram {
    return this.object.program('from_container');
  }

  get toContainer(): BpfProgram {
    return this.object.program('to_container');
  }

  get fromOverlay(): BpfProgram {
    return this.object.program('from_overlay');
  }

  /** Attaches from_overlay to tc ingress of the tunnel device (replacing an earlier agent's). */
  attachOverlay(ifindex: number): TcAttachment {
    return attachTcProgram(ifindex, 'ingress', this.fromOverlay);
  }

  get fromUnderlay(): BpfProgram {
    return this.object.program('from_underlay');
  }

  /**
   * Attaches from_underlay to tc ingress of the underlay device (encapsulation in BPF): it
   * decapsulates overlay packets for local endpoints and passes everything else on untouched.
   */
  attachUnderlay(ifindex: number): TcAttachment {
    return attachTcProgram(ifindex, 'ingress', this.fromUnderlay);
  }

  /**
   * Attaches the programs to an endpoint's host-side veth, replacing whatever programs its
   * filters ran before (an earlier agent's, or an older version).
   */
  attachEndpoint(ifindex: number): EndpointAttachment {
    return {
      fromContainer: attachTcProgram(ifindex, 'ingress', this.fromContainer),
      toContainer: attachTcProgram(ifindex, 'egress', this.toContainer),
    };
  }

  /** Closes every fd. Pinned maps and attachments stay and keep enforcing. */
  close(): void {
    this.object.close();
  }
}

/**
 * Pinned maps whose contents may be thrown away when an older version pinned them with another
 * type or layout (libbpf refuses to reuse such a pin, and the load would fail): counters only.
 * Every other map keeps its pin; a mismatch there fails the load with libbpf's message.
 */
const disposablePins: Array<{ role: abi.MapRole; type: number; keySize: number; valueSize: number }> = [
  // A per-CPU hash before 2026-12; a per-CPU array indexed by the metrics_key bytes since.
  { role: 'metrics', type: MapType.PercpuArray, keySize: 4, valueSize: abi.structLayouts.metrics_value.size },
];

/** Unpins the disposable maps an older version pinned with another type or layout; returns their names. */
export function dropIncompatiblePins(pinRoot: string): string[] {
  const native = bpfNative();
  const dropped: string[] = [];
  for (const want of disposablePins) {
    const path = join(pinRoot, abi.mapNames[want.role]);
    if (!existsSync(path)) continue;
    const fd = native.objGet(path);
    let info: NativeMapInfo;
    try {
      info = native.mapInfo(fd);
    } finally {
      native.closeFd(fd);
    }
    if (info.type === want.type && info.keySize === want.keySize && info.valueSize === want.valueSize) continue;
    native.objUnpin(path);
    dropped.push(abi.mapNames[want.role]);
  }
  return dropped;
}

/**
 * Loads bpf/lxc.bpf.o once, creating or reusing the pinned maps under options.pinRoot (after
 * dropping disposable pins of an older layout, see dropIncompatiblePins).
 */
export async function loadLxcDatapath(options: LxcDatapathOptions): Promise<LxcDatapath> {
  const dropped = existsSync(options.pinRoot) ? dropIncompatiblePins(options.pinRoot) : [];
  if (dropped.length > 0) options.onDroppedPins?.(dropped);
  const maxEntries = Object.fromEntries(
    Object.entries(options.maxEntries ?? {}).map(([role, n]) => [abi.mapNames[role as abi.MapRole], n]),
  );
  const object = await loadObject(options.objectPath ?? defaultLxcObjectPath, {
    pinRoot: options.pinRoot,
    constants: abi.encodeLoadTimeConstants(options.config ?? {}),
    maxEntries,
  });
  try {
    return new LxcDatapath(object);
  } catch (err) {
    object.close();
    throw err;
  }
}
