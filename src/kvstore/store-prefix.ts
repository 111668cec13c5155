/**
 * The cluster store's key prefix (`--kvstore-opt prefix=…`): its validation, and the start-up
 * step that finds the unprefixed layout earlier versions wrote and refuses or migrates it.
 *
 * Why refuse by default: in a cluster, nodes are upgraded one at a time. A node that moved the
 * keys under the prefix while others still run the old layout would split the cluster (the old
 * nodes would see an empty store and allocate identities, blocks and addresses again). So a
 * daemon that finds only the old layout stops with a KvLayoutError saying what to do: keep the
 * old layout for now (`prefix=`, empty) or stop every daemon and start one with
 * `migrate-prefix=true` (docs/store-layout.md). The embedded store is one node's own file:
 * main.ts migrates it without asking.
 *
 * What a migration moves: every key of the old layout that is not leased, each in a transaction
 * that writes it under the prefix and deletes the old key only if the new one is absent and the
 * old one unchanged (so a crash half-way leaves each key in exactly one place, and a second run
 * finishes the job). Leased keys (node records, heartbeats, ip entries, identity references,
 * network users) belong to the daemon instance that wrote them: each daemon writes its own again
 * under the prefix when it starts, and the old ones expire with their lease.
 */
import { ConfigError, KvLayoutError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { MAX_TXN_OPERATIONS, type KvPair, type KvStore } from './kvstore.js';
import { PrefixedKvStore } from './prefixed-store.js';

/** Longest prefix accepted, in characters (all ASCII). */
export const MAX_STORE_PREFIX_LENGTH = 128;

/** One path segment: URL-unreserved characters only, so no backend escapes or rewrites it. */
const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/**
 * Validates `--kvstore-opt prefix=TEXT` and returns it. The empty prefix is the unprefixed layout
 * of earlier versions (for a cluster that is being upgraded node by node). Otherwise: at most
 * {@link MAX_STORE_PREFIX_LENGTH} characters, path segments of letters, digits and `._~-` (no
 * `.`/`..` segment, which consul rewrites), no leading `/`, a trailing `/`, and apart from the
 * old layout's prefixes (either way round, or old and new keys would be taken for each other).
 * `layout` is the top-level prefixes of the unprefixed layout (`<name>/v1/`): each is declared by
 * the module that owns its keys, and the composition root lists them (daemon/store-layout.ts).
 */
export function parseStorePrefix(text: string, layout: readonly string[]): string {
  const what = `--kvstore-opt prefix=${JSON.stringify(text).slice(1, -1)}`;
  if (text === '') return text;
  if (text.length > MAX_STORE_PREFIX_LENGTH)
    throw new ConfigError(`${what}: longer than ${MAX_STORE_PREFIX_LENGTH} characters`);
  if (text.startsWith('/')) throw new ConfigError(`${what}: a prefix cannot begin with '/'; use e.g. cilium/state/`);
  if (!text.endsWith('/')) throw new ConfigError(`${what}: a prefix must end with '/', e.g. ${text}/`);
  const segments = text.slice(0, -1).split('/');
  if (segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) {
    throw new ConfigError(
      `${what}: use path segments of letters, digits and . ` +
        `_ ~ - separated by single '/' (no '.' or '..' segment, no spaces)`,
    );
  }
  const clash = layout.find((legacy) => legacy.startsWith(text) || text.startsWith(legacy));
  if (clash !== undefined)
    throw new ConfigError(
      `${what}: overlaps ${clash}, a part of the unprefixed layout; choose another, e.g. cilium/state/`,
    );
  return text;
}

/** How the daemon opens the cluster store under its prefix. */
export interface StorePrefixOptions {
  /** A prefix `parseStorePrefix` accepted; '' = the unprefixed layout. */
  prefix: string;
  /** Move keys of the unprefixed layout under the prefix instead of refusing to start. */
  migrate: boolean;
  /** The top-level prefixes of the unprefixed layout (as for `parseStorePrefix`). */
  layout: readonly string[];
  /** The backend as messages name it, e.g. `--kvstore etcd`. */
  backend: string;
  log: Logger;
}

/** What `openPrefixedStore` found and did. */
export interface StorePrefixReport {
  /** Keys of the unprefixed layout found at start. */
  legacyKeys: number;
  /** Of them, moved under the prefix. */
  moved: number;
  /** Left where they were: leased keys, and keys that already existed under the prefix. */
  left: number;
}

/**
 * The store the daemon uses: `backend` under `options.prefix`, after the start-up check of the
 * old layout (see the module comment). Rejects with KvLayoutError when the old layout is there,
 * nothing is under the prefix yet and `migrate` is false.
 */
export async function openPrefixedStore(
  backend: KvStore,
  options: StorePrefixOptions,
): Promise<{ store: KvStore; report: StorePrefixReport }> {
  const report: StorePrefixReport = { legacyKeys: 0, moved: 0, left: 0 };
  if (options.prefix === '') return { store: backend, report };
  const store = new PrefixedKvStore(backend, options.prefix);
  const legacy = (await Promise.all(options.layout.map((p) => backend.list(p)))).flatMap((r) => r.pairs);
  report.legacyKeys = legacy.length;
  if (legacy.length === 0) return { store, report };
  const leased = legacy.filter((p) => p.lease !== undefined).length;
  const sample = [...new Set(legacy.map((p) => options.layout.find((l) => p.key.startsWith(l))!))];
  if (!options.migrate) {
    const current = (await backend.list(options.prefix)).pairs.length;
    if (current === 0) {
      throw new KvLayoutError(
        `${options.backend}: the store holds ${legacy.length} keys of the unprefixed layout of earlier versions ` +
          `(${sample.join(', ')}) and none under --kvstore-opt prefix=${options.prefix}; ` +
          'starting here would split the cluster from the nodes that use them. To move them: stop every ' +
          'cilium-docker daemon of this store, start one with --kvstore-opt migrate-prefix=true, then the others. ' +
          'To keep the old layout while nodes are upgraded one by one: ' +
          'start this node with --kvstore-opt prefix= (empty). See docs/store-layout.md',
      );
    }
    options.log.warn(
      { legacyKeys: legacy.length, leased, prefixes: sample, prefix: options.prefix },
      'keys of the unprefixed layout remain next to the prefixed ones: leased ones of daemons that ran the old ' +
        'layout expire with their lease; others mean a daemon with the old layout (or --kvstore-opt prefix=) ' +
        'still writes this store and does not see this node',
    );
    report.left = legacy.length;
    return { store, report };
  }
  const movable = legacy.filter((p) => p.lease === undefined);
  for (let i = 0; i < movable.length; i += MOVES_PER_TRANSACTION) {
    for (const outcome of await moveBatch(backend, options.prefix, movable.slice(i, i + MOVES_PER_TRANSACTION)))
      if (outcome !== 'gone') report[outcome]++;
  }
  report.left += leased;
  options.log.warn(
    {
      moved: report.moved,
      leasedLeft: leased,
      notMoved: report.left - leased,
      prefixes: sample,
      prefix: options.prefix,
    },
    'moved the keys of the unprefixed layout under the store prefix (leased keys are written again by their ' +
      'daemons and expire at the old place)',
  );
  return { store, report };
}

/** Each move is two conditions and two operations. */
const MOVES_PER_TRANSACTION = Math.floor(MAX_TXN_OPERATIONS / 4);
/** Attempts per key when its old copy changes under the move (a daemon of the old layout still writes). */
const MOVE_ATTEMPTS = 3;

/** Moves `pairs` under `prefix` in one transaction, falling back to one key at a time when a condition fails. */
async function moveBatch(backend: KvStore, prefix: string, pairs: readonly KvPair[]): Promise<MoveOutcome[]> {
  const batch = await backend.transaction(
    pairs.flatMap((p) => [
      { key: prefix + p.key, absent: true as const },
      { key: p.key, modRevision: p.modRevision },
    ]),
    pairs.flatMap((p) => [
      { op: 'put' as const, key: prefix + p.key, value: p.value },
      { op: 'delete' as const, key: p.key },
    ]),
  );
  if (batch.ok) return pairs.map(() => 'moved');
  const outcomes: MoveOutcome[] = [];
  for (const pair of pairs) outcomes.push(await moveOne(backend, prefix, pair));
  return outcomes;
}

/**
 * What became of one key: moved; left at the old place (the prefixed key exists already and wins,
 * or the old one became leased or kept changing); gone (deleted meanwhile by its owner).
 */
type MoveOutcome = 'moved' | 'left' | 'gone';

/** Moves one key (see MoveOutcome). */
async function moveOne(backend: KvStore, prefix: string, first: KvPair): Promise<MoveOutcome> {
  let pair: KvPair | undefined = first;
  for (let attempt = 0; attempt < MOVE_ATTEMPTS && pair !== undefined; attempt++) {
    if (pair.lease !== undefined) return 'left';
    const result = await backend.transaction(
      [
        { key: prefix + pair.key, absent: true },
        { key: pair.key, modRevision: pair.modRevision },
      ],
      [
        { op: 'put', key: prefix + pair.key, value: pair.value },
        { op: 'delete', key: pair.key },
      ],
    );
    if (result.ok) return 'moved';
    if (result.current.get(prefix + pair.key) !== undefined) return 'left';
    pair = result.current.get(pair.key);
  }
  return pair === undefined ? 'gone' : 'left';
}
