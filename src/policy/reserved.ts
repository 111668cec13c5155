/**
 * Reserved identities and the policy entities that select them, as Cilium defines them
 * (`pkg/identity/numericidentity.go`, `pkg/policy/api/entity.go`).
 *
 * The identity module owns allocation; policy only needs the fixed numbers and labels to evaluate
 * entities, so they are restated here (policy may import nothing but label types).
 */
import { LabelSet, SOURCE_RESERVED } from '../identity/labels.js';
import { SOURCE_CIDR } from './cidr.js';

/** Identity 0: "any identity" in policy map keys (Cilium's wildcard; never allocated). */
export const IDENTITY_WILDCARD = 0;
/** `reserved:host` — the local host (its stack, and docker-proxy for published ports). */
export const IDENTITY_HOST = 1;
/** `reserved:world` — anything outside the cluster that has no more specific identity. */
export const IDENTITY_WORLD = 2;
/** `reserved:unmanaged` — a local container not managed by us. */
export const IDENTITY_UNMANAGED = 3;
/** `reserved:health` — health-check endpoints. */
export const IDENTITY_HEALTH = 4;
/** `reserved:init` — an endpoint whose labels are not known yet (cilium-docker's first packets). */
export const IDENTITY_INIT = 5;
/** `reserved:remote-node` — other hosts of the cluster. */
export const IDENTITY_REMOTE_NODE = 6;
/** `reserved:kube-apiserver` (kept for numbering parity with Cilium). */
export const IDENTITY_KUBE_APISERVER = 7;
/** `reserved:ingress` (kept for numbering parity with Cilium). */
export const IDENTITY_INGRESS = 8;
/** `reserved:world-ipv4` — world, IPv4 only (dual-stack clusters). */
export const IDENTITY_WORLD_IPV4 = 9;
/** `reserved:world-ipv6` — world, IPv6 only (dual-stack clusters). */
export const IDENTITY_WORLD_IPV6 = 10;

/** Reserved identity number -> the name after `reserved:` in its only label. */
export const RESERVED_IDENTITY_NAMES: ReadonlyMap<number, string> = new Map([
  [IDENTITY_HOST, 'host'],
  [IDENTITY_WORLD, 'world'],
  [IDENTITY_UNMANAGED, 'unmanaged'],
  [IDENTITY_HEALTH, 'health'],
  [IDENTITY_INIT, 'init'],
  [IDENTITY_REMOTE_NODE, 'remote-node'],
  [IDENTITY_KUBE_APISERVER, 'kube-apiserver'],
  [IDENTITY_INGRESS, 'ingress'],
  [IDENTITY_WORLD_IPV4, 'world-ipv4'],
  [IDENTITY_WORLD_IPV6, 'world-ipv6'],
]);

/** Reserved identity number -> its label set (`reserved:host`, ...), for callers and the selector cache. */
export const RESERVED_IDENTITY_LABELS: ReadonlyMap<number, LabelSet> = new Map(
  [...RESERVED_IDENTITY_NAMES].map(([id, name]) => [id, new LabelSet([{ source: SOURCE_RESERVED, key: name, value: '' }])]),
);

/** Entities this implementation supports in `fromEntities`/`toEntities`. */
export const SUPPORTED_ENTITIES = ['all', 'world', 'host', 'cluster'] as const;

/** A supported entity name. */
export type Entity = (typeof SUPPORTED_ENTITIES)[number];

/** Entities Cilium knows that we reject by name (so the error says "not supported", not "unknown"). */
export const UNSUPPORTED_CILIUM_ENTITIES: readonly string[] = [
  'init',
  'remote-node',
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
const CLUSTER_RESERVED_NAMES = new Set(['host', 'remote-node', 'init', 'health', 'unmanaged', 'kube-apiserver', 'ingress']);

function reservedNames(labels: LabelSet): string[] {
  return labels.labels.filter((l) => l.source === SOURCE_RESERVED).map((l) => l.key);
}

/**
 * True if `entity` selects an identity with these labels. `all` selects everything (the compiler
 * turns it into the wildcard identity 0 rather than a list); `world` selects the world identities
 * and CIDR identities (they carry `reserved:world`); `host` selects `reserved:host`; `cluster` is
 * described at {@link CLUSTER_RESERVED_NAMES}.
 */
export function entitySelects(entity: Entity, labels: LabelSet): boolean {
  switch (entity) {
    case 'all':
      return true;
    case 'world':
      return reservedNames(labels).some((n) => WORLD_NAMES.has(n));
    case 'host':
      return reservedNames(labels).includes('host');
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
