/**
 * Which identities each selector selects, computed once per identity set.
 *
 * Cilium 1.4 evaluated every identity against every rule for every endpoint (O(identities) per
 * endpoint); later versions keep a selector cache so that a selector's identities are computed
 * once and shared by all endpoints. This is that cache: build it when the identity set changes
 * (or keep it and call {@link SelectorCache.addIdentity}/{@link SelectorCache.removeIdentity},
 * which update every memoised selection, and {@link SelectorCache.pruneSelections} after policy
 * changes), then every compilation looks selections up instead of matching labels.
 *
 * Label-selector evaluation uses an inverted index (`source:key=value` -> identities), so a
 * selector costs about the size of its smallest positive requirement's posting list, not the
 * number of identities.
 */
import { SOURCE_ANY, type LabelSet } from '../identity/labels.js';
import { identityPrefix, SOURCE_CIDR } from './cidr.js';
import { isWildcardPeer, peerSelectsLabels } from './peer-match.js';
import { entitySelects, withReservedIdentities, type Entity } from './reserved.js';
import type { Peer, PolicyRule } from './rule-types.js';
import { selectorMatches, type EndpointSelector, type LabelRequirement } from './selector.js';

/** What a peer selects: every identity (map key 0), or a set of identity numbers. */
export type PeerSelection = { readonly wildcard: true } | { readonly wildcard: false; readonly identities: ReadonlySet<number> };

const WILDCARD: PeerSelection = { wildcard: true };

/** Identities having a label `source:key`: all of them, and by value. */
interface KeyPostings {
  readonly all: Set<number>;
  readonly byValue: Map<string, Set<number>>;
}

const NO_IDENTITIES: ReadonlySet<number> = new Set();

/** The label-to-identities index and the memoised selections of one identity set. */
export class SelectorCache {
  private readonly labelsById: Map<number, LabelSet>;
  /** source (and `any`) -> key -> postings: the inverted index. */
  private readonly postings = new Map<string, Map<string, KeyPostings>>();
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

  private postingsOf(source: string, key: string): KeyPostings | undefined {
    return this.postings.get(source)?.get(key);
  }

  private index(id: number, labels: LabelSet): void {
    for (const l of labels.labels) {
      for (const source of [l.source, SOURCE_ANY]) {
        let keys = this.postings.get(source);
        if (!keys) this.postings.set(source, (keys = new Map()));
        let entry = keys.get(l.key);
        if (!entry) keys.set(l.key, (entry = { all: new Set(), byValue: new Map() }));
        entry.all.add(id);
        let ids = entry.byValue.get(l.value);
        if (!ids) entry.byValue.set(l.value, (ids = new Set()));
        ids.add(id);
      }
    }
    if (labels.labels.some((l) => l.source === SOURCE_CIDR) && identityPrefix(labels)) this.cidrIdentities.add(id);
  }

  private unindex(id: number, labels: LabelSet): void {
    for (const l of labels.labels) {
      for (const source of [l.source, SOURCE_ANY]) {
        const entry = this.postingsOf(source, l.key);
        entry?.all.delete(id);
        entry?.byValue.get(l.value)?.delete(id);
      }
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

  /** Identities that may satisfy a positive requirement (In, Exists); undefined for negative ones. */
  private candidatesFor(r: LabelRequirement): ReadonlySet<number> | undefined {
    const entry = this.postingsOf(r.source, r.key);
    if (r.operator === 'Exists') return entry?.all ?? NO_IDENTITIES;
    if (r.operator !== 'In') return undefined;
    if (r.values.length === 1) return entry?.byValue.get(r.values[0]!) ?? NO_IDENTITIES;
    const union = new Set<number>();
    for (const v of r.values) for (const id of entry?.byValue.get(v) ?? []) union.add(id);
    return union;
  }

  /** Identities an endpoint selector selects (memoised by the selector's canonical key). */
  selectEndpoints(selector: EndpointSelector): ReadonlySet<number> {
    const matches = (labels: LabelSet) => selectorMatches(selector, labels);
    return this.memo(SelectorCache.endpointSelectorKey(selector), matches, () => {
      let best: ReadonlySet<number> | undefined;
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

  /**
   * Forgets memoised selections that none of `rules` uses (selectors of deleted or replaced
   * policies), so identity updates stop maintaining them. Returns how many were dropped.
   */
  pruneSelections(rules: readonly PolicyRule[]): number {
    const used = new Set<string>();
    for (const rule of rules) {
      used.add(SelectorCache.endpointSelectorKey(rule.endpointSelector));
      for (const item of rule.peerRules) for (const peer of item.peers ?? []) used.add(SelectorCache.peerKey(peer) ?? '');
    }
    let dropped = 0;
    for (const key of [...this.selections.keys()]) {
      if (used.has(key)) continue;
      this.selections.delete(key);
      this.selectionFns.delete(key);
      dropped++;
    }
    return dropped;
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
