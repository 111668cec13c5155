/**
 * The one mapping from errors to Docker's plugin replies.
 *
 * NetworkDriver calls: non-200 with `{"Err": msg}` (dockerd shows `<Method>: msg`).
 * IpamDriver calls: HTTP 200 with `{"Error": msg}` — on 200 dockerd reads only `Error` for IPAM
 * (an `Err` there is silently ignored) and shows `remote: msg`.
 * See shared/reference/docker-plugin-protocol.md, section 2.1.
 */
import { asCiliumDockerError, statusForKind } from '../util/errors.js';
import type { IpamErrorResponse, NetworkErrorResponse } from './wire.js';

/** Which of Docker's two plugin APIs a call belongs to. */
export type PluginApi = 'NetworkDriver' | 'IpamDriver' | 'Plugin';

/** Status and body for an error raised by a handler of `api`. */
export function pluginErrorReply(
  api: PluginApi,
  err: unknown,
): { status: number; body: NetworkErrorResponse | IpamErrorResponse } {
  const e = asCiliumDockerError(err);
  const message = e.message;
  if (api === 'IpamDriver') return { status: 200, body: { Error: message } };
  return { status: statusForKind[e.kind], body: { Err: message } };
}
