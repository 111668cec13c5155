/**
 * The loader of the eBPF datapath (Cilium's pkg/datapath/loader): the bpffs the pins live on, the
 * lxc object loaded with its load-time constants (pinned maps adopted or created), and the tc
 * attachments: the endpoints' veths, from_overlay on the tunnel device, from_underlay on the
 * underlay device. Every attach replaces the program inside the existing filter (tc.ts), so a
 * restart or a reload for new device ifindexes leaves no gap. Devices and routes are the Linux
 * side's (linux-node.ts); what goes into the maps is the maps layer's (datapath-maps.ts).
 *
 * One object for all four programs, not a separate overlay object (bpf/lxc.bpf.c says why).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadLxcDatapath, type LxcDatapath } from './bpf/programs.js';
import { tcFilterProgramName, type TcAttachment } from './bpf/tc.js';
import { bpfNative } from './bpf/native.js';
import { DEFAULT_TC_HANDLE, DEFAULT_TC_PRIORITY } from './bpf/tc.js';
import { getLink, HOST_DEVICE } from './link/veth.js';
import { ConfigError, UnsupportedError } from '../util/errors.js';
import { parseIpv4 } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';

const BPF_FS_MAGIC = 0xcafe4a11;
const BPF_FS_ROOT = '/sys/fs/bpf';

/** Whether load() will mount a bpffs on /sys/fs/bpf first (a root under it, where none is mounted). */
function bpffsToMount(bpfRoot: string): boolean {
  return (
    bpfRoot.startsWith(`${BPF_FS_ROOT}/`) && existsSync(BPF_FS_ROOT) && statfsSync(BPF_FS_ROOT).type !== BPF_FS_MAGIC
  );
}

/**
 * Refuses, changing nothing, a --bpf-root where pinning would fail after the links are made:
 * one whose nearest existing directory is on another filesystem than bpffs (pins exist only
 * there). A root under /sys/fs/bpf with no bpffs mounted there yet passes: init mounts one.
 */
export function checkBpfRoot(bpfRoot: string): void {
  if (bpffsToMount(bpfRoot)) return;
  let dir = bpfRoot;
  while (!existsSync(dir) && dir !== dirname(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory())
    throw new ConfigError(`--bpf-root ${bpfRoot}: ${dir} is not a directory; choose a directory under ${BPF_FS_ROOT}`);
  if (statfsSync(dir).type !== BPF_FS_MAGIC) {
    throw new ConfigError(
      `--bpf-root ${bpfRoot}: ${dir} is not a bpf filesystem (programs and maps can be pinned only on bpffs); ` +
        `choose a directory under ${BPF_FS_ROOT}, or mount one first (mount -t bpf bpf DIR)`,
    );
  }
}

/** Whether an earlier agent's datapath is on this host: the cilium_host link, or pins under bpfRoot. */
export async function datapathInstalled(bpfRoot: string): Promise<boolean> {
  if (await getLink(HOST_DEVICE)) return true;
  return existsSync(bpfRoot) && statfsSync(bpfRoot).type === BPF_FS_MAGIC && readdirSync(bpfRoot).length > 0;
}

function mountBpffs(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mount', ['-t', 'bpf', 'bpf', dir], (err, _o, stderr) =>
      err ? reject(new UnsupportedError(`cannot mount bpffs at ${dir}: ${stderr || err.message}`)) : resolve(),
    );
  });
}

function ipv4ToNumber(ip: string): number {
  const value = parseIpv4(ip);
  if (value === undefined) throw new TypeError(`underlay address: not an IPv4 address: '${ip}'`);
  return value;
}

/** The devices the programs are loaded for (load-time constants; 0: none). */
export interface DeviceIfindexes {
  /** The tunnel device: from_overlay's hook and from_container's redirect target. */
  tunnelIfindex: number;
  /** The underlay device when the programs encapsulate themselves: from_underlay's hook. */
  underlayIfindex: number;
}

/** Options of BpfLoader. */
export interface BpfLoaderOptions {
  /** bpffs directory of the pins (--bpf-root). */
  bpfRoot: string;
  log: Logger;
  /** This host's underlay address (outer source of what the programs encapsulate); none without a tunnel. */
  underlayIp?: string;
  /** The tunnel's UDP port; 0 without a tunnel. */
  tunnelPort: number;
  ctAccounting: boolean;
}

/** Loads, attaches and replaces the datapath's programs; owns the loaded object's fds. */
export class BpfLoader {
  private loaded: LxcDatapath | undefined;
  private loadedFor: DeviceIfindexes = { tunnelIfindex: 0, underlayIfindex: 0 };
  /** Our filters on the tunnel and underlay devices (checkDeviceFilters puts a removed one back). */
  private deviceFilters: TcAttachment[] = [];

  constructor(private readonly options: BpfLoaderOptions) {}

  /** The loaded programs and maps; throws before load(). A reload replaces them. */
  get programs(): LxcDatapath {
    if (!this.loaded) throw new Error('BPF datapath not initialised');
    return this.loaded;
  }

