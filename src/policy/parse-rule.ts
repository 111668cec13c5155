/**
 * Validation of one Cilium rule: `endpointSelector`, `description`, `labels`, and the items of
 * `ingress`, `ingressDeny`, `egress` and `egressDeny` with their peers (endpoints, CIDRs,
 * entities), ports and ICMP types.
 */
import { formatPrefix, parsePrefix, prefixContains, subtractPrefixes, type IpPrefix } from './cidr.js';
import { parseIcmpRules, parsePortRules } from './parse-ports.js';
import { parseSelector } from './parse-selector.js';
import { describe, isObject, joinPath, type ProblemList } from './problem-list.js';
import { SUPPORTED_ENTITIES, UNSUPPORTED_CILIUM_ENTITIES, type Entity } from './reserved.js';
import type { Direction, Peer, PeerRule, PolicyRule, RuleLabel, Verdict } from './rule-types.js';
import type { EndpointSelector } from './selector.js';
import {
  UNSUPPORTED_CIDR_RULE,
  UNSUPPORTED_EGRESS,
  UNSUPPORTED_INGRESS,
  UNSUPPORTED_SPEC,
} from './unsupported-fields.js';

function parseCidrPrefix(
  value: unknown,
  path: string,
  allowBare: boolean,
  problems: ProblemList,
): IpPrefix | undefined {
  if (typeof value !== 'string') {
    problems.add(path, `must be a CIDR string such as "10.0.0.0/8", not ${describe(value)}`);
    return undefined;
  }
  const result = parsePrefix(value, allowBare);
  if (!result.ok) {
    problems.add(path, `${JSON.stringify(value)} is not a valid CIDR: ${result.reason}`);
    return undefined;
  }
  return result.prefix;
}

function cidrPeer(cidr: IpPrefix, except: IpPrefix[]): Peer {
  return {
    kind: 'cidr',
    cidr: formatPrefix(cidr),
    except: except.map(formatPrefix),
    prefixes: subtractPrefixes(cidr, except),
  };
}

interface SectionShape {
  readonly direction: Direction;
  readonly verdict: Verdict;
  readonly prefix: 'from' | 'to';
}

