/**
 * The policy repository in the store: ONE key, `policies/v1/repository` (revision + every policy
 * document), updated by compare-and-swap. One key makes an import or delete atomic and gives a
 * cluster-wide, strictly increasing revision without a second counter key; every node watches it
 * and applies the same snapshot, so `cilium policy wait N` means the same everywhere.
 *
 * This module holds the repository applied last and the store revision it was read or written
 * at, loads it, watches the key, writes changes by compare-and-swap, and hands each newer
 * repository (its own write or another node's) to the policy engine. Stored documents are
 * validated again in the parser thread, except the repository this node just wrote.
 */
import type { KvStore, Watcher } from '../kvstore/kvstore.js';
import { POLICY_LIMITS, PolicyRepository, type PolicyChange } from '../policy/index.js';
import { KvConflictError, PolicyValidationError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { PolicyParser } from './policy-parser.js';

/** Top-level prefix of the policy keys (one of the store layout's, daemon/store-layout.ts). */
export const POLICIES_PREFIX = 'policies/v1/';
/** The policy repository: one key, updated by compare-and-swap (see the module comment). */
const REPOSITORY_KEY = `${POLICIES_PREFIX}repository`;
/** Compare-and-swap attempts of one change before giving up (other nodes writing meanwhile). */
const MAX_WRITE_ATTEMPTS = 16;

/** Construction options. */
export interface PolicyRepositoryStoreOptions {
  store: KvStore;
  /** Validates stored repositories off the main thread. */
  parser: PolicyParser;
  log: Logger;
  /** Called when a newer repository replaces `previous` (not for the one {@link PolicyRepositoryStore.load} reads). */
  onApplied(previous: PolicyRepository, next: PolicyRepository): void;
}

/** The stored policy repository as this node applies it. */
export class PolicyRepositoryStore {
  private applied = new PolicyRepository();
  private appliedRevision: bigint | 'absent' = 'absent';
  /** The repository value being written by {@link mutate}, and the repository it was made from. */
  private ownWrite: { value: string; repository: PolicyRepository } | undefined;

  constructor(private readonly options: PolicyRepositoryStoreOptions) {}

  /** The repository applied last (empty until one is loaded). */
  get current(): PolicyRepository {
    return this.applied;
  }

  /** Reads the stored repository (at start-up); its store revision, or undefined when none is stored. */
  async load(): Promise<bigint | undefined> {
    const repo = await this.options.store.get(REPOSITORY_KEY);
    if (!repo) return undefined;
    this.applied = PolicyRepository.fromParsedSnapshot(await this.options.parser.parseSnapshot(repo.value));
    this.appliedRevision = repo.modRevision;
    return repo.modRevision;
  }

  /** Watches the repository key from `revision`; lost events re-read it. */
  watch(revision: bigint): Watcher {
    return this.options.store.watch(REPOSITORY_KEY, revision, {
      onEvent: (e) => {
        if (e.type !== 'put' || e.key !== REPOSITORY_KEY) return;
        // Our own write (the event may come before atomicPut returns): apply the repository it
        // was made from instead of validating every stored document again.
        const own = this.ownWrite;
        if (own?.value === e.value) this.apply(own.repository, e.modRevision);
        else this.applySnapshot(e.value, e.modRevision);
      },
      onResyncNeeded: () => void this.reload(),
    });
  }

  /** Reads the stored repository again and applies it if it is newer (resync, lost events). */
  async reload(): Promise<void> {
    const repo = await this.options.store.get(REPOSITORY_KEY);
    if (repo) this.applySnapshot(repo.value, repo.modRevision);
  }

  /**
   * Applies `fn` to a copy of the stored repository and writes the result by compare-and-swap,
   * again on a concurrent write; applies it and returns its revision. The size limits are checked
   * before anything is written.
   */
  async mutate(fn: (repo: PolicyRepository) => PolicyChange): Promise<number> {
    const { store, parser } = this.options;
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const current = await store.get(REPOSITORY_KEY);
      // The stored repository is usually the one applied already: copy it instead of validating
      // every stored document again.
      let repo: PolicyRepository;
      if (!current) repo = new PolicyRepository();
      else if (current.modRevision === this.appliedRevision) repo = this.applied.clone();
      else repo = PolicyRepository.fromParsedSnapshot(await parser.parseSnapshot(current.value));
      fn(repo);
      const value = checkRepositorySize(repo);
      this.ownWrite = { value, repository: repo };
      let written: Awaited<ReturnType<KvStore['atomicPut']>>;
      try {
        written = await store.atomicPut(REPOSITORY_KEY, value, current ? current.modRevision : 'absent');
      } finally {
        this.ownWrite = undefined;
      }
      if (written.ok) {
        this.apply(repo, written.revision);
        return repo.revision;
      }
    }
    throw new KvConflictError('policy repository: too many concurrent updates; retry the command');
  }

  /** Applies a stored repository snapshot (another node's write) once the parser thread validated it. */
  private applySnapshot(value: string, modRevision: bigint): void {
    if (this.appliedRevision !== 'absent' && modRevision <= this.appliedRevision) return;
    // Validated in the parser thread; apply drops it if a newer one was applied meanwhile.
    this.options.parser.parseSnapshot(value).then(
      (parsed) => this.apply(PolicyRepository.fromParsedSnapshot(parsed), modRevision),
      (err: unknown) =>
        this.options.log.error({ modRevision: String(modRevision), err }, 'stored policy repository not applied'),
    );
  }

  /** Makes `next` (the repository stored at `modRevision`) current unless a newer one is. */
  private apply(next: PolicyRepository, modRevision: bigint): void {
    if (this.appliedRevision !== 'absent' && modRevision <= this.appliedRevision) return;
    if (next.revision < this.applied.revision) return;
    const previous = this.applied;
    this.applied = next;
    this.appliedRevision = modRevision;
    this.options.onApplied(previous, next);
  }
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
