// Running short-lived commands for the lab: argv only (never a shell string), output captured,
// a hard timeout, and a result object instead of an exception unless the caller asks for one.

import { spawn } from 'node:child_process';

/** Outcome of one finished command. `code` is -1 when the process died by a signal or timed out. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
  /** Signal that ended the process, if any (a timeout ends it with SIGKILL). */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** Options for {@link runCommand}. */
export interface RunOptions {
  /** Written to the command's stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string | Buffer;
  /** Kill the command (SIGKILL, whole process group) after this long. Default 120 s. */
  timeoutMs?: number;
  /** Environment; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Throw a {@link CommandError} when the command does not exit 0. Default false. */
  check?: boolean;
}

/** A command run with `check: true` failed; `result` holds its output. */
export class CommandError extends Error {
  readonly code = 'ERR_LAB_COMMAND';
  constructor(
    readonly argv: readonly string[],
    readonly result: CommandResult,
  ) {
    const how = result.timedOut
      ? 'timed out'
      : result.signal !== null
        ? `died of ${result.signal}`
        : `exited ${result.code}`;
    super(`command ${how}: ${argv.join(' ')}\n${tail(result.stderr || result.stdout, 20)}`);
    this.name = 'CommandError';
  }
}

const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * Runs `file` with `args` and resolves with its captured output once it exits. Never rejects
 * unless `check` is set (or the binary cannot be started at all with `check` set); a missing
 * binary otherwise yields code 127 with the error in `stderr`.
 */
export function runCommand(file: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const argv = [file, ...args];
  return new Promise((resolve, reject) => {
    // detached: its own process group, so a timeout kills helpers it forked too.
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}); // EPIPE when the command ignores its input
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: CommandResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (spawnError ? `${spawnError.message}\n` : ''),
        code: spawnError ? 127 : (code ?? -1),
        signal: signal,
        timedOut,
      };
      if (opts.check && (result.code !== 0 || timedOut)) reject(new CommandError(argv, result));
      else resolve(result);
    });
  });
}

/** Sends `signal` to the process group led by `pid`, falling back to the process alone. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** The last `lines` lines of `text`, for error messages and comments. */
export function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}
