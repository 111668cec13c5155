/**
 * Docker's NetworkDriver API: request validation and translation between the wire types and the
 * endpoint manager. Handlers never call dockerd (dockerd may be waiting on us); container labels
 * arrive later through the Docker watcher.
 */
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { Ipam } from '../ipam/ipam.js';
import { BadRequestError } from '../util/errors.js';
import { formatIpv4, parseIpv4WithPrefix } from '../util/ipv4.js';
import type { NetworkCreationTracker } from './network-creation-tracker.js';
import { optionalObject, type Body } from './request-body.js';
import {
  bindCalls,
  decodeAllocateNetworkRequest,
  decodeCreateEndpointRequest,
  decodeCreateNetworkRequest,
  decodeEndpointIdRequest,
  decodeEndpointOnlyRequest,
  decodeJoinRequest,
  decodeNetworkIdRequest,
  decodeProgramExternalConnectivityRequest,
  decoded,
  type RawHandler,
} from './wire-decoders.js';
import {
  OPTION_GENERIC,
  OPTION_INTERNAL,
  type CreateEndpointResponse,
  type EndpointOperInfoResponse,
  type JoinResponse,
  type NetworkCapabilitiesResponse,
} from './wire.js';

/** `-o com.docker.network.driver.mtu=N` sets the containers' MTU. */
const OPTION_MTU = 'com.docker.network.driver.mtu';
const DEFAULT_MTU = 1500;
/** CreateEndpoint option listing `-p` port mappings. */
const OPTION_PORT_MAP = 'com.docker.network.portmap';

/** `a.b.c.d/len` as dockerd sends it (util/ipv4.ts's strict form: `010.0.0.1/24` is refused). */
function parseCidr(call: string, field: string, value: string): { ip: string; prefixLength: number } {
  const parsed = parseIpv4WithPrefix(value);
  if (!parsed)
    throw new BadRequestError(`${call}: ${field} "${value}" is not an IPv4 address in CIDR form (a.b.c.d/len)`);
  return { ip: formatIpv4(parsed.address), prefixLength: parsed.prefixLength };
}

function stringMap(obj: Body): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj))
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
  return out;
}

/**
 * What the driver asks the IPAM: dockerd hands the driver the pool and addresses it got from the
 * IPAM, and the driver takes nothing else (a raw call on the socket could name any address).
 */
export type AllocationChecks = Pick<Ipam, 'checkNetworkPool' | 'checkEndpointAddress'>;

