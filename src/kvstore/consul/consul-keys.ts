/**
 * Which keys Consul can hold, and how they go into `/v1/kv/` URLs.
 *
 * Consul refuses or rewrites some keys, so the backend rejects them up front with a clear
 * BadRequestError instead of letting them fail or, worse, silently address another key:
 * - the HTTP router cleans paths, redirecting `a//b`, `a/./b` and `a/../b` to a different key;
 * - the KV endpoint refuses a leading `/`, path traversal (`../`, `..\`, a leading or trailing
 *   `..`, and their percent-encoded forms), leading or trailing spaces (CVE-2025-11392), and
 *   unprintable characters (since 1.0.3).
 * A trailing `/` is allowed (Consul's "folder" keys), and so is any other character.
 */
import { BadRequestError } from '../../util/errors.js';

/** Why Consul would refuse or rewrite `key`, or undefined if it can be stored as is. */
function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (key === '') return isPrefix ? undefined : 'a key cannot be empty';
  if (key.startsWith('/')) return "a key cannot begin with '/'";
  const segments = key.split('/');
  // The last segment may be empty (a trailing slash); any other empty segment is `//`.
  if (segments.slice(0, -1).some((segment) => segment === ''))
    return "an empty path segment ('//') is collapsed by consul";
  if (segments.some((segment) => segment === '.' || segment === '..'))
    return "'.' and '..' segments are rewritten by consul";
  if (/(\.\.[\\/])|(\.\.\\)|(^\.\.)|(\.\.$)/.test(key))
    return "consul refuses path traversal sequences ('..' next to a slash, or at either end)";
  if (/(%2e%2e(%2f|%5c|\/))|(\.\.%2f)|(\.\.%5c)/i.test(key))
    return 'consul refuses percent-encoded path traversal sequences';
  if (key !== key.trim()) return 'consul refuses leading or trailing spaces';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: consul's own check, on control characters.
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'consul refuses unprintable characters';
  return undefined;
}

/** Throws BadRequestError if Consul cannot store `key` unchanged. */
export function assertConsulKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem !== undefined)
    throw new BadRequestError(`consul kvstore: key ${JSON.stringify(key)} cannot be used: ${problem}`);
}

/** Throws BadRequestError if `prefix` cannot be listed, watched or deleted in Consul (the empty prefix can). */
export function assertConsulPrefix(prefix: string): void {
  const problem = keyProblem(prefix, true);
  if (problem !== undefined)
    throw new BadRequestError(`consul kvstore: prefix ${JSON.stringify(prefix)} cannot be used: ${problem}`);
}

/** The `/v1/kv/...` path of a key or prefix, each segment percent-encoded, slashes kept. */
export function kvPath(key: string): string {
  return `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
}
