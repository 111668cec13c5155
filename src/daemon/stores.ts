/**
 * Opening the daemon's stores: the cluster store of `--kvstore` (under `--kvstore-opt prefix`,
 * instrumented for the metrics) and the node-local store (kvstore/store-scopes.ts), both under the
 * private state directory when they are files.
 */
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { KvStore } from '../kvstore/kvstore.js';
import { InstrumentedKvStore } from '../kvstore/instrumented-store.js';
import { openPrefixedStore } from '../kvstore/store-prefix.js';
import { nodeRecordPrefix } from '../kvstore/store-scopes.js';
import { LocalKvStore, localOptionsFromKvstoreOpts } from '../kvstore/local/local-store.js';
import { EtcdKvStore, etcdOptionsFromKvstoreOpts } from '../kvstore/etcd/etcd-store.js';
import { ConsulKvStore, consulOptionsFromKvstoreOpts } from '../kvstore/consul/consul-store.js';
import { UnsupportedError } from '../util/errors.js';
import { log } from '../util/log.js';
import { ensurePrivateDir } from '../util/private-dir.js';
import type { CleanupStack } from '../util/cleanup-stack.js';
import type { Metrics } from '../util/metrics.js';
import { STORE_LAYOUT_PREFIXES } from './store-layout.js';

/** The daemon's stores: the cluster store the parts use, the node store, the backend's reconnects. */
export interface DaemonStores {
  /** Every cluster key under the prefix; each operation timed into `cilium_kvstore_*`. */
  store: InstrumentedKvStore;
  /** `store` itself with `--kvstore local`, else an embedded file of its own. */
  nodeStore: KvStore;
  /** Calls `listener` each time the backend reconnects (etcd, consul: a new lease or session); local: never. */
  onReconnect(listener: (reason: unknown) => void): void;
}

/**
 * Opens the cluster store and the node store, registering each one's close on `undo` right after
 * it is open (the cluster store first).
 */
export async function openStores(config: Config, undo: CleanupStack, metrics: Metrics): Promise<DaemonStores> {
  const rawStore = await openStore(config);
  undo.push('close the store', () => rawStore.close());
  // Every cluster key under --kvstore-opt prefix; the embedded store is this node's alone, so its
  // unprefixed keys of an earlier version are moved without asking (kvstore/store-prefix.ts).
  const { store: prefixedStore } = await openPrefixedStore(rawStore, {
    prefix: config.kvstorePrefix,
    migrate: config.kvstore === 'local' || config.kvstoreMigratePrefix,
    layout: STORE_LAYOUT_PREFIXES,
    backend: `--kvstore ${config.kvstore}`,
    log: log.child({ component: 'kvstore' }),
  });
  const store = new InstrumentedKvStore(prefixedStore, (action, seconds, ok) => {
    metrics.kvstoreSeconds.observe({ action, outcome: ok ? 'success' : 'fail' }, seconds);
  });
  const nodeStore = await openNodeStore(config, store);
  if (nodeStore !== store) undo.push('close the node store', () => nodeStore.close());
  const reconnectable = rawStore as { onReconnect?: (cb: (reason: unknown) => void) => unknown };
  return { store, nodeStore, onReconnect: (listener) => void reconnectable.onReconnect?.(listener) };
}

/** The cluster store of `--kvstore`, connected (the embedded one: `kvstore.db` in the state dir). */
export async function openStore(config: Config): Promise<KvStore> {
  switch (config.kvstore) {
    case 'local':
      ensureStateDir(config);
      return LocalKvStore.open({
        path: join(config.stateDir, 'kvstore.db'),
        ...localOptionsFromKvstoreOpts(config.kvstoreOpts),
      });
    case 'etcd':
      return EtcdKvStore.open(etcdOptionsFromKvstoreOpts(config.kvstoreOpts));
    case 'consul':
      return ConsulKvStore.open(consulOptionsFromKvstoreOpts(config.kvstoreOpts));
    default:
      throw new UnsupportedError(`--kvstore ${String(config.kvstore)} is not a backend; use local, etcd or consul`);
  }
}

/**
 * The node-local store (`kvstore/store-scopes.ts`): the cluster store itself with `--kvstore
 * local`, otherwise an embedded file of its own under the state dir (`node-state.db`, not
 * `kvstore.db`: a state dir that ran with `--kvstore local` before is never read as node state).
 */
export async function openNodeStore(config: Config, cluster: KvStore): Promise<KvStore> {
  if (config.kvstore === 'local') return cluster;
  ensureStateDir(config);
  const node = LocalKvStore.open({ path: join(config.stateDir, 'node-state.db') });
  // Nothing is migrated: records an older version kept in the cluster store are only reported.
  const prefix = nodeRecordPrefix(config.nodeName);
  const leftovers = await cluster.list(prefix).then(
    (r) => r.pairs.length,
    () => 0,
  );
  if (leftovers > 0 && (await node.list(prefix)).pairs.length === 0) {
    log.warn(
      { prefix, keys: leftovers, nodeStore: join(config.stateDir, 'node-state.db') },
      'endpoint records of this node found in the cluster store are not used: ' +
        'node-local state lives in the node store now (see docs/stores.md)',
    );
  }
  return node;
}

/** The state directory, private to the daemon's user (0700; see util/private-dir.ts). */
function ensureStateDir(config: Config): void {
  const { narrowedFrom } = ensurePrivateDir(config.stateDir, '--state-dir');
  if (narrowedFrom)
    log.warn(
      { stateDir: config.stateDir, mode: narrowedFrom },
      'the state directory let other users read the store: narrowed to 0700',
    );
}
