/**
 * Which identities each selector selects, computed once per identity set.
 *
 * Cilium 1.4 evaluated every identity against every rule for every endpoint (O(identities) per
 * endpoint); later versions keep a selector cache so that a selector's identities are computed
 * once and shared by all endpoints. This is that cache: build it when the identity set changes
 * (or keep it and call {@link SelectorCache.addIdentity}/{@link SelectorCache.removeIdentity},
 * which update every memoised selection), then every compilation looks selections up instead of
 * matching labels.
 *
 * Label-selector evaluation uses an inverted index (`source:key=value` -> identities), so a
 * selector costs about the size of its smallest positive requirement's posting list, not the
 * number of identities.
 */
import { SOURCE_ANY, type LabelSet } from '../identity/labels.js';
import { identityPrefix } from './cidr.js';
import { isWildcardPeer, peerSelectsLabels } from './peer-match.js';
import { entitySelects, withReservedIdentities, type Entity } from './reserved.js';
import type { Peer } from './rule-types.js';
import { selectorMatches, type EndpointSelector, type LabelRequirement } from './selector.js';

/** What a peer selects: every identity (map key 0), or a set of identity numbers. */
export type PeerSelection = { readonly wildcard: true } | { readonly wildcard: false; readonly identities: ReadonlySet<number> };

const WILDCARD: PeerSelection = { wildcard: true };

function postingKey(source: string, key: string, value?: string): string {
  return value === undefined ? `${source}\u0000${key}` : `${source}\u0000${key}\u0000${value}`;
}

/** The label-to-identities index and the memoised selections of one identity set. */
export class SelectorCache {
  private readonly labelsById: Map<number, LabelSet>;
  private readonly postings = new Map<string, Set<number>>();
  private readonly cidrIdentities = new Set<number>();
  private readonly selections = new Map<string, Set<number>>();
  private readonly selectionFns = new Map<string, (labels: LabelSet) => boolean>();

  /**
   * @param identities numeric identity -> labels. Reserved identities (1 host, 2 world, ...) the
   *   caller leaves out are added from {@link withReservedIdentities}.
   */
  constructor(identities: Iterable<readonly [number, LabelSet]>) {
    this.labelsById = withReservedIdentities(identities);
    for (const [id, labels] of [...this.labelsById].sort(([a], [b]) => a - b)) this.index(id, labels);
  }

  /** Every identity known to the cache (reserved ones included). */
  get identities(): ReadonlyMap<number, LabelSet> {
    return this.labelsById;
  }

  /** Labels of one identity, if known. */
  labelsOf(id: number): LabelSet | undefined {
    return this.labelsById.get(id);
  }

  private index(id: number, labels: LabelSet): void {
    const add = (k: string) => {
      let set = this.postings.get(k);
      if (!set) this.postings.set(k, (set = new Set()));
      set.add(id);
    };
    for (const l of labels.labels) {
      add(postingKey(l.source, l.key));
      add(postingKey(l.source, l.key, l.value));
      add(postingKey(SOURCE_ANY, l.key));
      add(postingKey(SOURCE_ANY, l.key, l.value));
    }
    if (identityPrefix(labels)) this.cidrIdentities.add(id);
  }

  private unindex(id: number, labels: LabelSet): void {
    const remove = (k: string) => this.postings.get(k)?.delete(id);
    for (const l of labels.labels) {
      remove(postingKey(l.source, l.key));
      remove(postingKey(l.source, l.key, l.value));
      remove(postingKey(SOURCE_ANY, l.key));
      remove(postingKey(SOURCE_ANY, l.key, l.value));
    }
    this.cidrIdentities.delete(id);
  }

  /** Adds (or relabels) an identity and updates every memoised selection in place. */
  addIdentity(id: number, labels: LabelSet): void {
    const previous = this.labelsById.get(id);
    if (previous) this.unindex(id, previous);
    this.labelsById.set(id, labels);
    this.index(id, labels);
    for (const [key, set] of this.selections) {
      if (this.selectionFns.get(key)!(labels)) set.add(id);
      else set.delete(id);
    }
  }

