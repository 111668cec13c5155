/**
 * Size limits of policy input, checked at import before any policy work is done.
 *
 * Why limits at all: policy work runs in the daemon that also answers Docker's plugin calls, and
 * the repository is one store value (etcd refuses requests over 1.5 MiB, Consul values over
 * 512 KiB by default). Without bounds, one import could occupy the daemon for minutes or produce a
 * repository the store refuses at the next write. Each limit is far above what a hand-written
 * policy needs; a larger policy is refused at import with a validation error naming the limit
 * (`ERR_POLICY_INVALID`, HTTP 400), never half-applied and never discovered at the next restart.
 *
 * Documents read back from the store are not held to these limits (a repository written by an
 * earlier version stays loadable and deletable); the work they cause is chunked instead.
 */
import { isObject, joinPath, type JsonObject, type ProblemList } from './problem-list.js';
import type { PolicyRule } from './rule-types.js';

/** The limits, documented in README.md ("Limits") and docs/policy-limits.md. */
export const POLICY_LIMITS = {
  /** Bytes of policy text (YAML or JSON) in one import. */
  importBytes: 512 * 1024,
  /** Policies in the repository, and documents in one import. */
  policies: 1000,
  /**
   * Bytes of the stored repository (JSON of every policy document): Consul's default value limit
   * (512 KiB) minus room for the record around the documents. etcd's 1.5 MiB is larger.
   */
  repositoryBytes: 480 * 1024,
  /** Rules per policy (`spec` plus the items of `specs`). */
  rulesPerPolicy: 256,
  /** Items of `ingress`, `ingressDeny`, `egress` and `egressDeny`, over all rules of a policy. */
  ruleItemsPerPolicy: 4096,
  /** CIDR strings per policy: `toCIDR`/`fromCIDR` entries, `*CIDRSet` entries and their `except`s. */
  cidrsPerPolicy: 16_384,
  /** Prefixes per policy after subtracting the `except`s (each needs a CIDR identity and an ipcache entry). */
  cidrPrefixesPerPolicy: 32_768,
  /** Values per selector: `matchLabels` entries plus the `values` of every `matchExpressions` item. */
  selectorValues: 1024,
  /** Bytes of a label key in a selector, without its `source:` prefix (as a container label key). */
  labelKeyBytes: 253,
  /** Bytes of a label value in a selector (as a container label value). */
  labelValueBytes: 4096,
} as const;

const SECTIONS = ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const;
const PEER_SELECTOR_FIELDS = ['fromEndpoints', 'toEndpoints'] as const;
const CIDR_FIELDS = ['fromCIDR', 'toCIDR'] as const;
const CIDR_SET_FIELDS = ['fromCIDRSet', 'toCIDRSet'] as const;

function lengthOf(value: unknown): number {
  return Array.isArray(value) ? value.length : 0;
}

/**
 * Refuses import text over {@link POLICY_LIMITS.importBytes} or with more YAML documents than
 * {@link POLICY_LIMITS.policies}, before the text is parsed (4 MB of `---` lines took 7.5 s to parse).
 * Returns the problem, or undefined.
 */
export function importTextProblem(text: string): string | undefined {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_LIMITS.importBytes) {
    return (
      `policy input is ${bytes} bytes; the limit is ${POLICY_LIMITS.importBytes} bytes per import: ` +
      'split it into several imports or smaller policies'
    );
  }
  let separators = 0;
  for (const _ of text.matchAll(/^(---|\.\.\.)/gm)) {
    if (++separators > POLICY_LIMITS.policies) {
      return (
        `policy input has more than ${POLICY_LIMITS.policies} YAML documents; ` +
        `the limit is ${POLICY_LIMITS.policies} policies`
      );
    }
  }
  return undefined;
}

function selectorProblems(value: unknown, path: string, problems: ProblemList): void {
  if (!isObject(value)) return;
  let values = 0;
  const checkKey = (key: unknown, keyPath: string) => {
    if (typeof key !== 'string') return;
    const colon = key.indexOf(':');
    const bytes = Buffer.byteLength(colon >= 0 ? key.slice(colon + 1) : key, 'utf8');
    if (bytes > POLICY_LIMITS.labelKeyBytes)
      problems.add(
        keyPath,
        `label key is ${bytes} bytes; the limit is ${POLICY_LIMITS.labelKeyBytes} bytes (without the source prefix)`,
      );
  };
  const checkValue = (v: unknown, valuePath: string) => {
    if (typeof v !== 'string') return;
    const bytes = Buffer.byteLength(v, 'utf8');
    if (bytes > POLICY_LIMITS.labelValueBytes)
      problems.add(valuePath, `label value is ${bytes} bytes; the limit is ${POLICY_LIMITS.labelValueBytes} bytes`);
  };
  const labels = value['matchLabels'];
  if (isObject(labels)) {
    const entries = Object.entries(labels);
    values += entries.length;
    if (values <= POLICY_LIMITS.selectorValues) {
      for (const [k, v] of entries) {
        checkKey(k, joinPath(joinPath(path, 'matchLabels'), k.length > 64 ? `${k.slice(0, 64)}...` : k));
        checkValue(v, joinPath(path, 'matchLabels'));
      }
    }
  }
  const expressions = value['matchExpressions'];
  if (Array.isArray(expressions)) {
    for (const [i, expr] of expressions.entries()) {
      values += Math.max(1, isObject(expr) ? lengthOf(expr['values']) : 1);
      if (values > POLICY_LIMITS.selectorValues) break;
      if (!isObject(expr)) continue;
      const exprPath = joinPath(joinPath(path, 'matchExpressions'), i);
      checkKey(expr['key'], joinPath(exprPath, 'key'));
      if (Array.isArray(expr['values']))
        for (const [j, v] of expr['values'].entries()) checkValue(v, joinPath(joinPath(exprPath, 'values'), j));
    }
  }
  if (values > POLICY_LIMITS.selectorValues) {
    problems.add(
      path,
      `selector has more than ${POLICY_LIMITS.selectorValues} values (matchLabels entries plus matchExpressions ` +
        `values); the limit is ${POLICY_LIMITS.selectorValues}`,
    );
  }
}