function parsePeerRule(value: unknown, path: string, shape: SectionShape, problems: ProblemList): PeerRule | undefined {
  const obj = problems.object(value, path);
  if (!obj) return undefined;
  const p = shape.prefix;
  const deny = shape.verdict === 'deny';
  const fields = [`${p}Endpoints`, `${p}CIDR`, `${p}CIDRSet`, `${p}Entities`, 'toPorts', 'icmps'];
  const unsupported = { ...(shape.direction === 'ingress' ? UNSUPPORTED_INGRESS : UNSUPPORTED_EGRESS) };
  if (deny) unsupported['authentication'] = 'authentication is not allowed in deny rules; remove it';
  problems.checkFields(obj, path, fields, unsupported);

  let ok = true;
  const peers: Peer[] = [];
  const present: string[] = [];

  const endpointsField = `${p}Endpoints`;
  const endpoints = problems.list(obj[endpointsField], joinPath(path, endpointsField));
  if (obj[endpointsField] != null && !endpoints) ok = false;
  if (endpoints && endpoints.length > 0) present.push(endpointsField);
  for (const [i, item] of (endpoints ?? []).entries()) {
    const selector = parseSelector(item, joinPath(joinPath(path, endpointsField), i), problems);
    if (selector) peers.push({ kind: 'endpoints', selector });
    else ok = false;
  }

  const cidrField = `${p}CIDR`;
  const cidrs = problems.list(obj[cidrField], joinPath(path, cidrField));
  if (obj[cidrField] != null && !cidrs) ok = false;
  if (cidrs && cidrs.length > 0) present.push(cidrField);
  for (const [i, item] of (cidrs ?? []).entries()) {
    const prefix = parseCidrPrefix(item, joinPath(joinPath(path, cidrField), i), true, problems);
    if (prefix) peers.push(cidrPeer(prefix, []));
    else ok = false;
  }

  const setField = `${p}CIDRSet`;
  const sets = problems.list(obj[setField], joinPath(path, setField));
  if (obj[setField] != null && !sets) ok = false;
  if (sets && sets.length > 0) present.push(setField);
  for (const [i, item] of (sets ?? []).entries()) {
    const itemPath = joinPath(joinPath(path, setField), i);
    const set = problems.object(item, itemPath);
    if (!set) {
      ok = false;
      continue;
    }
    problems.checkFields(set, itemPath, ['cidr', 'except'], UNSUPPORTED_CIDR_RULE);
    if (set['cidr'] === undefined) {
      if (!Object.keys(set).some((k) => Object.hasOwn(UNSUPPORTED_CIDR_RULE, k)))
        problems.add(joinPath(itemPath, 'cidr'), 'is required, e.g. cidr: "10.0.0.0/8"');
      ok = false;
      continue;
    }
    const cidr = parseCidrPrefix(set['cidr'], joinPath(itemPath, 'cidr'), false, problems);
    const exceptPath = joinPath(itemPath, 'except');
    const exceptItems = problems.list(set['except'], exceptPath) ?? [];
    const except: IpPrefix[] = [];
    for (const [j, e] of exceptItems.entries()) {
      const prefix = parseCidrPrefix(e, joinPath(exceptPath, j), false, problems);
      if (!prefix) {
        ok = false;
        continue;
      }
      if (cidr && !prefixContains(cidr, prefix)) {
        problems.add(
          joinPath(exceptPath, j),
          `except ${JSON.stringify(e)} is not inside cidr ${JSON.stringify(set['cidr'])}; ` +
            'an except must be a part of its cidr',
        );
        ok = false;
        continue;
      }
      except.push(prefix);
    }
    if (cidr) peers.push(cidrPeer(cidr, except));
    else ok = false;
  }

  const entitiesField = `${p}Entities`;
  const entities = problems.list(obj[entitiesField], joinPath(path, entitiesField));
  if (obj[entitiesField] != null && !entities) ok = false;
  if (entities && entities.length > 0) present.push(entitiesField);
  for (const [i, item] of (entities ?? []).entries()) {
    const itemPath = joinPath(joinPath(path, entitiesField), i);
    if (typeof item === 'string' && (SUPPORTED_ENTITIES as readonly string[]).includes(item)) {
      peers.push({ kind: 'entity', entity: item as Entity });
      continue;
    }
    ok = false;
    const supported = SUPPORTED_ENTITIES.join(', ');
    if (typeof item === 'string' && UNSUPPORTED_CILIUM_ENTITIES.includes(item)) {
      problems.add(itemPath, `entity "${item}" is not supported; use one of ${supported}`);
    } else {
      problems.add(itemPath, `unknown entity ${JSON.stringify(item)}; use one of ${supported}`);
    }
  }

  if (present.length > 1) {
    // Cilium's IngressRule/EgressRule sanitize() refuses these combinations too.
    problems.add(
      path,
      `combining ${present.join(' and ')} in one rule is not supported (as in Cilium); write one rule per kind of peer`,
    );
    ok = false;
  }

  const toPorts = parsePortRules(obj['toPorts'], joinPath(path, 'toPorts'), deny, problems);
  const icmps = parseIcmpRules(obj['icmps'], joinPath(path, 'icmps'), problems);
  if (!toPorts || !icmps) ok = false;
  if (
    Array.isArray(obj['toPorts']) &&
    obj['toPorts'].length > 0 &&
    Array.isArray(obj['icmps']) &&
    obj['icmps'].length > 0
  ) {
    // Cilium's sanitize() refuses this too: the item would mean "these ports or these types".
    problems.add(
      path,
      'icmps may only be present without toPorts (as in Cilium); write a separate rule item for toPorts',
    );
    ok = false;
  }
  if (!ok || !toPorts || !icmps) return undefined;
  const ports = [...toPorts, ...icmps];

  // An item with neither peers nor ports (`ingress: [{}]`) allows nothing: it only turns on
  // default deny, as Cilium documents. Ports without peers apply to every peer.
  let rulePeers: readonly Peer[] | undefined;
  if (present.length > 0) rulePeers = peers;
  else rulePeers = ports.length > 0 ? undefined : [];
  return { direction: shape.direction, verdict: shape.verdict, peers: rulePeers, ports, path };
}

const SECTIONS: ReadonlyArray<readonly [string, SectionShape]> = [
  ['ingress', { direction: 'ingress', verdict: 'allow', prefix: 'from' }],
  ['ingressDeny', { direction: 'ingress', verdict: 'deny', prefix: 'from' }],
  ['egress', { direction: 'egress', verdict: 'allow', prefix: 'to' }],
  ['egressDeny', { direction: 'egress', verdict: 'deny', prefix: 'to' }],
];

/** At most this many labels per rule (Cilium has no limit; a rule needs a few to be named). */
export const MAX_RULE_LABELS = 64;
/** Longest label key or value accepted (Kubernetes' limit for a prefixed key). */
const MAX_LABEL_TEXT = 317;
/** Cilium's source for rule labels written without one. */
export const RULE_LABEL_DEFAULT_SOURCE = 'unspec';

/**
 * Parses `source:key=value` (Cilium's string form of a label, `cilium policy get` arguments):
 * no source means `defaultSource`, no `=` an empty value.
 */
export function parseRuleLabelText(text: string, defaultSource: string): RuleLabel {
  const eq = text.indexOf('=');
  const name = eq >= 0 ? text.slice(0, eq) : text;
  const value = eq >= 0 ? text.slice(eq + 1) : '';
  const colon = name.indexOf(':');
  if (colon > 0) return { source: name.slice(0, colon), key: name.slice(colon + 1), value };
  return { source: defaultSource, key: name, value };
}

/** Canonical order of labels: source, key, value. */
export function compareRuleLabels(a: RuleLabel, b: RuleLabel): number {
  return a.source < b.source
    ? -1
    : a.source > b.source
      ? 1
      : a.key < b.key
        ? -1
        : a.key > b.key
          ? 1
          : a.value < b.value
            ? -1
            : a.value > b.value
              ? 1
              : 0;
}

