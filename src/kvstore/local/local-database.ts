/**
 * The SQLite file of the embedded store (local-store.ts): its permissions, pragmas and schema,
 * the statements the store runs on it, and how a key prefix becomes a range of rows.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { log } from '../../util/log.js';
import type { KvPair } from '../kvstore.js';
import type { LocalSyncMode } from './local-options.js';

/**
 * Keeps the store's files readable by their owner only (they hold every key). SQLite creates the
 * `-wal`, `-shm` and `-journal` files with the mode of the database file, so the database is
 * created 0600 before SQLite opens it; files an older version left readable by others (0644)
 * are narrowed to 0600.
 */
function restrictStoreFiles(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch {
      continue;
    }
    if ((mode & 0o077) === 0) continue;
    chmodSync(file, 0o600);
    log.warn(
      { file, mode: `0${(mode & 0o777).toString(8)}` },
      'store file was readable by other users: narrowed to 0600',
    );
  }
}

/** How long a statement waits for the file lock before failing (another process holds it). */
const BUSY_TIMEOUT_MS = 2_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO meta (id, revision) VALUES (1, 0);
  CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    lease TEXT
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease IS NOT NULL;
  CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    ttl_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
`;

/** A row of the `kv` table. */
export interface KvRow {
  key: string;
  value: string;
  create_revision: bigint;
  mod_revision: bigint;
  lease: string | null;
}

/**
 * Opens (creating if needed) the database file at `path` with its pragmas and schema, or throws
 * the error of the step that failed (SQLite's `errcode` 5 when another process holds the file),
 * closing what it opened.
 */
export function openStoreDatabase(path: string, sync: LocalSyncMode | undefined): DatabaseSync {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  restrictStoreFiles(path);
  const db = new DatabaseSync(path, { readBigInts: true, timeout: BUSY_TIMEOUT_MS });
  try {
    // Exclusive locking: the lock taken by the schema transaction below is held until close,
    // so a second daemon on the same file fails here instead of silently starving watchers.
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string };
    if (mode.journal_mode !== 'wal') {
      throw new Error(`the filesystem does not support WAL (journal mode stayed ${mode.journal_mode})`);
    }
    // See "Durability" in local-store.ts: NORMAL survives any daemon crash; FULL also survives power loss.
    db.exec(`PRAGMA synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
    return db;
  } catch (err) {
    if (db.isOpen) db.close();
    throw err;
  }
}

/** The statements the store runs on `db`. */
export type LocalStatements = ReturnType<typeof prepareStatements>;

/** The statements the store runs, prepared once per open. */
export function prepareStatements(db: DatabaseSync) {
  const columns = 'key, value, create_revision, mod_revision, lease';
  const statements = {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    revision: db.prepare('SELECT revision FROM meta WHERE id = 1'),
    bumpRevision: db.prepare('UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision'),
    get: db.prepare(`SELECT ${columns} FROM kv WHERE key = ?`),
    listRange: db.prepare(`SELECT ${columns} FROM kv WHERE key >= ? AND key < ? ORDER BY key`),
    listKeys: db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
    upsert: db.prepare(
      `INSERT INTO kv (${columns}) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision,
         lease = excluded.lease
       RETURNING create_revision`,
    ),
    deleteKey: db.prepare('DELETE FROM kv WHERE key = ?'),
    deleteRange: db.prepare('DELETE FROM kv WHERE key >= ? AND key < ?'),
    insertLease: db.prepare('INSERT INTO leases (id, ttl_ms, expires_at) VALUES (?, ?, ?)'),
    renewLease: db.prepare('UPDATE leases SET expires_at = ? WHERE id = ?'),
    expiredLeases: db.prepare('SELECT id FROM leases WHERE expires_at <= ? ORDER BY id'),
    keysOfLease: db.prepare('SELECT key FROM kv WHERE lease = ? ORDER BY key'),
    deleteKeysOfLease: db.prepare('DELETE FROM kv WHERE lease = ?'),
    deleteLease: db.prepare('DELETE FROM leases WHERE id = ?'),
  } satisfies Record<string, StatementSync>;
  return statements;
}

/** The pair a `kv` row holds; undefined for no row. */
export function toPair(row: KvRow | undefined): KvPair | undefined {
  if (row === undefined) return undefined;
  return {
    key: row.key,
    value: row.value,
    createRevision: row.create_revision,
    modRevision: row.mod_revision,
    ...(row.lease !== null && { lease: row.lease }),
  };
}

/**
 * The half-open key range `[from, to)` holding exactly the keys that start with `prefix`.
 *
 * SQLite compares TEXT as UTF-8 bytes, which orders like code points, so the bound is the prefix
 * with its last code point incremented (trailing U+10FFFF dropped first; the surrogate block
 * skipped). With no such bound (empty prefix, or all U+10FFFF) the upper end is an empty BLOB:
 * SQLite sorts every TEXT value before every BLOB.
 */
export function prefixRange(prefix: string): [from: string, to: string | Uint8Array] {
  const codePoints = [...prefix].map((ch) => ch.codePointAt(0)!);
  while (codePoints.length > 0 && codePoints.at(-1) === 0x10ffff) codePoints.pop();
  if (codePoints.length === 0) return [prefix, new Uint8Array(0)];
  let last = codePoints.pop()! + 1;
  if (last === 0xd800) last = 0xe000;
  return [prefix, String.fromCodePoint(...codePoints, last)];
}
