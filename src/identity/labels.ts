/**
 * Labels and label sets, in Cilium's model: a label is `source:key=value` (source `container`,
 * `docker`, `reserved`, ...), and source, key and value are separate fields. A label set's
 * canonical form is the labels sorted by `source:key` and joined as `source:key=value;` — the
 * string that identifies an identity in the store (`identities/v1/id/<n>` -> canonical form).
 *
 * The canonical form is injective: a backslash escapes itself, `;`, `=` and `:` in sources and
 * keys, and itself and `;` in values (a value runs to the next unescaped `;`, so `=` and `:` inside it
 * are unambiguous and stay as they are). Label text can therefore never end a label early and
 * smuggle in another one (`app=z;reserved:host`). Labels without those characters are written
 * exactly as before the escaping existed, so their identities kept their store keys
 * ({@link legacyCanonical} is the old, ambiguous form, for the migration).
 */

/** One label. `source` is e.g. `container`, `docker`, `reserved`, `cidr`. */
export interface Label {
  source: string;
  key: string;
  value: string;
}

/** Source used for Docker container (and image) labels. */
export const SOURCE_CONTAINER = 'container';
/** Source used for labels the daemon derives from Docker itself (e.g. `docker:network=<name>`). */
export const SOURCE_DOCKER = 'docker';
/** Source of reserved identities' labels (`reserved:host`, `reserved:world`, ...). */
export const SOURCE_RESERVED = 'reserved';
/** Source that matches any source in selectors (`any:app=web`). */
export const SOURCE_ANY = 'any';

/** Parses `source:key=value`, `key=value` (source defaults to `defaultSource`) or `source:key`. */
export function parseLabel(text: string, defaultSource = SOURCE_ANY): Label {
  const eq = text.indexOf('=');
  const head = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : '';
  const colon = head.indexOf(':');
  if (colon > 0) return { source: head.slice(0, colon), key: head.slice(colon + 1), value };
  return { source: defaultSource, key: head, value };
}

/** `source:key=value` (or `source:key` when value is empty, as Cilium prints reserved labels). */
export function formatLabel(label: Label): string {
  return label.value === '' ? `${label.source}:${label.key}` : `${label.source}:${label.key}=${label.value}`;
}

/** Source and key as one sort/dedup key: escaped, so `a:b` + `c` and `a` + `b:c` stay apart. */
function sourceKey(label: Label): string {
  return `${escapeName(label.source)}:${escapeName(label.key)}`;
}

/** Escapes the canonical form's separators and the escape character in a source or key. */
function escapeName(text: string): string {
  return text.replace(/[\\;=:]/g, (c) => `\\${c}`);
}

/** Escapes the label separator and the escape character in a value. */
function escapeValue(text: string): string {
  return text.replace(/[\\;]/g, (c) => `\\${c}`);
}

/** An immutable, sorted, duplicate-free set of labels (one value per `source:key`). */
export class LabelSet {
  readonly labels: readonly Label[];
  private canonical: string | undefined;

  constructor(labels: Iterable<Label>) {
    const bySourceKey = new Map<string, Label>();
    for (const l of labels) bySourceKey.set(sourceKey(l), { source: l.source, key: l.key, value: l.value });
    this.labels = [...bySourceKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, l]) => l);
  }

  /** Builds a set from `source:key=value` strings. */
  static parse(texts: Iterable<string>, defaultSource = SOURCE_CONTAINER): LabelSet {
    return new LabelSet([...texts].map((t) => parseLabel(t, defaultSource)));
  }

  /**
   * Parses the canonical form `a:b=c;d:e=f;` back into a set: the inverse of {@link toCanonical}.
   * Never throws: text that is not canonical (store values another version wrote) is read the
   * way the unescaped form was, a backslash taking the next character literally; callers that
   * must tell use {@link isCanonical}.
   */
  static fromCanonical(text: string): LabelSet {
    const labels: Label[] = [];
    let fields = ['', '', ''];
    let field = 0;
    let sawSource = false;
    let started = false;
    const finish = () => {
      if (started)
        labels.push(
          sawSource
            ? { source: fields[0]!, key: fields[1]!, value: fields[2]! }
            : { source: SOURCE_ANY, key: fields[0]!, value: fields[2]! },
        );
      fields = ['', '', ''];
      field = 0;
      sawSource = false;
      started = false;
    };
    for (let i = 0; i < text.length; i++) {
      let c = text[i]!;
      if (c === ';') {
        finish();
        continue;
      }
      started = true;
      if (c === '\\' && i + 1 < text.length) c = text[++i]!;
      else if (c === ':' && field === 0) {
        field = 1;
        sawSource = true;
        continue;
      } else if (c === '=' && field < 2) {
        field = 2;
        continue;
      }
      fields[field] += c;
    }
    finish();
    return new LabelSet(labels);
  }

  /** True if `text` is exactly the canonical form of some label set (what this version writes). */
  static isCanonical(text: string): boolean {
    return LabelSet.fromCanonical(text).toCanonical() === text;
  }

  /** Canonical form: sorted, escaped `source:key=value;` — the identity's key in the store. */
  toCanonical(): string {
    this.canonical ??= this.labels
      .map((l) => `${escapeName(l.source)}:${escapeName(l.key)}=${escapeValue(l.value)};`)
      .join('');
    return this.canonical;
  }

  /** `source:key=value` strings, sorted. */
  toStrings(): string[] {
    return this.labels.map(formatLabel);
  }

  /** The value of `key` under `source` (or any source when source is `any`), if present. */
  get(source: string, key: string): string | undefined {
    const hit = this.labels.find((l) => l.key === key && (source === SOURCE_ANY || l.source === source));
    return hit?.value;
  }

  /** True if some label has this key (and source, unless `any`). */
  has(source: string, key: string): boolean {
    return this.labels.some((l) => l.key === key && (source === SOURCE_ANY || l.source === source));
  }

  equals(other: LabelSet): boolean {
    return this.toCanonical() === other.toCanonical();
  }
}

/**
 * The unescaped form identities were stored under before the canonical form escaped anything:
 * ambiguous (`container:app=x;container:role=admin=;` was both {app=`x;container:role=admin`} and
 * {app=x, role=admin}). Equal to {@link LabelSet.toCanonical} exactly when no label needed escaping;
 * where it differs, an identity number held for `labels` may have been allocated for another set.
 */
export function legacyCanonical(labels: LabelSet): string {
  return [...labels.labels]
    .sort((a, b) => {
      const x = `${a.source}:${a.key}`;
      const y = `${b.source}:${b.key}`;
      return x < y ? -1 : x > y ? 1 : 0;
    })
    .map((l) => `${l.source}:${l.key}=${l.value};`)
    .join('');
}
