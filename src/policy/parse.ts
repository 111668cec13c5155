/**
 * Parsing and validation of CiliumNetworkPolicy documents (YAML or JSON).
 *
 * Accepted input: one document, a YAML multi-document stream (`---`), a JSON/YAML array of
 * documents, or a Kubernetes `List` (`kind: List` or `*List`, `items: [...]`). Each document is
 * `apiVersion: cilium.io/v2`, `kind: CiliumNetworkPolicy` (or `CiliumClusterwideNetworkPolicy`,
 * treated the same), `metadata.name`, and `spec` and/or `specs`.
 *
 * Nothing is silently ignored: a Cilium field we do not enforce yet is rejected with a message
 * that names it and says what to do instead, and an unknown field is rejected by its path. All
 * problems of all documents are collected and thrown as one {@link PolicyValidationError}, one
 * problem per line: `policy "web": spec.ingress[0].toPorts[0].rules: L7 rules (http) are not
 * supported yet; ...`.
 */
import { parseAllDocuments } from 'yaml';
import { PolicyValidationError } from '../util/errors.js';
import { groupBareRules, isBareRule } from './bare-rules.js';
import { checkCidrPrefixLimit, checkDocumentLimits, importTextProblem, POLICY_LIMITS } from './limits.js';
import { parseRule } from './parse-rule.js';
import { describe, isObject, joinPath, ProblemList } from './problem-list.js';
import type { CiliumNetworkPolicy, PolicyKind, PolicyRule } from './rule-types.js';
import { UNSUPPORTED_METADATA, UNSUPPORTED_TOP } from './unsupported-fields.js';

/** The only apiVersion accepted. */
export const POLICY_API_VERSION = 'cilium.io/v2';

const KINDS: readonly PolicyKind[] = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'];

/** Policy names become store keys (`policies/v1/<name>`), so they follow Kubernetes' DNS-1123 subdomain rule. */
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Result of validating one document: the policy, or the problems found (never both empty). */
export interface DocumentValidation {
  readonly policy: CiliumNetworkPolicy | undefined;
  readonly problems: readonly string[];
}

/**
 * Validates one decoded document. `position` (1-based) names the document in messages until its
 * `metadata.name` is known.
 */
/** Options of validation. */
export interface ValidationOptions {
  /**
   * Hold the input to {@link POLICY_LIMITS} (default true). Off only for documents read back from
   * the store, which were accepted before and must stay loadable and deletable.
   */
  readonly limits?: boolean;
}

export function validatePolicyDocument(
  value: unknown,
  position = 1,
  options: ValidationOptions = {},
): DocumentValidation {
  const problems = new ProblemList(`document ${position}`);
  const doc = isObject(value) ? value : undefined;
  if (!doc) {
    problems.add('', `a policy document must be an object, not ${describe(value)}`);
    return { policy: undefined, problems: problems.messages };
  }
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : undefined;
  const rawName = metadata?.['name'];
  if (typeof rawName === 'string' && rawName !== '') problems.subject = `policy ${JSON.stringify(rawName)}`;
  if (options.limits !== false && !checkDocumentLimits(doc, problems))
    return { policy: undefined, problems: problems.messages };

  if (
    doc['apiVersion'] === undefined &&
    doc['kind'] === undefined &&
    (doc['endpointSelector'] !== undefined || doc['ingress'] !== undefined || doc['egress'] !== undefined)
  ) {
    problems.add(
      '',
      'this is a bare Cilium rule; import it as a list of rules, or wrap it in a policy document: {apiVersion: ' +
        'cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: <name>}, spec: <the rule>}',
    );
    return { policy: undefined, problems: problems.messages };
  }

  problems.checkFields(doc, '', ['apiVersion', 'kind', 'metadata', 'spec', 'specs'], UNSUPPORTED_TOP);
  if (doc['apiVersion'] !== POLICY_API_VERSION) {
    problems.add(
      'apiVersion',
      doc['apiVersion'] === undefined
        ? `is required; use ${POLICY_API_VERSION}`
        : `${describe(doc['apiVersion'])} is not supported; use ${POLICY_API_VERSION}`,
    );
  }
  const kind = doc['kind'];
  if (!KINDS.includes(kind as PolicyKind)) {
    const hint =
      kind === 'NetworkPolicy'
        ? 'Kubernetes NetworkPolicy is not supported; write a CiliumNetworkPolicy'
        : `use ${KINDS.join(' or ')}`;
    problems.add('kind', kind === undefined ? `is required; ${hint}` : `${describe(kind)} is not supported; ${hint}`);
  }

  let name: string | undefined;
  let labels: Record<string, string> = {};
  let annotations: Record<string, string> = {};
  if (!metadata) {
    if (doc['metadata'] === undefined) problems.add('metadata.name', 'is required');
    else problems.add('metadata', `must be an object, not ${describe(doc['metadata'])}`);
  } else {
    problems.checkFields(metadata, 'metadata', ['name', 'labels', 'annotations'], UNSUPPORTED_METADATA);
    if (typeof rawName !== 'string' || rawName === '') {
      problems.add(
        'metadata.name',
        rawName === undefined ? 'is required' : `must be a non-empty string, not ${describe(rawName)}`,
      );
    } else if (rawName.length > 253 || !NAME_PATTERN.test(rawName)) {
      problems.add(
        'metadata.name',
        'must be lower-case letters, digits, "-" and "." (a DNS subdomain, at most 253 characters), e.g. "web-policy"',
      );
    } else {
      name = rawName;
    }
    labels = problems.stringMap(metadata['labels'], 'metadata.labels');
    annotations = problems.stringMap(metadata['annotations'], 'metadata.annotations');
  }

  const rules: PolicyRule[] = [];
  const hasSpec = doc['spec'] !== undefined && doc['spec'] !== null;
  const specs = problems.list(doc['specs'], 'specs');
  if (!hasSpec && (specs === undefined || specs.length === 0)) {
    problems.add(
      specs ? 'specs' : 'spec',
      specs ? 'must contain at least one rule' : 'is required (or specs, a list of rules)',
    );
  }
  const ruleName = name ?? '';
  if (hasSpec) {
    const rule = parseRule(doc['spec'], 'spec', ruleName, problems);
    if (rule) rules.push(rule);
  }
  for (const [i, item] of (specs ?? []).entries()) {
    const rule = parseRule(item, joinPath('specs', i), ruleName, problems);
    if (rule) rules.push(rule);
  }

  if (options.limits !== false && problems.messages.length === 0) checkCidrPrefixLimit(rules, problems);
  if (problems.messages.length > 0 || name === undefined) return { policy: undefined, problems: problems.messages };
  return {
    policy: {
      name,
      kind: kind as PolicyKind,
      labels,
      annotations,
      rules,
      document: JSON.parse(JSON.stringify(doc)) as Record<string, unknown>,
    },
    problems: [],
  };
}

