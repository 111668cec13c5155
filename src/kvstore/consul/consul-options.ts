/**
 * Options of the consul backend, and their parsing from the daemon's `--kvstore-opt key=value`
 * list: `consul.address=http://HOST:8500`, `consul.token=...`, `consul.lease-ttl=15m`.
 */
import { ConfigError } from '../../util/errors.js';

/** Options of {@link ConsulKvStore.open}. */
export interface ConsulStoreOptions {
  /** The agent's HTTP address, `http://host:8500` or `https://host:8501`. */
  address: string;
  /** ACL token, sent as `X-Consul-Token` on every call. */
  token?: string;
  /**
   * TTL of this store's session (its lease). Default 15 minutes. Consul accepts its agents'
   * `session_ttl_min` (default 10 s) up to 24 h, and invalidates a session only after up to twice
   * the TTL without renewal.
   */
  leaseTtlMs?: number;
  /** Deadline of every call except blocking queries. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long one watch blocking query waits for a change before asking again. Default 60 s. */
  watchWaitMs?: number;
  /** Name given to this store's session (shown by `consul operator`/UI). Default `cilium-docker`. */
  sessionName?: string;
}

/** The `--kvstore-opt` names the consul backend understands. */
export const CONSUL_OPTION_NAMES = ['consul.address', 'consul.token', 'consul.lease-ttl'] as const;

/** Consul's default `session_ttl_min`: the shortest session TTL a stock agent accepts. */
export const CONSUL_SESSION_TTL_MIN_MS = 10_000;
/** The largest session TTL Consul accepts (24 h). */
export const CONSUL_SESSION_TTL_MAX_MS = 86_400_000;

/**
 * Builds consul store options from the daemon's kvstore options. Throws ConfigError naming the
 * option for unknown names, a missing or malformed address, and a lease TTL outside Consul's
 * default session TTL range (10 s to 24 h).
 */
export function consulOptionsFromKvstoreOpts(opts: Readonly<Record<string, string>>): ConsulStoreOptions {
  for (const name of Object.keys(opts)) {
    if (!(CONSUL_OPTION_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError(`--kvstore-opt ${name}: not a consul option; use ${CONSUL_OPTION_NAMES.join(', ')}`);
    }
  }
  const address = opts['consul.address'];
  if (address === undefined || address.trim() === '') {
    throw new ConfigError(
      '--kvstore consul needs an agent address: give --kvstore-opt consul.address=http://HOST:8500',
    );
  }
  const options: ConsulStoreOptions = { address: normalizeConsulAddress(address, '--kvstore-opt consul.address') };
  const token = opts['consul.token'];
  if (token !== undefined && token !== '') options.token = token;
  const leaseTtl = opts['consul.lease-ttl'];
  if (leaseTtl !== undefined) {
    const ms = parseGoDurationMs(leaseTtl);
    if (ms === undefined) {
      throw new ConfigError(`--kvstore-opt consul.lease-ttl=${leaseTtl}: not a duration; use e.g. 15m, 1h or 90s`);
    }
    if (ms < CONSUL_SESSION_TTL_MIN_MS || ms > CONSUL_SESSION_TTL_MAX_MS) {
      throw new ConfigError(
        `--kvstore-opt consul.lease-ttl=${leaseTtl}: consul session TTLs must be between 10s and 24h`,
      );
    }
    options.leaseTtlMs = ms;
  }
  return options;
}

/**
 * Validates an agent address and returns it without a trailing slash; a bare `host:port` gets
 * `http://`. Throws ConfigError (prefixed with `what`) if it is not an http(s) URL without a path.
 */
export function normalizeConsulAddress(address: string, what: string): string {
  const trimmed = address.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(`${what}: "${address}" is not a URL; use http://HOST:8500`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${what}: "${address}" must be http:// or https://`);
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ConfigError(`${what}: "${address}" must be scheme://host:port with no path`);
  }
  return `${url.protocol}//${url.host}`;
}

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`15m`, `1h30m`, `900s`, `1500ms`) into milliseconds; undefined if malformed. */
export function parseGoDurationMs(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  if (trimmed === '') return undefined;
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < trimmed.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(trimmed);
    if (match === null) return undefined;
    total += Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
    at = pattern.lastIndex;
  }
  return Math.round(total);
}

/** Formats milliseconds as a Go duration Consul parses: whole seconds as `900s`, else `1500ms`. */
export function formatGoDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}