  /** Removes an identity from the index and every memoised selection. */
  removeIdentity(id: number): void {
    const previous = this.labelsById.get(id);
    if (!previous) return;
    this.unindex(id, previous);
    this.labelsById.delete(id);
    for (const set of this.selections.values()) set.delete(id);
  }

  private memo(key: string, matches: (labels: LabelSet) => boolean, compute: () => Iterable<number>): Set<number> {
    let set = this.selections.get(key);
    if (!set) {
      set = new Set(compute());
      this.selections.set(key, set);
      this.selectionFns.set(key, matches);
    }
    return set;
  }

  private scan(candidates: Iterable<number>, matches: (labels: LabelSet) => boolean): number[] {
    const result: number[] = [];
    for (const id of candidates) if (matches(this.labelsById.get(id)!)) result.push(id);
    return result.sort((a, b) => a - b);
  }

  private candidatesFor(r: LabelRequirement): Set<number> | undefined {
    if (r.operator === 'Exists') return this.postings.get(postingKey(r.source, r.key)) ?? new Set();
    if (r.operator !== 'In') return undefined;
    if (r.values.length === 1) return this.postings.get(postingKey(r.source, r.key, r.values[0])) ?? new Set();
    const union = new Set<number>();
    for (const v of r.values) for (const id of this.postings.get(postingKey(r.source, r.key, v)) ?? []) union.add(id);
    return union;
  }

  /** Identities an endpoint selector selects (memoised by the selector's canonical key). */
  selectEndpoints(selector: EndpointSelector): ReadonlySet<number> {
    const matches = (labels: LabelSet) => selectorMatches(selector, labels);
    return this.memo(SelectorCache.endpointSelectorKey(selector), matches, () => {
      let best: Set<number> | undefined;
      for (const r of selector.requirements) {
        const candidates = this.candidatesFor(r);
        if (candidates && (!best || candidates.size < best.size)) best = candidates;
      }
      return this.scan(best ?? this.labelsById.keys(), matches);
    });
  }

  /** Identities an entity selects (for `all`, every identity; compilation uses the wildcard instead). */
  selectEntity(entity: Entity): ReadonlySet<number> {
    const matches = (labels: LabelSet) => entitySelects(entity, labels);
    return this.memo(`entity:${entity}`, matches, () => this.scan(this.labelsById.keys(), matches));
  }

  /**
   * What a peer selects. `{}` and the `all` entity are the wildcard (identity 0 in map keys,
   * which also covers identities that appear later); everything else is a concrete set.
   */
  selectPeer(peer: Peer): PeerSelection {
    if (isWildcardPeer(peer)) return WILDCARD;
    switch (peer.kind) {
      case 'endpoints':
        return { wildcard: false, identities: this.selectEndpoints(peer.selector) };
      case 'entity':
        return { wildcard: false, identities: this.selectEntity(peer.entity) };
      case 'cidr': {
        const matches = (labels: LabelSet) => peerSelectsLabels(peer, labels);
        return { wildcard: false, identities: this.memo(SelectorCache.peerKey(peer)!, matches, () => this.scan(this.cidrIdentities, matches)) };
      }
    }
  }

  /** Cache key of a peer's selection; undefined for wildcards. */
  static peerKey(peer: Peer): string | undefined {
    if (isWildcardPeer(peer)) return undefined;
    switch (peer.kind) {
      case 'endpoints':
        return SelectorCache.endpointSelectorKey(peer.selector);
      case 'entity':
        return `entity:${peer.entity}`;
      case 'cidr':
        return `cidr:${peer.cidr} except ${peer.except.join(',')}`;
    }
  }

  /** Cache key of an endpoint selector's selection. */
  static endpointSelectorKey(selector: EndpointSelector): string {
    return `endpoints:${selector.key}`;
  }
}
