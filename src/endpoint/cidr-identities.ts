/**
 * Node-local identities for the CIDR prefixes policy rules use (`toCIDR`, `fromCIDR`,
 * `toCIDRSet`): each IPv4 prefix gets a number from Cilium's local scope (2^24 and up), its
 * labels go into the selector cache, and the prefix -> identity map goes to the datapath's
 * ipcache. Numbers of removed prefixes are reused first.
 *
 * Linear in the number of prefixes, in slices of {@link CIDR_SYNC_CHUNK} with a yield to the
 * event loop between them, so plugin and API calls are served while a policy with tens of
 * thousands of CIDR peers is applied (docs/policy-limits.md).
 */
import type { LabelSet } from '../identity/labels.js';
import {
  cidrIdentityLabels,
  requiredCidrPrefixes,
  type PolicyRepository,
  type SelectorCache,
} from '../policy/index.js';
import { yieldToEventLoop } from '../util/event-loop.js';

/** First node-local identity for CIDR prefixes (Cilium's local scope starts at 2^24). */
export const FIRST_CIDR_IDENTITY = 16_777_216;
/** CIDR identities created or removed per slice before yielding. */
const CIDR_SYNC_CHUNK = 2048;

/** The CIDR identities of one node, kept in step with the repository's rules. */
export class CidrIdentities {
  /** Prefix -> identity (what the datapath's ipcache holds). */
  readonly byPrefix = new Map<string, number>();
  /** Next never-used CIDR identity, and those released by removed prefixes (reused first). */
  private nextIdentity = FIRST_CIDR_IDENTITY;
  private readonly released: number[] = [];

  /**
   * @param cache the selector cache the identities are added to and removed from
   * @param repository the repository currently applied (read again after each yield)
   */
  constructor(
    private readonly cache: SelectorCache,
    private readonly repository: () => PolicyRepository,
  ) {}

  /**
   * Gives every IPv4 prefix the rules use an identity and drops those no rule uses any more.
   * Never run two at once (the policy engine runs it in its work queue). True when the selector
   * cache's identities changed (a compiler made before must be made again).
   */
  async update(): Promise<boolean> {
    const wanted = new Set(requiredCidrPrefixes(this.repository()).filter((p) => !p.includes(':')));
    await yieldToEventLoop();
    // Selections of removed rules first: the identity updates below then maintain only live ones.
    this.cache.pruneSelections(this.repository().rules());
    const removed: number[] = [];
    for (const [prefix, id] of this.byPrefix) {
      if (wanted.has(prefix)) continue;
      this.byPrefix.delete(prefix);
      removed.push(id);
    }
    for (let i = 0; i < removed.length; i += CIDR_SYNC_CHUNK) {
      await yieldToEventLoop();
      const batch = removed.slice(i, i + CIDR_SYNC_CHUNK);
      this.cache.removeIdentities(batch);
      this.released.push(...batch);
    }
    const missing = [...wanted].filter((prefix) => !this.byPrefix.has(prefix));
    for (let i = 0; i < missing.length; i += CIDR_SYNC_CHUNK) {
      await yieldToEventLoop();
      const batch: Array<readonly [number, LabelSet]> = [];
      for (const prefix of missing.slice(i, i + CIDR_SYNC_CHUNK)) {
        const id = this.released.pop() ?? this.nextIdentity++;
        this.byPrefix.set(prefix, id);
        batch.push([id, cidrIdentityLabels(prefix)]);
      }
      this.cache.addIdentities(batch);
    }
    return removed.length > 0 || missing.length > 0;
  }
}
