/**
 * What a new endpoint claims on this node besides its record: a local numeric id, an address no
 * other endpoint holds, and veth names no other endpoint has. Decided from the endpoints already
 * there and those being created (the caller passes both, without the endpoint itself).
 */
import { vethNames } from '../datapath/link/veth.js';
import { AddressInUseError, CiliumDockerError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { EndpointRecord } from './endpoint.js';

/** Largest local endpoint id (the datapath's endpoint map is indexed by it). */
const MAX_ENDPOINT_ID = 4095;

/** What another endpoint holds. */
export type ClaimedEndpoint = Pick<EndpointRecord, 'id' | 'endpointId' | 'ipv4' | 'hostIfName' | 'containerIfName'> & {
  containerName?: string;
};

/**
 * Refuses an address another endpoint of this node holds: its /32 route and datapath entry
 * would move to the new veth. Pools never overlap, so an address is unique across networks.
 */
export function checkAddressFree(others: readonly ClaimedEndpoint[], endpointId: string, ipv4: string): void {
  const holder = others.find((e) => e.ipv4 === ipv4);
  if (!holder) return;
  const who = holder.containerName
    ? `endpoint ${short(holder.endpointId)} of container ${holder.containerName}`
    : `endpoint ${short(holder.endpointId)}`;
  throw new AddressInUseError(
    `cannot create endpoint ${short(endpointId)} with address ${ipv4}: ${who} on this node holds it; ` +
      'an address is released only after its endpoint is deleted (docker stop/rm or network ' +
      'disconnect the container that has it)',
  );
}

/**
 * The endpoint's veth names: derived from its id, or, when another endpoint already has those
 * (ids that share their first 11 hex characters), a variant no other endpoint has. Names are
 * recorded with the endpoint, so a restart does not derive them again.
 */
export function freeVethNames(
  others: readonly ClaimedEndpoint[],
  endpointId: string,
  log: Logger,
): { host: string; container: string } {
  const taken = new Set(others.flatMap((e) => [e.hostIfName, e.containerIfName]));
  for (let attempt = 0; ; attempt++) {
    const names = vethNames(endpointId, attempt);
    if (taken.has(names.host) || taken.has(names.container)) continue;
    if (attempt > 0)
      log.warn(
        { endpoint: endpointId, veth: names.host },
        'veth name of another endpoint with the same id prefix: using a derived name',
      );
    return names;
  }
}

/** The lowest local id no endpoint has (ERR_TOO_MANY_ENDPOINTS when all are taken). */
export function allocateLocalId(others: readonly ClaimedEndpoint[]): number {
  const used = new Set(others.map((e) => e.id));
  for (let id = 1; id <= MAX_ENDPOINT_ID; id++) if (!used.has(id)) return id;
  throw new CiliumDockerError(
    'Conflict',
    'ERR_TOO_MANY_ENDPOINTS',
    `this node already has ${MAX_ENDPOINT_ID} endpoints; remove containers first`,
  );
}

/** How messages name a Docker id: its first 12 characters, as `docker ps` does. */
export function short(id: string): string {
  return id.slice(0, 12);
}
