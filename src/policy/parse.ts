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
import { formatPrefix, parsePrefix, prefixContains, subtractPrefixes, type IpPrefix } from './cidr.js';
import { SUPPORTED_ENTITIES, UNSUPPORTED_CILIUM_ENTITIES, type Entity } from './reserved.js';
import type {
  CiliumNetworkPolicy,
  Direction,
  Peer,
  PeerRule,
  PolicyKind,
  PolicyRule,
  PortProtocolName,
  PortRange,
  Verdict,
} from './rule-types.js';
import {
  makeEndpointSelector,
  parseSelectorKey,
  SELECTOR_OPERATORS,
  type EndpointSelector,
  type LabelRequirement,
  type SelectorOperator,
} from './selector.js';

/** The only apiVersion accepted. */
export const POLICY_API_VERSION = 'cilium.io/v2';

/** Cilium's limit on `toPorts[].ports` (`maxPorts` in `pkg/policy/api/rule_validation.go`). */
export const MAX_PORTS_PER_RULE = 40;

const KINDS: readonly PolicyKind[] = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'];

/** Policy names become store keys (`policies/v1/<name>`), so they follow Kubernetes' DNS-1123 subdomain rule. */
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

function join(path: string, field: string | number): string {
  if (typeof field === 'number') return `${path}[${field}]`;
  return path === '' ? field : `${path}.${field}`;
}

// Fields Cilium has but we do not enforce, with what to do instead. Keyed by where they may appear.
const UNSUPPORTED_METADATA: Record<string, string> = {
  namespace: 'there are no namespaces here; remove metadata.namespace (every policy applies cluster-wide)',
  uid: 'is set by the Kubernetes API server; remove it',
  resourceVersion: 'is set by the Kubernetes API server; remove it',
  generation: 'is set by the Kubernetes API server; remove it',
  creationTimestamp: 'is set by the Kubernetes API server; remove it',
  managedFields: 'is set by the Kubernetes API server; remove it',
  selfLink: 'is set by the Kubernetes API server; remove it',
};
const UNSUPPORTED_TOP: Record<string, string> = {
  status: 'status is written by Cilium, not by users; remove it',
};
const UNSUPPORTED_SPEC: Record<string, string> = {
  nodeSelector: 'host policies (nodeSelector) are not supported; select containers with endpointSelector',
  labels: 'rule labels are not supported; policies are identified by metadata.name',
  enableDefaultDeny:
    'enableDefaultDeny is not supported yet; any ingress/egress section puts the selected endpoints into default deny for that direction',
  log: 'policy verdict logging (log) is not supported yet; remove it and use `cilium monitor`',
};
const ICMP_HINT = 'ICMP rules (icmps) are not supported yet; a rule without toPorts allows every protocol, ICMP included';
const AUTH_HINT = 'mutual authentication (authentication) is not supported; remove it';
const UNSUPPORTED_INGRESS: Record<string, string> = {
  fromRequires: 'fromRequires is not supported yet; add the required labels to each fromEndpoints selector instead',
  fromGroups: 'fromGroups (cloud provider groups) is not supported; use fromCIDR or fromCIDRSet',
  fromNodes: 'fromNodes is not supported; use fromEntities: [host] for the local host',
  icmps: ICMP_HINT,
  authentication: AUTH_HINT,
};
const UNSUPPORTED_EGRESS: Record<string, string> = {
  toRequires: 'toRequires is not supported yet; add the required labels to each toEndpoints selector instead',
  toServices: 'toServices is not supported; use toEndpoints with the backends\' labels, or toCIDR',
  toFQDNs: 'DNS-based rules (toFQDNs) are not supported yet; use toCIDR or toCIDRSet with the addresses',
  toGroups: 'toGroups (cloud provider groups) is not supported; use toCIDR or toCIDRSet',
  toNodes: 'toNodes is not supported; use toEntities: [host] for the local host',
  icmps: ICMP_HINT,
  authentication: AUTH_HINT,
};
const TLS_HINT = 'is not supported; TLS inspection needs the L7 proxy, which we do not have';
const UNSUPPORTED_PORT_RULE: Record<string, string> = {
  terminatingTLS: `terminatingTLS ${TLS_HINT}`,
  originatingTLS: `originatingTLS ${TLS_HINT}`,
  serverNames: 'SNI matching (serverNames) is not supported yet; remove it to allow the port for every server name',
  listener: 'custom Envoy listeners (listener) are not supported; remove it',
};
const UNSUPPORTED_CIDR_RULE: Record<string, string> = {
  cidrGroupRef: 'CiliumCIDRGroup references are not supported; list the prefixes in cidr and except',
  cidrGroupSelector: 'CiliumCIDRGroup selectors are not supported; list the prefixes in cidr and except',
};
const L7_KINDS = ['http', 'kafka', 'dns', 'l7proto', 'l7'];

