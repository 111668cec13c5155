/**
 * Label set -> numeric security identity, allocated through the store.
 *
 * Layout (declared in identity-keys.ts): `identities/v1/id/<n>` -> canonical label set (create-only: winning that
 * key reserves the number), `identities/v1/labels/<encoded label set>` -> `<n>` (create-only:
 * winning it binds the label set to that number, so two nodes allocating the same labels at once
 * agree on one number) and `identities/v1/value/<encoded label set>/<node>` -> `<n>` (this node's
 * reference, leased, so a dead node's references vanish); `<label set>` is the escaped canonical
 * form (labels.ts), `identities/v1/encoding` marks a store migrated to it (migrateLabelEncoding).
 * Numbers are drawn at random in the allocation range: in a sparse range concurrent allocators
 * rarely collide (measured 0.4 % conflicts vs 60 % for sequential scans,
 * shared/reference/baselines.md).
 *
 * Local reference counts: an identity already held by this node costs zero store round trips.
 * Work on one label set is serialised in-process so acquire/release never interleave.
 *
 * Outages: a label set this node knows (referenced, or released while the store was unreachable
 * and not yet removed from it) is acquired without the store. A new label set needs the store;
 * `acquire(labels, { timeoutMs })` gives up after that long with IdentityUnavailableError (an
 * allocation that completes later is released again, so nothing leaks). A release whose store
 * writes fail keeps the entry as "release pending"; `reassertReferences` (every resync) finishes it.
 */
import type { KvStore } from '../kvstore/kvstore.js';
import { putBatched } from '../kvstore/batched-writes.js';
import { TransactionBatcher } from '../kvstore/transaction-batcher.js';
import { IdentityAllocationError, IdentityUnavailableError, InvalidIdentityLabelsError } from '../util/errors.js';
import { LabelSet } from './labels.js';
import { MAX_ALLOCATED_IDENTITY, MIN_ALLOCATED_IDENTITY, RESERVED_IDENTITIES } from './reserved.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { ALLOCATED_LABEL_SOURCES, migrateLabelEncoding } from './label-encoding-migration.js';
import type { Logger } from '../util/log.js';
import {
  encodeLabelKey,
  IDENTITY_ID_PREFIX,
  IDENTITY_LABELS_PREFIX,
  IDENTITY_VALUE_PREFIX,
  identityIdKey,
} from './identity-keys.js';

export { ALLOCATED_LABEL_SOURCES } from './label-encoding-migration.js';

/** An identity as listed by the API. */
export interface Identity {
  id: number;
  labels: LabelSet;
  reserved: boolean;
  /** References held by endpoints on this node. */
  localReferences: number;
}

/** Options of the allocator. */
export interface IdentityAllocatorOptions {
  store: KvStore;
  nodeName: string;
  log: Logger;
  minId?: number;
  maxId?: number;
  maxAttempts?: number;
}

/** What the allocator did since it was created. */
export interface IdentityAllocatorStats {
  /** Allocation transactions sent (one per candidate number tried). */
  attempts: number;
  /** Label sets this node allocated a new number for. */
  allocated: number;
  /** Label sets another node had allocated, referenced by this one. */
  referenced: number;
  /** Attempts whose candidate number another label set held already. */
  candidateCollisions: number;
}

interface LocalEntry {
  id: number;
  labels: LabelSet;
  refs: number;
  /** refs reached 0 but removing this node's reference from the store failed; retried by the resync. */
  releasePending?: boolean;
}

/** Options of one acquire. */
export interface AcquireOptions {
  /** Give up on a new label set after this long (IdentityUnavailableError); no bound if omitted. */
  timeoutMs?: number;
}

/** Allocates, references and releases identities for this node. */
export class IdentityAllocator {
  private readonly store: KvStore;
  /** Allocation and reference transactions of concurrent acquisitions share round trips. */
  private readonly batcher: TransactionBatcher;
  private readonly nodeName: string;
  private readonly log: Logger;
  private readonly minId: number;
  private readonly maxId: number;
  private readonly maxAttempts: number;
  private readonly local = new Map<string, LocalEntry>();
  private readonly mutex = new KeyedMutex();
  /** Identities seen without any reference by the last `collectUnreferenced` pass: number -> id key revision. */
  private readonly unreferenced = new Map<number, bigint>();
  private readonly counters: IdentityAllocatorStats = {
    attempts: 0,
    allocated: 0,
    referenced: 0,
    candidateCollisions: 0,
  };

