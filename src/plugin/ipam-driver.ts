/**
 * Docker's IpamDriver API: validation and translation to the IPAM module.
 * Addresses go out in CIDR form (`198.18.10.2/24`), come back as plain IPs.
 */
import type { Ipam } from '../ipam/ipam.js';
import { NETWORK_NAME_OPTION, type NetworkRegistry } from '../ipam/network-registry.js';
import { BadRequestError } from '../util/errors.js';
import type { NetworkCreationTracker } from './network-creation-tracker.js';
import { optionalBoolean, optionalObject, optionalString, requireObject, requireString } from './request-body.js';
import {
  GATEWAY_REQUEST_TYPE,
  type AddressSpacesResponse,
  type IpamCapabilitiesResponse,
  type RequestAddressResponse,
  type RequestPoolResponse,
} from './wire.js';

/** Address space names we report; free strings to dockerd. */
export const LOCAL_ADDRESS_SPACE = 'CiliumLocal';
export const GLOBAL_ADDRESS_SPACE = 'CiliumGlobal';

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The IpamDriver handlers, keyed by method name. */
export function ipamDriverHandlers(ipam: Ipam, creations: NetworkCreationTracker, networks?: NetworkRegistry): Record<string, (body: unknown) => Promise<unknown>> {
  return {
    async GetCapabilities(): Promise<IpamCapabilitiesResponse> {
      // No replay: pools and addresses are persisted in our store and survive dockerd restarts.
      return { RequiresMACAddress: false, RequiresRequestReplay: false };
    },

    async GetDefaultAddressSpaces(): Promise<AddressSpacesResponse> {
      return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
    },

    async RequestPool(raw): Promise<RequestPoolResponse> {
      const call = 'RequestPool';
      const body = requireObject(call, raw);
      // dockerd always names the address space; a body without it is not a real request.
      requireString(call, body, 'AddressSpace');
      const pool = optionalString(call, body, 'Pool');
      const subPool = optionalString(call, body, 'SubPool');
      const v6 = optionalBoolean(call, body, 'V6');
      const options: Record<string, string> = {};
      for (const [k, v] of Object.entries(optionalObject(call, body, 'Options'))) options[k] = String(v);
      if (v6) throw new BadRequestError('IPv6 pools are not supported by the cilium IPAM driver yet; create the network without --ipv6');
      // `--ipam-opt cilium.network=<name>`: the pool is the cluster's for that name (networks/v1/<name>).
      const name = options[NETWORK_NAME_OPTION];
      if (name !== undefined && !networks) {
        throw new BadRequestError(`--ipam-opt ${NETWORK_NAME_OPTION} needs the daemon's network registry, which this daemon was started without`);
      }
      const request = { pool, subPool, options, v6 };
      const result = name !== undefined && networks ? await networks.requestPool(name, request) : await ipam.requestPool(request);
      creations.poolRequested(result.poolId, result.pool);
      return { PoolID: result.poolId, Pool: result.pool, Data: result.data };
    },

    async ReleasePool(raw) {
      const body = requireObject('ReleasePool', raw);
      const poolId = requireString('ReleasePool', body, 'PoolID');
      try {
        await ipam.releasePool(poolId);
      } finally {
        // The name's user key goes with the pool even if the pool was already gone; a store
        // failure here is repaired by the resync (which sweeps records nobody uses).
        await networks?.poolReleased(poolId).catch(() => undefined);
      }
      creations.poolReleased(poolId);
      return {};
    },

    async RequestAddress(raw): Promise<RequestAddressResponse> {
      const call = 'RequestAddress';
      const body = requireObject(call, raw);
      const poolId = requireString(call, body, 'PoolID');
      const address = optionalString(call, body, 'Address');
      if (address !== '' && !IPV4.test(address)) throw new BadRequestError(`${call}: Address "${address}" is not an IPv4 address`);
      const options = optionalObject(call, body, 'Options');
      const gateway = options.RequestAddressType === GATEWAY_REQUEST_TYPE;
      const reserved = !gateway && address !== '' && creations.isCreating(poolId);
      const result = await ipam.requestAddress({ poolId, address, gateway, reserved });
      return { Address: `${result.address}/${result.prefixLength}`, Data: {} };
    },

    async ReleaseAddress(raw) {
      const call = 'ReleaseAddress';
      const body = requireObject(call, raw);
      const poolId = requireString(call, body, 'PoolID');
      const address = requireString(call, body, 'Address');
      if (!IPV4.test(address)) throw new BadRequestError(`${call}: Address "${address}" is not an IPv4 address`);
      await ipam.releaseAddress(poolId, address);
      return {};
    },
  };
}