/** Collects problems of one document; every message carries the document's name and a path. */
class ProblemList {
  readonly messages: string[] = [];
  subject: string;

  constructor(subject: string) {
    this.subject = subject;
  }

  add(path: string, message: string): void {
    this.messages.push(path === '' ? `${this.subject}: ${message}` : `${this.subject}: ${path}: ${message}`);
  }

  /** Rejects fields not in `allowed`; `unsupported` gives specific messages for known Cilium fields. */
  checkFields(obj: JsonObject, path: string, allowed: readonly string[], unsupported: Record<string, string> = {}): void {
    for (const field of Object.keys(obj)) {
      if (allowed.includes(field)) continue;
      const fieldPath = join(path, field);
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

  object(value: unknown, path: string): JsonObject | undefined {
    if (isObject(value)) return value;
    this.add(path, `must be an object, not ${describe(value)}`);
    return undefined;
  }

  /** A list, or undefined when absent/null (absent and null mean "no items", as in Cilium). */
  list(value: unknown, path: string): unknown[] | undefined {
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value)) return value;
    this.add(path, `must be a list, not ${describe(value)}`);
    return undefined;
  }

  stringMap(value: unknown, path: string): Record<string, string> {
    const result: Record<string, string> = {};
    if (value === undefined || value === null) return result;
    const obj = this.object(value, path);
    if (!obj) return result;
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'string') result[k] = v;
      else this.add(join(path, k), `must be a string, not ${describe(v)}; quote it`);
    }
    return result;
  }
}

