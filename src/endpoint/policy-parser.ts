/**
 * Policy parsing off the main thread. Parsing and validating a large import (YAML of 16 000 CIDRs)
 * or a stored repository takes hundreds of milliseconds of CPU; on the main thread that is as long
 * a pause for every plugin call dockerd makes meanwhile (it waits on them). One worker thread,
 * started on first use and kept (unref'd: it never holds the process open), does that work;
 * requests are answered in order. The result is plain data (structured clone), so the main thread
 * only pays for copying it.
 */
import { Worker } from 'node:worker_threads';
import type { CiliumNetworkPolicy, ParsedSnapshot } from '../policy/index.js';
import { CiliumDockerError, PolicyValidationError } from '../util/errors.js';

/** A request to the worker: an import's text, or a stored repository value (JSON). */
export type ParseRequest = { id: number; kind: 'text'; text: string } | { id: number; kind: 'snapshot'; text: string };

/** The worker's answer; `invalid` marks a PolicyValidationError (anything else is a failure of ours). */
export type ParseResponse =
  | { id: number; ok: true; result: CiliumNetworkPolicy[] | ParsedSnapshot }
  | { id: number; ok: false; invalid: boolean; message: string };

/** The worker entry next to this module (`.ts` under the test runner's loader, `.js` in dist/). */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './policy-parse-worker.ts' : './policy-parse-worker.js',
  import.meta.url,
);

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** Parses policy text and repository snapshots in a worker thread. */
export class PolicyParser {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /** `parsePolicyText(text)` in the worker: the policies, or its PolicyValidationError. */
  parseText(text: string): Promise<CiliumNetworkPolicy[]> {
    return this.request('text', text) as Promise<CiliumNetworkPolicy[]>;
  }

  /** `PolicyRepository.parseSnapshot(JSON.parse(value))` in the worker (a stored repository). */
  parseSnapshot(value: string): Promise<ParsedSnapshot> {
    return this.request('snapshot', value) as Promise<ParsedSnapshot>;
  }

  /** Ends the worker; requests still pending are rejected. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private request(kind: ParseRequest['kind'], text: string): Promise<unknown> {
    const worker = this.started();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, kind, text } satisfies ParseRequest);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    worker.on('message', (response: ParseResponse) => {
      const waiting = this.pending.get(response.id);
      this.pending.delete(response.id);
      if (this.pending.size === 0) worker.unref();
      if (!waiting) return;
      if (response.ok) waiting.resolve(response.result);
      else
        waiting.reject(
          response.invalid
            ? new PolicyValidationError(response.message)
            : new CiliumDockerError('Internal', 'ERR_INTERNAL', `policy parser: ${response.message}`),
        );
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      const waiting = [...this.pending.values()];
      this.pending.clear();
      for (const w of waiting)
        w.reject(
          new CiliumDockerError(
            'Internal',
            'ERR_INTERNAL',
            `policy parser thread failed: ${err.message}; retry the command`,
          ),
        );
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
