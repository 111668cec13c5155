/**
 * Options of the embedded backend, and their parsing from the daemon's `--kvstore-opt key=value`
 * list (only `local.sync=normal|full`).
 */
import { ConfigError } from '../../util/errors.js';

/** Options of {@link LocalKvStore.open}. */
export interface LocalKvStoreOptions {
  /** The database file; its parent directory is created if missing. */
  path: string;
  /**
   * TTL of this instance's lease; keys written with `{ leased: true }` vanish this long after
   * the last renewal. Default 15 minutes.
   */
  leaseTtlMs?: number;
  /** How often expired leases are looked for. Default: the smaller of 1 s and the lease TTL. */
  sweepIntervalMs?: number;
  /** How many recent events are kept for watches that start in the past. Default 10 000. */
  historyLimit?: number;
  /** 'normal' (default): crash-safe, not power-loss-safe; 'full': fsync at every commit. */
  sync?: LocalSyncMode;
}

/** SQLite synchronous mode of the store file (see "Durability" in local-store.ts). */
export type LocalSyncMode = 'normal' | 'full';

/** Options of the local backend from `--kvstore-opt local.*` (only `local.sync=normal|full`). */
export function localOptionsFromKvstoreOpts(opts: Readonly<Record<string, string>>): Pick<LocalKvStoreOptions, 'sync'> {
  const out: Pick<LocalKvStoreOptions, 'sync'> = {};
  for (const [name, value] of Object.entries(opts)) {
    if (!name.startsWith('local.')) continue;
    if (name !== 'local.sync')
      throw new ConfigError(
        `--kvstore-opt ${name}: unknown local store option; the local store takes local.sync=normal|full`,
      );
    if (value !== 'normal' && value !== 'full')
      throw new ConfigError(
        `--kvstore-opt local.sync=${value}: use normal (crash-safe, the default) ` +
          'or full (fsync every commit: power-loss-safe, slower)',
      );
    out.sync = value;
  }
  return out;
}
