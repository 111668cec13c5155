/**
 * Reserved security identities (Cilium's numbering). Identities 1–255 are reserved; allocated
 * identities start at 256.
 */
import { LabelSet, SOURCE_RESERVED } from './labels.js';

/** A reserved identity: number and its single `reserved:` label. */
export interface ReservedIdentity {
  id: number;
  name: string;
  labels: LabelSet;
}

function reserved(id: number, name: string): ReservedIdentity {
  return { id, name, labels: new LabelSet([{ source: SOURCE_RESERVED, key: name, value: '' }]) };
}

export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const IDENTITY_UNMANAGED = 3;
export const IDENTITY_HEALTH = 4;
export const IDENTITY_INIT = 5;
export const IDENTITY_REMOTE_NODE = 6;

/** Every reserved identity we use, by number. */
export const RESERVED_IDENTITIES: readonly ReservedIdentity[] = [
  reserved(IDENTITY_HOST, 'host'),
  reserved(IDENTITY_WORLD, 'world'),
  reserved(IDENTITY_UNMANAGED, 'unmanaged'),
  reserved(IDENTITY_HEALTH, 'health'),
  reserved(IDENTITY_INIT, 'init'),
  reserved(IDENTITY_REMOTE_NODE, 'remote-node'),
];

/** First number handed out to label sets. */
export const MIN_ALLOCATED_IDENTITY = 256;
/** Last number handed out (Cilium's cluster-local range ends at 65535; fits the 24-bit VNI). */
export const MAX_ALLOCATED_IDENTITY = 65535;
