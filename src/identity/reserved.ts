/**
 * Reserved security identities (Cilium's numbering, pkg/identity/numericidentity.go). Identities
 * 1–255 are reserved; allocated identities start at 256. This module owns the numbers; the policy
 * module imports them to evaluate entities.
 */
import { LabelSet, SOURCE_RESERVED } from './labels.js';

/** A reserved identity: number and its single `reserved:` label. */
export interface ReservedIdentity {
  id: number;
  name: string;
  labels: LabelSet;
}

/** Identity 0: "any identity" in policy map keys (Cilium's wildcard; never allocated). */
export const IDENTITY_WILDCARD = 0;
/** `reserved:host` — the local host (its stack). */
export const IDENTITY_HOST = 1;
/** `reserved:world` — anything outside the cluster that has no more specific identity. */
export const IDENTITY_WORLD = 2;
/** `reserved:unmanaged` — a local container not managed by us. */
export const IDENTITY_UNMANAGED = 3;
/** `reserved:health` — health-check endpoints. */
export const IDENTITY_HEALTH = 4;
/** `reserved:init` — an endpoint whose labels are not known yet. */
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

/** Reserved identity number -> its label set (`reserved:host`, ...). */
export const RESERVED_IDENTITY_LABELS: ReadonlyMap<number, LabelSet> = new Map(
  [...RESERVED_IDENTITY_NAMES].map(([id, name]) => [
    id,
    new LabelSet([{ source: SOURCE_RESERVED, key: name, value: '' }]),
  ]),
);

/** Every reserved identity, by number. */
export const RESERVED_IDENTITIES: readonly ReservedIdentity[] = [...RESERVED_IDENTITY_LABELS].map(([id, labels]) => ({
  id,
  name: RESERVED_IDENTITY_NAMES.get(id)!,
  labels,
}));

/** First number handed out to label sets. */
export const MIN_ALLOCATED_IDENTITY = 256;
/** Last number handed out (Cilium's cluster-local range ends at 65535; fits the 24-bit VNI). */
export const MAX_ALLOCATED_IDENTITY = 65535;
