/**
 * Validation of one Cilium rule: `endpointSelector`, `description`, and the items of `ingress`,
 * `ingressDeny`, `egress` and `egressDeny` with their peers (endpoints, CIDRs, entities) and ports.
 */
import { formatPrefix, parsePrefix, prefixContains, subtractPrefixes, type IpPrefix } from './cidr.js';
import { parsePortRules } from './parse-ports.js';
import { parseSelector } from './parse-selector.js';
import { describe, joinPath, type ProblemList } from './problem-list.js';
import { SUPPORTED_ENTITIES, UNSUPPORTED_CILIUM_ENTITIES, type Entity } from './reserved.js';
import type { Direction, Peer, PeerRule, PolicyRule, Verdict } from './rule-types.js';
import type { EndpointSelector } from './selector.js';
import { UNSUPPORTED_CIDR_RULE, UNSUPPORTED_EGRESS, UNSUPPORTED_INGRESS, UNSUPPORTED_SPEC } from './unsupported-fields.js';

function parseCidrPrefix(value: unknown, path: string, allowBare: boolean, problems: ProblemList): IpPrefix | undefined {
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
  const fields = [`${p}Endpoints`, `${p}CIDR`, `${p}CIDRSet`, `${p}Entities`, 'toPorts'];
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
      if (!Object.keys(set).some((k) => Object.hasOwn(UNSUPPORTED_CIDR_RULE, k))) problems.add(joinPath(itemPath, 'cidr'), 'is required, e.g. cidr: "10.0.0.0/8"');
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
        problems.add(joinPath(exceptPath, j), `except ${JSON.stringify(e)} is not inside cidr ${JSON.stringify(set['cidr'])}; an except must be a part of its cidr`);
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
    problems.add(path, `combining ${present.join(' and ')} in one rule is not supported (as in Cilium); write one rule per kind of peer`);
    ok = false;
  }

  const ports = parsePortRules(obj['toPorts'], joinPath(path, 'toPorts'), deny, problems);
  if (!ports) ok = false;
  if (!ok || !ports) return undefined;

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

/** Validates one rule (`spec` or `specs[i]`) of policy `policyName`; undefined if invalid. */
export function parseRule(value: unknown, path: string, policyName: string, problems: ProblemList): PolicyRule | undefined {
  const spec = problems.object(value, path);
  if (!spec) return undefined;
  problems.checkFields(spec, path, ['endpointSelector', 'description', ...SECTIONS.map(([s]) => s)], UNSUPPORTED_SPEC);
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
  if (!ok || !endpointSelector) return undefined;
  return {
    policyName,
    path,
    description: description as string | undefined,
    endpointSelector,
    hasIngress: counts.ingress > 0,
    hasEgress: counts.egress > 0,
    peerRules,
  };
}
