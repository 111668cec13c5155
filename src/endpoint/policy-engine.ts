/**
 * Policy distribution and endpoint regeneration: the I/O side of `src/policy/` (which is pure).
 *
 * - The repository lives in the store as ONE key, `policies/v1/repository` (revision + every
 *   policy document), updated by compare-and-swap. One key makes an import or delete atomic and
 *   gives a cluster-wide, strictly increasing revision without a second counter key; every node
 *   watches it and applies the same snapshot, so `cilium policy wait N` means the same everywhere.
 * - Identities: every identity in the store (`identities/v1/id/`) plus reserved and CIDR
 *   identities feed the selector cache; a new or removed identity regenerates exactly the local
 *   endpoints whose policy selects peers like it.
 * - Regeneration of an endpoint = compile for its identity, diff against the kernel map, write
 *   the difference in batches, then the enforcement flags, then record the applied revision.
 */
import type { KvStore, Watcher } from '../kvstore/kvstore.js';
import {
  PolicyRepository,
  PolicyCompiler,
  SelectorCache,
  affectedIdentities,
  identitiesAffectedByIdentityChange,
  requiredCidrPrefixes,
  POLICY_LIMITS,
  cidrIdentityLabels,
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
import { RESERVED_IDENTITIES, IDENTITY_INIT, MIN_ALLOCATED_IDENTITY } from '../identity/reserved.js';
import { ALLOCATED_LABEL_SOURCES } from '../identity/allocator.js';
import { IDENTITY_ID_PREFIX, identityOfIdKey } from '../identity/identity-keys.js';
import { PolicyParser } from './policy-parser.js';
import { KvConflictError, CiliumDockerError, PolicyValidationError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { EndpointManager } from './endpoint-manager.js';
import type { EndpointRecord } from './endpoint.js';
import type { DatapathEndpoint, DatapathPolicyEntry, EndpointEnforcement } from '../datapath/datapath.js';

/** Top-level prefix of the policy keys (one of the store layout's, daemon/store-layout.ts). */
export const POLICIES_PREFIX = 'policies/v1/';
/** The policy repository: one key, updated by compare-and-swap (see the module comment). */
const REPOSITORY_KEY = `${POLICIES_PREFIX}repository`;
/** Node-local identities for CIDR prefixes (Cilium's local scope starts at 2^24). */
const FIRST_CIDR_IDENTITY = 16_777_216;

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
  private repository = new PolicyRepository();
  private repositoryRevision: bigint | 'absent' = 'absent';
  private cache: SelectorCache;
  private compiler: PolicyCompiler;
  private readonly cidrIdentities = new Map<string, number>();
  /** Next never-used CIDR identity, and those released by removed prefixes (reused first). */
  private nextCidrIdentity = FIRST_CIDR_IDENTITY;
  private readonly freeCidrIdentities: number[] = [];
  private watchers: Watcher[] = [];
  private queue: Promise<void> = Promise.resolve();
  private readonly revisionWaiters = new Set<() => void>();
  private readonly compiled = new Map<number, EndpointPolicy>();
  /** Labels an endpoint still waiting for its identity was last compiled with (see `regenerate`). */
  private readonly compiledWaitingLabels = new Map<number, string>();
  /** Parses imports and stored repositories off the main thread. */
  private readonly parser = new PolicyParser();
  /** The repository value being written by {@link mutate}, and the repository it was made from. */
  private ownWrite: { value: string; repository: PolicyRepository } | undefined;
  /** Store keys of identities ignored for policy (warned about once). */
  private readonly ignoredIdentities = new Set<string>();

  constructor(private readonly deps: PolicyEngineDeps) {
    this.cache = new SelectorCache(RESERVED_IDENTITIES.map((r) => [r.id, r.labels] as const));
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
          this.schedule([ep.endpointId]);
      }
    });
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
      const stored = this.storedIdentity(p.key, p.value);
      if (stored) this.cache.addIdentity(stored.id, stored.labels);
    }
    const repo = await this.deps.store.get(REPOSITORY_KEY);
    if (repo) {
      this.repository = PolicyRepository.fromParsedSnapshot(await this.parser.parseSnapshot(repo.value));
      this.repositoryRevision = repo.modRevision;
      this.compiler = this.newCompiler();
    }
    // CIDR identities are synced in the queue, in chunks that yield to the event loop: start-up
    // (and with it the plugin socket) never waits for a large CIDR policy.
    this.queue = this.queue.then(() => this.syncCidrIdentitiesLogged());
    this.watchers.push(
      this.deps.store.watch(IDENTITY_ID_PREFIX, ids.revision, {
        onEvent: (e) => {
          const stored = e.type === 'put' ? this.storedIdentity(e.key, e.value) : undefined;
          if (stored) this.identityAdded(stored.id, stored.labels);
          else if (isAllocatedIdentity(identityOfIdKey(e.key))) this.identityRemoved(identityOfIdKey(e.key));
        },
        onResyncNeeded: () => void this.resyncIdentities(),
      }),
      this.deps.store.watch(REPOSITORY_KEY, repo?.modRevision ?? ids.revision, {
        onEvent: (e) => {
          if (e.type !== 'put' || e.key !== REPOSITORY_KEY) return;
          // Our own write (the event may come before atomicPut returns): apply the repository it
          // was made from instead of validating every stored document again.
          const own = this.ownWrite;
          if (own?.value === e.value) this.applyRepository(own.repository, e.modRevision);
          else this.applySnapshot(e.value, e.modRevision);
        },
        onResyncNeeded: () => void this.reloadRepository(),
      }),
    );
    this.schedule(this.deps.endpoints.listEndpoints().map((e) => e.endpointId));
  }

  /** Resolves once the work queued so far (CIDR identities, regenerations) is done. */
  async settled(): Promise<void> {
    await this.queue;
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
    await this.reloadRepository();
  }

  private async resyncIdentities(): Promise<void> {
    const ids = await this.deps.store.list(IDENTITY_ID_PREFIX);
    const seen = new Set<number>();
    for (const p of ids.pairs) {
      const stored = this.storedIdentity(p.key, p.value);
      if (!stored) continue;
      seen.add(stored.id);
      if (!this.cache.labelsOf(stored.id)) this.identityAdded(stored.id, stored.labels);
    }
    for (const id of this.cache.identities.keys())
      if (isAllocatedIdentity(id) && !seen.has(id)) this.identityRemoved(id);
  }

  /**
   * An identity read from the store, or undefined (logged once) when it is not one this daemon
   * could have allocated: a number outside the allocated range (it would replace a reserved or
   * CIDR identity's labels) or a label source other than container/docker (`reserved:host`
   * written unescaped by an older node). Such an identity selects nothing and matches no selector,
   * so its traffic meets only the default deny of enforced endpoints.
   */
  private storedIdentity(key: string, canonical: string): { id: number; labels: LabelSet } | undefined {
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
    if (!this.ignoredIdentities.has(key)) {
      this.ignoredIdentities.add(key);
      this.deps.log.warn(
        { key, labels: canonical.slice(0, 256), problem },
        'ignoring a stored identity for policy: not one this daemon allocates',
      );
    }
    return undefined;
  }

  private async reloadRepository(): Promise<void> {
    const repo = await this.deps.store.get(REPOSITORY_KEY);
    if (repo) this.applySnapshot(repo.value, repo.modRevision);
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
    this.schedule(
      this.deps.endpoints
        .listEndpoints()
        .filter((e) => affected.has(e.identity) || waitingWithLabels(e))
        .map((e) => e.endpointId),
    );
  }

  /** Applies a repository snapshot (from our own write or another node's) and regenerates what it affects. */
  private applySnapshot(value: string, modRevision: bigint): void {
    if (this.repositoryRevision !== 'absent' && modRevision <= this.repositoryRevision) return;
    // Validated in the parser thread; applyRepository drops it if a newer one was applied meanwhile.
    this.parser.parseSnapshot(value).then(
      (parsed) => this.applyRepository(PolicyRepository.fromParsedSnapshot(parsed), modRevision),
      (err: unknown) =>
        this.deps.log.error({ modRevision: String(modRevision), err }, 'stored policy repository not applied'),
    );
  }

  /** Makes `next` (the repository stored at `modRevision`) current and regenerates what changed. */
  private applyRepository(next: PolicyRepository, modRevision: bigint): void {
    if (this.repositoryRevision !== 'absent' && modRevision <= this.repositoryRevision) return;
    if (next.revision < this.repository.revision) return;
    const previous = this.repository;
    this.repository = next;
    this.repositoryRevision = modRevision;
    this.compiler = this.newCompiler();
    const change = diffRepositories(previous, next);
    this.queue = this.queue.then(async () => {
      await this.syncCidrIdentitiesLogged();
      const affected = new Set(affectedIdentities(change, this.cache));
      const all = this.deps.endpoints.listEndpoints();
      // Endpoints not affected are at the new revision already: record it without recompiling.
      const needs = (e: EndpointRecord) => affected.has(e.identity) || waitingWithLabels(e);
      for (const ep of all)
        if (!needs(ep))
          void this.deps.endpoints.setPolicyRevision(ep.endpointId, next.revision).then(() => this.notifyWaiters());
      this.schedule(all.filter(needs).map((e) => e.endpointId));
    });
  }

  private async syncCidrIdentitiesLogged(): Promise<void> {
    try {
      await this.syncCidrIdentities();
    } catch (err) {
      this.deps.log.error({ err }, 'CIDR identity sync failed');
    }
  }

  /**
   * CIDR prefixes used by rules get node-local identities and ipcache entries. Runs in the queue
   * (never two at once). Linear in the number of prefixes, in chunks of {@link CIDR_SYNC_CHUNK}
   * with a yield to the event loop between them, so plugin and API calls are served meanwhile.
   */
  private async syncCidrIdentities(): Promise<void> {
    const wanted = new Set(requiredCidrPrefixes(this.repository).filter((p) => !p.includes(':')));
    await yieldToEventLoop();
    // Selections of removed rules first: the identity updates below then maintain only live ones.
    this.cache.pruneSelections(this.repository.rules());
    const removed: number[] = [];
    for (const [prefix, id] of this.cidrIdentities) {
      if (wanted.has(prefix)) continue;
      this.cidrIdentities.delete(prefix);
      removed.push(id);
    }
    for (let i = 0; i < removed.length; i += CIDR_SYNC_CHUNK) {
      await yieldToEventLoop();
      const batch = removed.slice(i, i + CIDR_SYNC_CHUNK);
      this.cache.removeIdentities(batch);
      this.freeCidrIdentities.push(...batch);
    }
    const missing = [...wanted].filter((prefix) => !this.cidrIdentities.has(prefix));
    for (let i = 0; i < missing.length; i += CIDR_SYNC_CHUNK) {
      await yieldToEventLoop();
      const batch: Array<readonly [number, LabelSet]> = [];
      for (const prefix of missing.slice(i, i + CIDR_SYNC_CHUNK)) {
        const id = this.freeCidrIdentities.pop() ?? this.nextCidrIdentity++;
        this.cidrIdentities.set(prefix, id);
        batch.push([id, cidrIdentityLabels(prefix)]);
      }
      this.cache.addIdentities(batch);
    }
    if (removed.length > 0 || missing.length > 0) this.compiler = this.newCompiler();
    await this.deps.datapath.syncCidrIdentities(this.cidrIdentities);
  }

  private schedule(endpointIds: string[]): void {
    if (endpointIds.length === 0) return;
    const ids = [...new Set(endpointIds)];
    this.queue = this.queue.then(async () => {
      for (const id of ids) {
        try {
          await this.regenerate(id);
        } catch (err) {
          this.deps.log.error({ endpoint: id, err }, 'endpoint regeneration failed');
        }
      }
      this.notifyWaiters();
    });
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

  private async mutate(fn: (repo: PolicyRepository) => PolicyChange): Promise<number> {
    for (let attempt = 0; attempt < 16; attempt++) {
      const current = await this.deps.store.get(REPOSITORY_KEY);
      // The stored repository is usually the one applied already: copy it instead of validating
      // every stored document again.
      let repo: PolicyRepository;
      if (!current) repo = new PolicyRepository();
      else if (current.modRevision === this.repositoryRevision) repo = this.repository.clone();
      else repo = PolicyRepository.fromParsedSnapshot(await this.parser.parseSnapshot(current.value));
      fn(repo);
      const value = checkRepositorySize(repo);
      this.ownWrite = { value, repository: repo };
      let written: Awaited<ReturnType<KvStore['atomicPut']>>;
      try {
        written = await this.deps.store.atomicPut(REPOSITORY_KEY, value, current ? current.modRevision : 'absent');
      } finally {
        this.ownWrite = undefined;
      }
      if (written.ok) {
        this.applyRepository(repo, written.revision);
        return repo.revision;
      }
    }
    throw new KvConflictError('policy repository: too many concurrent updates; retry the command');
  }

  /** Imports CiliumNetworkPolicy text (validated before anything is written); returns the new revision. */
  async importPolicy(text: string): Promise<number> {
    const policies = await this.parser.parseText(text); // validation errors surface before any store access
    return this.mutate((repo) => repo.import(policies));
  }

  /** Deletes one policy (NotFoundError if unknown) or all; returns the new revision. */
  async deletePolicy(name?: string): Promise<number> {
    if (name !== undefined) this.repository.get(name);
    return this.mutate((repo) => (name === undefined ? repo.deleteAll() : repo.delete(name)));
  }

  /**
   * Deletes the policies whose rules carry all these labels (`cilium policy delete <labels>`,
   * `source:key=value`, no source = any); NotFoundError if none does.
   */
  async deletePolicyByLabels(labels: readonly string[]): Promise<number> {
    const selection = parseLabelSelection(labels);
    return this.mutate((repo) => repo.deleteByLabels(selection));
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

  private notifyWaiters(): void {
    for (const w of [...this.revisionWaiters]) w();
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
    const now = done();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const r = done();
        if (!r) return;
        cleanup();
        resolve(r);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new CiliumDockerError(
            'Unavailable',
            'ERR_POLICY_WAIT_TIMEOUT',
            `policy revision ${revision} not applied to every endpoint within ${timeoutMs} ms (repository ` +
              `at ${this.repository.revision})`,
          ),
        );
      }, timeoutMs);
      const poll = setInterval(check, 200);
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.revisionWaiters.delete(check);
      };
      this.revisionWaiters.add(check);
    });
  }
}

