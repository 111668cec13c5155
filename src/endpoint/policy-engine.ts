/**
 * Policy distribution and endpoint regeneration: the I/O side of `src/policy/` (which is pure).
 *
 * - The repository is one store key written by compare-and-swap and watched by every node
 *   (policy-repository-store.ts); a newer repository regenerates the endpoints it affects.
 * - Identities: every identity in the store (`identities/v1/id/`) this daemon could have allocated
 *   (stored-identities.ts) plus reserved and CIDR identities (cidr-identities.ts) feed the selector
 *   cache; a new or removed identity regenerates exactly the local endpoints whose policy selects
 *   peers like it.
 * - Regeneration of an endpoint = compile for its identity, diff against the kernel map, write
 *   the difference in batches, then the enforcement flags, then record the applied revision. All
 *   of it runs in one work queue (regeneration-queue.ts).
 */
import type { KvStore, Watcher } from '../kvstore/kvstore.js';
import {
  type PolicyRepository,
  PolicyCompiler,
  SelectorCache,
  affectedIdentities,
  identitiesAffectedByIdentityChange,
  selectorMatches,
  trace,
  parseRuleLabelText,
  type RuleLabel,
  type EnforcementMode,
  type PolicyChange,
  type TraceResult,
  type EndpointPolicy,
} from '../policy/index.js';
import { LabelSet } from '../identity/labels.js';
import { RESERVED_IDENTITIES, IDENTITY_INIT } from '../identity/reserved.js';
import { IDENTITY_ID_PREFIX, identityOfIdKey } from '../identity/identity-keys.js';
import { PolicyParser } from './policy-parser.js';
import { PolicyRepositoryStore } from './policy-repository-store.js';
import { CidrIdentities } from './cidr-identities.js';
import { StoredIdentityFilter, isAllocatedIdentity } from './stored-identities.js';
import { RegenerationQueue } from './regeneration-queue.js';
import { CiliumDockerError, PolicyValidationError } from '../util/errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { Logger } from '../util/log.js';
import type { EndpointManager } from './endpoint-manager.js';
import type { EndpointRecord } from './endpoint.js';
import type { DatapathEndpoint, DatapathPolicyEntry, EndpointEnforcement } from '../datapath/datapath.js';

/** What the engine needs from the datapath. */
export interface PolicyDatapath {
  applyEndpointPolicy(
    ep: DatapathEndpoint,
    enforcement: EndpointEnforcement,
    entries: DatapathPolicyEntry[],
  ): Promise<{ added: number; deleted: number }>;
  syncCidrIdentities(prefixes: Map<string, number>): Promise<void>;
}

/** Dependencies of the engine. */
export interface PolicyEngineDeps {
  store: KvStore;
  endpoints: EndpointManager;
  datapath: PolicyDatapath;
  enforcement: EnforcementMode;
  log: Logger;
  toDatapathEndpoint(ep: EndpointRecord): DatapathEndpoint;
  /** Observes each regeneration's duration (seconds). */
  onRegenerated?(seconds: number): void;
}

/** Loads, distributes and enforces policy on this node's endpoints. */
export class PolicyEngine {
  private readonly policies: PolicyRepositoryStore;
  private cache: SelectorCache;
  private compiler: PolicyCompiler;
  private readonly cidrIdentities: CidrIdentities;
  private readonly storedIdentities: StoredIdentityFilter;
  private watchers: Watcher[] = [];
  private readonly queue: RegenerationQueue;
  private readonly compiled = new Map<number, EndpointPolicy>();
  /** Labels an endpoint still waiting for its identity was last compiled with (see `regenerate`). */
  private readonly compiledWaitingLabels = new Map<number, string>();
  /** Parses imports and stored repositories off the main thread. */
  private readonly parser = new PolicyParser();

  constructor(private readonly deps: PolicyEngineDeps) {
    this.policies = new PolicyRepositoryStore({
      store: deps.store,
      parser: this.parser,
      log: deps.log,
      onApplied: (previous, next) => this.repositoryApplied(previous, next),
    });
    this.cache = new SelectorCache(RESERVED_IDENTITIES.map((r) => [r.id, r.labels] as const));
    this.cidrIdentities = new CidrIdentities(this.cache, () => this.repository);
    this.storedIdentities = new StoredIdentityFilter(deps.log);
    this.queue = new RegenerationQueue((endpointId) => this.regenerate(endpointId), deps.log);
    this.compiler = this.newCompiler();
    deps.endpoints.onChange((event, ep) => {
      if (event === 'deleted') {
        this.compiled.delete(ep.id);
        this.compiledWaitingLabels.delete(ep.id);
        return;
      }
      if (event === 'updated' && (ep.state === 'ready' || ep.state === 'waiting-for-identity')) {
        const known = this.compiled.get(ep.id);
        const labelsChanged =
          waitingWithLabels(ep) && this.compiledWaitingLabels.get(ep.id) !== JSON.stringify(ep.labels);
        if (!known || known.identity !== ep.identity || ep.policyRevision !== this.repository.revision || labelsChanged)
          this.queue.schedule([ep.endpointId]);
      }
    });
  }

