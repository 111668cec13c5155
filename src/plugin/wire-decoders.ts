/**
 * One decoder per request type of wire.ts: the body of each plugin call is decoded once, here,
 * and the handlers take the typed request, so the compiler checks every field they use. Types and
 * lengths are checked here; what the driver supports (IPv4 only, one subnet, address forms) is the
 * handlers' to say, in the words of the docker command that caused it.
 */
import {
  objectOf,
  optionalArrayOf,
  optionalBoolean,
  optionalId,
  optionalObject,
  optionalObjectOf,
  optionalString,
  optionalStringMap,
  requestDecoder,
  requiredId,
  requiredString,
  type RequestDecoder,
} from './request-body.js';
import type {
  AllocateNetworkRequest,
  CreateEndpointRequest,
  CreateNetworkRequest,
  EndpointIdRequest,
  IPAMData,
  JoinRequest,
  NetworkIdRequest,
  ProgramExternalConnectivityRequest,
  ReleaseAddressRequest,
  ReleasePoolRequest,
  RequestAddressRequest,
  RequestPoolRequest,
} from './wire.js';

/** More IPAM data blocks than any network has (dockerd sends one per --subnet). */
const MAX_IPAM_DATA = 64;

const ipamData = objectOf<IPAMData>({
  AddressSpace: optionalString,
  Pool: optionalString,
  Gateway: optionalString,
  AuxAddresses: optionalStringMap,
});

/** `NetworkDriver.CreateNetwork`. */
export const decodeCreateNetworkRequest: RequestDecoder<CreateNetworkRequest> = requestDecoder({
  NetworkID: requiredId,
  Options: optionalObject,
  IPv4Data: optionalArrayOf(ipamData, MAX_IPAM_DATA),
  IPv6Data: optionalArrayOf(ipamData, MAX_IPAM_DATA),
});

/** `NetworkDriver.AllocateNetwork` (swarm managers only). */
export const decodeAllocateNetworkRequest: RequestDecoder<AllocateNetworkRequest> = requestDecoder({
  NetworkID: requiredId,
  Options: optionalStringMap,
  IPv4Data: optionalArrayOf(ipamData, MAX_IPAM_DATA),
  IPv6Data: optionalArrayOf(ipamData, MAX_IPAM_DATA),
});

/** `NetworkDriver.DeleteNetwork` and `FreeNetwork`. */
export const decodeNetworkIdRequest: RequestDecoder<NetworkIdRequest> = requestDecoder({ NetworkID: requiredId });

/** `NetworkDriver.CreateEndpoint`. */
export const decodeCreateEndpointRequest: RequestDecoder<CreateEndpointRequest> = requestDecoder({
  NetworkID: requiredId,
  EndpointID: requiredId,
  Interface: optionalObjectOf({ Address: optionalString, AddressIPv6: optionalString, MacAddress: optionalString }),
  Options: optionalObject,
});

/** `NetworkDriver.DeleteEndpoint` and `Leave`: both ids. */
export const decodeEndpointIdRequest: RequestDecoder<EndpointIdRequest> = requestDecoder({
  NetworkID: requiredId,
  EndpointID: requiredId,
});

/** `NetworkDriver.EndpointOperInfo` and `RevokeExternalConnectivity`: the endpoint id is enough. */
export const decodeEndpointOnlyRequest: RequestDecoder<EndpointIdRequest> = requestDecoder({
  NetworkID: optionalId,
  EndpointID: requiredId,
});

/** `NetworkDriver.Join`. */
export const decodeJoinRequest: RequestDecoder<JoinRequest> = requestDecoder({
  NetworkID: requiredId,
  EndpointID: requiredId,
  SandboxKey: optionalString,
  Options: optionalObject,
});

/** `NetworkDriver.ProgramExternalConnectivity`. */
export const decodeProgramExternalConnectivityRequest: RequestDecoder<ProgramExternalConnectivityRequest> =
  requestDecoder({
    NetworkID: optionalId,
    EndpointID: requiredId,
    Options: optionalObject,
  });

/** `IpamDriver.RequestPool`: dockerd always names the address space; a body without it is not a real request. */
export const decodeRequestPoolRequest: RequestDecoder<RequestPoolRequest> = requestDecoder({
  AddressSpace: requiredString,
  Pool: optionalString,
  SubPool: optionalString,
  Options: optionalStringMap,
  V6: optionalBoolean,
});

/** `IpamDriver.ReleasePool`. */
export const decodeReleasePoolRequest: RequestDecoder<ReleasePoolRequest> = requestDecoder({ PoolID: requiredString });

/** `IpamDriver.RequestAddress`. */
export const decodeRequestAddressRequest: RequestDecoder<RequestAddressRequest> = requestDecoder({
  PoolID: requiredString,
  Address: optionalString,
  Options: optionalStringMap,
});

/** `IpamDriver.ReleaseAddress`. */
export const decodeReleaseAddressRequest: RequestDecoder<ReleaseAddressRequest> = requestDecoder({
  PoolID: requiredString,
  Address: requiredString,
});

/** A plugin call's handler as the server runs it: the raw JSON body in. */
export type RawHandler = (body: unknown) => Promise<unknown>;

/** A call handler that decodes its body with `decode` before `handle` sees it. */
export type DecodedHandler = (raw: unknown, call: string) => Promise<unknown>;

/** `handle` run on the request `decode` makes of the body (the request type is inferred from the decoder). */
export function decoded<R>(decode: RequestDecoder<R>, handle: (req: R) => Promise<unknown>): DecodedHandler {
  return async (raw, call) => handle(decode(call, raw));
}

/** Handlers keyed by method name, each told its method name for the decoders' messages. */
export function bindCalls(handlers: Record<string, DecodedHandler>): Record<string, RawHandler> {
  return Object.fromEntries(
    Object.entries(handlers).map(([call, handler]) => [call, (raw: unknown) => handler(raw, call)]),
  );
}
