/**
 * Reserved identities and the policy entities that select them, as Cilium defines them
 * (`pkg/identity/numericidentity.go`, `pkg/policy/api/entity.go`).
 *
 * The identity module owns the numbers (src/identity/reserved.ts); this module re-exports them and
 * adds what policy needs on top: entities and which identities they select.
 */
import { type LabelSet, SOURCE_RESERVED } from '../identity/labels.js';
import { SOURCE_CIDR } from './cidr.js';

export {
  IDENTITY_WILDCARD,
  IDENTITY_HOST,
  IDENTITY_WORLD,
  IDENTITY_UNMANAGED,
  IDENTITY_HEALTH,
  IDENTITY_INIT,
  IDENTITY_REMOTE_NODE,
  IDENTITY_KUBE_APISERVER,
  IDENTITY_INGRESS,
  IDENTITY_WORLD_IPV4,
  IDENTITY_WORLD_IPV6,
  RESERVED_IDENTITY_NAMES,
  RESERVED_IDENTITY_LABELS,
} from '../identity/reserved.js';
import { RESERVED_IDENTITY_LABELS } from '../identity/reserved.js';

/** Entities this implementation supports in `fromEntities`/`toEntities`. */
export const SUPPORTED_ENTITIES = ['all', 'world', 'host', 'remote-node', 'cluster'] as const;

/** A supported entity name. */
export type Entity = (typeof SUPPORTED_ENTITIES)[number];

/** Entities Cilium knows that we reject by name (so the error says "not supported", not "unknown"). */
export const UNSUPPORTED_CILIUM_ENTITIES: readonly string[] = [
  'init',
  'health',
  'unmanaged',
  'kube-apiserver',
  'ingress',
  'none',
  'world-ipv4',
  'world-ipv6',
];

const WORLD_NAMES = new Set(['world', 'world-ipv4', 'world-ipv6']);

/**
 * Reserved names inside the `cluster` entity. Cilium's `InitEntities` builds `cluster` from
 * host, remote-node, init, health, unmanaged (kube-apiserver and ingress in later versions) plus
 * every endpoint of the cluster; here "every endpoint" is every identity without a reserved or
 * `cidr:` label, since all containers on all hosts form one cluster.
 */
const CLUSTER_RESERVED_NAMES = new Set([
  'host',
  'remote-node',
  'init',
  'health',
  'unmanaged',
  'kube-apiserver',
  'ingress',
]);

function reservedNames(labels: LabelSet): string[] {
  return labels.labels.filter((l) => l.source === SOURCE_RESERVED).map((l) => l.key);
}

/**
 * True if `entity` selects an identity with these labels. `all` selects everything (the compiler
 * turns it into the wildcard identity 0 rather than a list); `world` selects the world identities
 * and CIDR identities (they carry `reserved:world`); `host` selects `reserved:host`;
 * `remote-node` selects `reserved:remote-node` (other hosts of the cluster, as the overlay marks
 * their own traffic); `cluster` is described at {@link CLUSTER_RESERVED_NAMES}.
 */
export function entitySelects(entity: Entity, labels: LabelSet): boolean {
  switch (entity) {
    case 'all':
      return true;
    case 'world':
      return reservedNames(labels).some((n) => WORLD_NAMES.has(n));
    case 'host':
      return reservedNames(labels).includes('host');
    case 'remote-node':
      return reservedNames(labels).includes('remote-node');
    case 'cluster': {
      const reserved = reservedNames(labels);
      if (reserved.length === 0) return !labels.labels.some((l) => l.source === SOURCE_CIDR);
      return reserved.some((n) => CLUSTER_RESERVED_NAMES.has(n));
    }
  }
}

/** Adds the reserved identities the caller did not provide; the caller's entries win. */
export function withReservedIdentities(identities: Iterable<readonly [number, LabelSet]>): Map<number, LabelSet> {
  const all = new Map<number, LabelSet>(RESERVED_IDENTITY_LABELS);
  for (const [id, labels] of identities) all.set(id, labels);
  return all;
}