  /** The repository applied last. */
  private get repository(): PolicyRepository {
    return this.policies.current;
  }

  private newCompiler(): PolicyCompiler {
    return new PolicyCompiler(this.repository, this.cache, { enforcement: this.deps.enforcement });
  }

  /** Current repository revision. */
  get revision(): number {
    return this.repository.revision;
  }

  /** Number of policies loaded. */
  get policyCount(): number {
    return this.repository.size;
  }

  /** The selector cache's identities (for labels of monitor events). */
  labelsOf(identity: number): LabelSet | undefined {
    return this.cache.labelsOf(identity);
  }

  /** Name of the policy behind a rule cookie. */
  policyForCookie(cookie: number): string | undefined {
    return this.repository.policyForCookie(cookie);
  }

  /** Loads identities and the repository, starts watching both, regenerates every endpoint. */
  async start(): Promise<void> {
    const ids = await this.deps.store.list(IDENTITY_ID_PREFIX);
    for (const p of ids.pairs) {
      const stored = this.storedIdentities.read(p.key, p.value);
      if (stored) this.cache.addIdentity(stored.id, stored.labels);
    }
    const repositoryRevision = await this.policies.load();
    if (repositoryRevision !== undefined) this.compiler = this.newCompiler();
    // CIDR identities are synced in the queue, in chunks that yield to the event loop: start-up
    // (and with it the plugin socket) never waits for a large CIDR policy.
    this.queue.enqueue(() => this.syncCidrIdentitiesLogged());
    this.watchers.push(
      this.deps.store.watch(IDENTITY_ID_PREFIX, ids.revision, {
        onEvent: (e) => {
          const stored = e.type === 'put' ? this.storedIdentities.read(e.key, e.value) : undefined;
          if (stored) this.identityAdded(stored.id, stored.labels);
          else if (isAllocatedIdentity(identityOfIdKey(e.key))) this.identityRemoved(identityOfIdKey(e.key));
        },
        onResyncNeeded: () => void this.resyncIdentities(),
      }),
      this.policies.watch(repositoryRevision ?? ids.revision),
    );
    this.queue.schedule(this.deps.endpoints.listEndpoints().map((e) => e.endpointId));
  }

  /** Resolves once the work queued so far (CIDR identities, regenerations) is done. */
  async settled(): Promise<void> {
    await this.queue.settled();
  }

