/**
 * Options of the etcd backend, and their parsing from the daemon's `--kvstore-opt key=value` list.
 *
 * The option names are Cilium's (`pkg/kvstore/etcd.go`): `etcd.address`, `etcd.config` and
 * `etcd.lease-ttl`. `etcd.config` names an etcd client configuration file in the YAML form Cilium
 * and etcd's own tools read (`endpoints:`, `trusted-ca-file:`, `cert-file:`, `key-file:`,
 * `username:`, `password:`).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../util/errors.js';

/** Client TLS material, as file paths (read when the store opens). */
export interface EtcdTlsOptions {
  /** CA bundle that signed the etcd server certificates (`trusted-ca-file`). */
  caFile?: string;
  /** Client certificate for mutual TLS (`cert-file`); needs `keyFile`. */
  certFile?: string;
  /** Private key of `certFile` (`key-file`). */
  keyFile?: string;
}

/** etcd user credentials (etcd's `--auth` mode). */
export interface EtcdAuthOptions {
  username: string;
  password: string;
}

/** Options of {@link EtcdKvStore.open}. */
export interface EtcdStoreOptions {
  /** Client URLs, `http://host:2379` or `https://host:2379`; all must use the same scheme. */
  endpoints: string[];
  /** TTL of this store's lease (whole seconds on the wire, rounded up). Default 15 minutes. */
  leaseTtlMs?: number;
  /** TLS material; https endpoints without it use the system CAs. */
  tls?: EtcdTlsOptions;
  /** Username and password, when etcd has authentication enabled. */
  auth?: EtcdAuthOptions;
  /** How long `open` waits for etcd to answer before failing. Default 5 s. */
  dialTimeoutMs?: number;
  /** Bound on every call (get, put, txn, status); past it the call rejects with KvUnavailableError. Default 5 s. */
  requestTimeoutMs?: number;
  /**
   * A key prefix this store lives under (like etcd's `clientv3/namespace`): prepended on the
   * wire, stripped from every key returned. Lets several stores share one etcd without seeing each
   * other. Default: none.
   */
  namespace?: string;
}

/** The `--kvstore-opt` names the etcd backend understands. */
export const ETCD_OPTION_NAMES = ['etcd.address', 'etcd.config', 'etcd.lease-ttl'] as const;

/** Smallest lease TTL etcd grants (its minimum depends on the election timeout; 1 s is the floor). */
const MIN_LEASE_TTL_MS = 1_000;

/**
 * Builds etcd store options from the daemon's kvstore options (`etcd.address=http://h:2379[,...]`,
 * `etcd.config=FILE`, `etcd.lease-ttl=15m`). Endpoints come from `etcd.address` when given, else
 * from the config file; TLS and credentials come from the config file. Throws ConfigError naming
 * the option for unknown names, unreadable files and malformed values.
 */
