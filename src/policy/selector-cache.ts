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
 * number of identities. CIDR identities are also kept sorted by prefix, so a CIDR peer finds the
 * identities inside its prefixes by binary search instead of testing every CIDR identity.
 *
 * Batches ({@link SelectorCache.addIdentities}, {@link SelectorCache.removeIdentities}) keep the
 * cost of a policy with N CIDR peers (N selections, N CIDR identities) near-linear: each memoised
 * selection looks its members up in an index of the batch, instead of every new identity being
 * tested against every selection (N x N).
 */
import { SOURCE_ANY, type LabelSet } from '../identity/labels.js';
import { comparePrefixes, identityPrefix, SOURCE_CIDR, type IpPrefix } from './cidr.js';
import { isWildcardPeer, peerSelectsLabels } from './peer-match.js';
import { entitySelects, withReservedIdentities, type Entity } from './reserved.js';
import type { Peer, PolicyRule } from './rule-types.js';
import { selectorMatches, type EndpointSelector, type LabelRequirement } from './selector.js';

/** What a peer selects: every identity (map key 0), or a set of identity numbers. */
export type PeerSelection =
  | { readonly wildcard: true }
  | { readonly wildcard: false; readonly identities: ReadonlySet<number> };

const WILDCARD: PeerSelection = { wildcard: true };

/** Identities having a label `source:key`: all of them, and by value. */
interface KeyPostings {
  readonly all: Set<number>;
  readonly byValue: Map<string, Set<number>>;
}

const NO_IDENTITIES: ReadonlySet<number> = new Set();

/** source (and `any`) -> key -> postings. */
type Postings = Map<string, Map<string, KeyPostings>>;

/** A CIDR identity's own prefix, for the sorted index. */
interface CidrIdentity {
  readonly prefix: IpPrefix;
  readonly id: number;
}

/**
 * A memoised selection: its identities and how to recognise a member. `prefixes` (CIDR peers) and
 * `selector` (endpoint selectors) let batch updates look members up in indexes.
 */
interface Selection {
  readonly ids: Set<number>;
  readonly matches: (labels: LabelSet) => boolean;
  readonly prefixes?: readonly IpPrefix[];
  readonly selector?: EndpointSelector;
}

/** Below this many identities a batch is applied identity by identity (no batch index). */
const SMALL_BATCH = 8;

function hostMask(prefix: IpPrefix): bigint {
  return (1n << BigInt((prefix.family === 4 ? 32 : 128) - prefix.bits)) - 1n;
}

