/**
 * Which names the cluster resolver answers, and with what: the names of the cluster's endpoints
 * (every node's containers), scoped to the querying container's network, as Docker's embedded DNS
 * scopes a host's container names to the network they share.
 *
 * A querier is known by its source address (dockerd's embedded DNS forwards from inside the
 * container's network namespace, so the query comes from the container's own address, on the
 * interface of its route to the resolver). Its container's networks are every network it has an
 * endpoint in (endpoints of one container share `container`). In each such network `N`,
 * `<container>` and `<container>.<N>` name the container, and so do its aliases on `N`
 * (`--network-alias`, compose service names, the short id: `<alias>`, `<alias>.<N>`; an alias several
 * containers share answers all of their addresses, as dockerd does); matching ignores ASCII case
 * (RFC 4343).
 * Pure: the caller supplies the current endpoints.
 */

/** One endpoint as the resolver sees it (local or another node's). */
export interface NamedEndpoint {
  ip: string;
  /** Container name without Docker's leading '/'. */
  name: string;
  /** The container's other names on this network. */
  aliases?: readonly string[];
  /** Cluster-wide network name (the `cilium.network` name, else Docker's network name). */
  network: string;
  /** Docker's container id, when known (the querier's other networks are found through it). */
  container?: string;
}

/** The resolver's verdict on a name. */
export type NameVerdict =
  /** A cluster name: answer these addresses (A) or an empty NOERROR (other types). */
  | { kind: 'cluster'; addresses: string[] }
  /** Inside the querier's network domain but no such container: NXDOMAIN, never forwarded. */
  | { kind: 'absent' }
  /** Not ours to answer: forward (or refuse without upstreams). */
  | { kind: 'foreign' };

/** Decides what `qname` (as sent, any case, no trailing dot) means for the endpoint at `sourceIp`. */
export function lookupClusterName(endpoints: Iterable<NamedEndpoint>, sourceIp: string, qname: string): NameVerdict {
  const all = [...endpoints];
  const querier = all.find((e) => e.ip === sourceIp);
  if (!querier || qname === '') return { kind: 'foreign' };
  const name = qname.toLowerCase();
  const networks = new Set([querier.network.toLowerCase()]);
  if (querier.container)
    for (const e of all) if (e.container === querier.container) networks.add(e.network.toLowerCase());
  const addresses: string[] = [];
  for (const e of all) {
    const network = e.network.toLowerCase();
    if (!networks.has(network) || e.ip === '') continue;
    for (const candidate of [e.name, ...(e.aliases ?? [])]) {
      const n = candidate.toLowerCase();
      if (n !== '' && (name === n || name === `${n}.${network}`)) {
        addresses.push(e.ip);
        break;
      }
    }
  }
  if (addresses.length > 0) return { kind: 'cluster', addresses: [...new Set(addresses)].sort() };
  if ([...networks].some((network) => name.endsWith(`.${network}`))) return { kind: 'absent' };
  return { kind: 'foreign' };
}