/** The NetworkDriver handlers, keyed by method name. */
export function networkDriverHandlers(
  endpoints: EndpointManager,
  creations: NetworkCreationTracker,
  allocations: AllocationChecks,
  /** defaultMtu: containers' MTU when the network sets none (the overlay's, on tunnelled hosts). */
  driverOptions: { defaultMtu?: number } = {},
): Record<string, RawHandler> {
  return bindCalls({
    async GetCapabilities(): Promise<NetworkCapabilitiesResponse> {
      return { Scope: 'local', ConnectivityScope: 'local' };
    },

    CreateNetwork: decoded(decodeCreateNetworkRequest, async (req) => {
      const call = 'CreateNetwork';
      if (req.IPv6Data.length > 0)
        throw new BadRequestError('IPv6 is not supported by the cilium driver yet; create the network without --ipv6');
      if (req.IPv4Data.length === 0)
        throw new BadRequestError(
          'network has no IPv4 pool; create it with --ipam-driver cilium (and optionally --subnet)',
        );
      if (req.IPv4Data.length > 1)
        throw new BadRequestError('only one IPv4 subnet per network is supported; pass a single --subnet');
      const { Pool: pool, Gateway: gatewayCidr } = req.IPv4Data[0]!;
      if (pool === '') throw new BadRequestError(`${call}: IPv4Data[0].Pool is missing`);
      parseCidr(call, 'IPv4Data[0].Pool', pool);
      const gateway = gatewayCidr === '' ? '' : parseCidr(call, 'IPv4Data[0].Gateway', gatewayCidr).ip;
      const generic = stringMap(optionalObject(call, req.Options[OPTION_GENERIC], OPTION_GENERIC));
      let mtu = driverOptions.defaultMtu ?? DEFAULT_MTU;
      if (generic[OPTION_MTU] !== undefined) {
        mtu = Number(generic[OPTION_MTU]);
        if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
          throw new BadRequestError(
            `option ${OPTION_MTU}="${generic[OPTION_MTU]}" must be an integer from 576 to 65535`,
          );
      }
      // A retried CreateNetwork of a network already recorded is answered from the record.
      if (!endpoints.getNetwork(req.NetworkID)) await allocations.checkNetworkPool(pool, gateway);
      creations.networkCreated(pool);
      const internal = req.Options[OPTION_INTERNAL];
      await endpoints.createNetwork({
        networkId: req.NetworkID,
        subnet: pool,
        gateway,
        internal: internal === true || internal === 'true',
        mtu,
        options: generic,
      });
      return {};
    }),

    DeleteNetwork: decoded(decodeNetworkIdRequest, async (req) => {
      await endpoints.deleteNetwork(req.NetworkID);
      return {};
    }),

    CreateEndpoint: decoded(decodeCreateEndpointRequest, async (req): Promise<CreateEndpointResponse> => {
      const call = 'CreateEndpoint';
      const { Address: address, AddressIPv6: addressIpv6, MacAddress: requestedMac } = req.Interface;
      if (addressIpv6 !== '') throw new BadRequestError('IPv6 is not supported by the cilium driver yet');
      if (address === '')
        throw new BadRequestError(
          `${call}: endpoint ${req.EndpointID.slice(0, 12)} has no IPv4 address; ` +
            'use --ipam-driver cilium for cilium networks',
        );
      if (requestedMac !== '' && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(requestedMac))
        throw new BadRequestError(`${call}: MacAddress "${requestedMac}" is not a MAC address`);
      const { ip, prefixLength } = parseCidr(call, 'Interface.Address', address);
      // Remote drivers must publish ports themselves; refusing is better than pretending.
      const portmap = req.Options[OPTION_PORT_MAP];
      if (Array.isArray(portmap) && portmap.length > 0) {
        throw new BadRequestError(
          'publishing ports (-p/--publish) is not supported by the cilium driver yet; ' +
            'reach the container by its address, or publish through a container on the default bridge',
        );
      }
      // dockerd's order is RequestAddress, then CreateEndpoint: the address must be one the IPAM
      // handed out for this network (an unknown network is the endpoint manager's NotFound).
      const network = endpoints.getNetwork(req.NetworkID);
      if (network) await allocations.checkEndpointAddress(network.subnet, ip, prefixLength);
      const ep = await endpoints.createEndpoint({
        networkId: req.NetworkID,
        endpointId: req.EndpointID,
        ipv4: ip,
        prefixLength,
        mac: requestedMac,
      });
      // Only empty fields may be filled in the reply ("driver modified interface address" otherwise).
      return requestedMac === '' ? { Interface: { MacAddress: ep.mac } } : {};
    }),

    EndpointOperInfo: decoded(decodeEndpointOnlyRequest, async (req): Promise<EndpointOperInfoResponse> => {
      const ep = endpoints.getEndpoint(req.EndpointID);
      if (!ep) return { Value: {} };
      return {
        Value: {
          id: ep.id,
          state: ep.state,
          identity: ep.identity,
          hostInterface: ep.hostIfName,
          ipv4: ep.ipv4,
          mac: ep.mac,
        },
      };
    }),

    DeleteEndpoint: decoded(decodeEndpointIdRequest, async (req) => {
      await endpoints.deleteEndpoint(req.NetworkID, req.EndpointID);
      return {};
    }),

    Join: decoded(decodeJoinRequest, async (req): Promise<JoinResponse> => {
      const result = await endpoints.join(req.NetworkID, req.EndpointID, req.SandboxKey);
      const reply: JoinResponse = { InterfaceName: { SrcName: result.srcName, DstPrefix: 'eth' } };
      if (result.gateway) reply.Gateway = result.gateway;
      else reply.DisableGatewayService = true;
      return reply;
    }),

    Leave: decoded(decodeEndpointIdRequest, async (req) => {
      await endpoints.leave(req.NetworkID, req.EndpointID);
      return {};
    }),

    ProgramExternalConnectivity: decoded(decodeProgramExternalConnectivityRequest, async () => ({})),

    RevokeExternalConnectivity: decoded(decodeEndpointOnlyRequest, async () => ({})),

    // Node discovery is for global-scope drivers; dockerd 20.10 sends it anyway: nothing to learn.
    async DiscoverNew() {
      return {};
    },

    async DiscoverDelete() {
      return {};
    },

    AllocateNetwork: decoded(decodeAllocateNetworkRequest, async () => ({ Options: {} })),

    FreeNetwork: decoded(decodeNetworkIdRequest, async () => ({})),
  });
}
