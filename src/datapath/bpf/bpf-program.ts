/**
 * BpfProgram: a loaded BPF program (an fd this process owns). Attaching is a separate step
 * (tc.ts); a program stays loaded while an attachment, a pin or an fd refers to it.
 */
import { DatapathError } from '../../util/errors.js';
import { bpfNative, type NativeTestRun } from './native.js';

/** A loaded program. Owns its fd: close() it. */
export class BpfProgram {
  private ownedFd: number;

  /** Takes ownership of fd. */
  constructor(
    fd: number,
    readonly name: string,
    readonly id: number,
    readonly type: number,
  ) {
    this.ownedFd = fd;
  }

  /** Opens the program pinned at path. */
  static openPinned(path: string): BpfProgram {
    const native = bpfNative();
    const fd = native.objGet(path);
    try {
      const info = native.progInfo(fd);
      return new BpfProgram(fd, info.name, info.id, info.type);
    } catch (err) {
      native.closeFd(fd);
      throw err;
    }
  }

  /** The fd, for handing to the addon. Throws once closed. */
  get fd(): number {
    if (this.ownedFd < 0) throw new DatapathError(`program ${this.name} is closed`);
    return this.ownedFd;
  }

  /** Pins the program at path (a bpffs file). */
  pin(path: string): void {
    bpfNative().objPin(this.fd, path);
  }

  /** Runs the program on a copy of packet (BPF_PROG_TEST_RUN); for tests and benchmarks. */
  testRun(packet: Buffer, repeat = 1): NativeTestRun {
    return bpfNative().progTestRun(this.fd, packet, repeat);
  }

  /** Closes the fd; attachments keep the program loaded. Idempotent. */
  close(): void {
    if (this.ownedFd < 0) return;
    const fd = this.ownedFd;
    this.ownedFd = -1;
    bpfNative().closeFd(fd);
  }
}
