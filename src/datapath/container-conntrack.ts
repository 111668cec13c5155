/**
 * Kernel conntrack bypass inside container network namespaces.
 *
 * Why: dockerd starts its embedded DNS server (127.0.0.11) for every container on a user-defined
 * network, whatever the driver, and installs NAT rules for it in the container's namespace. NAT
 * rules switch the kernel's connection tracking on for that namespace, so every packet a
 * container sends or receives is tracked twice more (in the sender's and in the receiver's
 * namespace), although our BPF datapath already tracks every connection for policy. Measured
 * here: 7 % of a container-to-container TCP stream (bench/datapath.ts).
 *
 * What: two rules in the container namespace's raw table, exempting everything but loopback
 * (where the embedded DNS server's NAT needs conntrack) from tracking:
 *   -A PREROUTING ! -i lo -j CT --notrack
 *   -A OUTPUT ! -o lo -j CT --notrack
 * Applied once per endpoint, in the background after the container is known (never inside a
 * plugin call), through `nsenter --net=<sandbox> iptables-restore --noflush` (no setns() in Node).
 * Containers that may run their own netfilter (privileged, or with NET_ADMIN) are left alone: a
 * NAT or stateful rule of theirs needs conntrack. `--container-conntrack=kernel` turns it off.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../util/log.js';

/** Comment on our rules (also how a test or an operator finds them). */
export const NOTRACK_COMMENT = 'cilium-docker: no kernel conntrack, the BPF datapath tracks connections';

/** The iptables-restore input: our two rules, added to whatever the raw table holds. */
export function notrackRules(): string {
  const c = `-m comment --comment "${NOTRACK_COMMENT}"`;
  return ['*raw', `-A PREROUTING ! -i lo ${c} -j CT --notrack`, `-A OUTPUT ! -o lo ${c} -j CT --notrack`, 'COMMIT', ''].join('\n');
}

/** What the bypass needs to know about a container. */
export interface BypassTarget {
  endpointId: string;
  /** The container's network namespace (Join's SandboxKey). */
  sandboxKey: string;
  /** Privileged or NET_ADMIN: the container may manage its own netfilter. */
  managesNetfilter: boolean;
  /** The endpoint predates this daemon process: its rules may be there already (checked first). */
  mayExist?: boolean;
}

export interface ContainerConntrackOptions {
  log: Logger;
  /** Binaries (tests and odd hosts may override). */
  nsenter?: string;
  iptablesRestore?: string;
  iptables?: string;
}

/** Applies the bypass one container at a time, in the background. */
export class ContainerConntrackBypass {
  readonly #done = new Set<string>();
  #queue: Promise<void> = Promise.resolve();
  #applied = 0;
  #skipped = 0;
  #failed = 0;

  constructor(private readonly options: ContainerConntrackOptions) {}

  /** Counters for `cilium status`. */
  get stats(): { applied: number; skipped: number; failed: number } {
    return { applied: this.#applied, skipped: this.#skipped, failed: this.#failed };
  }

  /**
   * Queues the bypass for one endpoint's namespace; resolves when it ran (or was skipped). An
   * endpoint is handled once per daemon process; after a restart (`mayExist`) the rules are
   * looked for before they are added.
   */
  apply(target: BypassTarget): Promise<'applied' | 'present' | 'skipped' | 'failed'> {
    const key = `${target.endpointId}:${target.sandboxKey}`;
    if (this.#done.has(key)) return Promise.resolve('skipped');
    this.#done.add(key);
    const result = this.#queue.then(() => this.#run(target));
    this.#queue = result.then(() => undefined);
    return result;
  }

  /** Forgets an endpoint (deleted). */
  forget(endpointId: string): void {
    for (const k of this.#done) if (k.startsWith(`${endpointId}:`)) this.#done.delete(k);
  }

  async #run(target: BypassTarget): Promise<'applied' | 'present' | 'skipped' | 'failed'> {
    const { log } = this.options;
    if (target.managesNetfilter) {
      this.#skipped++;
      log.debug({ endpoint: target.endpointId }, 'conntrack bypass skipped: the container is privileged or has NET_ADMIN');
      return 'skipped';
    }
    if (!target.sandboxKey) {
      this.#skipped++;
      return 'skipped';
    }
    const nsenter = this.options.nsenter ?? 'nsenter';
    if (target.mayExist) {
      const check = await run(
        nsenter,
        [`--net=${target.sandboxKey}`, '--', this.options.iptables ?? 'iptables', '-w', '5', '-t', 'raw', '-C', 'PREROUTING', '!', '-i', 'lo', '-m', 'comment', '--comment', NOTRACK_COMMENT, '-j', 'CT', '--notrack'],
        '',
      );
      if (check.code === 0) return 'present';
    }
    const r = await run(
      nsenter,
      [`--net=${target.sandboxKey}`, '--', this.options.iptablesRestore ?? 'iptables-restore', '-w', '5', '--noflush'],
      notrackRules(),
    );
    if (r.code !== 0) {
      this.#failed++;
      this.#done.delete(`${target.endpointId}:${target.sandboxKey}`);
      log.warn({ endpoint: target.endpointId, sandbox: target.sandboxKey, err: r.stderr.trim() }, 'conntrack bypass not applied; the container keeps kernel conntrack (slower, still correct)');
      return 'failed';
    }
    this.#applied++;
    return 'applied';
  }
}

function run(cmd: string, args: string[], input: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: 15_000 });
    } catch (err) {
      resolve({ code: 127, stderr: err instanceof Error ? err.message : String(err) });
      return;
    }
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: 127, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input);
  });
}
