/**
 * Error kinds and named errors with stable codes.
 *
 * Callers branch on `err.code` (or `err.kind`), never on messages. The kinds mirror libnetwork's
 * small set (BadRequest, NotFound, Conflict, Unavailable, Unsupported, Internal); each named error
 * class fixes one code. Messages say which object, what was attempted and what to do about it,
 * because dockerd shows plugin messages to the user verbatim.
 */

/** The coarse class of an error; decides HTTP status codes in both APIs. */
export type ErrorKind = 'BadRequest' | 'NotFound' | 'Conflict' | 'Unavailable' | 'Unsupported' | 'Internal';

/** HTTP status for each kind (agent API and plugin API non-200 replies). */
export const statusForKind: Record<ErrorKind, number> = {
  BadRequest: 400,
  NotFound: 404,
  Conflict: 409,
  Unavailable: 503,
  Unsupported: 501,
  Internal: 500,
};

/** Base class of every error this project throws on purpose. */
export class CiliumDockerError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.kind = kind;
    this.code = code;
  }
}

function named(kind: ErrorKind, code: string) {
  return class extends CiliumDockerError {
    static readonly code = code;
    constructor(message: string, options?: { cause?: unknown }) {
      super(kind, code, message, options);
    }
  };
}

/** A request body or argument that cannot be used as given. */
export class BadRequestError extends named('BadRequest', 'ERR_BAD_REQUEST') {}
/** An object named in a request does not exist. */
export class NotFoundError extends named('NotFound', 'ERR_NOT_FOUND') {}
/** Configuration is invalid; the daemon refuses to start. */
export class ConfigError extends named('BadRequest', 'ERR_CONFIG') {}
/** A pool has no free address (or no free block for this node). */
export class PoolExhaustedError extends named('Conflict', 'ERR_POOL_EXHAUSTED') {}
/** A requested pool overlaps an existing, different pool. */
export class PoolOverlapError extends named('Conflict', 'ERR_POOL_OVERLAP') {}
/** A pool id that this daemon does not know. */
export class PoolNotFoundError extends named('NotFound', 'ERR_POOL_NOT_FOUND') {}
/** A specific address was requested but is already allocated. */
export class AddressInUseError extends named('Conflict', 'ERR_ADDRESS_IN_USE') {}
/** A requested address is outside the pool it was requested from. */
export class AddressOutOfRangeError extends named('BadRequest', 'ERR_ADDRESS_OUT_OF_RANGE') {}
/** A driver call names an address or pool that this node's IPAM did not hand out (RequestAddress, RequestPool). */
export class NotAllocatedError extends named('BadRequest', 'ERR_NOT_ALLOCATED') {}
/** A network name is defined differently elsewhere in the cluster (subnet, --ip-range, gateway, --internal, mtu). */
export class NetworkConflictError extends named('Conflict', 'ERR_NETWORK_CONFLICT') {}
/** No network with that id is known. */
export class NetworkNotFoundError extends named('NotFound', 'ERR_NETWORK_NOT_FOUND') {}
/** No endpoint with that id is known. */
export class EndpointNotFoundError extends named('NotFound', 'ERR_ENDPOINT_NOT_FOUND') {}
/** The key-value store cannot be reached or did not answer in time. */
export class KvUnavailableError extends named('Unavailable', 'ERR_KV_UNAVAILABLE') {}
/** A compare-and-swap precondition failed. */
export class KvConflictError extends named('Conflict', 'ERR_KV_CONFLICT') {}
/** Identity allocation gave up (range exhausted or too many conflicts). */
export class IdentityAllocationError extends named('Unavailable', 'ERR_IDENTITY_ALLOCATION') {}
/** A new identity could not be allocated within --identity-timeout (the store is unreachable or slow). */
export class IdentityUnavailableError extends named('Unavailable', 'ERR_IDENTITY_UNAVAILABLE') {}
/** A kernel or iproute2 operation failed. */
export class DatapathError extends named('Internal', 'ERR_DATAPATH') {}
/** The daemon cannot be reached by the CLI. */
export class DaemonUnreachableError extends named('Unavailable', 'ERR_DAEMON_UNREACHABLE') {}
/** A feature the kernel or this build does not have. */
export class UnsupportedError extends named('Unsupported', 'ERR_UNSUPPORTED') {}
/** --tunnel geneve on a kernel without the geneve device type. */
export class GeneveUnsupportedError extends named('Unsupported', 'ERR_GENEVE_UNSUPPORTED') {}
/** --tunnel vxlan on a kernel without VXLAN external (collect_md) devices. */
export class VxlanUnsupportedError extends named('Unsupported', 'ERR_VXLAN_UNSUPPORTED') {}
/** A policy document is invalid. */
export class PolicyValidationError extends named('BadRequest', 'ERR_POLICY_INVALID') {}
/** A label set no identity may be allocated for (a source other than `container`/`docker`, e.g. `reserved:`). */
export class InvalidIdentityLabelsError extends named('BadRequest', 'ERR_INVALID_IDENTITY_LABELS') {}
/**
 * The store holds the keys of an earlier version's unprefixed layout and none under
 * `--kvstore-opt prefix`: the daemon refuses to start rather than split the cluster.
 */
export class KvLayoutError extends named('Conflict', 'ERR_KV_LAYOUT') {}

/** Wraps anything thrown into a CiliumDockerError (unknown errors become Internal). */
export function asCiliumDockerError(err: unknown): CiliumDockerError {
  if (err instanceof CiliumDockerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CiliumDockerError('Internal', 'ERR_INTERNAL', message, { cause: err });
}
