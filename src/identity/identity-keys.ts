/**
 * The identity keys of the store (`identities/v1/`), declared here and nowhere else: the
 * allocator writes them, the policy engine watches `identities/v1/id/`, and both build and parse
 * keys only through this file (docs/architecture.md, "Store layout").
 *
 * ```
 * identities/v1/id/<n>                        -> canonical label set  (create-only: reserves <n>)
 * identities/v1/labels/<label set>            -> <n>                  (create-only: one number per label set)
 * identities/v1/value/<label set>/<node>      -> <n>                  (leased: this node's reference)
 * identities/v1/encoding                      -> escaped              (marker, once)
 * ```
 *
 * `<label set>` is the escaped canonical form (labels.ts) in base64url.
 */

/** Top-level prefix of every identity key (one of the store layout's, daemon/store-layout.ts). */
export const IDENTITIES_PREFIX = 'identities/v1/';
/** `identities/v1/id/<n>` -> canonical label set: create-only, winning it reserves the number. */
export const IDENTITY_ID_PREFIX = `${IDENTITIES_PREFIX}id/`;
/** `identities/v1/labels/<label set>` -> number: create-only, makes a label set's number unique cluster-wide. */
export const IDENTITY_LABELS_PREFIX = `${IDENTITIES_PREFIX}labels/`;
/** `identities/v1/value/<label set>/<node>` -> number: a node's reference, leased. */
export const IDENTITY_VALUE_PREFIX = `${IDENTITIES_PREFIX}value/`;
/**
 * `identities/v1/encoding` -> `escaped`: written once the label sets in the store are in the
 * escaped canonical form (labels.ts). Before it, a stored label set containing a backslash was
 * written unescaped and means something else in the escaped form.
 */
export const IDENTITY_ENCODING_KEY = `${IDENTITIES_PREFIX}encoding`;

/**
 * A label set as one key segment: base64url of the canonical form. Label values may contain
 * '/', '..' or anything else; every backend (etcd, consul's path checks) accepts base64url.
 */
export function encodeLabelKey(canonical: string): string {
  return Buffer.from(canonical, 'utf8').toString('base64url');
}

/** The key `identities/v1/id/<id>`. */
export function identityIdKey(id: number | string): string {
  return `${IDENTITY_ID_PREFIX}${id}`;
}

/**
 * The identity number of a key under `identities/v1/id/`: NaN unless the rest is a number in
 * canonical decimal form (another node, or an operator, may have written anything there).
 */
export function identityOfIdKey(key: string): number {
  const text = key.slice(IDENTITY_ID_PREFIX.length);
  return /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : Number.NaN;
}