function flattenDocuments(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value;
  if (
    isObject(value) &&
    typeof value['kind'] === 'string' &&
    value['kind'].endsWith('List') &&
    Array.isArray(value['items'])
  ) {
    return value['items'];
  }
  return [value];
}

function throwIfProblems(problems: readonly string[]): void {
  if (problems.length > 0) throw new PolicyValidationError(problems.join('\n'));
}

/**
 * Validates already-decoded documents (a document, an array of them, or a `List`), e.g. a JSON
 * request body. Throws one {@link PolicyValidationError} listing every problem.
 */
export function parsePolicyValue(value: unknown, options: ValidationOptions = {}): CiliumNetworkPolicy[] {
  const documents = flattenDocuments(value);
  if (documents.length === 0)
    throw new PolicyValidationError(
      'no policy documents found; expected a CiliumNetworkPolicy document, a list of them, or a YAML stream',
    );
  if (options.limits !== false && documents.length > POLICY_LIMITS.policies) {
    throw new PolicyValidationError(
      `${documents.length} policy documents in one input; the limit is ${POLICY_LIMITS.policies} policies`,
    );
  }
  const policies: CiliumNetworkPolicy[] = [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  // Bare rules (Cilium's non-Kubernetes form) become one document per label set (bare-rules.ts).
  const bare = documents.flatMap((doc, i) => (isBareRule(doc) ? [{ value: doc, position: i + 1 }] : []));
  const { groups, problems: ruleProblems } = groupBareRules(bare);
  problems.push(...ruleProblems);
  const inputs: Array<{ doc: unknown; position: number; ruleLabels?: CiliumNetworkPolicy['ruleLabels'] }> = [
    ...documents.flatMap((doc, i) => (isBareRule(doc) ? [] : [{ doc, position: i + 1 }])),
    ...groups.map((g) => ({ doc: g.document, position: bare[0]!.position, ruleLabels: g.labels })),
  ];
  for (const { doc, position, ruleLabels } of inputs) {
    const i = position - 1;
    const validated = validatePolicyDocument(doc, position, options);
    const result =
      validated.policy && ruleLabels ? { ...validated, policy: { ...validated.policy, ruleLabels } } : validated;
    problems.push(...result.problems);
    if (!result.policy) continue;
    const first = seen.get(result.policy.name);
    if (first !== undefined) {
      problems.push(
        `policy ${JSON.stringify(result.policy.name)}: ` +
          `defined twice in this input (documents ${first} and ${i + 1}); names must be unique`,
      );
      continue;
    }
    seen.set(result.policy.name, i + 1);
    policies.push(result.policy);
  }
  throwIfProblems(problems);
  return policies;
}

/** yaml's maxAliasCount: how many alias expansions one document may need (a policy needs few, if any). */
const MAX_ALIAS_EXPANSIONS = 100;

/**
 * Parses YAML or JSON text (JSON is read as YAML 1.2, of which it is a subset) holding one or
 * more policy documents. Throws one {@link PolicyValidationError} listing every problem.
 */
export function parsePolicyText(text: string): CiliumNetworkPolicy[] {
  const tooLarge = importTextProblem(text);
  if (tooLarge) throw new PolicyValidationError(tooLarge);
  const streams = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  const yamlDocuments = Array.isArray(streams) ? streams : [];
  const syntax: string[] = [];
  const values: unknown[] = [];
  for (const [i, doc] of yamlDocuments.entries()) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors)
        syntax.push(`YAML document ${i + 1}: ${error.message.split('\n')[0]!.replace(/:$/, '')}`);
      continue;
    }
    let value: unknown;
    try {
      // Anchors and aliases (&a / *a) nest: a few lines can expand to billions of nodes. yaml
      // refuses past maxAliasCount expansions; that refusal is a problem of the input.
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
    } catch (err) {
      syntax.push(
        `YAML document ${i + 1}: cannot expand its anchors and aliases (at most ${MAX_ALIAS_EXPANSIONS} alias ` +
          `expansions): ${err instanceof Error ? err.message : String(err)}`,
      );
      continue;
    }
    values.push(...flattenDocuments(value));
  }
  if (syntax.length > 0)
    throw new PolicyValidationError(`cannot parse the policy input as YAML or JSON:\n${syntax.join('\n')}`);
  return parsePolicyValue(values);
}
