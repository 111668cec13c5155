/**
 * Docker's IpamDriver API: validation and translation to the IPAM module.
 * Addresses go out in CIDR form (`198.18.10.2/24`), come back as plain IPs.
 */
import type { Ipam } from '../ipam/ipam.js';
import { NETWORK_NAME_OPTION } from '../ipam/network-definition.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import { BadRequestError } from '../util/errors.js';
import { parseIpv4 } from '../util/ipv4.js';
import type { NetworkCreationTracker } from './network-creation-tracker.js';
import {
  bindCalls,
  decodeReleaseAddressRequest,
  decodeReleasePoolRequest,
  decodeRequestAddressRequest,
  decodeRequestPoolRequest,
  decoded,
  type RawHandler,
} from './wire-decoders.js';
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

/** A plain address as dockerd sends it (util/ipv4.ts's strict form: `010.0.0.1` is refused). */
function checkAddress(call: string, address: string): void {
  if (parseIpv4(address) === undefined)
    throw new BadRequestError(`${call}: Address "${address}" is not an IPv4 address`);
}

/** The IpamDriver handlers, keyed by method name. */
export function ipamDriverHandlers(
  ipam: Ipam,
  creations: NetworkCreationTracker,
  networks?: NetworkRegistry,
): Record<string, RawHandler> {
  return bindCalls({
    async GetCapabilities(): Promise<IpamCapabilitiesResponse> {
      // No replay: pools and addresses are persisted in our store and survive dockerd restarts.
      return { RequiresMACAddress: false, RequiresRequestReplay: false };
    },

    async GetDefaultAddressSpaces(): Promise<AddressSpacesResponse> {
      return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
    },

    RequestPool: decoded(decodeRequestPoolRequest, async (req): Promise<RequestPoolResponse> => {
      if (req.V6)
        throw new BadRequestError(
          'IPv6 pools are not supported by the cilium IPAM driver yet; create the network without --ipv6',
        );
      // `--ipam-opt cilium.network=<name>`: the pool is the cluster's for that name (networks/v1/<name>).
      const name = req.Options[NETWORK_NAME_OPTION];
      if (name !== undefined && !networks) {
        throw new BadRequestError(
          `--ipam-opt ${NETWORK_NAME_OPTION} needs the daemon's network registry, ` +
            'which this daemon was started without',
        );
      }
      const request = { pool: req.Pool, subPool: req.SubPool, options: req.Options, v6: req.V6 };
      const result =
        name !== undefined && networks ? await networks.requestPool(name, request) : await ipam.requestPool(request);
      creations.poolRequested(result.poolId, result.pool);
      return { PoolID: result.poolId, Pool: result.pool, Data: result.data };
    }),

    ReleasePool: decoded(decodeReleasePoolRequest, async (req) => {
      try {
        await ipam.releasePool(req.PoolID);
      } finally {
        // The name's user key goes with the pool even if the pool was already gone; a store
        // failure here is repaired by the resync (which sweeps records nobody uses).
        await networks?.poolReleased(req.PoolID).catch(() => undefined);
      }
      creations.poolReleased(req.PoolID);
      return {};
    }),

    RequestAddress: decoded(decodeRequestAddressRequest, async (req): Promise<RequestAddressResponse> => {
      if (req.Address !== '') checkAddress('RequestAddress', req.Address);
      const gateway = req.Options.RequestAddressType === GATEWAY_REQUEST_TYPE;
      const reserved = !gateway && req.Address !== '' && creations.isCreating(req.PoolID);
      const result = await ipam.requestAddress({ poolId: req.PoolID, address: req.Address, gateway, reserved });
      return { Address: `${result.address}/${result.prefixLength}`, Data: {} };
    }),

    ReleaseAddress: decoded(decodeReleaseAddressRequest, async (req) => {
      checkAddress('ReleaseAddress', req.Address);
      await ipam.releaseAddress(req.PoolID, req.Address);
      return {};
    }),
  });
}
