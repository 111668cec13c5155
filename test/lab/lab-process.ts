// A long-running process the lab started (dockerd, the daemon under test, a server in a host
// namespace): its own process group, output appended to a log file, tracked for emergency
// clean-up until it has exited.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { killGroup, tail } from './exec.js';
import { registerEmergencyCleanup } from './process-registry.js';

/** How a {@link LabProcess} ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options for {@link LabProcess.start}. */
export interface LabProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr are appended here. */
  logPath: string;
}

/** A started process. Created with {@link LabProcess.start}; `pid` is also its process group. */
export class LabProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly logPath: string;
  private exit: ProcessExit | undefined;
  private readonly whenExited: Promise<ProcessExit>;

  private constructor(argv: readonly string[], opts: LabProcessOptions) {
    this.argv = argv;
    this.logPath = opts.logPath;
    const log = openSync(opts.logPath, 'a');
    try {
      // detached: a new session and process group, so kill() reaches whatever it forks and a
      // terminal's SIGINT to the test runner does not hit it before the lab's clean-up runs.
      const child = spawn(argv[0]!, argv.slice(1), {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        detached: true,
        stdio: ['ignore', log, log],
      });
      if (child.pid === undefined) {
        throw new Error(`cannot start ${argv[0]}: no pid (is it installed?)`);
      }
      this.pid = child.pid;
      const unregister = registerEmergencyCleanup(() => killGroup(this.pid, 'SIGKILL'));
      this.whenExited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
          unregister();
          this.exit = { code, signal };
          resolve(this.exit);
        });
      });
      // Not unref()'d: a test awaiting wait() must keep the event loop alive until the exit.
      child.on('error', () => {}); // surfaced through 'exit' and the log
    } finally {
      closeSync(log);
    }
  }

  /** Starts `argv` (argv[0] an absolute path) with output appended to `opts.logPath`. */
  static start(argv: readonly string[], opts: LabProcessOptions): LabProcess {
    return new LabProcess(argv, opts);
  }

  /** True once the process has exited (and been reaped). */
  get exited(): boolean {
    return this.exit !== undefined;
  }

  /** Exit status once exited, else undefined. */
  get exitStatus(): ProcessExit | undefined {
    return this.exit;
  }

  /** Sends `signal` (default SIGTERM) to the process group. No-op once exited. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exit === undefined) killGroup(this.pid, signal);
  }

  /**
   * Resolves when the process exits. With `timeoutMs`, rejects if it is still running by then
   * (the process is left alone).
   */
  wait(timeoutMs?: number): Promise<ProcessExit> {
    if (timeoutMs === undefined) return this.whenExited;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.argv[0]} (pid ${this.pid}) still running after ${timeoutMs} ms`)),
        timeoutMs,
      );
      void this.whenExited.then((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<ProcessExit> {
    if (this.exit !== undefined) return this.exit;
    this.kill('SIGTERM');
    try {
      return await this.wait(graceMs);
    } catch {
      this.kill('SIGKILL');
      return this.whenExited;
    }
  }

  /** The whole log so far (empty when unreadable). */
  readLog(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** The last `lines` lines of the log. */
  logTail(lines = 40): string {
    return tail(this.readLog(), lines);
  }
}
