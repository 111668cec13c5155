/**
 * The daemon's plugin stack in-process (real store, IPAM, identities, endpoint manager, plugin
 * server on a real Unix socket) over a fake datapath, and an HTTP client that talks to it the
 * way dockerd does (POST, no Content-Type).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../src/kvstore/local/local-store.js';
import type { KvStore } from '../../src/kvstore/kvstore.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { NetworkRegistry } from '../../src/ipam/network-registry.js';
import { IdentityAllocator } from '../../src/identity/allocator.js';
import { EndpointManager } from '../../src/endpoint/endpoint-manager.js';
import { networkDriverHandlers } from '../../src/plugin/network-driver.js';
import { ipamDriverHandlers } from '../../src/plugin/ipam-driver.js';
import { PluginServer } from '../../src/plugin/server.js';
import { NetworkCreationTracker } from '../../src/plugin/network-creation-tracker.js';
import { log } from '../../src/util/log.js';
import { FakeDatapath } from './fake-datapath.js';

/** A reply as dockerd would see it. */
export interface PluginReply {
  status: number;
  body: Record<string, unknown>;
  raw: string;
}

/** Sends one plugin call over a Unix socket, like dockerd (no Content-Type). */
export function pluginCall(socketPath: string, call: string, body?: unknown | { raw: string }): Promise<PluginReply> {
  const payload =
    body === undefined
      ? ''
      : typeof body === 'object' && body !== null && 'raw' in body
        ? (body as { raw: string }).raw
        : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        agent: false,
        method: 'POST',
        path: `/${call}`,
        headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
          } catch {
            parsed = { unparsable: raw };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, raw });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Options of the stack. */
export interface PluginStackOptions {
  dir?: string;
  nodeName?: string;
  defaultPool?: string;
  datapath?: FakeDatapath;
  /** A store to use instead of `<dir>/kvstore.db` (not closed by `stop()`): two stacks on one store are two hosts. */
  store?: KvStore;
}

/** A running in-process stack. */
export class PluginStack {
  readonly dir: string;
  readonly socketPath: string;
  readonly datapath: FakeDatapath;
  store!: KvStore;
  ipam!: Ipam;
  identities!: IdentityAllocator;
  endpoints!: EndpointManager;
  networks!: NetworkRegistry;
  private server!: PluginServer;
  private ownsDir: boolean;

  constructor(private readonly options: PluginStackOptions = {}) {
    this.ownsDir = options.dir === undefined;
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), 'cd-plugin-'));
    this.socketPath = join(this.dir, 'cilium-test.sock');
    this.datapath = options.datapath ?? new FakeDatapath();
  }

  /** Opens the store and starts serving (restoring state like a restarted daemon). */
  async start(): Promise<this> {
    const nodeName = this.options.nodeName ?? 'node-a';
    this.store = this.options.store ?? LocalKvStore.open({ path: join(this.dir, 'kvstore.db') });
    this.ipam = new Ipam({
      store: this.store,
      nodeName,
      defaultPool: this.options.defaultPool ?? '198.18.8.0/21',
      defaultPoolPrefixLength: 24,
      blockPrefixLength: 26,
    });
    this.identities = new IdentityAllocator({ store: this.store, nodeName, log: log.child({ component: 'identity' }) });
    this.networks = new NetworkRegistry({
      store: this.store,
      nodeName,
      ipam: this.ipam,
      log: log.child({ component: 'networks' }),
    });
    this.endpoints = new EndpointManager({
      store: this.store,
      nodeName,
      datapath: this.datapath,
      identities: this.identities,
      networks: this.networks,
      log: log.child({ component: 'endpoint' }),
    });
    await this.endpoints.restore();
    const creations = new NetworkCreationTracker();
    this.server = new PluginServer({
      socketPath: this.socketPath,
      network: networkDriverHandlers(this.endpoints, creations, this.ipam),
      ipam: ipamDriverHandlers(this.ipam, creations, this.networks),
      log: log.child({ component: 'plugin' }),
    });
    await this.server.start();
    return this;
  }

  /** One plugin call. */
  call(call: string, body?: unknown): Promise<PluginReply> {
    return pluginCall(this.socketPath, call, body);
  }

  /** Stops serving and closes the store (state stays on disk). */
  async stop(): Promise<void> {
    await this.server.stop();
    if (!this.options.store) await this.store.close();
  }

  /** Stops and removes the temp dir. */
  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
