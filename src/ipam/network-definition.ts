/**
 * What a Docker network is for its name across hosts (subnet, --ip-range, gateway, --internal,
 * -o mtu), and how two definitions are compared: the one wording of what differs and of a name
 * conflict, with what to do about it. No I/O (network-records.ts stores the definitions,
 * network-registry.ts decides when they are compared).
 */
import { formatIpv4Cidr, parseIpv4Cidr } from '../util/ipv4.js';
import type { RequestPoolRequest } from './types.js';

/** `--ipam-opt cilium.network=<name>`: the cluster-wide name of the network being created. */
export const NETWORK_NAME_OPTION = 'cilium.network';

/** Per-network settings decided only at CreateNetwork (after RequestPool). */
export interface NetworkDetails {
  /** Gateway address (plain IPv4). */
  gateway: string;
  /** `--internal`. */
  internal: boolean;
  /** `-o com.docker.network.driver.mtu=N`, when given. */
  mtu?: number;
}

/** What a network is: the parts that must be the same on every host using its name. */
export interface NetworkDefinition {
  /** Canonical CIDR. */
  subnet: string;
  /** `--ip-range`, canonical CIDR, when the pool has one. */
  ipRange?: string;
  /** Unknown only between an explicit RequestPool and the first CreateNetwork. */
  details?: NetworkDetails;
}

/** The stored cluster record `networks/v1/<name>`. */
export interface ClusterNetwork extends NetworkDefinition {
  name: string;
  createdBy: string;
  createdAt: string;
}

/** The definition with its subnet (and range) in canonical CIDR form. */
export function canonicalDefinition(definition: NetworkDefinition): NetworkDefinition {
  const subnet = parseIpv4Cidr(definition.subnet);
  const range = definition.ipRange === undefined ? undefined : parseIpv4Cidr(definition.ipRange);
  const result: NetworkDefinition = { ...definition, subnet: subnet ? formatIpv4Cidr(subnet) : definition.subnet };
  if (range) result.ipRange = formatIpv4Cidr(range);
  return result;
}

/** The definition a RequestPool asks for, if it names a subnet (canonical form), else undefined. */
export function requestedDefinition(req: RequestPoolRequest): NetworkDefinition | undefined {
  if (req.pool === '') return undefined;
  const subnet = parseIpv4Cidr(req.pool);
  if (!subnet) return undefined; // the IPAM rejects it with its own message
  const definition: NetworkDefinition = { subnet: formatIpv4Cidr(subnet) };
  const range = req.subPool === '' ? undefined : parseIpv4Cidr(req.subPool);
  if (range) definition.ipRange = formatIpv4Cidr(range);
  return definition;
}

/** What is wrong with `subnet` when the cluster record `owner` of another name overlaps it. */
export function subnetTaken(subnet: string, owner: ClusterNetwork): string {
  return `its subnet ${subnet} overlaps ${owner.subnet} of network "${owner.name}" in the cluster`;
}

/** '' when `mine` matches the cluster record, else what differs ("subnet X there, Y here; ..."). */
export function differences(cluster: NetworkDefinition, mine: NetworkDefinition, node: string): string {
  const parts: string[] = [];
  const here = `on node ${node}`;
  if (cluster.subnet !== mine.subnet) parts.push(`subnet ${cluster.subnet} in the cluster, ${mine.subnet} ${here}`);
  if ((cluster.ipRange ?? '') !== (mine.ipRange ?? ''))
    parts.push(`--ip-range ${cluster.ipRange ?? '(none)'} in the cluster, ${mine.ipRange ?? '(none)'} ${here}`);
  if (cluster.details && mine.details) {
    const a = cluster.details;
    const b = mine.details;
    if (a.gateway !== b.gateway) parts.push(`gateway ${a.gateway} in the cluster, ${b.gateway} ${here}`);
    if (a.internal !== b.internal)
      parts.push(
        `${a.internal ? '--internal' : 'not --internal'} in the cluster, ` +
          `${b.internal ? '--internal' : 'not --internal'} ${here}`,
      );
    if ((a.mtu ?? 0) !== (b.mtu ?? 0))
      parts.push(`mtu ${a.mtu ?? '(default)'} in the cluster, ${b.mtu ?? '(default)'} ${here}`);
  }
  return parts.join('; ');
}

/** The one wording of a name conflict: both definitions, who created the record, what to do. */
export function conflictMessage(name: string, record: ClusterNetwork, what: string, atCreate: boolean): string {
  const flags = [`--subnet ${record.subnet}`];
  if (record.ipRange) flags.push(`--ip-range ${record.ipRange}`);
  if (record.details) {
    flags.push(`--gateway ${record.details.gateway}`);
    if (record.details.internal) flags.push('--internal');
    if (record.details.mtu !== undefined) flags.push(`-o com.docker.network.driver.mtu=${record.details.mtu}`);
  }
  const fix = atCreate
    ? `create it with the cluster's definition (${flags.join(' ')}, ` +
      `or without --subnet and with --ipam-opt ${NETWORK_NAME_OPTION}=${record.name}) or choose another network name`
    : `remove this network (docker network rm) and create it again with the cluster's definition ` +
      `(${flags.join(' ')}), or use another network name; containers cannot join it until then`;
  return (
    `network "${name}" conflicts with the cluster record networks/v1/${record.name} (created by node ` +
    `${record.createdBy} at ${record.createdAt}): ${what}; ${fix}`
  );
}
