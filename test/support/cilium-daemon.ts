/**
 * Our daemon inside a lab host (its net + mount namespaces, beside its dockerd), and the CLI
 * pointed at it. Used by every e2e test.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerHost } from '../lab/docker-host.js';
import type { LabProcess } from '../lab/lab-process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { runCommand, type CommandResult } from '../lab/exec.js';
import { ApiClient } from '../../src/api/client.js';

const ROOT = new URL('../../', import.meta.url).pathname;
/** The daemon and CLI launchers (`make build` must have run). */
export const DAEMON_BIN = join(ROOT, 'bin/cilium-docker');
export const CLI_BIN = join(ROOT, 'bin/cilium');

/** Options of one daemon. */
export interface CiliumDaemonOptions {
  /** Driver name (plugin socket file name); default `cilium`. */
  driver?: string;
  defaultPool?: string;
  extraArgs?: string[];
}

/** A running (or restartable) daemon in a lab host. */
export class CiliumDaemon {
  process: LabProcess | undefined;
  readonly stateDir: string;
  readonly apiSocketOutside: string;
  readonly driver: string;
  readonly api: ApiClient;
  private restarts = 0;

  constructor(
    readonly host: DockerHost,
    private readonly options: CiliumDaemonOptions = {},
  ) {
    this.stateDir = join(host.dir, 'cilium-state');
    this.driver = options.driver ?? 'cilium';
    this.apiSocketOutside = join(host.ciliumRunDir, 'cilium.sock');
    this.api = new ApiClient(`unix://${this.apiSocketOutside}`);
  }

  /** Daemon argv (paths as seen inside the host). */
  argv(): string[] {
    return [
      DAEMON_BIN,
      '--state-dir',
      this.stateDir,
      '--plugin-socket',
      `/run/docker/plugins/${this.driver}.sock`,
      '--api-socket',
      '/run/cilium/cilium.sock',
      '--docker-host',
      this.host.dockerHost,
      '--node-name',
      this.host.name,
      '--default-pool',
      this.options.defaultPool ?? '198.18.160.0/20',
      '--metrics-address',
      '',
      ...(this.options.extraArgs ?? []),
    ];
  }

  /** Starts the daemon and waits until its API answers; `env` adds settings (CILIUM_DOCKER_*) for this run. */
  async start(timeoutMs = 30_000, env: Record<string, string> = {}): Promise<void> {
    this.process = this.host.spawn(
      this.argv(),
      { CILIUM_DOCKER_LOG_LEVEL: 'debug', ...env },
      { logName: `cilium-docker-${++this.restarts}.log` },
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.process.exited)
        throw new Error(
          `cilium-docker exited at start: ${JSON.stringify(this.process.exitStatus)}\n${this.process.logTail(30)}`,
        );
      if (existsSync(this.apiSocketOutside)) {
        try {
          await this.api.call('GET', '/v1/healthz');
          return;
        } catch {
          /* not yet */
        }
      }
      if (Date.now() > deadline)
        throw new Error(`cilium-docker did not answer within ${timeoutMs} ms\n${this.process.logTail(30)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the daemon with `signal` (SIGKILL = crash) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.process;
    if (!p || p.exited) return;
    p.kill(signal);
    await p.wait(15_000);
  }

  /** Runs the `cilium` CLI against this daemon (`input` goes to its stdin). */
  cli(args: string[], input?: string): Promise<CommandResult> {
    return runCommand(CLI_BIN, ['--host', `unix://${this.apiSocketOutside}`, ...args], { timeoutMs: 60_000, input });
  }

  /** Starts `cilium monitor -o json [--type ...]` and collects its events until stopped. */
  monitor(types: string[] = []): MonitorCapture {
    return new MonitorCapture(CLI_BIN, [
      '--host',
      `unix://${this.apiSocketOutside}`,
      'monitor',
      '-o',
      'json',
      ...types.flatMap((t) => ['--type', t]),
    ]);
  }

  /** `cilium <args> -o json`, parsed. */
  async cliJson<T>(args: string[]): Promise<T> {
    const r = await this.cli([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(`cilium ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** The daemon's log so far. */
  log(): string {
    return this.process?.readLog() ?? '';
  }
}

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A running `cilium monitor -o json`, collecting parsed events. */
export class MonitorCapture {
  readonly events: Array<Record<string, unknown>> = [];
  private readonly child: ChildProcess;
  private buffered = '';

  constructor(bin: string, args: string[]) {
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString('utf8');
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl).trim();
        this.buffered = this.buffered.slice(nl + 1);
        if (line === '') continue;
        try {
          this.events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON: ignore */
        }
      }
    });
  }

  /** Waits until an event matching `pred` arrived. */
  async waitFor(pred: (e: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return eventually(async () => this.events.find(pred), timeoutMs, 'monitor event');
  }

  /** Stops the monitor. */
  stop(): void {
    this.child.kill('SIGTERM');
  }
}
