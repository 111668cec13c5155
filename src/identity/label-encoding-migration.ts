/**
 * The one-time move of stored identities to the escaped canonical label form (labels.ts), and the
 * label sources an identity may hold: what the allocator writes and what the migration keeps.
 */
import type { KvStore } from '../kvstore/kvstore.js';
import type { Logger } from '../util/log.js';
import {
  encodeLabelKey,
  IDENTITY_ENCODING_KEY,
  IDENTITY_ID_PREFIX,
  IDENTITY_LABELS_PREFIX,
  IDENTITY_VALUE_PREFIX,
} from './identity-keys.js';
import { LabelSet, SOURCE_CONTAINER, SOURCE_DOCKER } from './labels.js';

/** Value of the `identities/v1/encoding` marker. */
const ENCODING_ESCAPED = 'escaped';

/**
 * Sources of the label sets allocated in the store: container labels and `docker:network`
 * (endpointLabels). Reserved, CIDR and other sources are never allocated; a stored set holding
 * one was forged through unescaped label text.
 */
export const ALLOCATED_LABEL_SOURCES: ReadonlySet<string> = new Set([SOURCE_CONTAINER, SOURCE_DOCKER]);

/**
 * Removes identities that the escaped label encoding cannot keep: those written before it that
 * contain a backslash (their meaning changed), any stored set not in canonical form, and any
 * holding a label source that is never allocated (forged through unescaped text, e.g.
 * `app=z;reserved:host`). Label sets without special characters read the same in both forms
 * and keep their numbers. Endpoints that held a removed number allocate again (their node's
 * EndpointManager.restore re-allocates every set whose form changed). Run at start before
 * any acquire or adopt; idempotent. Returns the numbers removed.
 *
 * Legacy or not is decided by the `identities/v1/encoding` marker as of the listing's revision:
 * nodes running this code allocate only after this ran (and wrote the marker), so a listing
 * older than the marker holds only unescaped sets.
 */
export async function migrateLabelEncoding(store: KvStore, nodeName: string, log: Logger): Promise<number[]> {
  const ids = await store.list(IDENTITY_ID_PREFIX);
  const marker = await store.get(IDENTITY_ENCODING_KEY);
  const legacyListing = marker === undefined || marker.modRevision > ids.revision;
  const removed: number[] = [];
  for (const p of ids.pairs) {
    const reason = unkeepableLabelSet(p.value, legacyListing);
    if (reason === undefined) continue;
    if (!(await store.atomicDelete(p.key, p.modRevision))) continue;
    const id = p.key.slice(IDENTITY_ID_PREFIX.length);
    const encoded = encodeLabelKey(p.value);
    const labelKey = await store.get(`${IDENTITY_LABELS_PREFIX}${encoded}`);
    if (labelKey?.value === id) await store.atomicDelete(labelKey.key, labelKey.modRevision);
    await store.delete(`${IDENTITY_VALUE_PREFIX}${encoded}/${nodeName}`);
    removed.push(Number(id));
    log.warn(
      { identity: Number(id), labels: p.value, reason },
      'removed an identity stored in the unescaped label form',
    );
  }
  if (marker === undefined) await store.create(IDENTITY_ENCODING_KEY, ENCODING_ESCAPED);
  return removed;
}

/** Why a stored label set (`identities/v1/id/<n>` value) cannot stay, or undefined. */
function unkeepableLabelSet(stored: string, legacy: boolean): string | undefined {
  if (legacy && stored.includes('\\')) return 'written unescaped with a backslash: it reads differently escaped';
  if (!LabelSet.isCanonical(stored)) return 'not in canonical form';
  const forged = LabelSet.fromCanonical(stored).labels.find((l) => !ALLOCATED_LABEL_SOURCES.has(l.source));
  if (forged) return `holds a ${forged.source}: label, which is never allocated (forged through unescaped label text)`;
  return undefined;
}
