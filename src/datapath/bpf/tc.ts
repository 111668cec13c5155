/**
 * tc attachment of programs to a device's clsact qdisc (direct action).
 *
 * A filter is named by (ifindex, ingress|egress, handle, priority). The agent always uses the same
 * handle and priority (1, 1, as Cilium does), and attaches with replace: the first attach creates
 * the filter; any later one (a new agent after a restart, a new program version) swaps the program
 * inside the existing filter in a single netlink request, so packets never meet an empty hook.
 * Filters are not fds: they stay when the agent exits, which is what keeps policy enforced while
 * it is down. So TcAttachment has detach() and no close().
 */
import type { BpfProgram } from './bpf-program.js';
import { BpfError } from './errors.js';
import { bpfNative, type TcAttachPoint } from './native.js';

/** 'ingress' or 'egress' of the clsact qdisc. */
export type { TcAttachPoint };

/** Handle of the agent's filters. */
export const DEFAULT_TC_HANDLE = 1;
/** Priority of the agent's filters. */
export const DEFAULT_TC_PRIORITY = 1;

/** Where to attach and how. */
export interface TcAttachOptions {
  handle?: number;
  priority?: number;
  /** Replace the program of an existing filter (default true); false fails with EEXIST instead. */
  replace?: boolean;
}

/** A tc filter running a program on a device. */
export class TcAttachment {
  constructor(
    readonly ifindex: number,
    readonly point: TcAttachPoint,
    readonly handle: number,
    readonly priority: number,
    /** Id of the program attached by this call. */
    readonly progId: number,
  ) {}

  /** Id of the program the filter runs now, or null when the filter is gone. */
  query(): number | null {
    return bpfNative().tcQuery(this.ifindex, this.point, this.handle, this.priority);
  }

  /** Removes the filter. Throws BpfError ENOENT when it is already gone. */
  detach(): void {
    bpfNative().tcDetach(this.ifindex, this.point, this.handle, this.priority);
  }
}

/** Attaches program at the ingress or egress hook of ifindex (creating clsact when needed). */
export function attachTcProgram(
  ifindex: number,
  point: TcAttachPoint,
  program: BpfProgram,
  options: TcAttachOptions = {},
): TcAttachment {
  const filter = bpfNative().tcAttach(
    ifindex,
    point,
    program.fd,
    options.handle ?? DEFAULT_TC_HANDLE,
    options.priority ?? DEFAULT_TC_PRIORITY,
    options.replace ?? true,
  );
  return new TcAttachment(ifindex, point, filter.handle, filter.priority, filter.progId);
}

/**
 * Name of the program a filter runs (the C function name, as the kernel keeps it), or null when
 * there is no such filter: which agent's or tool's program sits in a hook, without `tc -json`.
 */
export function tcFilterProgramName(
  ifindex: number,
  point: TcAttachPoint,
  handle = DEFAULT_TC_HANDLE,
  priority = DEFAULT_TC_PRIORITY,
): string | null {
  const native = bpfNative();
  const id = native.tcQuery(ifindex, point, handle, priority);
  if (id === null) return null;
  let fd: number;
  try {
    fd = native.progGetFdById(id);
  } catch (err) {
    if (err instanceof BpfError && err.code === 'ENOENT') return null; // replaced or detached since
    throw err;
  }
  try {
    return native.progInfo(fd).name;
  } finally {
    native.closeFd(fd);
  }
}

/** Removes the clsact qdisc of ifindex and every filter on it (cleanup of a device we own). */
export function removeTcHooks(ifindex: number): void {
  bpfNative().tcHookDestroy(ifindex);
}
