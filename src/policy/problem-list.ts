/**
 * Collecting validation problems with their document paths, so that one import reports every
 * problem of every document at once, each as `policy "web": spec.ingress[0].toPorts: ...`.
 */

/** A decoded JSON/YAML mapping. */
export type JsonObject = Record<string, unknown>;

/** True for a mapping (not null, not a list). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Names a value and its type for messages: `the string "x"`, `number 1`, `a list`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Extends a document path: `spec` + `ingress` = `spec.ingress`; + 0 = `spec.ingress[0]`. */
export function joinPath(path: string, field: string | number): string {
  if (typeof field === 'number') return `${path}[${field}]`;
  return path === '' ? field : `${path}.${field}`;
}

/** Collects problems of one document; every message carries the document's name and a path. */
export class ProblemList {
  /** One line per problem, in the order found. */
  readonly messages: string[] = [];
  /** `policy "web"` once the name is known, `document 2` before. */
  subject: string;

  constructor(subject: string) {
    this.subject = subject;
  }

  /** Records a problem at a document path (`''` for the document itself). */
  add(path: string, message: string): void {
    this.messages.push(path === '' ? `${this.subject}: ${message}` : `${this.subject}: ${path}: ${message}`);
  }

  /** Rejects fields not in `allowed`; `unsupported` gives specific messages for known Cilium fields. */
  checkFields(
    obj: JsonObject,
    path: string,
    allowed: readonly string[],
    unsupported: Record<string, string> = {},
  ): void {
    for (const field of Object.keys(obj)) {
      if (allowed.includes(field)) continue;
      const fieldPath = joinPath(path, field);
      const known = Object.hasOwn(unsupported, field) ? unsupported[field] : undefined;
      if (known !== undefined) {
        this.add(fieldPath, known);
        continue;
      }
      const near = allowed.find((a) => a.toLowerCase() === field.toLowerCase());
      const hint = near ? `did you mean "${near}"?` : `expected one of: ${allowed.join(', ')}`;
      this.add(fieldPath, `unknown field "${field}"; ${hint}`);
    }
  }

  /** The value as a mapping, or undefined after recording that it is not one. */
  object(value: unknown, path: string): JsonObject | undefined {
    if (isObject(value)) return value;
    this.add(path, `must be an object, not ${describe(value)}`);
    return undefined;
  }

  /**
   * The object items of a list with their paths, in order; every other item is reported at its
   * path as it is reached (callers check `items.every(isObject)` for the overall verdict).
   */
  *objectItems(items: readonly unknown[], path: string): Generator<[JsonObject, string]> {
    for (const [i, item] of items.entries()) {
      const itemPath = joinPath(path, i);
      const obj = this.object(item, itemPath);
      if (obj) yield [obj, itemPath];
    }
  }

  /** A list, or undefined when absent/null (absent and null mean "no items", as in Cilium). */
  list(value: unknown, path: string): unknown[] | undefined {
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value)) return value;
    this.add(path, `must be a list, not ${describe(value)}`);
    return undefined;
  }

  /** A mapping of strings (metadata labels, annotations); absent means empty. */
  stringMap(value: unknown, path: string): Record<string, string> {
    const result: Record<string, string> = {};
    if (value === undefined || value === null) return result;
    const obj = this.object(value, path);
    if (!obj) return result;
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'string') result[k] = v;
      else this.add(joinPath(path, k), `must be a string, not ${describe(v)}; quote it`);
    }
    return result;
  }
}
