/**
 * Validation of `toPorts`: numeric ports (named ports are rejected), `endPort` ranges, and the
 * protocols TCP, UDP and ANY. L7 `rules` and TLS fields are rejected by name. Also `icmps`
 * (ICMP types by number or Cilium's names), which compile like ports of protocol ICMP.
 *
 * Omissions follow Cilium: a `ports[]` item without `port` (or with `port: "0"`) is every port of
 * its protocol, and a `toPorts[]` item without `ports` is every port of every protocol.
 */
import { describe, isObject, joinPath, type ProblemList } from './problem-list.js';
import type { PortProtocolName, PortRange } from './rule-types.js';
import { L7_KINDS, UNSUPPORTED_PORT_RULE } from './unsupported-fields.js';

/** Cilium's limit on `toPorts[].ports` (`maxPorts` in `pkg/policy/api/rule_validation.go`). */
export const MAX_PORTS_PER_RULE = 40;

function parsePortNumber(value: unknown, path: string, problems: ProblemList): number | undefined {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string') {
    if (value === '') return 0;
    if (!/^[0-9]+$/.test(value)) {
      problems.add(path, `named ports (${JSON.stringify(value)}) are not supported; use the port number`);
      return undefined;
    }
    n = Number(value);
  } else if (value === undefined || value === null) {
    return 0;
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
  else if (upper === 'ICMP' || upper === 'ICMPV6')
    problems.add(
      path,
      `protocol ${value} is not allowed in toPorts (as in Cilium); write ICMP rules as icmps: [{fields: [{type: ` +
        '8}]}] in a rule item without toPorts',
    );
  else if (['VRRP', 'IGMP'].includes(upper))
    problems.add(
      path,
      `protocol ${value} is not supported in toPorts; use TCP, ` +
        'UDP or ANY (a rule without toPorts allows every protocol)',
    );
  else problems.add(path, `unknown protocol ${JSON.stringify(value)}; use TCP, UDP or ANY`);
  return undefined;
}

/**
 * Validates a `toPorts` list at `path`: an empty list when absent (every port), undefined if
 * invalid. `deny` selects the message for L7 rules (deny rules cannot have any).
 */
