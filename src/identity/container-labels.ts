/**
 * Docker container labels (run-time `-l` and image `LABEL`s, merged by dockerd) -> identity labels.
 *
 * Docker label keys and values are free text, chosen by whoever starts the container or builds
 * its image. Each becomes exactly one label with source `container` and the whole Docker key as
 * its key: no text can choose another source (`reserved:`, `cidr:`, ...) or add a label.
 *
 * Keys follow Cilium's rule for label keys (Kubernetes' qualified names, pkg/labels
 * `IsValidCiliumLabelKey`): letters, digits, `-`, `_`, `.` and `/`, beginning and ending with a
 * letter or digit, so never `:` (the source separator), `=`, `;`, spaces or control characters.
 * Kubernetes also caps the part after the last `/` at 63 bytes; Docker keys are reverse-DNS
 * names without a `/` (`com.docker.compose.project.working_dir`), which Kubernetes would put in
 * the prefix, so the whole key is bounded by the prefix's DNS bound instead, 253 bytes. Values
 * are free text (URLs, paths, descriptions) bounded in size; the canonical form escapes them.
 *
 * A label that breaks these rules is left out of the identity and reported (the caller logs
 * it): the container runs already when its labels are learnt (the Docker watcher is
 * asynchronous), and refusing its identity would leave it without connectivity for a label no
 * policy can select anyway.
 */
import { SOURCE_CONTAINER, type Label } from './labels.js';

/** Longest container label key, in UTF-8 bytes (a DNS name's bound, as Kubernetes' label key prefix). */
export const MAX_CONTAINER_LABEL_KEY_BYTES = 253;
/** Longest container label value, in UTF-8 bytes. */
export const MAX_CONTAINER_LABEL_VALUE_BYTES = 4096;
/**
 * Most UTF-8 bytes of one container's labels (keys plus values): the label set is a store key and
 * value (`identities/v1/...`), well under etcd's 1.5 MiB request and Consul's 512 KiB value limits.
 */
export const MAX_CONTAINER_LABELS_BYTES = 64 * 1024;

/** A UTF-16 surrogate without its other half (String.prototype.isWellFormed, not in our TS lib yet). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Cilium's (Kubernetes') label key characters, alphanumeric at both ends. */
const LABEL_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

/** A Docker label left out of the identity, and why. */
export interface IgnoredContainerLabel {
  /** The key, cut to 64 characters for logs. */
  key: string;
  reason: string;
}

/** Identity labels of a container, and the labels left out. */
export interface ContainerLabels {
  labels: Label[];
  ignored: IgnoredContainerLabel[];
}

/** Why a Docker label key cannot be an identity label key, or undefined if it can. */
export function invalidContainerLabelKey(key: string): string | undefined {
  if (Buffer.byteLength(key, 'utf8') > MAX_CONTAINER_LABEL_KEY_BYTES)
    return `key longer than ${MAX_CONTAINER_LABEL_KEY_BYTES} bytes`;
  if (!LABEL_KEY.test(key))
    return 'key must be letters, digits, "-", "_", "." or "/", beginning and ending with a letter or digit';
  return undefined;
}

/** Why a Docker label value cannot be an identity label value, or undefined if it can. */
export function invalidContainerLabelValue(value: string): string | undefined {
  if (Buffer.byteLength(value, 'utf8') > MAX_CONTAINER_LABEL_VALUE_BYTES)
    return `value longer than ${MAX_CONTAINER_LABEL_VALUE_BYTES} bytes`;
  // Lone surrogates would all become U+FFFD in UTF-8 store keys (two values, one key); a NUL
  // ends strings in some stores.
  if (LONE_SURROGATE.test(value) || value.includes('\u0000'))
    return 'value is not well-formed text (NUL or a lone UTF-16 surrogate)';
  return undefined;
}

/**
 * The identity labels of a container's Docker labels: `container:<key>=<value>` for each valid
 * one, in key order, until {@link MAX_CONTAINER_LABELS_BYTES}; the rest are reported as ignored.
 */
export function containerLabels(dockerLabels: Readonly<Record<string, string>>): ContainerLabels {
  const labels: Label[] = [];
  const ignored: IgnoredContainerLabel[] = [];
  let bytes = 0;
  const keys = Object.keys(dockerLabels).sort();
  for (const key of keys) {
    const value = dockerLabels[key];
    const reason =
      typeof value !== 'string'
        ? 'value is not a string'
        : (invalidContainerLabelKey(key) ?? invalidContainerLabelValue(value));
    if (reason !== undefined) {
      ignored.push({ key: key.slice(0, 64), reason });
      continue;
    }
    const size = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value!, 'utf8');
    if (bytes + size > MAX_CONTAINER_LABELS_BYTES) {
      ignored.push({ key, reason: `the container's labels exceed ${MAX_CONTAINER_LABELS_BYTES} bytes` });
      continue;
    }
    bytes += size;
    labels.push({ source: SOURCE_CONTAINER, key, value: value! });
  }
  return { labels, ignored };
}
