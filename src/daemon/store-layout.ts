/**
 * The store's top-level key prefixes, each imported from the one module that declares and owns
 * its keys (docs/architecture.md, "Store layout", names the owners; a unit test checks that no
 * other file of src/ spells them). The store prefix must stay apart from them, and they are what
 * an upgrade from the unprefixed layout of earlier versions finds and moves
 * (kvstore/store-prefix.ts). A prefix added later is new-layout only and need not be listed.
 */
import { IP_PREFIX } from '../cluster/ip-publisher.js';
import { HEARTBEAT_PREFIX, NODES_PREFIX } from '../cluster/node-sync.js';
import { POLICIES_PREFIX } from '../endpoint/policy-repository-store.js';
import { IDENTITIES_PREFIX } from '../identity/identity-keys.js';
import { NETWORKS_PREFIX } from '../ipam/network-records.js';
import { IPAM_PREFIX } from '../ipam/pool-store.js';
import { NODE_RECORDS_PREFIX } from '../kvstore/store-scopes.js';

/** Every top-level prefix of the unprefixed layout, in key order. */
export const STORE_LAYOUT_PREFIXES: readonly string[] = [
  NODE_RECORDS_PREFIX,
  HEARTBEAT_PREFIX,
  IDENTITIES_PREFIX,
  IP_PREFIX,
  IPAM_PREFIX,
  NETWORKS_PREFIX,
  NODES_PREFIX,
  POLICIES_PREFIX,
];