  /** Whether load() has run (and close() not yet). */
  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  /** The device ifindexes the loaded programs were compiled for. */
  get devices(): DeviceIfindexes {
    return this.loadedFor;
  }

  /** Mounts a bpffs on /sys/fs/bpf when the pin root is under it and none is mounted there. */
  async mountBpffsIfNeeded(): Promise<void> {
    if (!bpffsToMount(this.options.bpfRoot)) return;
    this.options.log.info({ dir: BPF_FS_ROOT }, 'mounting bpffs');
    await mountBpffs(BPF_FS_ROOT);
  }

  /**
   * Loads the programs for these devices, adopting the pinned maps, and attaches the tunnel and
   * underlay devices' programs. Native routing: tunnel ifindex 0, so from_container hands peers'
   * traffic to the kernel's routes.
   */
  async load(devices: DeviceIfindexes): Promise<LxcDatapath> {
    this.loaded = await this.loadFor(devices);
    return this.loaded;
  }

  private async loadFor(devices: DeviceIfindexes): Promise<LxcDatapath> {
    const lxc = await loadLxcDatapath({
      pinRoot: this.options.bpfRoot,
      config: {
        tunnelIfindex: devices.tunnelIfindex,
        underlayIfindex: devices.underlayIfindex,
        underlaySaddr: this.options.underlayIp ? ipv4ToNumber(this.options.underlayIp) : 0,
        tunnelPort: this.options.tunnelPort,
        ctAccounting: this.options.ctAccounting,
      },
      onDroppedPins: (maps) =>
        this.options.log.warn({ maps }, 'pinned maps of an older layout replaced (counters restart at 0)'),
    });
    this.loadedFor = { ...devices };
    this.attachDeviceFilters(lxc);
    return lxc;
  }

  /** Attaches (atomic replace) from_overlay to the tunnel device and from_underlay to the underlay device. */
  private attachDeviceFilters(lxc: LxcDatapath): void {
    this.deviceFilters = [];
    if (this.loadedFor.tunnelIfindex) this.deviceFilters.push(lxc.attachOverlay(this.loadedFor.tunnelIfindex));
    if (this.loadedFor.underlayIfindex) this.deviceFilters.push(lxc.attachUnderlay(this.loadedFor.underlayIfindex));
  }

  /** Attaches the programs to an endpoint's veth (replacing the filters' programs when they exist: no gap). */
  attachEndpoint(ifindex: number): void {
    this.programs.attachEndpoint(ifindex);
  }

  /**
   * Loads the programs for new device ifindexes and swaps them in on every device and endpoint
   * veth (atomic replace, as after a restart: no gap). The old object's fds close a little later,
   * so an operation already holding its maps finishes on them. Resolves with the new programs.
   */
  async reload(devices: DeviceIfindexes): Promise<LxcDatapath> {
    const old = this.programs;
    const lxc = await this.loadFor(devices);
    for (const [ip, info] of await lxc.endpoints.list()) {
      try {
        lxc.attachEndpoint(info.ifindex);
      } catch (err) {
        this.options.log.warn({ err, ip, ifindex: info.ifindex }, 'cannot attach the reloaded programs to an endpoint');
      }
    }
    this.loaded = lxc;
    setTimeout(() => old.close(), 10_000).unref();
    return lxc;
  }

  /** Puts back a filter of ours that was removed from the tunnel or underlay device (`tc qdisc del`). */
  checkDeviceFilters(): void {
    for (const filter of this.deviceFilters) {
      let progId: number | null = null;
      try {
        progId = filter.query();
      } catch {
        // the device went away since: the next check sees it
      }
      if (progId === filter.progId) continue;
      this.options.log.warn(
        { ifindex: filter.ifindex },
        'a filter of ours on the tunnel or underlay device was removed: attaching it again',
      );
      this.attachDeviceFilters(this.programs);
      break;
    }
  }

  /**
   * Removes the agent's ingress filter (handle 1, priority 1) from device when it runs the program
   * `name` (a filter someone else put there is left alone). True when one was removed.
   */
  async detachIngress(device: string, name: string): Promise<boolean> {
    const link = await getLink(device);
    if (!link) return false;
    if (tcFilterProgramName(link.ifindex, 'ingress') !== name) return false;
    bpfNative().tcDetach(link.ifindex, 'ingress', DEFAULT_TC_HANDLE, DEFAULT_TC_PRIORITY);
    return true;
  }

  /** Closes the loaded object's fds; pins and attachments stay and keep enforcing. */
  close(): void {
    this.loaded?.close();
    this.loaded = undefined;
  }

  /** Closes the fds and removes every pin under the pin root (the programs die with their last filter). */
  removePins(): void {
    this.close();
    const root = this.options.bpfRoot;
    if (!existsSync(root)) return;
    for (const name of readdirSync(root)) rmSync(join(root, name), { force: true, recursive: true });
    rmSync(root, { force: true, recursive: true });
  }
}
