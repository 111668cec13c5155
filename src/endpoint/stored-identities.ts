/**
 * Which identities read from the store (`identities/v1/id/`) the policy engine takes: only those
 * this daemon could have allocated. Anything else is ignored (and logged once): a number outside
 * the allocated range would replace a reserved or CIDR identity's labels, and a label source
 * other than container/docker (`reserved:host` written unescaped by an older node) would let a
 * stored identity pose as a reserved one. Such an identity selects nothing and matches no
 * selector, so its traffic meets only the default deny of enforced endpoints.
 */
import { ALLOCATED_LABEL_SOURCES } from '../identity/allocator.js';
import { identityOfIdKey } from '../identity/identity-keys.js';
import { LabelSet } from '../identity/labels.js';
import { MIN_ALLOCATED_IDENTITY } from '../identity/reserved.js';
import type { Logger } from '../util/log.js';
import { FIRST_CIDR_IDENTITY } from './cidr-identities.js';

/** True for numbers the allocator hands out (not reserved, not node-local CIDR identities). */
export function isAllocatedIdentity(id: number): boolean {
  return Number.isSafeInteger(id) && id >= MIN_ALLOCATED_IDENTITY && id < FIRST_CIDR_IDENTITY;
}

/** Reads stored identities for policy, ignoring (and warning once about) those never allocated. */
export class StoredIdentityFilter {
  /** Store keys of identities ignored for policy (warned about once). */
  private readonly ignored = new Set<string>();

  constructor(private readonly log: Logger) {}

  /** The identity stored at `key` with labels `canonical`, or undefined when it is to be ignored. */
  read(key: string, canonical: string): { id: number; labels: LabelSet } | undefined {
    const id = identityOfIdKey(key);
    let problem: string | undefined;
    let labels: LabelSet | undefined;
    if (!isAllocatedIdentity(id))
      problem = `identity number outside ${MIN_ALLOCATED_IDENTITY}-${FIRST_CIDR_IDENTITY - 1}`;
    else {
      labels = LabelSet.fromCanonical(canonical);
      const foreign = labels.labels.find((l) => !ALLOCATED_LABEL_SOURCES.has(l.source));
      if (foreign) problem = `label source "${foreign.source}" is never allocated`;
    }
    if (problem === undefined) return { id, labels: labels! };
    if (!this.ignored.has(key)) {
      this.ignored.add(key);
      this.log.warn(
        { key, labels: canonical.slice(0, 256), problem },
        'ignoring a stored identity for policy: not one this daemon allocates',
      );
    }
    return undefined;
  }
}