function parseSelector(value: unknown, path: string, problems: ProblemList): EndpointSelector | undefined {
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
    return parsed;
  };

  if (obj['matchLabels'] !== undefined && obj['matchLabels'] !== null) {
    const labelsPath = join(path, 'matchLabels');
    const labels = problems.object(obj['matchLabels'], labelsPath);
    if (!labels) ok = false;
    for (const [k, v] of Object.entries(labels ?? {})) {
      const keyPath = join(labelsPath, k);
      const parsed = readKey(k, keyPath);
      if (typeof v !== 'string') {
        problems.add(keyPath, `label value must be a string, not ${describe(v)}; quote it (use "" for labels without a value, e.g. "reserved:host": "")`);
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

  const expressionsPath = join(path, 'matchExpressions');
  const expressions = problems.list(obj['matchExpressions'], expressionsPath);
  if (obj['matchExpressions'] !== undefined && obj['matchExpressions'] !== null && !expressions) ok = false;
  for (const [i, item] of (expressions ?? []).entries()) {
    const itemPath = join(expressionsPath, i);
    const expr = problems.object(item, itemPath);
    if (!expr) {
      ok = false;
      continue;
    }
    problems.checkFields(expr, itemPath, ['key', 'operator', 'values']);
    const parsed = readKey(expr['key'], join(itemPath, 'key'));
    const operator = expr['operator'];
    const operatorPath = join(itemPath, 'operator');
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
    const valuesPath = join(itemPath, 'values');
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
        problems.add(join(valuesPath, bad), `must be a string, not ${describe(rawValues[bad])}; quote it`);
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

function parsePortNumber(value: unknown, path: string, problems: ProblemList): number | undefined {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string') {
    if (value === '') {
      problems.add(path, 'is required, e.g. port: "80"');
      return undefined;
    }
    if (!/^[0-9]+$/.test(value)) {
      problems.add(path, `named ports (${JSON.stringify(value)}) are not supported; use the port number`);
      return undefined;
    }
    n = Number(value);
  } else if (value === undefined || value === null) {
    problems.add(path, 'is required, e.g. port: "80"');
    return undefined;
  } else {
    problems.add(path, `must be a port number such as "80", not ${describe(value)}`);
    return undefined;
  }
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    problems.add(path, `port ${value} is out of range; use a port number from 0 to 65535 (0 means every port)`);
    return undefined;
  }
  return n;
}

function parseProtocol(value: unknown, path: string, problems: ProblemList): PortProtocolName | undefined {
  if (value === undefined || value === null) return 'ANY';
  if (typeof value !== 'string') {
    problems.add(path, `must be TCP, UDP or ANY, not ${describe(value)}`);
    return undefined;
  }
  const upper = value.toUpperCase();
  if (upper === 'TCP' || upper === 'UDP' || upper === 'ANY') return upper;
  if (upper === 'SCTP') problems.add(path, 'protocol SCTP is not supported yet; use TCP, UDP or ANY');
  else if (['ICMP', 'ICMPV6', 'VRRP', 'IGMP'].includes(upper))
    problems.add(path, `protocol ${value} is not supported in toPorts; use TCP, UDP or ANY (a rule without toPorts allows every protocol)`);
  else problems.add(path, `unknown protocol ${JSON.stringify(value)}; use TCP, UDP or ANY`);
  return undefined;
}

function parsePortRules(value: unknown, path: string, deny: boolean, problems: ProblemList): PortRange[] | undefined {
  const items = problems.list(value, path);
  if (!items) return value === undefined || value === null ? [] : undefined;
  const ranges: PortRange[] = [];
  let ok = true;
  for (const [i, item] of items.entries()) {
    const itemPath = join(path, i);
    const rule = problems.object(item, itemPath);
    if (!rule) {
      ok = false;
      continue;
    }
    const unsupported: Record<string, string> = { ...UNSUPPORTED_PORT_RULE };
    const rules = rule['rules'];
    const kinds = isObject(rules) ? L7_KINDS.filter((k) => rules[k] !== undefined && rules[k] !== null) : [];
    unsupported['rules'] = deny
      ? 'L7 rules are not allowed in deny rules (Cilium has none); remove rules'
      : `L7 rules${kinds.length > 0 ? ` (${kinds.join(', ')})` : ''} are not supported yet; remove rules to allow the whole port at L4`;
    problems.checkFields(rule, itemPath, ['ports'], unsupported);
    const portsPath = join(itemPath, 'ports');
    const ports = problems.list(rule['ports'], portsPath);
    if (!ports || ports.length === 0) {
      if (ports) problems.add(portsPath, 'at least one port is required, e.g. ports: [{port: "80", protocol: TCP}]');
      else if (rule['ports'] === undefined || rule['ports'] === null) problems.add(portsPath, 'is required, e.g. ports: [{port: "80", protocol: TCP}]');
      ok = false;
      continue;
    }
    if (ports.length > MAX_PORTS_PER_RULE) {
      problems.add(portsPath, `too many ports (${ports.length}); the maximum is ${MAX_PORTS_PER_RULE}, split them over several toPorts items`);
      ok = false;
    }
    for (const [j, p] of ports.entries()) {
      const portPath = join(portsPath, j);
      const port = problems.object(p, portPath);
      if (!port) {
        ok = false;
        continue;
      }
      problems.checkFields(port, portPath, ['port', 'endPort', 'protocol']);
      const number = parsePortNumber(port['port'], join(portPath, 'port'), problems);
      const protocol = parseProtocol(port['protocol'], join(portPath, 'protocol'), problems);
      let endPort = number ?? 0;
      const rawEnd = port['endPort'];
      const endPath = join(portPath, 'endPort');
      if (rawEnd !== undefined && rawEnd !== null && rawEnd !== 0) {
        if (typeof rawEnd !== 'number' || !Number.isInteger(rawEnd) || rawEnd < 0 || rawEnd > 65535) {
          problems.add(endPath, `endPort must be a port number from 1 to 65535, not ${describe(rawEnd)}`);
          ok = false;
        } else if (number === 0) {
          problems.add(endPath, 'endPort needs a non-zero port; port "0" already means every port');
          ok = false;
        } else if (number !== undefined && rawEnd < number) {
          problems.add(endPath, `endPort ${rawEnd} is below port ${number}; endPort is the last port of the range`);
          ok = false;
        } else {
          endPort = rawEnd;
        }
      }
      if (number === undefined || protocol === undefined) {
        ok = false;
        continue;
      }
      ranges.push({ port: number, endPort, protocol });
    }
  }
  return ok ? ranges : undefined;
}

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
  const endpoints = problems.list(obj[endpointsField], join(path, endpointsField));
  if (obj[endpointsField] != null && !endpoints) ok = false;
  if (endpoints && endpoints.length > 0) present.push(endpointsField);
  for (const [i, item] of (endpoints ?? []).entries()) {
    const selector = parseSelector(item, join(join(path, endpointsField), i), problems);
    if (selector) peers.push({ kind: 'endpoints', selector });
    else ok = false;
  }

  const cidrField = `${p}CIDR`;
  const cidrs = problems.list(obj[cidrField], join(path, cidrField));
  if (obj[cidrField] != null && !cidrs) ok = false;
  if (cidrs && cidrs.length > 0) present.push(cidrField);
  for (const [i, item] of (cidrs ?? []).entries()) {
    const prefix = parseCidrPrefix(item, join(join(path, cidrField), i), true, problems);
    if (prefix) peers.push(cidrPeer(prefix, []));
    else ok = false;
  }

  const setField = `${p}CIDRSet`;
  const sets = problems.list(obj[setField], join(path, setField));
  if (obj[setField] != null && !sets) ok = false;
  if (sets && sets.length > 0) present.push(setField);
  for (const [i, item] of (sets ?? []).entries()) {
    const itemPath = join(join(path, setField), i);
    const set = problems.object(item, itemPath);
    if (!set) {
      ok = false;
      continue;
    }
    problems.checkFields(set, itemPath, ['cidr', 'except'], UNSUPPORTED_CIDR_RULE);
    if (set['cidr'] === undefined) {
      if (!Object.keys(set).some((k) => Object.hasOwn(UNSUPPORTED_CIDR_RULE, k))) problems.add(join(itemPath, 'cidr'), 'is required, e.g. cidr: "10.0.0.0/8"');
      ok = false;
      continue;
    }
    const cidr = parseCidrPrefix(set['cidr'], join(itemPath, 'cidr'), false, problems);
    const exceptPath = join(itemPath, 'except');
    const exceptItems = problems.list(set['except'], exceptPath) ?? [];
    const except: IpPrefix[] = [];
    for (const [j, e] of exceptItems.entries()) {
      const prefix = parseCidrPrefix(e, join(exceptPath, j), false, problems);
      if (!prefix) {
        ok = false;
        continue;
      }
      if (cidr && !prefixContains(cidr, prefix)) {
        problems.add(join(exceptPath, j), `except ${JSON.stringify(e)} is not inside cidr ${JSON.stringify(set['cidr'])}; an except must be a part of its cidr`);
        ok = false;
        continue;
      }
      except.push(prefix);
    }
    if (cidr) peers.push(cidrPeer(cidr, except));
    else ok = false;
  }

  const entitiesField = `${p}Entities`;
  const entities = problems.list(obj[entitiesField], join(path, entitiesField));
  if (obj[entitiesField] != null && !entities) ok = false;
  if (entities && entities.length > 0) present.push(entitiesField);
  for (const [i, item] of (entities ?? []).entries()) {
    const itemPath = join(join(path, entitiesField), i);
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

  const ports = parsePortRules(obj['toPorts'], join(path, 'toPorts'), deny, problems);
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

function parseRule(value: unknown, path: string, policyName: string, problems: ProblemList): PolicyRule | undefined {
  const spec = problems.object(value, path);
  if (!spec) return undefined;
  problems.checkFields(spec, path, ['endpointSelector', 'description', ...SECTIONS.map(([s]) => s)], UNSUPPORTED_SPEC);
  let ok = true;
  let endpointSelector: EndpointSelector | undefined;
  if (spec['endpointSelector'] === undefined || spec['endpointSelector'] === null) {
    if (spec['nodeSelector'] === undefined) {
      problems.add(join(path, 'endpointSelector'), 'is required; use {} to select every container');
    }
    ok = false;
  } else {
    endpointSelector = parseSelector(spec['endpointSelector'], join(path, 'endpointSelector'), problems);
    if (!endpointSelector) ok = false;
  }
  const description = spec['description'];
  if (description !== undefined && typeof description !== 'string') {
    problems.add(join(path, 'description'), `must be a string, not ${describe(description)}`);
    ok = false;
  }
  const peerRules: PeerRule[] = [];
  const counts = { ingress: 0, egress: 0 };
  for (const [section, shape] of SECTIONS) {
    const sectionPath = join(path, section);
    const items = problems.list(spec[section], sectionPath);
    if (spec[section] != null && !items) ok = false;
    for (const [i, item] of (items ?? []).entries()) {
      const rule = parsePeerRule(item, join(sectionPath, i), shape, problems);
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

/** Result of validating one document: the policy, or the problems found (never both empty). */
export interface DocumentValidation {
  readonly policy: CiliumNetworkPolicy | undefined;
  readonly problems: readonly string[];
}

/**
 * Validates one decoded document. `position` (1-based) names the document in messages until its
 * `metadata.name` is known.
 */
export function validatePolicyDocument(value: unknown, position = 1): DocumentValidation {
  const problems = new ProblemList(`document ${position}`);
  const doc = isObject(value) ? value : undefined;
  if (!doc) {
    problems.add('', `a policy document must be an object, not ${describe(value)}`);
    return { policy: undefined, problems: problems.messages };
  }
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : undefined;
  const rawName = metadata?.['name'];
  if (typeof rawName === 'string' && rawName !== '') problems.subject = `policy ${JSON.stringify(rawName)}`;

  if (doc['apiVersion'] === undefined && doc['kind'] === undefined && (doc['endpointSelector'] !== undefined || doc['ingress'] !== undefined || doc['egress'] !== undefined)) {
    problems.add(
      '',
      'this is a bare Cilium rule; wrap it in a policy document: {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: <name>}, spec: <the rule>}',
    );
    return { policy: undefined, problems: problems.messages };
  }

  problems.checkFields(doc, '', ['apiVersion', 'kind', 'metadata', 'spec', 'specs'], UNSUPPORTED_TOP);
  if (doc['apiVersion'] !== POLICY_API_VERSION) {
    problems.add('apiVersion', doc['apiVersion'] === undefined ? `is required; use ${POLICY_API_VERSION}` : `${describe(doc['apiVersion'])} is not supported; use ${POLICY_API_VERSION}`);
  }
  const kind = doc['kind'];
  if (!KINDS.includes(kind as PolicyKind)) {
    const hint = kind === 'NetworkPolicy' ? 'Kubernetes NetworkPolicy is not supported; write a CiliumNetworkPolicy' : `use ${KINDS.join(' or ')}`;
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
      problems.add('metadata.name', rawName === undefined ? 'is required' : `must be a non-empty string, not ${describe(rawName)}`);
    } else if (rawName.length > 253 || !NAME_PATTERN.test(rawName)) {
      problems.add('metadata.name', 'must be lower-case letters, digits, "-" and "." (a DNS subdomain, at most 253 characters), e.g. "web-policy"');
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
    problems.add(specs ? 'specs' : 'spec', specs ? 'must contain at least one rule' : 'is required (or specs, a list of rules)');
  }
  const ruleName = name ?? '';
  if (hasSpec) {
    const rule = parseRule(doc['spec'], 'spec', ruleName, problems);
    if (rule) rules.push(rule);
  }
  for (const [i, item] of (specs ?? []).entries()) {
    const rule = parseRule(item, join('specs', i), ruleName, problems);
    if (rule) rules.push(rule);
  }

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
  if (isObject(value) && typeof value['kind'] === 'string' && value['kind'].endsWith('List') && Array.isArray(value['items'])) {
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
export function parsePolicyValue(value: unknown): CiliumNetworkPolicy[] {
  const documents = flattenDocuments(value);
  if (documents.length === 0) throw new PolicyValidationError('no policy documents found; expected a CiliumNetworkPolicy document, a list of them, or a YAML stream');
  const policies: CiliumNetworkPolicy[] = [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const [i, doc] of documents.entries()) {
    const result = validatePolicyDocument(doc, i + 1);
    problems.push(...result.problems);
    if (!result.policy) continue;
    const first = seen.get(result.policy.name);
    if (first !== undefined) {
      problems.push(`policy ${JSON.stringify(result.policy.name)}: defined twice in this input (documents ${first} and ${i + 1}); names must be unique`);
      continue;
    }
    seen.set(result.policy.name, i + 1);
    policies.push(result.policy);
  }
  throwIfProblems(problems);
  return policies;
}

/**
 * Parses YAML or JSON text (JSON is read as YAML 1.2, of which it is a subset) holding one or
 * more policy documents. Throws one {@link PolicyValidationError} listing every problem.
 */
export function parsePolicyText(text: string): CiliumNetworkPolicy[] {
  const streams = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  const yamlDocuments = Array.isArray(streams) ? streams : [];
  const syntax: string[] = [];
  const values: unknown[] = [];
  for (const [i, doc] of yamlDocuments.entries()) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) syntax.push(`YAML document ${i + 1}: ${error.message.split('\n')[0]!.replace(/:$/, '')}`);
      continue;
    }
    values.push(...flattenDocuments(doc.toJS({ maxAliasCount: 100 })));
  }
  if (syntax.length > 0) throw new PolicyValidationError(`cannot parse the policy input as YAML or JSON:\n${syntax.join('\n')}`);
  return parsePolicyValue(values);
}
