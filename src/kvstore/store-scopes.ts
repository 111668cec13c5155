/**
 * Which store holds which keys: the one place that says what the cluster shares and what only
 * this node owns.
 *
 * Seed 002's outage guarantee (networking goes on, containers whose identity is known locally
 * still start) cannot hold if a container start needs the cluster store. So everything that only
 * this node reads and writes lives in the node-local store, an embedded SQLite file under the
 * state dir, even when the cluster store is etcd or consul:
 *
 * | key                                          | scope   | why |
 * |----------------------------------------------|---------|-----|
 * | `docker/v1/<node>/networks/<id>`             | node    | Docker's local-scope network as this node serves it |
 * | `docker/v1/<node>/endpoints/<id>`            | node    | this node's endpoints; restored after a restart |
 * | `ipam/v1/addresses/<pool>/<ip>` (1)          | node    | only the block's holder hands out its addresses |
 * | `ipam/v1/addresses/<pool>/<ip>` (2)          | cluster | every host must see them |
 * | `ipam/v1/pools/…`, `ipam/v1/pool-users/…`    | cluster | the same network on every host |
 * | `ipam/v1/blocks/<pool>/<cidr>`               | cluster | create-only claims: two hosts never hold one block |
 * | `identities/v1/…`, `ip/v1/…`, `nodes/v1/…`, `policies/v1/…` | cluster | shared by every host |
 *
 * (1) a container address inside a block this node holds; (2) a gateway, an `--aux-address`, or an
 * `--ip` outside this node's blocks.
 *
 * Keys are as the daemon's modules name them: the cluster store puts them all under
 * `--kvstore-opt prefix` (default `cilium/state/`, kvstore/prefixed-store.ts, docs/store-layout.md);
 * the node store of etcd/consul nodes is a private file without prefix.
 *
 * With `--kvstore local` both scopes are the same store object (`PoolStore.split` is false) and every key
 * stays where it always was. With etcd or consul nothing is migrated: endpoint records and
 * container addresses an older version wrote to the cluster store stay there, unused (the daemon
 * logs how many it found at start; see docs/stores.md, "Store outages").
 */

/**
 * Top-level prefix of the node-scope records (`docker/v1/<node>/…`; one of the store layout's,
 * daemon/store-layout.ts). Declared here, with the scopes it defines, and not in the endpoint
 * layer that writes the records below it (`networks/<id>`, `endpoints/<id>`, `label-encoding`):
 * opening the node store (daemon/stores.ts) looks for them too.
 */
export const NODE_RECORDS_PREFIX = 'docker/v1/';

/** Prefix of this node's endpoint and network records (node scope): `docker/v1/<node>/`. */
export function nodeRecordPrefix(nodeName: string): string {
  return `${NODE_RECORDS_PREFIX}${nodeName}/`;
}