  constructor(options: IdentityAllocatorOptions) {
    this.store = options.store;
    this.batcher = new TransactionBatcher(options.store);
    this.nodeName = options.nodeName;
    this.log = options.log;
    this.minId = options.minId ?? MIN_ALLOCATED_IDENTITY;
    this.maxId = options.maxId ?? MAX_ALLOCATED_IDENTITY;
    this.maxAttempts = options.maxAttempts ?? 32;
  }

  private valueKey(labels: LabelSet, node = this.nodeName): string {
    return `${IDENTITY_VALUE_PREFIX}${encodeLabelKey(labels.toCanonical())}/${node}`;
  }

  /** The identity this node already knows for `labels`, without any store access. */
  lookupLocal(labels: LabelSet): number | undefined {
    return this.local.get(labels.toCanonical())?.id;
  }

  /**
   * Takes one reference on the identity of `labels`, allocating it in the store if no node has
   * it yet. Zero store round trips when this node already knows it (see the module comment).
   */
  async acquire(labels: LabelSet, options: AcquireOptions = {}): Promise<number> {
    const forged = labels.labels.find((l) => !ALLOCATED_LABEL_SOURCES.has(l.source));
    if (forged) {
      throw new InvalidIdentityLabelsError(
        `no identity is allocated for labels with source "${forged.source}" (${describe(labels)}): ` +
          `only ${[...ALLOCATED_LABEL_SOURCES].join(' and ')} labels are`,
      );
    }
    const canonical = labels.toCanonical();
    const held = this.takeLocal(canonical);
    if (held !== undefined) return held;
    const work = this.mutex.run(canonical, async () => {
      const again = this.takeLocal(canonical);
      if (again !== undefined) return again;
      const id = await this.resolveOrAllocate(labels);
      this.local.set(canonical, { id, labels, refs: 1 });
      return id;
    });
    if (options.timeoutMs === undefined) return work;
    const timeoutMs = options.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([work, expired]);
      if (outcome !== 'expired') return outcome;
    } catch (err) {
      throw new IdentityUnavailableError(
        `no identity for ${describe(labels)}: ` +
          `the kvstore could not allocate one (${err instanceof Error ? err.message : String(err)}); ` +
          'it is retried until the store is reachable again',
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    // Nobody waits for this allocation any more: give its reference back when it completes.
    work.then(
      () => this.release(labels).catch(() => undefined),
      () => undefined,
    );
    throw new IdentityUnavailableError(
      `no identity for ${describe(labels)} within --identity-timeout ${timeoutMs} ms: ` +
        'the kvstore did not answer in time; ' +
        'it is retried until the store is reachable again',
    );
  }

  /** One more reference on a locally known identity (also one whose release is pending), or undefined. */
  private takeLocal(canonical: string): number | undefined {
    const held = this.local.get(canonical);
    if (!held || (held.refs === 0 && !held.releasePending)) return undefined;
    held.refs++;
    held.releasePending = false;
    return held.id;
  }

  /**
   * References an existing identity safely against a concurrent garbage collection on another
   * node, in one transaction: if the id key still holds our label set, write our reference key
   * and touch (rewrite) the id key at the same revision. A collector deletes the id key only at
   * the revision it read before listing references, so either it read after our transaction (and
   * then lists our reference and keeps the key), or our touch changed the revision and its delete
   * fails, or its delete came first and our condition fails (nothing written; we start over).
   * Other nodes referencing the same identity at once all succeed: the condition is on the value.
   */
  private async referenceExisting(labels: LabelSet, id: number): Promise<boolean> {
    const canonical = labels.toCanonical();
    const idKey = identityIdKey(id);
    const referenced = await this.batcher.submit(
      [{ key: idKey, value: canonical }],
      [
        { op: 'put', key: this.valueKey(labels), value: String(id), leased: true },
        { op: 'put', key: idKey, value: canonical },
      ],
    );
    return referenced.ok;
  }

  /**
   * The number of `labels`, allocated if needed; this node's reference key is written on return.
   *
   * One transaction per attempt, so a new label set costs one round trip: if neither the label
   * key nor a random candidate's id key exists, create both and our reference at one revision.
   * When it fails the answer carries the label key: another node allocated the label set (then
   * reference its number: a second round trip), or only the candidate was taken (draw again).
   * Transactions of concurrent acquisitions go to the store together (TransactionBatcher), so
   * under load a round trip carries many of them.
   */
  private async resolveOrAllocate(labels: LabelSet): Promise<number> {
    const canonical = labels.toCanonical();
    const labelKey = `${IDENTITY_LABELS_PREFIX}${encodeLabelKey(canonical)}`;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      this.counters.attempts++;
      const candidate = this.minId + Math.floor(Math.random() * (this.maxId - this.minId + 1));
      const idKey = identityIdKey(candidate);
      const created = await this.batcher.submit(
        [
          { key: labelKey, absent: true },
          { key: idKey, absent: true },
        ],
        [
          { op: 'put', key: idKey, value: canonical },
          { op: 'put', key: labelKey, value: String(candidate) },
          { op: 'put', key: this.valueKey(labels), value: String(candidate), leased: true },
        ],
      );
      if (created.ok) {
        this.counters.allocated++;
        this.log.info({ identity: candidate, labels: canonical }, 'allocated identity');
        return candidate;
      }
      const bound = created.current.get(labelKey);
      if (bound === undefined) {
        // Only the number was taken (by another label set): draw again.
        this.counters.candidateCollisions++;
        continue;
      }
      const id = Number(bound.value);
      if (await this.referenceExisting(labels, id)) {
        this.counters.referenced++;
        return id;
      }
      // The label key points at a number that is gone (a collector died half-way, or collected
      // it just now): clear it at the revision read, then allocate afresh.
      await this.store.atomicDelete(labelKey, bound.modRevision);
    }
    throw new IdentityAllocationError(
      `could not allocate an identity for ${labels.toStrings().join(',') || '(no labels)'} after ${this.maxAttempts}` +
        ` attempts in range ${this.minId}-${this.maxId}; the range may be nearly full: remove unused containers`,
    );
  }

