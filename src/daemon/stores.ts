/**
 * Opening the daemon's stores: the cluster store of `--kvstore` and the node-local store
 * (kvstore/store-scopes.ts), both under the private state directory when they are files.
 */
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { KvStore } from '../kvstore/kvstore.js';
import { nodeRecordPrefix } from '../kvstore/store-scopes.js';
import { LocalKvStore, localOptionsFromKvstoreOpts } from '../kvstore/local/local-store.js';
import { EtcdKvStore, etcdOptionsFromKvstoreOpts } from '../kvstore/etcd/etcd-store.js';
import { ConsulKvStore, consulOptionsFromKvstoreOpts } from '../kvstore/consul/consul-store.js';
import { UnsupportedError } from '../util/errors.js';
import { log } from '../util/log.js';
import { ensurePrivateDir } from '../util/private-dir.js';

/** The cluster store of `--kvstore`, connected (the embedded one: `kvstore.db` in the state dir). */
export async function openStore(config: Config): Promise<KvStore> {
  switch (config.kvstore) {
    case 'local':
      ensureStateDir(config);
      return LocalKvStore.open({ path: join(config.stateDir, 'kvstore.db'), ...localOptionsFromKvstoreOpts(config.kvstoreOpts) });
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
  const leftovers = await cluster.list(prefix).then((r) => r.pairs.length, () => 0);
  if (leftovers > 0 && (await node.list(prefix)).pairs.length === 0) {
    log.warn({ prefix, keys: leftovers, nodeStore: join(config.stateDir, 'node-state.db') }, 'endpoint records of this node found in the cluster store are not used: node-local state lives in the node store now (see README, Stores)');
  }
  return node;
}

/** The state directory, private to the daemon's user (0700; see util/private-dir.ts). */
function ensureStateDir(config: Config): void {
  const { narrowedFrom } = ensurePrivateDir(config.stateDir, '--state-dir');
  if (narrowedFrom) log.warn({ stateDir: config.stateDir, mode: narrowedFrom }, 'the state directory let other users read the store: narrowed to 0700');
}
