/**
 * A real, single-member etcd for tests: loopback only, free ports, a temporary data directory.
 *
 * The server can be stopped and started again on the same ports and data directory, which is how
 * tests simulate an outage: clients keep their endpoint, the cluster keeps its id and revision,
 * and whatever the client does during the gap fails as it would against a dead etcd.
 *
 * Only processes this module spawned are ever signalled, by their own pid; a process `exit` hook
 * SIGKILLs any still running if a test file dies without its teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the etcd binary is looked for: `$ETCD_BIN`, else the Debian package's path. */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/** How long `start()` waits for `/health` to report true. */
const START_TIMEOUT_MS = 15_000;
/** How long `stop()` waits after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Why etcd cannot be used here (missing or not executable), or undefined when it can. */
export function etcdUnavailableReason(): string | undefined {
  try {
    accessSync(ETCD_BIN, constants.X_OK);
    return undefined;
  } catch {
    return `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set ETCD_BIN)`;
  }
}

/** One etcd member on 127.0.0.1. Create with {@link EtcdTestServer.start}. */
export class EtcdTestServer {
  /** The client URL, e.g. `http://127.0.0.1:40123`: the only endpoint clients need. */
  readonly clientUrl: string;
  /** The member's data directory, kept across stop/start and removed by `cleanup()`. */
  readonly dataDir: string;
  private readonly peerUrl: string;
  private child: ChildProcess | undefined;
  private stderrTail = '';

  private constructor(clientPort: number, peerPort: number, dataDir: string) {
    this.clientUrl = `http://127.0.0.1:${clientPort}`;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
    this.dataDir = dataDir;
  }

  /** Starts a fresh member on two free loopback ports and waits until it is healthy. */
  static async start(): Promise<EtcdTestServer> {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const server = new EtcdTestServer(clientPort, peerPort, mkdtempSync(join(tmpdir(), 'cilium-etcd-test-')));
    try {
      await server.resume();
    } catch (err) {
      await server.cleanup();
      throw err;
    }
    return server;
  }

  /** The etcd process id while it runs (for CPU accounting in benches). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the etcd process is running. */
  get running(): boolean {
    return this.child !== undefined;
  }

  /**
   * Starts the member again after `stop()` (same ports, same data: same cluster id and revision)
   * and waits until it is healthy.
   */
  async resume(): Promise<void> {
    if (this.child !== undefined) throw new Error(`etcd at ${this.clientUrl} is already running`);
    // Short raft timers: etcd's minimum lease TTL is 1.5 election timeouts rounded up to whole
    // seconds, so a 500 ms election timeout allows the 1 s leases the tests use.
    const child = spawn(
      ETCD_BIN,
      [
        '--name=test',
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.clientUrl}`,
        `--advertise-client-urls=${this.clientUrl}`,
        `--listen-peer-urls=${this.peerUrl}`,
        `--initial-advertise-peer-urls=${this.peerUrl}`,
        `--initial-cluster=test=${this.peerUrl}`,
        '--initial-cluster-state=new',
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    running.add(child);
    this.stderrTail = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(child);
        if (this.child === child) this.child = undefined;
        resolve(`etcd exited (${signal ?? code}) before becoming healthy: ${this.stderrTail}`);
      });
      child.once('error', (err) => resolve(`etcd could not be spawned: ${err.message}`));
    });

    const deadline = Date.now() + START_TIMEOUT_MS;
    let failure: string | undefined;
    void exited.then((reason) => (failure = reason));
    while (!(await this.healthy())) {
      if (failure !== undefined) throw new Error(failure);
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`etcd at ${this.clientUrl} was not healthy within ${START_TIMEOUT_MS} ms: ${this.stderrTail}`);
      }
      await sleep(50);
    }
  }

  /** Stops the member (SIGTERM, then SIGKILL after 5 s); keeps the data. No-op when stopped. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    running.delete(child);
    this.child = undefined;
  }

  /** Stops the member and removes its data directory. Idempotent. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Compacts the key-value history through `revision` (physically, so watches from before it
   * fail at once), through etcd's JSON gateway, so tests need no etcd client of their own.
   */
  async compact(revision: bigint): Promise<void> {
    const response = await fetch(`${this.clientUrl}/v3/kv/compaction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ revision: revision.toString(), physical: true }),
      signal: AbortSignal.timeout(5_000),
    });
    if (!response.ok)
      throw new Error(`etcd compaction to ${revision} failed: ${response.status} ${await response.text()}`);
  }

  /** Revokes a lease (its keys are deleted at once), as an operator or an expiry would. */
  async revokeLease(id: string): Promise<void> {
    const response = await fetch(`${this.clientUrl}/v3/lease/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ID: id }),
      signal: AbortSignal.timeout(5_000),
    });
    if (!response.ok) throw new Error(`etcd lease revoke ${id} failed: ${response.status} ${await response.text()}`);
  }

  /** Whether `/health` answers `"health":"true"` (false while stopped or starting). */
  async healthy(): Promise<boolean> {
    try {
      const response = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await response.json()) as { health?: string };
      return body.health === 'true';
    } catch {
      return false;
    }
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