  /** Stops watching. */
  stop(): void {
    void this.parser.close();
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  /** Re-lists identities and the repository (periodic resync, reconnect). */
  async relist(): Promise<void> {
    await this.resyncIdentities();
    await this.policies.reload();
  }

  private async resyncIdentities(): Promise<void> {
    const ids = await this.deps.store.list(IDENTITY_ID_PREFIX);
    const seen = new Set<number>();
    for (const p of ids.pairs) {
      const stored = this.storedIdentities.read(p.key, p.value);
      if (!stored) continue;
      seen.add(stored.id);
      if (!this.cache.labelsOf(stored.id)) this.identityAdded(stored.id, stored.labels);
    }
    for (const id of this.cache.identities.keys())
      if (isAllocatedIdentity(id) && !seen.has(id)) this.identityRemoved(id);
  }

  private identityAdded(id: number, labels: LabelSet): void {
    const existing = this.cache.labelsOf(id);
    if (existing?.equals(labels)) return;
    this.cache.addIdentity(id, labels);
    this.regenerateForIdentityChange([labels]);
  }

  private identityRemoved(id: number): void {
    const labels = this.cache.labelsOf(id);
    if (!labels) return;
    this.cache.removeIdentity(id);
    this.regenerateForIdentityChange([labels]);
  }

  private regenerateForIdentityChange(labels: LabelSet[]): void {
    const affected = new Set(identitiesAffectedByIdentityChange(this.repository, this.cache, labels));
    this.queue.schedule(
      this.deps.endpoints
        .listEndpoints()
        .filter((e) => affected.has(e.identity) || waitingWithLabels(e))
        .map((e) => e.endpointId),
    );
  }

  /** A newer repository is applied: regenerates what changed (in the queue, after the CIDR identities). */
  private repositoryApplied(previous: PolicyRepository, next: PolicyRepository): void {
    this.compiler = this.newCompiler();
    const change = diffRepositories(previous, next);
    this.queue.enqueue(async () => {
      await this.syncCidrIdentitiesLogged();
      const affected = new Set(affectedIdentities(change, this.cache));
      const all = this.deps.endpoints.listEndpoints();
      // Endpoints not affected are at the new revision already: record it without recompiling.
      const needs = (e: EndpointRecord) => affected.has(e.identity) || waitingWithLabels(e);
      for (const ep of all)
        if (!needs(ep))
          void this.deps.endpoints
            .setPolicyRevision(ep.endpointId, next.revision)
            .then(() => this.queue.notifyWaiters());
      this.queue.schedule(all.filter(needs).map((e) => e.endpointId));
    });
  }

  private async syncCidrIdentitiesLogged(): Promise<void> {
    try {
      await this.syncCidrIdentities();
    } catch (err) {
      this.deps.log.error({ err }, 'CIDR identity sync failed');
    }
  }

  /** CIDR prefixes used by rules get node-local identities and ipcache entries (run in the queue). */
  private async syncCidrIdentities(): Promise<void> {
    if (await this.cidrIdentities.update()) this.compiler = this.newCompiler();
    await this.deps.datapath.syncCidrIdentities(this.cidrIdentities.byPrefix);
  }

  private async regenerate(endpointId: string): Promise<void> {
    const ep = this.deps.endpoints.getEndpoint(endpointId);
    if (!ep || ep.state === 'created') return;
    const started = performance.now();
    // An endpoint whose labels are known but whose identity is not (store outage) keeps
    // reserved:init as its source identity, but its own ingress/egress policy is compiled from
    // the rules that select its labels: it never gets more access than its policy gives it.
    const waiting = waitingWithLabels(ep);
    const selecting = waiting
      ? this.repository.rules().filter((r) => selectorMatches(r.endpointSelector, LabelSet.parse(ep.labels)))
      : undefined;
    // In slices with a yield between them: an endpoint selected by a policy with tens of thousands
    // of CIDR peers does not hold up plugin calls while it compiles.
    const policy = await this.compiler.compileInSlices(
      ep.identity === 0 ? IDENTITY_INIT : ep.identity,
      selecting,
      yieldToEventLoop,
    );
    if (waiting) this.compiledWaitingLabels.set(ep.id, JSON.stringify(ep.labels));
    else this.compiledWaitingLabels.delete(ep.id);
    const entries: DatapathPolicyEntry[] = policy.entries.map((e) => ({
      direction: e.direction,
      peer: e.peer,
      dport: e.dport,
      portPrefixLen: e.portPrefixLen,
      protocol: e.protocol,
      verdict: e.verdict,
      cookie: e.cookie,
    }));
    const diff = await this.deps.datapath.applyEndpointPolicy(
      this.deps.toDatapathEndpoint(ep),
      { enforceIngress: policy.ingressEnforced, enforceEgress: policy.egressEnforced },
      entries,
    );
    this.compiled.set(ep.id, policy);
    await this.deps.endpoints.setPolicyRevision(endpointId, policy.revision);
    const seconds = (performance.now() - started) / 1000;
    this.deps.onRegenerated?.(seconds);
    this.deps.log.debug(
      {
        endpoint: ep.id,
        identity: ep.identity,
        revision: policy.revision,
        entries: entries.length,
        ...diff,
        ms: Math.round(seconds * 1000),
      },
      'endpoint regenerated',
    );
  }

  /** Enforcement state last applied to an endpoint (for the API). */
  compiledPolicy(epId: number): EndpointPolicy | undefined {
    return this.compiled.get(epId);
  }

  /** Imports CiliumNetworkPolicy text (validated before anything is written); returns the new revision. */
  async importPolicy(text: string): Promise<number> {
    const policies = await this.parser.parseText(text); // validation errors surface before any store access
    return this.policies.mutate((repo) => repo.import(policies));
  }

  /** Deletes one policy (NotFoundError if unknown) or all; returns the new revision. */
  async deletePolicy(name?: string): Promise<number> {
    if (name !== undefined) this.repository.get(name);
    return this.policies.mutate((repo) => (name === undefined ? repo.deleteAll() : repo.delete(name)));
  }

  /**
   * Deletes the policies whose rules carry all these labels (`cilium policy delete <labels>`,
   * `source:key=value`, no source = any); NotFoundError if none does.
   */
  async deletePolicyByLabels(labels: readonly string[]): Promise<number> {
    const selection = parseLabelSelection(labels);
    return this.policies.mutate((repo) => repo.deleteByLabels(selection));
  }

  /** The stored documents with a rule carrying all these labels (`cilium policy get <labels>`). */
  getPoliciesByLabels(labels: readonly string[]): { revision: number; policies: unknown[] } {
    return {
      revision: this.repository.revision,
      policies: this.repository.getByLabels(parseLabelSelection(labels)).map((p) => p.policy.document),
    };
  }

  /** The stored documents (one by name, or all). */
  getPolicies(name?: string): { revision: number; policies: unknown[] } {
    return { revision: this.repository.revision, policies: this.repository.get(name).map((p) => p.policy.document) };
  }

  /** `cilium policy trace`. */
  trace(src: string[], dst: string[], dport: number, protocol: 'TCP' | 'UDP' | 'ANY'): TraceResult {
    const proto = dport !== 0 && protocol === 'ANY' ? 'TCP' : protocol;
    return trace(this.repository, this.cache, src, dst, dport, proto, { enforcement: this.deps.enforcement });
  }

  /** Resolves once the repository and every local endpoint are at `revision` or later. */
  waitForRevision(revision: number, timeoutMs: number): Promise<{ revision: number; endpoints: number }> {
    const done = () => {
      if (this.repository.revision < revision) return false;
      const eps = this.deps.endpoints
        .listEndpoints()
        .filter((e) => e.state === 'ready' || e.state === 'waiting-for-identity');
      return eps.every((e) => e.policyRevision >= revision)
        ? { revision: this.repository.revision, endpoints: eps.length }
        : false;
    };
    return this.queue.waitFor(
      done,
      timeoutMs,
      () =>
        new CiliumDockerError(
          'Unavailable',
          'ERR_POLICY_WAIT_TIMEOUT',
          `policy revision ${revision} not applied to every endpoint within ${timeoutMs} ms (repository ` +
            `at ${this.repository.revision})`,
        ),
    );
  }
}

/** What changed between two repositories, as a PolicyChange (for affectedIdentities). */
function diffRepositories(previous: PolicyRepository, next: PolicyRepository): PolicyChange {
  const before = new Map(previous.get().map((p) => [p.name, p]));
  const after = new Map(next.get().map((p) => [p.name, p]));
  const imported: string[] = [];
  const deleted: string[] = [];
  const selectors = [];
  for (const [name, p] of after) {
    const old = before.get(name);
    if (old && old.revision === p.revision) continue;
    imported.push(name);
    selectors.push(...p.policy.rules.map((r) => r.endpointSelector));
    if (old) selectors.push(...old.policy.rules.map((r) => r.endpointSelector));
  }
  for (const [name, p] of before) {
    if (after.has(name)) continue;
    deleted.push(name);
    selectors.push(...p.policy.rules.map((r) => r.endpointSelector));
  }
  return { revision: next.revision, imported, deleted, endpointSelectors: selectors };
}

/** True for an endpoint whose container labels are known while its identity is still reserved:init. */
function waitingWithLabels(ep: EndpointRecord): boolean {
  return ep.identity === IDENTITY_INIT && ep.labels.length > 0;
}

/** At most this many labels select policies (a rule is named by a few). */
const MAX_SELECTION_LABELS = 64;

/** Parses `cilium policy get|delete` label arguments (`source:key=value`; no source = any source). */
function parseLabelSelection(labels: readonly string[]): RuleLabel[] {
  if (labels.length === 0 || labels.length > MAX_SELECTION_LABELS) {
    throw new PolicyValidationError(
      `give from 1 to ${MAX_SELECTION_LABELS} labels (source:key=value) to select policies by, not ${labels.length}`,
    );
  }
  return labels.map((text) => {
    const label = parseRuleLabelText(text, 'any');
    if (label.key === '' || label.source === '' || text.length > 1024)
      throw new PolicyValidationError(
        `label ${JSON.stringify(text.slice(0, 64))} must be key=value or source:key=value (at most 1024 characters)`,
      );
    return label;
  });
}
