/**
 * Typed client of the agent API over its Unix socket (used by the CLI and tests).
 */
import { request } from 'node:http';
import { CiliumDockerError, DaemonUnreachableError, type ErrorKind } from '../util/errors.js';
import type { EndpointModel, ErrorModel, IdentityModel, IpModel, StatusModel } from './models.js';

/** Default agent API address. */
export const DEFAULT_API_HOST = 'unix:///run/cilium/cilium.sock';

/** Client of one daemon's agent API. */
export class ApiClient {
  private readonly socketPath: string;

  /** `host` is `unix:///path/to.sock` or a plain socket path. */
  constructor(host: string = DEFAULT_API_HOST) {
    this.socketPath = host.startsWith('unix://') ? host.slice('unix://'.length) : host;
  }

  /** Performs one call; rejects with the daemon's error (code preserved) or DaemonUnreachableError. */
  call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { socketPath: this.socketPath, agent: false, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(new CiliumDockerError('Internal', 'ERR_BAD_REPLY', `daemon sent a non-JSON reply to ${method} ${path}: ${text.slice(0, 200)}`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (parsed as ErrorModel | undefined)?.error;
              reject(new CiliumDockerError(kindOf(res.statusCode ?? 500), e?.code ?? 'ERR_INTERNAL', e?.message ?? `HTTP ${res.statusCode}`));
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(
          new DaemonUnreachableError(
            `cannot reach the cilium-docker daemon at ${this.socketPath} (${err.code ?? err.message}); is it running? start it with "sudo make run" or point --host / CILIUM_HOST at its API socket`,
            { cause: err },
          ),
        );
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      if (payload) req.write(payload);
      req.end();
    });
  }

  status(): Promise<StatusModel> {
    return this.call('GET', '/v1/status');
  }
  listEndpoints(): Promise<EndpointModel[]> {
    return this.call('GET', '/v1/endpoint');
  }
  getEndpoint(ref: string): Promise<EndpointModel> {
    return this.call('GET', `/v1/endpoint/${encodeURIComponent(ref)}`);
  }
  listIdentities(): Promise<IdentityModel[]> {
    return this.call('GET', '/v1/identity');
  }
  getIdentity(id: string): Promise<IdentityModel> {
    return this.call('GET', `/v1/identity/${encodeURIComponent(id)}`);
  }
  listIps(): Promise<IpModel[]> {
    return this.call('GET', '/v1/ip');
  }
  cleanup(): Promise<{ removed: string[] }> {
    return this.call('POST', '/v1/cleanup', {});
  }
}

function kindOf(status: number): ErrorKind {
  if (status === 400) return 'BadRequest';
  if (status === 404) return 'NotFound';
  if (status === 409) return 'Conflict';
  if (status === 501) return 'Unsupported';
  if (status === 503) return 'Unavailable';
  return 'Internal';
}