/** Index of the first element of `sorted` not ordered before `prefix`. */
function lowerBound(sorted: readonly CidrIdentity[], prefix: IpPrefix): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (comparePrefixes(sorted[mid]!.prefix, prefix) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Calls `fn` for every identity of `sorted` (ordered by {@link comparePrefixes}) whose prefix lies
 * inside `outer`: they are one contiguous run, from `outer` itself to its last address.
 */
function forEachInside(sorted: readonly CidrIdentity[], outer: IpPrefix, fn: (id: number) => void): void {
  const last = outer.address | hostMask(outer);
  for (let i = lowerBound(sorted, outer); i < sorted.length; i++) {
    const { prefix, id } = sorted[i]!;
    if (prefix.family !== outer.family || prefix.address > last) break;
    if (prefix.bits >= outer.bits) fn(id);
  }
}

/** The label-to-identities index and the memoised selections of one identity set. */
export class SelectorCache {
  private readonly labelsById: Map<number, LabelSet>;
  /** source (and `any`) -> key -> postings: the inverted index. */
  private readonly postings: Postings = new Map();
  /** CIDR identity -> its own prefix. */
  private readonly cidrIdentities = new Map<number, IpPrefix>();
  /** The CIDR identities sorted by prefix; rebuilt on first use after a change. */
  private sortedCidr: CidrIdentity[] | undefined;
  private readonly selections = new Map<string, Selection>();

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

  private postingsOf(source: string, key: string, postings: Postings = this.postings): KeyPostings | undefined {
    return postings.get(source)?.get(key);
  }

  private index(id: number, labels: LabelSet): void {
    indexLabels(this.postings, id, labels);
    if (labels.labels.some((l) => l.source === SOURCE_CIDR)) {
      const prefix = identityPrefix(labels);
      if (prefix) {
        this.cidrIdentities.set(id, prefix);
        this.sortedCidr = undefined;
      }
    }
  }

  private unindex(id: number, labels: LabelSet): void {
    for (const l of labels.labels) {
      for (const source of [l.source, SOURCE_ANY]) {
        const entry = this.postingsOf(source, l.key);
        entry?.all.delete(id);
        entry?.byValue.get(l.value)?.delete(id);
      }
    }
    if (this.cidrIdentities.delete(id)) this.sortedCidr = undefined;
  }

  private sortedCidrIdentities(): readonly CidrIdentity[] {
    this.sortedCidr ??= [...this.cidrIdentities]
      .map(([id, prefix]) => ({ id, prefix }))
      .sort((a, b) => comparePrefixes(a.prefix, b.prefix));
    return this.sortedCidr;
  }

  /** Adds (or relabels) an identity and updates every memoised selection in place. */
  addIdentity(id: number, labels: LabelSet): void {
    const previous = this.labelsById.get(id);
    if (previous) this.unindex(id, previous);
    this.labelsById.set(id, labels);
    this.index(id, labels);
    for (const selection of this.selections.values()) {
      if (selection.matches(labels)) selection.ids.add(id);
      else selection.ids.delete(id);
    }
  }

  /** Removes an identity from the index and every memoised selection. */
  removeIdentity(id: number): void {
    const previous = this.labelsById.get(id);
    if (!previous) return;
    this.unindex(id, previous);
    this.labelsById.delete(id);
    for (const selection of this.selections.values()) selection.ids.delete(id);
  }

  /**
   * Adds many identities at once (e.g. the CIDR identities of a policy); identities already known
   * are relabelled one by one. Cost: about the batch size plus, per memoised selection, its new
   * members (see the module comment).
   */
  addIdentities(entries: Iterable<readonly [number, LabelSet]>): void {
    const fresh: Array<readonly [number, LabelSet]> = [];
    for (const [id, labels] of entries) {
      if (this.labelsById.has(id)) {
        this.addIdentity(id, labels);
        continue;
      }
      this.labelsById.set(id, labels);
      this.index(id, labels);
      fresh.push([id, labels]);
    }
    this.updateSelections(fresh, (ids, id) => ids.add(id));
  }

  /** Removes many identities at once; unknown ones are skipped. */
  removeIdentities(ids: Iterable<number>): void {
    const gone: Array<readonly [number, LabelSet]> = [];
    for (const id of ids) {
      const labels = this.labelsById.get(id);
      if (!labels) continue;
      this.unindex(id, labels);
      this.labelsById.delete(id);
      gone.push([id, labels]);
    }
    this.updateSelections(gone, (set, id) => set.delete(id));
  }

  /** Applies `apply` to each memoised selection and each identity of `batch` it selects. */
  private updateSelections(
    batch: ReadonlyArray<readonly [number, LabelSet]>,
    apply: (ids: Set<number>, id: number) => void,
  ): void {
    if (batch.length === 0) return;
    if (batch.length < SMALL_BATCH) {
      for (const selection of this.selections.values())
        for (const [id, labels] of batch) if (selection.matches(labels)) apply(selection.ids, id);
      return;
    }
    const labelsOf = new Map(batch);
    const postings: Postings = new Map();
    const cidr: CidrIdentity[] = [];
    for (const [id, labels] of batch) {
      indexLabels(postings, id, labels);
      const prefix = labels.labels.some((l) => l.source === SOURCE_CIDR) ? identityPrefix(labels) : undefined;
      if (prefix) cidr.push({ id, prefix });
    }
    cidr.sort((a, b) => comparePrefixes(a.prefix, b.prefix));
    for (const selection of this.selections.values()) {
      if (selection.prefixes) {
        for (const p of selection.prefixes) forEachInside(cidr, p, (id) => apply(selection.ids, id));
        continue;
      }
      const candidates = selection.selector ? this.bestCandidates(selection.selector, postings) : undefined;
      for (const id of candidates ?? labelsOf.keys())
        if (selection.matches(labelsOf.get(id)!)) apply(selection.ids, id);
    }
  }

  private memo(key: string, shape: Omit<Selection, 'ids'>, compute: () => Iterable<number>): Set<number> {
    let selection = this.selections.get(key);
    if (!selection) {
      selection = { ...shape, ids: new Set(compute()) };
      this.selections.set(key, selection);
    }
    return selection.ids;
  }

  private scan(candidates: Iterable<number>, matches: (labels: LabelSet) => boolean): number[] {
    const result: number[] = [];
    for (const id of candidates) if (matches(this.labelsById.get(id)!)) result.push(id);
    return result.sort((a, b) => a - b);
  }

  /** Identities that may satisfy a positive requirement (In, Exists); undefined for negative ones. */
  private candidatesFor(r: LabelRequirement, postings: Postings = this.postings): ReadonlySet<number> | undefined {
    const entry = this.postingsOf(r.source, r.key, postings);
    if (r.operator === 'Exists') return entry?.all ?? NO_IDENTITIES;
    if (r.operator !== 'In') return undefined;
    if (r.values.length === 1) return entry?.byValue.get(r.values[0]!) ?? NO_IDENTITIES;
    const union = new Set<number>();
    for (const v of r.values) for (const id of entry?.byValue.get(v) ?? []) union.add(id);
    return union;
  }

  /** The smallest candidate set of a selector's positive requirements; undefined if it has none. */
  private bestCandidates(
    selector: EndpointSelector,
    postings: Postings = this.postings,
  ): ReadonlySet<number> | undefined {
    let best: ReadonlySet<number> | undefined;
    for (const r of selector.requirements) {
      const candidates = this.candidatesFor(r, postings);
      if (candidates && (!best || candidates.size < best.size)) best = candidates;
    }
    return best;
  }

  /** Identities an endpoint selector selects (memoised by the selector's canonical key). */
  selectEndpoints(selector: EndpointSelector): ReadonlySet<number> {
    const matches = (labels: LabelSet) => selectorMatches(selector, labels);
    return this.memo(SelectorCache.endpointSelectorKey(selector), { matches, selector }, () =>
      this.scan(this.bestCandidates(selector) ?? this.labelsById.keys(), matches),
    );
  }

  /** Identities an entity selects (for `all`, every identity; compilation uses the wildcard instead). */
  selectEntity(entity: Entity): ReadonlySet<number> {
    const matches = (labels: LabelSet) => entitySelects(entity, labels);
    return this.memo(`entity:${entity}`, { matches }, () => this.scan(this.labelsById.keys(), matches));
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
        const compute = () => {
          const ids: number[] = [];
          const sorted = this.sortedCidrIdentities();
          for (const p of peer.prefixes) forEachInside(sorted, p, (id) => ids.push(id));
          return ids.sort((a, b) => a - b);
        };
        return {
          wildcard: false,
          identities: this.memo(SelectorCache.peerKey(peer)!, { matches, prefixes: peer.prefixes }, compute),
        };
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
      for (const item of rule.peerRules)
        for (const peer of item.peers ?? []) used.add(SelectorCache.peerKey(peer) ?? '');
    }
    let dropped = 0;
    for (const key of [...this.selections.keys()]) {
      if (used.has(key)) continue;
      this.selections.delete(key);
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

function indexLabels(postings: Postings, id: number, labels: LabelSet): void {
  for (const l of labels.labels) {
    for (const source of [l.source, SOURCE_ANY]) {
      let keys = postings.get(source);
      if (!keys) {
        keys = new Map();
        postings.set(source, keys);
      }
      let entry = keys.get(l.key);
      if (!entry) {
        entry = { all: new Set(), byValue: new Map() };
        keys.set(l.key, entry);
      }
      entry.all.add(id);
      let ids = entry.byValue.get(l.value);
      if (!ids) {
        ids = new Set();
        entry.byValue.set(l.value, ids);
      }
      ids.add(id);
    }
  }
}