export function parsePortRules(
  value: unknown,
  path: string,
  deny: boolean,
  problems: ProblemList,
): PortRange[] | undefined {
  const items = problems.list(value, path);
  if (!items) return value === undefined || value === null ? [] : undefined;
  const ranges: PortRange[] = [];
  let ok = true;
  if (!items.every(isObject)) ok = false;
  for (const [rule, itemPath] of problems.objectItems(items, path)) {
    const unsupported: Record<string, string> = { ...UNSUPPORTED_PORT_RULE };
    const rules = rule['rules'];
    const kinds = isObject(rules) ? L7_KINDS.filter((k) => rules[k] !== undefined && rules[k] !== null) : [];
    unsupported['rules'] = deny
      ? 'L7 rules are not allowed in deny rules (Cilium has none); remove rules'
      : `L7 rules${kinds.length > 0 ? ` (${kinds.join(', ')})` : ''} are not supported yet; ` +
        'remove rules to allow the whole port at L4';
    problems.checkFields(rule, itemPath, ['ports'], unsupported);
    const portsPath = joinPath(itemPath, 'ports');
    const ports = problems.list(rule['ports'], portsPath);
    if (!ports || ports.length === 0) {
      // `toPorts: [{}]`: no ports listed means every port of every protocol.
      if (ports || rule['ports'] === undefined || rule['ports'] === null)
        ranges.push({ port: 0, endPort: 0, protocol: 'ANY' });
      else ok = false;
      continue;
    }
    if (ports.length > MAX_PORTS_PER_RULE) {
      problems.add(
        portsPath,
        `too many ports (${ports.length}); the maximum is ${MAX_PORTS_PER_RULE}, split them over several toPorts items`,
      );
      ok = false;
    }
    if (!ports.every(isObject)) ok = false;
    for (const [port, portPath] of problems.objectItems(ports, portsPath)) {
      problems.checkFields(port, portPath, ['port', 'endPort', 'protocol']);
      const number = parsePortNumber(port['port'], joinPath(portPath, 'port'), problems);
      const protocol = parseProtocol(port['protocol'], joinPath(portPath, 'protocol'), problems);
      let endPort = number ?? 0;
      const rawEnd = port['endPort'];
      const endPath = joinPath(portPath, 'endPort');
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

/** Cilium's limit on `icmps[].fields` (`maxICMPFields` in `pkg/policy/api/rule_validation.go`). */
export const MAX_ICMP_FIELDS = 40;

/** The ICMP type of protocol 1, as policy entries carry it. */
const ICMPV4_TYPE_NAMES: Readonly<Record<string, number>> = {
  // Cilium's icmpIpv4TypeNameToCode (pkg/policy/api/icmp.go).
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  Echo: 8,
  EchoRequest: 8,
  RouterAdvertisement: 9,
  RouterSelection: 10,
  TimeExceeded: 11,
  ParameterProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
  Photuris: 40,
  ExtendedEchoRequest: 42,
  ExtendedEchoReply: 43,
};

function parseIcmpType(value: unknown, path: string, problems: ProblemList): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 255) return value;
  if (typeof value === 'string' && /^[0-9]{1,3}$/.test(value) && Number(value) <= 255) return Number(value);
  if (typeof value === 'string' && Object.hasOwn(ICMPV4_TYPE_NAMES, value)) return ICMPV4_TYPE_NAMES[value];
  if (value === undefined || value === null) problems.add(path, 'is required, e.g. type: 8 or type: EchoRequest');
  else
    problems.add(
      path,
      `${describe(value)} is not an ICMP type; ` +
        `use a number from 0 to 255 or one of ${Object.keys(ICMPV4_TYPE_NAMES).join(', ')}`,
    );
  return undefined;
}

/**
 * Validates an `icmps` list at `path` (`[{fields: [{type, family}]}]`) into port ranges of
 * protocol ICMP, one per type; an empty list when absent, undefined if invalid. Family IPv6 is
 * refused: the datapath is IPv4 only.
 */
export function parseIcmpRules(value: unknown, path: string, problems: ProblemList): PortRange[] | undefined {
  const items = problems.list(value, path);
  if (!items) return value === undefined || value === null ? [] : undefined;
  const ranges: PortRange[] = [];
  let ok = true;
  if (!items.every(isObject)) ok = false;
  for (const [rule, itemPath] of problems.objectItems(items, path)) {
    problems.checkFields(rule, itemPath, ['fields']);
    const fieldsPath = joinPath(itemPath, 'fields');
    const fields = problems.list(rule['fields'], fieldsPath);
    if (!fields || fields.length === 0) {
      if (rule['fields'] === undefined || rule['fields'] === null || fields)
        problems.add(fieldsPath, 'at least one ICMP field is required, e.g. fields: [{type: 8, family: IPv4}]');
      ok = false;
      continue;
    }
    if (fields.length > MAX_ICMP_FIELDS) {
      problems.add(
        fieldsPath,
        `too many ICMP types (${fields.length}); the maximum is ${MAX_ICMP_FIELDS}, ` +
          'split them over several icmps items',
      );
      ok = false;
      continue;
    }
    if (!fields.every(isObject)) ok = false;
    for (const [field, fieldPath] of problems.objectItems(fields, fieldsPath)) {
      problems.checkFields(field, fieldPath, ['type', 'family']);
      const family = field['family'];
      if (family !== undefined && family !== null && family !== '' && family !== 'IPv4') {
        problems.add(
          joinPath(fieldPath, 'family'),
          family === 'IPv6'
            ? 'ICMPv6 rules are not supported: the datapath is IPv4 only; remove this field or use family: IPv4'
            : `${describe(family)} is not a family; use IPv4`,
        );
        ok = false;
        continue;
      }
      const type = parseIcmpType(field['type'], joinPath(fieldPath, 'type'), problems);
      if (type === undefined) {
        ok = false;
        continue;
      }
      ranges.push({ port: type, endPort: type, protocol: 'ICMP' });
    }
  }
  return ok ? ranges : undefined;
}
