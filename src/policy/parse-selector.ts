/**
 * Validation of Cilium endpoint selectors (a Kubernetes LabelSelector with source-prefixed keys,
 * see `selector.ts` for their meaning).
 */
import { describe, joinPath, type ProblemList } from './problem-list.js';
import { SOURCE_ANY } from '../identity/labels.js';
import {
  makeEndpointSelector,
  parseSelectorKey,
  SELECTOR_OPERATORS,
  type EndpointSelector,
  type LabelRequirement,
  type SelectorOperator,
} from './selector.js';

/** Key prefixes of labels that only Kubernetes sets (on pods, namespaces or policies). */
const KUBERNETES_KEY_PREFIXES = ['io.kubernetes.', 'io.cilium.k8s.'];

/**
 * Why a selector key can never match a container here, or undefined. Kubernetes-only keys are
 * refused rather than accepted: in an endpointSelector they silently select nothing, and on the
 * peer side (e.g. Cilium's kube-dns policy, `toEndpoints` with `k8s:io.kubernetes.pod.namespace`)
 * they silently cut the selected containers off.
 */
export function kubernetesOnlyKeyProblem(text: string, parsed: { source: string; key: string }): string | undefined {
  const k8sKey = KUBERNETES_KEY_PREFIXES.some((p) => parsed.key.startsWith(p));
  if (parsed.source !== 'k8s' && !(k8sKey && parsed.source === SOURCE_ANY)) return undefined;
  const what =
    parsed.source === 'k8s'
      ? '"k8s:" labels come from Kubernetes pods'
      : `"${KUBERNETES_KEY_PREFIXES.map((p) => `${p}*`).join('" and "')}" labels are set by Kubernetes`;
  const hint = k8sKey
    ? 'remove it (there are no namespaces here: every policy applies to all containers)'
    : `use the container label instead ("${parsed.key}" or "container:${parsed.key}")`;
  return (
    `label key "${text}" can never match here: ${what}, ` +
    `and Docker containers have none (their labels are container:..., see \`cilium endpoint list\`); ${hint}`
  );
}

/** Validates a LabelSelector (`matchLabels`, `matchExpressions`) at `path`; undefined if invalid. */
export function parseSelector(value: unknown, path: string, problems: ProblemList): EndpointSelector | undefined {
  const obj = problems.object(value, path);
  if (!obj) return undefined;
  problems.checkFields(obj, path, ['matchLabels', 'matchExpressions']);
  const requirements: LabelRequirement[] = [];
  let ok = true;
  const readKey = (text: unknown, keyPath: string): { source: string; key: string } | undefined => {
    if (typeof text !== 'string' || text === '') {
      problems.add(keyPath, `a label key must be a non-empty string, not ${describe(text)}`);
      return undefined;
    }
    const parsed = parseSelectorKey(text);
    if (parsed.key === '' || parsed.source === '') {
      problems.add(keyPath, `label key "${text}" must be "key" or "source:key" (e.g. "app" or "container:app")`);
      return undefined;
    }
    const kubernetes = kubernetesOnlyKeyProblem(text, parsed);
    if (kubernetes) {
      problems.add(keyPath, kubernetes);
      return undefined;
    }
    return parsed;
  };

  if (obj['matchLabels'] !== undefined && obj['matchLabels'] !== null) {
    const labelsPath = joinPath(path, 'matchLabels');
    const labels = problems.object(obj['matchLabels'], labelsPath);
    if (!labels) ok = false;
    for (const [k, v] of Object.entries(labels ?? {})) {
      const keyPath = joinPath(labelsPath, k);
      const parsed = readKey(k, keyPath);
      if (typeof v !== 'string') {
        problems.add(
          keyPath,
          `label value must be a string, not ${describe(v)}; ` +
            'quote it (use "" for labels without a value, e.g. "reserved:host": "")',
        );
        ok = false;
        continue;
      }
      if (!parsed) {
        ok = false;
        continue;
      }
      requirements.push({ ...parsed, operator: 'In', values: [v] });
    }
  }

  const expressionsPath = joinPath(path, 'matchExpressions');
  const expressions = problems.list(obj['matchExpressions'], expressionsPath);
  if (obj['matchExpressions'] !== undefined && obj['matchExpressions'] !== null && !expressions) ok = false;
  for (const [i, item] of (expressions ?? []).entries()) {
    const itemPath = joinPath(expressionsPath, i);
    const expr = problems.object(item, itemPath);
    if (!expr) {
      ok = false;
      continue;
    }
    problems.checkFields(expr, itemPath, ['key', 'operator', 'values']);
    const parsed = readKey(expr['key'], joinPath(itemPath, 'key'));
    const operator = expr['operator'];
    const operatorPath = joinPath(itemPath, 'operator');
    if (!SELECTOR_OPERATORS.includes(operator as SelectorOperator)) {
      problems.add(
        operatorPath,
        operator === undefined
          ? `is required; use one of ${SELECTOR_OPERATORS.join(', ')}`
          : `operator ${JSON.stringify(operator)} is not supported; use one of ${SELECTOR_OPERATORS.join(', ')}`,
      );
      ok = false;
      continue;
    }
    const op = operator as SelectorOperator;
    const valuesPath = joinPath(itemPath, 'values');
    const rawValues = expr['values'];
    let values: string[] = [];
    if (op === 'In' || op === 'NotIn') {
      if (!Array.isArray(rawValues) || rawValues.length === 0) {
        problems.add(valuesPath, `operator ${op} needs a non-empty list of values`);
        ok = false;
        continue;
      }
      const bad = rawValues.findIndex((v) => typeof v !== 'string');
      if (bad >= 0) {
        problems.add(joinPath(valuesPath, bad), `must be a string, not ${describe(rawValues[bad])}; quote it`);
        ok = false;
        continue;
      }
      values = rawValues as string[];
    } else if (rawValues !== undefined && rawValues !== null && !(Array.isArray(rawValues) && rawValues.length === 0)) {
      problems.add(valuesPath, `operator ${op} takes no values; remove values`);
      ok = false;
      continue;
    }
    if (!parsed) {
      ok = false;
      continue;
    }
    requirements.push({ ...parsed, operator: op, values });
  }
  return ok ? makeEndpointSelector(requirements) : undefined;
}
