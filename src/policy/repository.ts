/**
 * The policy repository: the validated policies by name, with a revision.
 *
 * As in Cilium (`pkg/policy/repository.go`) the revision starts at 1 and grows by one with every
 * change (each import, each delete), so `cilium policy wait <rev>` and every endpoint's
 * "realized revision" can be compared with it. Policies are identified by `metadata.name` (a
 * re-import of a name replaces it). Rules may also carry `labels`, which name them as in Cilium's
 * non-Kubernetes mode: `get` and `delete` select by them ({@link PolicyRepository.getByLabels},
 * {@link PolicyRepository.deleteByLabels}), and importing bare rules (`bare-rules.ts`) replaces
 * the stored rules whose labels contain the imported rules' labels.
 *
 * The repository is pure data. The caller persists it (`policies/v1/<name>` in the store, see
 * {@link PolicyRepository.toJSON}) and regenerates the endpoints a change affects
 * ({@link affectedIdentities}).
 */
import { NotFoundError, PolicyValidationError } from '../util/errors.js';
import { parsePolicyText, parsePolicyValue } from './parse.js';
import { ruleCookie } from './policy-entries.js';
import { formatRuleLabel } from './parse-rule.js';
import type { CiliumNetworkPolicy, PolicyRule, RuleLabel } from './rule-types.js';
import type { SelectorCache } from './selector-cache.js';
import type { EndpointSelector } from './selector.js';

/** The revision of an empty, new repository (Cilium starts at 1 too). */
export const INITIAL_POLICY_REVISION = 1;

/** A policy as held by the repository. */
export interface StoredPolicy {
  readonly name: string;
  /** Repository revision at which this version of the policy was imported. */
  readonly revision: number;
  readonly policy: CiliumNetworkPolicy;
}

/** What one import or delete changed; enough for the caller to regenerate exactly the affected endpoints. */
export interface PolicyChange {
  /** The repository revision after the change. */
  readonly revision: number;
  /** Names imported (added or replaced), sorted. */
  readonly imported: readonly string[];
  /** Names removed, sorted. */
  readonly deleted: readonly string[];
  /**
   * Endpoint selectors of every rule removed or added (old and new versions of replaced
   * policies): the endpoints they select are exactly those whose policy may have changed.
   */
  readonly endpointSelectors: readonly EndpointSelector[];
}

/** Persisted form of one policy (the value of `policies/v1/<name>`). */
export interface PolicyRecord {
  readonly name: string;
  readonly revision: number;
  /** The document as imported. */
  readonly document: Readonly<Record<string, unknown>>;
}

/** A validated snapshot: {@link PolicyRepository.parseSnapshot}. */
export interface ParsedSnapshot {
  readonly revision: number;
  readonly policies: readonly StoredPolicy[];
}

/** Persisted form of the whole repository. */
export interface RepositorySnapshot {
  readonly revision: number;
  readonly policies: readonly PolicyRecord[];
}

function selectorsOf(policy: CiliumNetworkPolicy | undefined): EndpointSelector[] {
  return policy ? policy.rules.map((r) => r.endpointSelector) : [];
}