export function etcdOptionsFromKvstoreOpts(opts: Readonly<Record<string, string>>): EtcdStoreOptions {
  for (const name of Object.keys(opts)) {
    if (!(ETCD_OPTION_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError(`--kvstore-opt ${name}: not an etcd option; use ${ETCD_OPTION_NAMES.join(', ')}`);
    }
  }
  const fromFile = opts['etcd.config'] !== undefined ? readClientConfig(opts['etcd.config']) : undefined;
  const address = opts['etcd.address'];
  const endpoints =
    address !== undefined ? parseEndpoints(address, '--kvstore-opt etcd.address') : (fromFile?.endpoints ?? []);
  if (endpoints.length === 0) {
    throw new ConfigError(
      '--kvstore etcd needs endpoints: ' +
        'give --kvstore-opt etcd.address=http://HOST:2379 or an etcd.config file with endpoints:',
    );
  }
  const options: EtcdStoreOptions = { endpoints };
  if (fromFile?.tls !== undefined) options.tls = fromFile.tls;
  if (fromFile?.auth !== undefined) options.auth = fromFile.auth;
  const leaseTtl = opts['etcd.lease-ttl'];
  if (leaseTtl !== undefined) {
    const ms = parseGoDuration(leaseTtl, '--kvstore-opt etcd.lease-ttl');
    if (ms < MIN_LEASE_TTL_MS) {
      throw new ConfigError(`--kvstore-opt etcd.lease-ttl=${leaseTtl}: etcd leases last at least 1s`);
    }
    options.leaseTtlMs = ms;
  }
  return options;
}

/** The parts of an etcd client config file this backend uses. */
interface ClientConfig {
  endpoints: string[];
  tls?: EtcdTlsOptions;
  auth?: EtcdAuthOptions;
}

/** Reads and validates an etcd client config file (YAML). */
function readClientConfig(path: string): ClientConfig {
  const what = `--kvstore-opt etcd.config=${path}`;
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${what}: cannot read the etcd client config: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`${what}: the etcd client config must be a YAML mapping (endpoints:, trusted-ca-file:, ...)`);
  }
  const fields = doc as Record<string, unknown>;
  const text = (field: string): string | undefined => {
    const value = fields[field];
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string') throw new ConfigError(`${what}: ${field} must be a string`);
    return value;
  };

  let endpoints: string[] = [];
  const rawEndpoints = fields.endpoints;
  if (typeof rawEndpoints === 'string') endpoints = parseEndpoints(rawEndpoints, `${what} endpoints`);
  else if (Array.isArray(rawEndpoints)) {
    if (!rawEndpoints.every((e): e is string => typeof e === 'string')) {
      throw new ConfigError(`${what}: endpoints must be a list of URLs`);
    }
    endpoints = parseEndpoints(rawEndpoints.join(','), `${what} endpoints`);
  } else if (rawEndpoints !== undefined && rawEndpoints !== null) {
    throw new ConfigError(`${what}: endpoints must be a list of URLs`);
  }

  const config: ClientConfig = { endpoints };
  // `ca-file` is the older spelling etcd's client config still accepts.
  const caFile = text('trusted-ca-file') ?? text('ca-file');
  const certFile = text('cert-file');
  const keyFile = text('key-file');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(`${what}: cert-file and key-file must be given together`);
  }
  if (caFile !== undefined || certFile !== undefined) {
    config.tls = {
      ...(caFile !== undefined && { caFile }),
      ...(certFile !== undefined && { certFile }),
      ...(keyFile !== undefined && { keyFile }),
    };
  }
  const username = text('username');
  const password = text('password');
  if (username !== undefined) config.auth = { username, password: password ?? '' };
  else if (password !== undefined) throw new ConfigError(`${what}: password without username`);
  return config;
}

/** Splits a comma-separated endpoint list; a bare `host:port` gets `http://`. */
function parseEndpoints(list: string, what: string): string[] {
  const endpoints = list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(item) ? item : `http://${item}`));
  for (const endpoint of endpoints) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new ConfigError(`${what}: "${endpoint}" is not a URL; use http://HOST:2379`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`${what}: "${endpoint}" must be http:// or https://`);
    }
    if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) {
      throw new ConfigError(`${what}: "${endpoint}" must be scheme://host:port with no path`);
    }
  }
  const schemes = new Set(endpoints.map((endpoint) => new URL(endpoint).protocol));
  if (schemes.size > 1) throw new ConfigError(`${what}: endpoints mix http:// and https://; use one scheme`);
  return endpoints.map((endpoint) => endpoint.replace(/\/$/, ''));
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration (`15m`, `1h30m`, `25s`, `1500ms`) into milliseconds. */
function parseGoDuration(text: string, what: string): number {
  const trimmed = text.trim();
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let match = pattern.exec(trimmed); match !== null; match = pattern.exec(trimmed)) {
    total += Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
    matched = pattern.lastIndex;
  }
  if (trimmed === '' || matched !== trimmed.length) {
    throw new ConfigError(`${what}: "${text}" is not a duration; use e.g. 15m, 1h or 90s`);
  }
  return Math.round(total);
}