/** CIDR identities created per slice of {@link PolicyEngine} CIDR sync before yielding. */
const CIDR_SYNC_CHUNK = 2048;

/** Lets timers and I/O callbacks (plugin and API requests) run before continuing. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The stored form of `repo`, refused with a PolicyValidationError when it breaks the repository
 * limits ({@link POLICY_LIMITS}): the import fails now, with the store unchanged, instead of the
 * store refusing the value (Consul: 512 KiB, etcd: 1.5 MiB) or a later write or restart failing.
 */
function checkRepositorySize(repo: PolicyRepository): string {
  if (repo.size > POLICY_LIMITS.policies) {
    throw new PolicyValidationError(
      `the policy repository would hold ${repo.size} policies; ` +
        `the limit is ${POLICY_LIMITS.policies}: delete policies or merge them`,
    );
  }
  const value = JSON.stringify(repo.toJSON());
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > POLICY_LIMITS.repositoryBytes) {
    throw new PolicyValidationError(
      `the policy repository would be ${bytes} bytes as stored; the limit is ${POLICY_LIMITS.repositoryBytes} bytes ` +
        '(it is one store value, and Consul refuses values over 512 KiB): delete policies or make them smaller',
    );
  }
  return value;
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

/** True for numbers the allocator hands out (not reserved, not node-local CIDR identities). */
function isAllocatedIdentity(id: number): boolean {
  return Number.isSafeInteger(id) && id >= MIN_ALLOCATED_IDENTITY && id < FIRST_CIDR_IDENTITY;
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
