/**
 * Docker's NetworkDriver API: request validation and translation between the wire types and the
 * endpoint manager. Handlers never call dockerd (dockerd may be waiting on us); container labels
 * arrive later through the Docker watcher.
 */
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { Ipam } from '../ipam/ipam.js';
import { BadRequestError } from '../util/errors.js';
import type { NetworkCreationTracker } from './network-creation-tracker.js';
import { optionalArray, optionalObject, optionalString, requireId, requireObject, type Body } from './request-body.js';
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

function parseCidr(call: string, field: string, value: string): { ip: string; prefixLength: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(value);
  if (!m || Number(m[2]) > 32 || m[1].split('.').some((o) => Number(o) > 255)) {
    throw new BadRequestError(`${call}: ${field} "${value}" is not an IPv4 address in CIDR form (a.b.c.d/len)`);
  }
  return { ip: m[1], prefixLength: Number(m[2]) };
}

function stringMap(obj: Body): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
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
): Record<string, (body: unknown) => Promise<unknown>> {
  return {
    async GetCapabilities(): Promise<NetworkCapabilitiesResponse> {
      return { Scope: 'local', ConnectivityScope: 'local' };
    },

    async CreateNetwork(raw) {
      const call = 'CreateNetwork';
      const body = requireObject(call, raw);
      const networkId = requireId(call, body, 'NetworkID');
      const options = optionalObject(call, body, 'Options');
      const ipv4 = optionalArray(call, body, 'IPv4Data');
      const ipv6 = optionalArray(call, body, 'IPv6Data');
      if (ipv6.length > 0) throw new BadRequestError('IPv6 is not supported by the cilium driver yet; create the network without --ipv6');
      if (ipv4.length === 0) throw new BadRequestError('network has no IPv4 pool; create it with --ipam-driver cilium (and optionally --subnet)');
      if (ipv4.length > 1) throw new BadRequestError('only one IPv4 subnet per network is supported; pass a single --subnet');
      const data = ipv4[0];
      if (typeof data !== 'object' || data === null) throw new BadRequestError(`${call}: IPv4Data[0] must be an object`);
      const pool = optionalString(call, data as Body, 'Pool');
      const gatewayCidr = optionalString(call, data as Body, 'Gateway');
      if (pool === '') throw new BadRequestError(`${call}: IPv4Data[0].Pool is missing`);
      parseCidr(call, 'IPv4Data[0].Pool', pool);
      const gateway = gatewayCidr === '' ? '' : parseCidr(call, 'IPv4Data[0].Gateway', gatewayCidr).ip;
      const generic = stringMap(optionalObject(call, options, OPTION_GENERIC));
      let mtu = driverOptions.defaultMtu ?? DEFAULT_MTU;
      if (generic[OPTION_MTU] !== undefined) {
        mtu = Number(generic[OPTION_MTU]);
        if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new BadRequestError(`option ${OPTION_MTU}="${generic[OPTION_MTU]}" must be an integer from 576 to 65535`);
      }
      // A retried CreateNetwork of a network already recorded is answered from the record.
      if (!endpoints.getNetwork(networkId)) await allocations.checkNetworkPool(pool, gateway);
      creations.networkCreated(pool);
      await endpoints.createNetwork({
        networkId,
        subnet: pool,
        gateway,
        internal: options[OPTION_INTERNAL] === true || options[OPTION_INTERNAL] === 'true',
        mtu,
        options: generic,
      });
      return {};
    },

    async DeleteNetwork(raw) {
      const body = requireObject('DeleteNetwork', raw);
      await endpoints.deleteNetwork(requireId('DeleteNetwork', body, 'NetworkID'));
      return {};
    },

    async CreateEndpoint(raw): Promise<CreateEndpointResponse> {
      const call = 'CreateEndpoint';
      const body = requireObject(call, raw);
      const networkId = requireId(call, body, 'NetworkID');
      const endpointId = requireId(call, body, 'EndpointID');
      const iface = optionalObject(call, body, 'Interface');
      const address = optionalString(call, iface, 'Address');
      const requestedMac = optionalString(call, iface, 'MacAddress');
      if (optionalString(call, iface, 'AddressIPv6') !== '') throw new BadRequestError('IPv6 is not supported by the cilium driver yet');
      if (address === '') throw new BadRequestError(`${call}: endpoint ${endpointId.slice(0, 12)} has no IPv4 address; use --ipam-driver cilium for cilium networks`);
      if (requestedMac !== '' && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(requestedMac)) throw new BadRequestError(`${call}: MacAddress "${requestedMac}" is not a MAC address`);
      const { ip, prefixLength } = parseCidr(call, 'Interface.Address', address);
      // Remote drivers must publish ports themselves; refusing is better than pretending.
      const portmap = optionalObject(call, body, 'Options')[OPTION_PORT_MAP];
      if (Array.isArray(portmap) && portmap.length > 0) {
        throw new BadRequestError('publishing ports (-p/--publish) is not supported by the cilium driver yet; reach the container by its address, or publish through a container on the default bridge');
      }
      // dockerd's order is RequestAddress, then CreateEndpoint: the address must be one the IPAM
      // handed out for this network (an unknown network is the endpoint manager's NotFound).
      const network = endpoints.getNetwork(networkId);
      if (network) await allocations.checkEndpointAddress(network.subnet, ip, prefixLength);
      const ep = await endpoints.createEndpoint({ networkId, endpointId, ipv4: ip, prefixLength, mac: requestedMac });
      // Only empty fields may be filled in the reply ("driver modified interface address" otherwise).
      return requestedMac === '' ? { Interface: { MacAddress: ep.mac } } : {};
    },

    async EndpointOperInfo(raw): Promise<EndpointOperInfoResponse> {
      const body = requireObject('EndpointOperInfo', raw);
      const ep = endpoints.getEndpoint(requireId('EndpointOperInfo', body, 'EndpointID'));
      if (!ep) return { Value: {} };
      return { Value: { id: ep.id, state: ep.state, identity: ep.identity, hostInterface: ep.hostIfName, ipv4: ep.ipv4, mac: ep.mac } };
    },

    async DeleteEndpoint(raw) {
      const body = requireObject('DeleteEndpoint', raw);
      await endpoints.deleteEndpoint(requireId('DeleteEndpoint', body, 'NetworkID'), requireId('DeleteEndpoint', body, 'EndpointID'));
      return {};
    },

    async Join(raw): Promise<JoinResponse> {
      const call = 'Join';
      const body = requireObject(call, raw);
      const networkId = requireId(call, body, 'NetworkID');
      const endpointId = requireId(call, body, 'EndpointID');
      const sandboxKey = optionalString(call, body, 'SandboxKey');
      const result = await endpoints.join(networkId, endpointId, sandboxKey);
      const reply: JoinResponse = { InterfaceName: { SrcName: result.srcName, DstPrefix: 'eth' } };
      if (result.gateway) reply.Gateway = result.gateway;
      else reply.DisableGatewayService = true;
      return reply;
    },

    async Leave(raw) {
      const body = requireObject('Leave', raw);
      await endpoints.leave(requireId('Leave', body, 'NetworkID'), requireId('Leave', body, 'EndpointID'));
      return {};
    },

    async ProgramExternalConnectivity(raw) {
      const body = requireObject('ProgramExternalConnectivity', raw);
      requireId('ProgramExternalConnectivity', body, 'EndpointID');
      return {};
    },

    async RevokeExternalConnectivity(raw) {
      const body = requireObject('RevokeExternalConnectivity', raw);
      requireId('RevokeExternalConnectivity', body, 'EndpointID');
      return {};
    },

    async DiscoverNew() {
      return {};
    },

    async DiscoverDelete() {
      return {};
    },

    async AllocateNetwork(raw) {
      const body = requireObject('AllocateNetwork', raw);
      requireId('AllocateNetwork', body, 'NetworkID');
      return { Options: {} };
    },

    async FreeNetwork(raw) {
      const body = requireObject('FreeNetwork', raw);
      requireId('FreeNetwork', body, 'NetworkID');
      return {};
    },
  };
}
