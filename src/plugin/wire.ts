/**
 * Docker's remote NetworkDriver and IpamDriver wire contract (libnetwork `drivers/remote/api`,
 * `ipams/remote/api`), field names exactly as on the wire (Go structs without json tags, so
 * PascalCase). Nothing outside `src/plugin/` sees these types. "Who sets it" follows each field.
 * Observed behaviour of dockerd 20.10 is in shared/reference/docker-plugin-protocol.md.
 *
 * Requests are the types `wire-decoders.ts` decodes bodies into, as Go's zero values: a field
 * dockerd omits or sends as null is '' / {} / [] / false here.
 */

/** Reply to `Plugin.Activate` (plugin). */
export interface ActivateResponse {
  Implements: Array<'NetworkDriver' | 'IpamDriver'>;
}

/** Reply to `NetworkDriver.GetCapabilities` (plugin). Scope "local": see protocol reference fact 5. */
export interface NetworkCapabilitiesResponse {
  Scope: 'local' | 'global';
  ConnectivityScope: 'local' | 'global';
}

/** One IPAM data block of CreateNetwork/AllocateNetwork (dockerd). Gateway and aux values are CIDR strings. */
export interface IPAMData {
  AddressSpace: string;
  Pool: string;
  /** '' when the network has no gateway. */
  Gateway: string;
  /** `--aux-address` names -> CIDR strings. */
  AuxAddresses: Record<string, string>;
}

/** `NetworkDriver.CreateNetwork` request (dockerd). */
export interface CreateNetworkRequest {
  NetworkID: string;
  /** `com.docker.network.generic` (map of `-o`), `com.docker.network.enable_ipv6`, `com.docker.network.internal`. */
  Options: Record<string, unknown>;
  IPv4Data: IPAMData[];
  IPv6Data: IPAMData[];
}

/** `NetworkDriver.DeleteNetwork` / `FreeNetwork` request (dockerd). */
export interface NetworkIdRequest {
  NetworkID: string;
}

/** `NetworkDriver.AllocateNetwork` request (dockerd swarm manager only). */
export interface AllocateNetworkRequest {
  NetworkID: string;
  Options: Record<string, string>;
  IPv4Data: IPAMData[];
  IPv6Data: IPAMData[];
}

/** The interface of CreateEndpoint (dockerd); Address is CIDR, MacAddress "" unless set. */
export interface EndpointInterface {
  Address: string;
  AddressIPv6: string;
  MacAddress: string;
}

/** `NetworkDriver.CreateEndpoint` request (dockerd). */
export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface: EndpointInterface;
  /** exposed ports, port map, `--driver-opt` of `network connect`, base64 MAC. */
  Options: Record<string, unknown>;
}

/** `NetworkDriver.CreateEndpoint` reply (plugin): may fill only fields that were empty. */
export interface CreateEndpointResponse {
  Interface?: Partial<EndpointInterface>;
}

/** Requests naming one endpoint (EndpointOperInfo, DeleteEndpoint, Leave, RevokeExternalConnectivity). */
export interface EndpointIdRequest {
  /** dockerd always sends it; '' for the calls that do not need it when a caller omitted it. */
  NetworkID: string;
  EndpointID: string;
}

/** `NetworkDriver.EndpointOperInfo` reply (plugin); free-form, shown nowhere by dockerd 20.10. */
export interface EndpointOperInfoResponse {
  Value: Record<string, unknown>;
}

/** `NetworkDriver.Join` request (dockerd). */
export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  SandboxKey: string;
  Options: Record<string, unknown>;
}

/** A static route in a Join reply: RouteType 0 = via NextHop, 1 = connected. */
export interface StaticRoute {
  Destination: string;
  RouteType: 0 | 1;
  NextHop?: string;
}

/** `NetworkDriver.Join` reply (plugin). Always a Gateway or DisableGatewayService (else docker_gwbridge). */
export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes?: StaticRoute[];
  DisableGatewayService?: boolean;
}

/** `NetworkDriver.ProgramExternalConnectivity` request (dockerd). */
export interface ProgramExternalConnectivityRequest {
  /** As in {@link EndpointIdRequest}. */
  NetworkID: string;
  EndpointID: string;
  Options: Record<string, unknown>;
}

/**
 * `NetworkDriver.DiscoverNew` / `DiscoverDelete` request (dockerd 20.10 sends it to local-scope
 * drivers too). Not decoded: the driver learns nothing from it and answers {} to any body.
 */
export interface DiscoveryRequest {
  DiscoveryType: number;
  DiscoveryData: unknown;
}

/** Reply to `IpamDriver.GetCapabilities` (plugin). */
export interface IpamCapabilitiesResponse {
  RequiresMACAddress: boolean;
  RequiresRequestReplay: boolean;
}

/** Reply to `IpamDriver.GetDefaultAddressSpaces` (plugin). */
export interface AddressSpacesResponse {
  LocalDefaultAddressSpace: string;
  GlobalDefaultAddressSpace: string;
}

/** `IpamDriver.RequestPool` request (dockerd). Pool "" when no --subnet; SubPool from --ip-range. */
export interface RequestPoolRequest {
  AddressSpace: string;
  Pool: string;
  SubPool: string;
  /** `--ipam-opt` values; null on the wire when there are none. */
  Options: Record<string, string>;
  V6: boolean;
}

/** `IpamDriver.RequestPool` reply (plugin). */
export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

/** `IpamDriver.ReleasePool` request (dockerd). */
export interface ReleasePoolRequest {
  PoolID: string;
}

/** `IpamDriver.RequestAddress` request (dockerd). Address is a plain IP or "". */
export interface RequestAddressRequest {
  PoolID: string;
  Address: string;
  /**
   * `{"RequestAddressType":"com.docker.network.gateway"}` for the gateway; null (so {}) or the
   * MAC option for endpoints.
   */
  Options: Record<string, string>;
}

/** `IpamDriver.RequestAddress` reply (plugin): Address in CIDR form. */
export interface RequestAddressResponse {
  Address: string;
  Data: Record<string, string>;
}

/** `IpamDriver.ReleaseAddress` request (dockerd). */
export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

/** Error reply of NetworkDriver calls (key `Err`). */
export interface NetworkErrorResponse {
  Err: string;
}

/** Error reply of IpamDriver calls on HTTP 200 (key `Error`; `Err` would be ignored on 200). */
export interface IpamErrorResponse {
  Error: string;
}

/** The option key that marks a gateway RequestAddress. */
export const GATEWAY_REQUEST_TYPE = 'com.docker.network.gateway';
/** CreateNetwork option holding `docker network create -o` values. */
export const OPTION_GENERIC = 'com.docker.network.generic';
/** CreateNetwork option set when `--internal`. */
export const OPTION_INTERNAL = 'com.docker.network.internal';
/** CreateEndpoint option with the base64 MAC of `--mac-address`. */
export const OPTION_MAC_ADDRESS = 'com.docker.network.endpoint.macaddress';
/** Media type of replies (what go-plugins-helpers answers). */
export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1.1+json';
