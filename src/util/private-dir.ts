/**
 * The state directory holds the store file, and with it every key (identities, endpoints,
 * networks, policies): only the daemon's user may read it, and nobody else may own or write it
 * (whoever can replace `kvstore.db`, or put a symlink in its place, controls what the daemon
 * believes and writes).
 */
import { chmodSync, mkdirSync, type Stats, statSync } from 'node:fs';
import { ConfigError } from './errors.js';

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

function effectiveUid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Refuses a directory that exists and is not a directory, is owned by another user, or is
 * writable by group or others. A missing directory passes (ensurePrivateDir creates it 0700).
 * Changes nothing. `option` names the setting in messages (`--state-dir`).
 */
export function assertPrivateDir(path: string, option: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ConfigError(`${option} ${path}: cannot inspect it (${(err as Error).message})`, { cause: err });
  }
  if (!st.isDirectory())
    throw new ConfigError(`${option} ${path} is not a directory; remove it or choose another ${option}`);
  const uid = effectiveUid();
  if (st.uid !== uid) {
    throw new ConfigError(
      `${option} ${path} is owned by uid ${st.uid}, not by this daemon's user (uid ${uid}): ` +
        `that user could read or replace the store; chown ${uid} ${path} or choose another ${option}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new ConfigError(
      `${option} ${path} is writable by other users (mode ${octal(st.mode)}): they could replace the store's files; ` +
        `check its contents, chmod 0700 ${path}, or choose another ${option}`,
    );
  }
}

/**
 * Makes `path` a directory only its owner (this daemon's user) can enter: created 0700 (parents
 * too) when missing; an existing one that passes assertPrivateDir but lets others read or enter
 * it is narrowed to 0700. Resolves with the mode it had when it was narrowed.
 */
export function ensurePrivateDir(path: string, option: string): { narrowedFrom?: string } {
  assertPrivateDir(path, option);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const mode = statSync(path).mode;
  if ((mode & 0o077) === 0) return {};
  chmodSync(path, mode & 0o7700);
  return { narrowedFrom: octal(mode) };
}
