/**
 * Shared set-up of the IPAM tests: a real LocalKvStore in a fresh temporary directory, and Ipam
 * instances over it. No fakes: the store is the embedded backend the daemon uses.
 *
 * `withLatency` wraps the real store so every call first waits a random 0-2 ms, as a networked
 * store (etcd) would: concurrent requests then interleave at every await instead of in lock-step,
 * which is what the concurrency tests need to catch races.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { KvStore } from '../../../src/kvstore/kvstore.js';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { Ipam, type IpamOptions } from '../../../src/ipam/ipam.js';

/** A store file that can be closed and reopened within one test. */
export interface StoreFile {
  path: string;
  store: KvStore;
  /** Closes the current client and opens a new one on the same file (a daemon restart). */
  reopen(): Promise<KvStore>;
}

/** Opens a LocalKvStore in a new temporary directory; closed and removed when `t` ends. */
export function openStoreFile(t: Test): StoreFile {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-ipam-'));
  const path = join(dir, 'store.db');
  const file: StoreFile = {
    path,
    store: LocalKvStore.open({ path }),
    async reopen() {
      await file.store.close();
      file.store = LocalKvStore.open({ path });
      return file.store;
    },
  };
  t.teardown(async () => {
    await file.store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return file;
}

/** Default options of a test Ipam: node `node-a`, default pool 10.200.0.0/16 in /24s, /26 blocks. */
export const defaultIpamOptions = {
  nodeName: 'node-a',
  defaultPool: '10.200.0.0/16',
  defaultPoolPrefixLength: 24,
  blockPrefixLength: 26,
} satisfies Omit<IpamOptions, 'store'>;

/** An Ipam over `store` with the test defaults, overridden by `overrides`. */
export function newIpam(store: KvStore, overrides: Partial<Omit<IpamOptions, 'store'>> = {}): Ipam {
  return new Ipam({ ...defaultIpamOptions, ...overrides, store });
}

/** A fresh store and an Ipam over it. */
export function setup(t: Test, overrides: Partial<Omit<IpamOptions, 'store'>> = {}): { file: StoreFile; ipam: Ipam } {
  const file = openStoreFile(t);
  return { file, ipam: newIpam(file.store, overrides) };
}

/** Docker's RequestPool for `--subnet` (and optional `--ip-range`). */
export function subnetRequest(pool: string, subPool = ''): { pool: string; subPool: string; options: Record<string, string>; v6: boolean } {
  return { pool, subPool, options: {}, v6: false };
}

/** The real store, with a random 0-2 ms delay before every call. */
export function withLatency(store: KvStore): KvStore {
  const pause = () => new Promise<void>((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)));
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (property === 'watch') return value.bind(target);
      return async (...args: unknown[]) => {
        await pause();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