function dedupeSelectors(selectors: EndpointSelector[]): EndpointSelector[] {
  const byKey = new Map(selectors.map((s) => [s.key, s]));
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * True if `rule` carries every label of `selection` (Cilium's LabelArray.Contains). A selection
 * label with source `any` matches the key and value under every source.
 */
export function ruleHasLabels(rule: PolicyRule, selection: readonly RuleLabel[]): boolean {
  return selection.every((want) =>
    rule.labels.some(
      (l) => l.key === want.key && l.value === want.value && (want.source === 'any' || l.source === want.source),
    ),
  );
}

function describeLabels(selection: readonly RuleLabel[]): string {
  return selection.map(formatRuleLabel).join(' ');
}

/** Named policies plus a revision; see the module comment. */
export class PolicyRepository {
  private policies = new Map<string, StoredPolicy>();
  private currentRevision = INITIAL_POLICY_REVISION;
  private ruleList: readonly PolicyRule[] | undefined;

  /** The current revision (1 for a new repository). */
  get revision(): number {
    return this.currentRevision;
  }

  /** Number of policies held. */
  get size(): number {
    return this.policies.size;
  }

  /** An independent copy (the validated policies are shared: they are never modified). */
  clone(): PolicyRepository {
    const copy = new PolicyRepository();
    copy.policies = new Map(this.policies);
    copy.currentRevision = this.currentRevision;
    return copy;
  }

  private commit(imported: string[], deleted: string[], selectors: EndpointSelector[]): PolicyChange {
    this.currentRevision += 1;
    this.ruleList = undefined;
    return {
      revision: this.currentRevision,
      imported: imported.sort(),
      deleted: deleted.sort(),
      endpointSelectors: dedupeSelectors(selectors),
    };
  }

  /**
   * Adds policies, replacing any with the same name, as one change (one revision step). Accepts
   * YAML/JSON text or already validated policies. Nothing changes if any document is invalid.
   */
  import(input: string | readonly CiliumNetworkPolicy[]): PolicyChange {
    const incoming = typeof input === 'string' ? parsePolicyText(input) : input;
    if (incoming.length === 0) throw new PolicyValidationError('no policy documents to import');
    const names = new Set<string>();
    for (const p of incoming) {
      if (names.has(p.name))
        throw new PolicyValidationError(
          `policy ${JSON.stringify(p.name)}: defined twice in this import; names must be unique`,
        );
      names.add(p.name);
    }
    // Bare rules replace the stored rules that carry their labels (Cilium's import by labels).
    const replaced = new Set<string>();
    for (const policy of incoming) {
      if (policy.ruleLabels && policy.ruleLabels.length > 0)
        for (const p of this.selectForRemoval(policy.ruleLabels)) if (!names.has(p.name)) replaced.add(p.name);
    }
    const selectors: EndpointSelector[] = [];
    for (const name of replaced) {
      selectors.push(...selectorsOf(this.policies.get(name)?.policy));
      this.policies.delete(name);
    }
    const revision = this.currentRevision + 1;
    for (const policy of incoming) {
      selectors.push(...selectorsOf(this.policies.get(policy.name)?.policy), ...selectorsOf(policy));
      this.policies.set(policy.name, { name: policy.name, revision, policy });
    }
    return this.commit([...names], [...replaced], selectors);
  }

  /**
   * Policies all of whose rules carry `selection`. A policy with only some such rules is an error:
   * removing part of a named document is not done behind its author's back.
   */
  private selectForRemoval(selection: readonly RuleLabel[]): StoredPolicy[] {
    const selected: StoredPolicy[] = [];
    for (const stored of this.get()) {
      const matching = stored.policy.rules.filter((r) => ruleHasLabels(r, selection)).length;
      if (matching === 0) continue;
      if (matching < stored.policy.rules.length) {
        throw new PolicyValidationError(
          `policy ${JSON.stringify(stored.name)} has ${matching} of its ${stored.policy.rules.length} rules ` +
            `labelled ${describeLabels(selection)}; ` +
            'only whole policies are replaced or deleted: delete or re-import it by name',
        );
      }
      selected.push(stored);
    }
    return selected;
  }

  /**
   * Removes every policy whose rules carry all labels of `selection` (`cilium policy delete
   * <labels>`); NotFoundError (and no revision step) if none does.
   */
  deleteByLabels(selection: readonly RuleLabel[]): PolicyChange {
    if (selection.length === 0)
      throw new PolicyValidationError('no labels given; to delete every policy use deleteAll');
    const removed = this.selectForRemoval(selection);
    if (removed.length === 0)
      throw new NotFoundError(
        `no policy has rules labelled ${describeLabels(selection)}; \`cilium policy get\` lists the imported policies`,
      );
    for (const p of removed) this.policies.delete(p.name);
    return this.commit(
      [],
      removed.map((p) => p.name),
      removed.flatMap((p) => selectorsOf(p.policy)),
    );
  }

  /** Policies with a rule that carries all labels of `selection`, sorted by name (`cilium policy get <labels>`). */
  getByLabels(selection: readonly RuleLabel[]): StoredPolicy[] {
    return this.get().filter((p) => p.policy.rules.some((r) => ruleHasLabels(r, selection)));
  }

  /** Removes one policy by name; throws NotFoundError (and keeps the revision) if there is none. */
  delete(name: string): PolicyChange {
    const existing = this.policies.get(name);
    if (!existing)
      throw new NotFoundError(
        `policy ${JSON.stringify(name)} not found; \`cilium policy get\` lists the imported policies`,
      );
    this.policies.delete(name);
    return this.commit([], [name], selectorsOf(existing.policy));
  }

  /** Removes every policy. An empty repository is left as is (no revision step: nothing changed). */
  deleteAll(): PolicyChange {
    if (this.policies.size === 0)
      return { revision: this.currentRevision, imported: [], deleted: [], endpointSelectors: [] };
    const removed = [...this.policies.values()];
    this.policies.clear();
    return this.commit(
      [],
      removed.map((p) => p.name),
      removed.flatMap((p) => selectorsOf(p.policy)),
    );
  }

  /**
   * Policies sorted by name: all of them, or the one named (NotFoundError if it does not exist,
   * so `cilium policy get <name>` can say so).
   */
  get(name?: string): StoredPolicy[] {
    if (name === undefined) return [...this.policies.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    const found = this.policies.get(name);
    if (!found)
      throw new NotFoundError(
        `policy ${JSON.stringify(name)} not found; \`cilium policy get\` lists the imported policies`,
      );
    return [found];
  }

  /** Every rule of every policy, ordered by policy name then document order. Cached until the next change. */
  rules(): readonly PolicyRule[] {
    this.ruleList ??= this.get().flatMap((p) => p.policy.rules);
    return this.ruleList;
  }

  /** The policy name whose {@link ruleCookie} is `cookie` (for naming rules in monitor events). */
  policyForCookie(cookie: number): string | undefined {
    for (const name of this.policies.keys()) if (ruleCookie(name) === cookie) return name;
    return undefined;
  }

  /** Persisted form: revision plus every policy's document and import revision. */
  toJSON(): RepositorySnapshot {
    return {
      revision: this.currentRevision,
      policies: this.get().map((p) => ({ name: p.name, revision: p.revision, document: p.policy.document })),
    };
  }

  /** Rebuilds a repository from {@link toJSON} output, validating every document again. */
  static fromJSON(snapshot: unknown): PolicyRepository {
    return PolicyRepository.fromParsedSnapshot(PolicyRepository.parseSnapshot(snapshot));
  }

  /**
   * A repository from {@link parseSnapshot}'s result (validated already, e.g. in another thread:
   * the result is plain data that survives structured cloning).
   */
  static fromParsedSnapshot(parsed: ParsedSnapshot): PolicyRepository {
    const repo = new PolicyRepository();
    for (const p of parsed.policies) repo.policies.set(p.name, p);
    repo.currentRevision = parsed.revision;
    return repo;
  }

  /** Validates {@link toJSON} output (every document again) into its revision and policies. */
  static parseSnapshot(snapshot: unknown): ParsedSnapshot {
    const bad = (why: string) =>
      new PolicyValidationError(
        `policy repository snapshot: ${why}; it was not written by this version, re-import the policies`,
      );
    if (typeof snapshot !== 'object' || snapshot === null) throw bad('not an object');
    const { revision, policies } = snapshot as { revision?: unknown; policies?: unknown };
    if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < INITIAL_POLICY_REVISION)
      throw bad('revision must be a positive integer');
    if (!Array.isArray(policies)) throw bad('policies must be a list');
    const parsed: StoredPolicy[] = [];
    for (const record of policies as unknown[]) {
      const { name, revision: policyRevision, document } = (record ?? {}) as Partial<PolicyRecord>;
      if (typeof policyRevision !== 'number' || policyRevision > revision)
        throw bad(`policy ${JSON.stringify(name)} has an invalid revision`);
      // Not held to the import limits: what was accepted once must stay loadable (and deletable).
      const [policy] = parsePolicyValue(document, { limits: false });
      if (!policy || policy.name !== name)
        throw bad(`record ${JSON.stringify(name)} holds policy ${JSON.stringify(policy?.name)}`);
      parsed.push({ name: policy.name, revision: policyRevision, policy });
    }
    return { revision, policies: parsed };
  }
}

/**
 * Identities whose endpoints must be regenerated after `change`: every identity selected by an
 * endpoint selector of an added, replaced or removed rule. Peers do not matter: a rule changes
 * the policy of the endpoints it selects, never that of its peers. Sorted ascending.
 */
export function affectedIdentities(change: PolicyChange, cache: SelectorCache): number[] {
  const ids = new Set<number>();
  for (const selector of change.endpointSelectors) for (const id of cache.selectEndpoints(selector)) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}
