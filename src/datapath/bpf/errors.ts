/**
 * BpfError: a failed libbpf or bpf() call, as the bpf-napi addon reports it.
 *
 * Like Node's SystemError, `code` is the errno name ('ENOENT', 'EPERM', 'E2BIG', or libbpf's own
 * 'LIBBPF_ERRNO__FORMAT'), `errno` the positive number and `syscall` the libbpf function that
 * failed. A failed object load carries libbpf's output, with the verifier log, in `log`. The
 * addon constructs this class itself (native.ts registers it), so callers switch on `err.code`.
 */
import { CiliumDockerError, type ErrorKind } from '../../util/errors.js';

/** What the addon knows about a failure. */
export interface BpfErrorDetails {
  code: string;
  errno: number;
  syscall: string;
  /** libbpf's printed output during the call; for a rejected program, the verifier log. */
  log?: string;
  /** Batch operations: how many elements were processed before the failure. */
  count?: number;
}

const kindByCode: Record<string, ErrorKind> = {
  ENOENT: 'NotFound',
  EEXIST: 'Conflict',
  EBUSY: 'Conflict',
  E2BIG: 'Conflict',
  ENOSPC: 'Conflict',
  EOPNOTSUPP: 'Unsupported',
  ENOTSUPP: 'Unsupported',
  ENOSYS: 'Unsupported',
};

/** A kernel or libbpf operation failed; see BpfErrorDetails for the fields. */
export class BpfError extends CiliumDockerError {
  readonly errno: number;
  readonly syscall: string;
  readonly log?: string;
  readonly count?: number;

  constructor(message: string, details: BpfErrorDetails) {
    super(kindByCode[details.code] ?? 'Internal', details.code, message);
    this.errno = details.errno;
    this.syscall = details.syscall;
    if (details.log !== undefined) this.log = details.log;
    if (details.count !== undefined) this.count = details.count;
  }

  /** The verifier's own lines of `log` (between libbpf's BEGIN/END PROG LOAD LOG markers). */
  get verifierLog(): string | undefined {
    const match = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(this.log ?? '');
    return match?.[1];
  }
}