  /**
   * Re-takes a reference on a known identity number (restore after a daemon restart) without
   * allocating: the number is kept even if the store is unreachable right now.
   */
  adopt(labels: LabelSet, id: number): void {
    const canonical = labels.toCanonical();
    const held = this.local.get(canonical);
    if (held) {
      held.refs++;
      held.releasePending = false;
    } else this.local.set(canonical, { id, labels, refs: 1 });
  }

  /**
   * Drops one reference; the last one removes this node's reference key and collects the
   * identity if unused. If the store fails meanwhile, the release stays pending (the identity
   * stays known locally) and `reassertReferences` finishes it.
   */
  async release(labels: LabelSet): Promise<void> {
    const canonical = labels.toCanonical();
    await this.mutex.run(canonical, async () => {
      const held = this.local.get(canonical);
      if (!held || held.refs === 0) return;
      held.refs--;
      if (held.refs > 0) return;
      await this.finishRelease(canonical, held);
    });
  }

  /** Removes this node's reference from the store and collects the identity; keeps it pending on failure. */
  private async finishRelease(canonical: string, held: LocalEntry): Promise<void> {
    try {
      await this.store.delete(this.valueKey(held.labels));
      await this.collect(held.labels, held.id);
      this.local.delete(canonical);
    } catch (err) {
      held.releasePending = true;
      this.log.warn(
        { identity: held.id, labels: canonical, err },
        'identity release pending: the store is unreachable; the resync finishes it',
      );
    }
  }

  /**
   * Deletes `identities/v1/id/<n>` when no node references the label set any more. The delete is
   * conditional on the id key's revision, read before the reference check.
   */
  private async collect(labels: LabelSet, id: number): Promise<void> {
    const master = await this.store.get(identityIdKey(id));
    if (!master) return;
    const refs = await this.store.list(`${IDENTITY_VALUE_PREFIX}${encodeLabelKey(labels.toCanonical())}/`);
    if (refs.pairs.length > 0) return;
    if (await this.store.atomicDelete(master.key, master.modRevision)) {
      const labelKey = await this.store.get(`${IDENTITY_LABELS_PREFIX}${encodeLabelKey(labels.toCanonical())}`);
      if (labelKey?.value === String(id)) await this.store.atomicDelete(labelKey.key, labelKey.modRevision);
      this.log.info({ identity: id }, 'released identity');
    }
  }

  /**
   * Re-writes this node's reference keys (after a store reconnect or a resync), batched into
   * transactions, then finishes pending releases.
   */
  async reassertReferences(): Promise<void> {
    const held = [...this.local.values()].filter((entry) => entry.refs > 0);
    await putBatched(
      this.store,
      held.map((entry) => ({ key: this.valueKey(entry.labels), value: String(entry.id), leased: true })),
    );
    for (const [canonical, entry] of [...this.local]) {
      if (entry.refs === 0 && entry.releasePending)
        await this.mutex.run(canonical, () =>
          entry.refs === 0 && entry.releasePending ? this.finishRelease(canonical, entry) : Promise.resolve(),
        );
    }
  }