/** `source:key=value`, as Cilium prints a label. */
export function formatRuleLabel(label: RuleLabel): string {
  return `${label.source}:${label.key}=${label.value}`;
}

/**
 * Validates a rule's `labels` (`[{key, value, source}]`, or `"source:key=value"` strings as
 * Cilium also reads them): sorted, duplicates removed; undefined if invalid.
 */
export function parseRuleLabels(value: unknown, path: string, problems: ProblemList): RuleLabel[] | undefined {
  const items = problems.list(value, path);
  if (!items) return value === undefined || value === null ? [] : undefined;
  if (items.length > MAX_RULE_LABELS) {
    problems.add(path, `too many labels (${items.length}); the maximum is ${MAX_RULE_LABELS}`);
    return undefined;
  }
  const labels = new Map<string, RuleLabel>();
  let ok = true;
  for (const [i, item] of items.entries()) {
    const itemPath = joinPath(path, i);
    let label: RuleLabel | undefined;
    if (typeof item === 'string') {
      label = parseRuleLabelText(item, RULE_LABEL_DEFAULT_SOURCE);
    } else if (isObject(item)) {
      problems.checkFields(item, itemPath, ['key', 'value', 'source']);
      const { key, value: text = '', source = RULE_LABEL_DEFAULT_SOURCE } = item;
      const bad = (
        [
          ['key', key],
          ['value', text],
          ['source', source],
        ] as const
      ).find(([, v]) => typeof v !== 'string');
      if (bad)
        problems.add(
          joinPath(itemPath, bad[0]),
          bad[1] === undefined ? 'is required' : `must be a string, not ${describe(bad[1])}`,
        );
      else label = { source: source as string, key: key as string, value: text as string };
    } else {
      problems.add(
        itemPath,
        `a label must be {key: ..., value: ..., source: ...} or "source:key=value", not ${describe(item)}`,
      );
    }
    if (!label) {
      ok = false;
      continue;
    }
    if (label.key === '' || label.source === '' || label.source === 'any') {
      problems.add(
        itemPath,
        label.key === ''
          ? 'a label needs a non-empty key'
          : 'a rule label needs a source other than "any" (default unspec)',
      );
      ok = false;
      continue;
    }
    if (
      label.key.length > MAX_LABEL_TEXT ||
      label.value.length > MAX_LABEL_TEXT ||
      label.source.length > MAX_LABEL_TEXT
    ) {
      problems.add(itemPath, `label source, key and value are at most ${MAX_LABEL_TEXT} characters each`);
      ok = false;
      continue;
    }
    labels.set(formatRuleLabel(label), label);
  }
  return ok ? [...labels.values()].sort(compareRuleLabels) : undefined;
}

/** Validates one rule (`spec` or `specs[i]`) of policy `policyName`; undefined if invalid. */
export function parseRule(
  value: unknown,
  path: string,
  policyName: string,
  problems: ProblemList,
): PolicyRule | undefined {
  const spec = problems.object(value, path);
  if (!spec) return undefined;
  problems.checkFields(
    spec,
    path,
    ['endpointSelector', 'description', 'labels', ...SECTIONS.map(([s]) => s)],
    UNSUPPORTED_SPEC,
  );
  const labels = parseRuleLabels(spec['labels'], joinPath(path, 'labels'), problems);
  let ok = true;
  let endpointSelector: EndpointSelector | undefined;
  if (spec['endpointSelector'] === undefined || spec['endpointSelector'] === null) {
    if (spec['nodeSelector'] === undefined) {
      problems.add(joinPath(path, 'endpointSelector'), 'is required; use {} to select every container');
    }
    ok = false;
  } else {
    endpointSelector = parseSelector(spec['endpointSelector'], joinPath(path, 'endpointSelector'), problems);
    if (!endpointSelector) ok = false;
  }
  const description = spec['description'];
  if (description !== undefined && typeof description !== 'string') {
    problems.add(joinPath(path, 'description'), `must be a string, not ${describe(description)}`);
    ok = false;
  }
  const peerRules: PeerRule[] = [];
  const counts = { ingress: 0, egress: 0 };
  for (const [section, shape] of SECTIONS) {
    const sectionPath = joinPath(path, section);
    const items = problems.list(spec[section], sectionPath);
    if (spec[section] != null && !items) ok = false;
    for (const [i, item] of (items ?? []).entries()) {
      const rule = parsePeerRule(item, joinPath(sectionPath, i), shape, problems);
      if (rule) peerRules.push(rule);
      else ok = false;
    }
    counts[shape.direction] += items?.length ?? 0;
  }
  if (!ok || !endpointSelector || !labels) return undefined;
  return {
    policyName,
    labels,
    path,
    description: description as string | undefined,
    endpointSelector,
    hasIngress: counts.ingress > 0,
    hasEgress: counts.egress > 0,
    peerRules,
  };
}
