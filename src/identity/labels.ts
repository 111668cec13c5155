/**
 * Labels and label sets, in Cilium's model: a label is `source:key=value` (source `container`,
 * `docker`, `reserved`, ...). A label set's canonical form is the labels sorted by
 * `source:key` and joined as `source:key=value;` — the string that identifies an identity in the
 * store (`identities/v1/id/<n>` -> canonical form).
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

/** An immutable, sorted, duplicate-free set of labels (one value per `source:key`). */
export class LabelSet {
  readonly labels: readonly Label[];
  private canonical: string | undefined;

  constructor(labels: Iterable<Label>) {
    const bySourceKey = new Map<string, Label>();
    for (const l of labels) bySourceKey.set(`${l.source}:${l.key}`, { source: l.source, key: l.key, value: l.value });
    this.labels = [...bySourceKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, l]) => l);
  }

  /** Builds a set from `source:key=value` strings. */
  static parse(texts: Iterable<string>, defaultSource = SOURCE_CONTAINER): LabelSet {
    return new LabelSet([...texts].map((t) => parseLabel(t, defaultSource)));
  }

  /** Parses the canonical form `a:b=c;d:e=f;` back into a set. */
  static fromCanonical(text: string): LabelSet {
    return new LabelSet(text.split(';').filter((s) => s !== '').map((s) => parseLabel(s, SOURCE_ANY)));
  }

  /** Canonical form: sorted `source:key=value;` — the identity's key in the store. */
  toCanonical(): string {
    this.canonical ??= this.labels.map((l) => `${l.source}:${l.key}=${l.value};`).join('');
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