  /** Counters since start: what allocations cost (benchmarks, debugging). */
  getStats(): IdentityAllocatorStats {
    return { ...this.counters };
  }

  /**
   * Garbage-collects identities no node references any more: those whose nodes died (their
   * leased reference keys expired with the lease) or whose last release failed half-way. Run by
   * every resync on every node. An identity is deleted only when two passes in a row saw it
   * unreferenced at the same id-key revision: an allocation or reference in between rewrites the
   * id key (see referenceExisting), so the conditional delete fails and the identity stays.
   * Returns the numbers collected.
   */
  async collectUnreferenced(): Promise<number[]> {
    const [ids, refs] = await Promise.all([
      this.store.list(IDENTITY_ID_PREFIX),
      this.store.list(IDENTITY_VALUE_PREFIX),
    ]);
    const referenced = new Set(refs.pairs.map((p) => p.key.slice(IDENTITY_VALUE_PREFIX.length).split('/')[0]));
    const localIds = new Set([...this.local.values()].map((e) => e.id));
    const seen = new Map<number, bigint>();
    const collected: number[] = [];
    for (const p of ids.pairs) {
      const id = Number(p.key.slice(IDENTITY_ID_PREFIX.length));
      if (localIds.has(id) || referenced.has(encodeLabelKey(p.value))) continue;
      if (this.unreferenced.get(id) === p.modRevision) {
        if (await this.store.atomicDelete(p.key, p.modRevision)) {
          const labelKey = await this.store.get(`${IDENTITY_LABELS_PREFIX}${encodeLabelKey(p.value)}`);
          if (labelKey?.value === String(id)) await this.store.atomicDelete(labelKey.key, labelKey.modRevision);
          collected.push(id);
          this.log.info({ identity: id, labels: p.value }, 'collected identity no node references');
        }
        continue;
      }
      seen.set(id, p.modRevision);
    }
    this.unreferenced.clear();
    for (const [id, revision] of seen) this.unreferenced.set(id, revision);
    return collected;
  }

  /**
   * The nodes holding a reference to each identity, from their reference keys in the store
   * (`cilium identity list`): identity number -> node names, sorted. Only those of `labels` when
   * given.
   */
  async referencingNodes(labels?: LabelSet): Promise<Map<number, string[]>> {
    const { pairs } = await this.store.list(labels ? this.valueKey(labels, '') : IDENTITY_VALUE_PREFIX);
    const out = new Map<number, string[]>();
    for (const p of pairs) {
      const id = Number(p.value);
      if (!Number.isSafeInteger(id)) continue;
      out.set(id, [...(out.get(id) ?? []), p.key.slice(p.key.lastIndexOf('/') + 1)]);
    }
    for (const nodes of out.values()) nodes.sort();
    return out;
  }

  /** Runs {@link migrateLabelEncoding} for this node (at start, before any acquire or adopt). */
  migrateLabelEncoding(): Promise<number[]> {
    return migrateLabelEncoding(this.store, this.nodeName, this.log);
  }

  /** Every identity: reserved ones plus those in the store. */
  async list(): Promise<Identity[]> {
    const out: Identity[] = RESERVED_IDENTITIES.map((r) => ({
      id: r.id,
      labels: r.labels,
      reserved: true,
      localReferences: 0,
    }));
    const { pairs } = await this.store.list(IDENTITY_ID_PREFIX);
    const localById = new Map([...this.local.values()].map((e) => [e.id, e.refs]));
    for (const p of pairs) {
      const id = Number(p.key.slice(IDENTITY_ID_PREFIX.length));
      out.push({
        id,
        labels: LabelSet.fromCanonical(p.value),
        reserved: false,
        localReferences: localById.get(id) ?? 0,
      });
    }
    return out.sort((a, b) => a.id - b.id);
  }

  /** One identity by number, or undefined. */
  async get(id: number): Promise<Identity | undefined> {
    const r = RESERVED_IDENTITIES.find((x) => x.id === id);
    if (r) return { id, labels: r.labels, reserved: true, localReferences: 0 };
    const p = await this.store.get(identityIdKey(id));
    if (!p) return undefined;
    const local = [...this.local.values()].find((e) => e.id === id);
    return { id, labels: LabelSet.fromCanonical(p.value), reserved: false, localReferences: local?.refs ?? 0 };
  }
}

function describe(labels: LabelSet): string {
  return labels.toStrings().join(',') || '(no labels)';
}