/**
 * Checks a decoded policy document against the per-policy limits, before it is validated (so a
 * hostile document costs one walk, not a full validation). Adds one problem per limit exceeded;
 * returns true if there was none.
 */
export function checkDocumentLimits(doc: JsonObject, problems: ProblemList): boolean {
  const before = problems.messages.length;
  const rules: Array<[unknown, string]> = [];
  if (doc['spec'] !== undefined && doc['spec'] !== null) rules.push([doc['spec'], 'spec']);
  const specs = doc['specs'];
  if (lengthOf(specs) + rules.length > POLICY_LIMITS.rulesPerPolicy) {
    problems.add(
      'specs',
      `${lengthOf(specs) + rules.length} rules; ` +
        `the limit is ${POLICY_LIMITS.rulesPerPolicy} rules per policy: split the policy`,
    );
    return false;
  }
  if (Array.isArray(specs)) for (const [i, s] of specs.entries()) rules.push([s, joinPath('specs', i)]);
  let items = 0;
  let cidrs = 0;
  for (const [rule, rulePath] of rules) {
    if (!isObject(rule)) continue;
    selectorProblems(rule['endpointSelector'], joinPath(rulePath, 'endpointSelector'), problems);
    for (const section of SECTIONS) {
      const list = rule[section];
      items += lengthOf(list);
      if (items > POLICY_LIMITS.ruleItemsPerPolicy) {
        problems.add(
          joinPath(rulePath, section),
          `more than ${POLICY_LIMITS.ruleItemsPerPolicy} ingress/egress items in this policy; ` +
            `the limit is ${POLICY_LIMITS.ruleItemsPerPolicy} per policy: split the policy`,
        );
        return false;
      }
      if (!Array.isArray(list)) continue;
      for (const [i, item] of list.entries()) {
        if (!isObject(item)) continue;
        const itemPath = joinPath(joinPath(rulePath, section), i);
        for (const field of PEER_SELECTOR_FIELDS) {
          const selectors = item[field];
          if (Array.isArray(selectors))
            for (const [j, sel] of selectors.entries())
              selectorProblems(sel, joinPath(joinPath(itemPath, field), j), problems);
        }
        for (const field of CIDR_FIELDS) cidrs += lengthOf(item[field]);
        for (const field of CIDR_SET_FIELDS) {
          const sets = item[field];
          cidrs += lengthOf(sets);
          if (Array.isArray(sets)) for (const set of sets) cidrs += isObject(set) ? lengthOf(set['except']) : 0;
        }
        if (cidrs > POLICY_LIMITS.cidrsPerPolicy) {
          problems.add(
            itemPath,
            `more than ${POLICY_LIMITS.cidrsPerPolicy} CIDRs (CIDR entries, CIDR sets and excepts) in this policy; ` +
              `the limit is ${POLICY_LIMITS.cidrsPerPolicy} per policy`,
          );
          return false;
        }
      }
    }
  }
  return problems.messages.length === before;
}

/** Checks a validated policy's CIDR prefixes (after `except`) against {@link POLICY_LIMITS.cidrPrefixesPerPolicy}. */
export function checkCidrPrefixLimit(rules: readonly PolicyRule[], problems: ProblemList): boolean {
  let prefixes = 0;
  for (const rule of rules)
    for (const item of rule.peerRules)
      for (const peer of item.peers ?? []) if (peer.kind === 'cidr') prefixes += peer.prefixes.length;
  if (prefixes <= POLICY_LIMITS.cidrPrefixesPerPolicy) return true;
  problems.add(
    '',
    `its CIDR rules make ${prefixes} prefixes once the excepts are subtracted; ` +
      `the limit is ${POLICY_LIMITS.cidrPrefixesPerPolicy} per policy`,
  );
  return false;
}
