/**
 * Runs iproute2 (`ip`) asynchronously with execFile and turns failures into DatapathError with
 * the command and stderr. The daemon runs in the host's network namespace, so every `ip`
 * command acts there (no setns() inside Node).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatapathError } from '../../util/errors.js';
import { runInIpWorker } from './ip-worker.js';

const IP_BINARY = process.env.CILIUM_DOCKER_IP_BINARY ?? 'ip';

/** Runs `ip <args>`; resolves with stdout, rejects with DatapathError (stderr in the message). */
export function runIp(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(IP_BINARY, args, { timeout: 15_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim();
        const e = new DatapathError(`ip ${args.join(' ')}: ${detail}`, { cause: err });
        (e as DatapathError & { stderr?: string }).stderr = stderr;
        reject(e);
        return;
      }
      resolve(stdout);
    });
  });
}

/** True when `stdbuf` (coreutils) is on PATH: the long-lived ip worker needs it. */
function workerAvailable(): boolean {
  workerUsable ??=
    process.env.CILIUM_DOCKER_IP_WORKER !== '0' &&
    (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, 'stdbuf')));
  return workerUsable;
}
let workerUsable: boolean | undefined;

/**
 * Runs several `ip` commands, in the long-lived `ip -batch` worker (ip-worker.ts) when it can
 * run, else in one `ip -json -batch -` process of their own: each spawn costs tens of ms and
 * blocks the event loop while forking, and container start runs several. Resolves with the JSON
 * arrays the `show` commands printed, one per line, in order; rejects with the first failure
 * (in the worker the later commands still run, as with -force; they are all idempotent here).
 */
export function runIpBatch(commands: string[][]): Promise<unknown[][]> {
  if (workerAvailable()) return runInIpWorker(commands, IP_BINARY);
  return runIpBatchProcess(commands);
}

/** runIpBatch in a process of its own. */
export function runIpBatchProcess(commands: string[][]): Promise<unknown[][]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      IP_BINARY,
      ['-json', '-batch', '-'],
      { timeout: 15_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const e = new DatapathError(
            `ip -batch (${commands.map((c) => c.join(' ')).join('; ')}): ${(stderr || err.message).trim()}`,
            { cause: err },
          );
          reject(e);
          return;
        }
        resolve(
          stdout
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l) as unknown[]),
        );
      },
    );
    child.stdin?.end(`${commands.map((c) => c.join(' ')).join('\n')}\n`);
  });
}

/** Runs `ip -json <args>` and parses the JSON array it prints (empty output -> []). */
export async function runIpJson<T>(args: string[]): Promise<T[]> {
  const out = await runIp(['-json', ...args]);
  if (out.trim() === '') return [];
  return JSON.parse(out) as T[];
}

/** True if the error is iproute2 saying the object does not exist. */
export function isNotFound(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return /Cannot find device|does not exist|No such device|No such process|not found/i.test(text);
}

/** True if the error is iproute2 saying the object already exists. */
export function isExists(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return /File exists|already assigned/i.test(text);
}
