/**
 * Endpoint selectors (a Kubernetes LabelSelector as Cilium reads it) and label matching.
 *
 * Cilium's rules (`pkg/policy/api/selector.go`, `pkg/labels/labels.go`):
 * - A selector key may carry a source: `container:app`, `k8s:app`, `reserved:host`. Such a key
 *   matches only labels of that source. `k8s` is a source like any other here.
 * - A key without a source (`app`) is read as `any:app` and matches the key under every source;
 *   `any:` may also be written explicitly.
 * - A leading `$` is short for `reserved:` (`$host`).
 * - `matchLabels {k: v}` is the requirement `k In (v)`; all requirements must hold (AND).
 * - `In`: some label with the key has one of the values. `NotIn`: no such label (so an absent key
 *   matches, as in Kubernetes). `Exists`: some label has the key. `DoesNotExist`: none has.
 * - `{}` (no requirements) selects every endpoint.
 */
import { SOURCE_ANY, SOURCE_RESERVED, type LabelSet } from '../identity/labels.js';

/** The four LabelSelector operators Cilium supports. */
export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

/** The operators, in the order error messages list them. */
export const SELECTOR_OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** One requirement on the labels of an endpoint. `source` is `any` for keys written without one. */
export interface LabelRequirement {
  readonly source: string;
  readonly key: string;
  readonly operator: SelectorOperator;
  /** Sorted, distinct; empty for Exists/DoesNotExist. */
  readonly values: readonly string[];
}

/** A parsed selector: requirements ANDed together; none means "every endpoint". */
export interface EndpointSelector {
  readonly requirements: readonly LabelRequirement[];
  /** Canonical text, equal for equivalent selectors; the selector cache's key. */
  readonly key: string;
}

/** Splits a selector key into source and key (`container:app`, `app` -> `any`, `$host` -> `reserved`). */
export function parseSelectorKey(text: string): { source: string; key: string } {
  if (text.startsWith('$')) return { source: SOURCE_RESERVED, key: text.slice(1) };
  const colon = text.indexOf(':');
  if (colon > 0) return { source: text.slice(0, colon), key: text.slice(colon + 1) };
  return { source: SOURCE_ANY, key: text };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function formatRequirement(r: LabelRequirement): string {
  const name = `${r.source}:${r.key}`;
  switch (r.operator) {
    case 'In':
      return r.values.length === 1 ? `${name}=${r.values[0]}` : `${name} in (${r.values.join(',')})`;
    case 'NotIn':
      return `${name} notin (${r.values.join(',')})`;
    case 'Exists':
      return name;
    case 'DoesNotExist':
      return `!${name}`;
  }
}

/** Builds a selector from requirements, normalising order and values so equal selectors share a key. */
export function makeEndpointSelector(requirements: readonly LabelRequirement[]): EndpointSelector {
  const normalised = requirements
    .map((r) => ({ ...r, values: [...new Set(r.values)].sort(compareText) }))
    .map((r) => ({ r, text: formatRequirement(r) }))
    .sort((a, b) => compareText(a.text, b.text));
  const unique = normalised.filter((item, i) => i === 0 || item.text !== normalised[i - 1]!.text);
  return { requirements: unique.map((u) => u.r), key: unique.map((u) => u.text).join(', ') };
}

/** The selector that selects every endpoint (`{}`). */
export const SELECT_ALL: EndpointSelector = makeEndpointSelector([]);

/** True if the selector has no requirements and so selects everything. */
export function isSelectAll(selector: EndpointSelector): boolean {
  return selector.requirements.length === 0;
}

function keyMatches(r: LabelRequirement, source: string, key: string): boolean {
  return key === r.key && (r.source === SOURCE_ANY || r.source === source);
}

/** True if the labels satisfy one requirement (semantics in the module comment). */
export function requirementMatches(r: LabelRequirement, labels: LabelSet): boolean {
  let present = false;
  let valueIn = false;
  for (const l of labels.labels) {
    if (!keyMatches(r, l.source, l.key)) continue;
    present = true;
    if (r.values.includes(l.value)) valueIn = true;
  }
  switch (r.operator) {
    case 'In':
      return valueIn;
    case 'NotIn':
      return !valueIn;
    case 'Exists':
      return present;
    case 'DoesNotExist':
      return !present;
  }
}

/** True if the labels satisfy every requirement of the selector. */
export function selectorMatches(selector: EndpointSelector, labels: LabelSet): boolean {
  return selector.requirements.every((r) => requirementMatches(r, labels));
}

/** Human-readable selector for `cilium policy trace` and errors: `{}` or `container:app=web, any:tier`. */
export function formatSelector(selector: EndpointSelector): string {
  return selector.key === '' ? '{}' : selector.key;
}
