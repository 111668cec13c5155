/**
 * Bare Cilium rules: the JSON form Cilium's docs use for `cilium policy import` outside
 * Kubernetes (`examples/policies/l3/simple/l3.json`), a list of rules each with
 * `endpointSelector`, `ingress`/`egress` and `labels`, without a policy document around them.
 *
 * Outside Kubernetes Cilium names rules by their `labels`, and importing rules replaces the stored
 * rules that carry the same labels. Here every stored policy has a name (its store key), so the
 * rules of one import that share a label set become one policy: its name is derived from the
 * labels (`l3-rule-5f1c0a9e`: the values, then a hash of the whole set), and its document is an
 * ordinary CiliumNetworkPolicy with those rules as `specs`. Rules without labels become one policy
 * named by a hash of their content, so importing the same file twice changes nothing.
 */
import { parseRule, formatRuleLabel } from './parse-rule.js';
import { ruleCookie } from './policy-entries.js';
import { isObject, ProblemList } from './problem-list.js';
import type { RuleLabel } from './rule-types.js';

/** Fields that make an object without apiVersion, kind and metadata a bare rule. */
const RULE_FIELDS = ['endpointSelector', 'nodeSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'labels'];

/** Annotation of a policy made from bare rules: the labels its rules share (`source:key=value`, one per line). */
export const RULE_LABELS_ANNOTATION = 'cilium-docker/rule-labels';

/** True for an object that is a Cilium rule rather than a policy document. */
export function isBareRule(value: unknown): boolean {
  if (
    !isObject(value) ||
    value['apiVersion'] !== undefined ||
    value['kind'] !== undefined ||
    value['metadata'] !== undefined
  )
    return false;
  return RULE_FIELDS.some((f) => value[f] !== undefined);
}

/** The policy document standing for bare rules that share `labels`. */
export interface BareRuleGroup {
  readonly document: Record<string, unknown>;
  /** The shared labels (sorted); empty for the group of unlabeled rules. */
  readonly labels: readonly RuleLabel[];
}

function hex32(text: string): string {
  return ruleCookie(text).toString(16).padStart(8, '0');
}

/** A DNS-subdomain name for a label set: its values (or keys), then a hash of the whole set. */
function nameFor(labels: readonly RuleLabel[], rules: readonly unknown[]): string {
  if (labels.length === 0) return `rules-${hex32(JSON.stringify(rules))}`;
  const words = labels
    .map((l) => (l.value !== '' ? l.value : l.key))
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 48)
    .replace(/^-+|-+$/g, '');
  return `${words === '' ? 'rules' : words}-${hex32(labels.map(formatRuleLabel).join('\n'))}`;
}

/**
 * Validates bare rules (`position` is the rule's 1-based place in the input, named in messages)
 * and groups them by label set into policy documents. Problems are messages like the document
 * validator's: `rule 2: ingress[0].icmps[0].fields[0].type: ...`.
 */
export function groupBareRules(rules: ReadonlyArray<{ readonly value: unknown; readonly position: number }>): {
  groups: BareRuleGroup[];
  problems: string[];
} {
  const problems: string[] = [];
  const byLabels = new Map<string, { labels: readonly RuleLabel[]; values: unknown[] }>();
  for (const { value, position } of rules) {
    const list = new ProblemList(`rule ${position}`);
    const rule = parseRule(value, '', '', list);
    problems.push(...list.messages);
    if (!rule) continue;
    const key = rule.labels.map(formatRuleLabel).join('\n');
    let group = byLabels.get(key);
    if (!group) {
      group = { labels: rule.labels, values: [] };
      byLabels.set(key, group);
    }
    group.values.push(value);
  }
  const groups = [...byLabels.values()].map(({ labels, values }) => {
    const metadata: Record<string, unknown> = { name: nameFor(labels, values) };
    if (labels.length > 0)
      metadata['annotations'] = { [RULE_LABELS_ANNOTATION]: labels.map(formatRuleLabel).join('\n') };
    return {
      labels,
      document: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata,
        specs: JSON.parse(JSON.stringify(values)) as unknown[],
      },
    };
  });
  return { groups, problems };
}
