/**
 * Daemon configuration: flags, environment (`CILIUM_DOCKER_<NAME>`) and an optional config file
 * (YAML or JSON, keys named like the flags) -> one validated, immutable Config.
 * Precedence: flag > environment > config file > default.
 *
 * The option table below is the single source: parsing, env lookup, file keys and `--help` all
 * derive from it.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../util/errors.js';
import { cidrContaining, formatIpv4Cidr, hasHostBits, parseIpv4, parseIpv4WithPrefix } from '../util/ipv4.js';

/** Where the cluster store's keys live unless `--kvstore-opt prefix=` says otherwise (Cilium's own). */
export const DEFAULT_KVSTORE_PREFIX = 'cilium/state/';
/** Which store backend the daemon uses. */
export type KvStoreBackend = 'local' | 'etcd' | 'consul';
const KVSTORE_BACKENDS: readonly KvStoreBackend[] = ['local', 'etcd', 'consul'];
const isKvStoreBackend = (name: string): name is KvStoreBackend =>
  (KVSTORE_BACKENDS as readonly string[]).includes(name);
/** Cilium's policy enforcement modes. */
export type EnforcementMode = 'default' | 'always' | 'never';
/** How containers on different hosts reach each other. */
export type TunnelMode = 'vxlan' | 'geneve' | 'disabled';

/** Default UDP port of each encapsulation (the Linux defaults, as Cilium uses them). */
/**
 * How traffic between hosts travels (Cilium's `routing-mode`): `tunnel` encapsulates it on the
 * `--tunnel` device; `native` sends it unencapsulated, with a kernel route per peer block via the
 * peer's underlay address (the underlay must carry container addresses between hosts).
 */
export type RoutingMode = 'tunnel' | 'native';

export const DEFAULT_TUNNEL_PORTS: Readonly<Record<Exclude<TunnelMode, 'disabled'>, number>> = {
  vxlan: 8472,
  geneve: 6081,
};

/** The validated configuration of one daemon. */
export interface Config {
  stateDir: string;
  pluginSocket: string;
  apiSocket: string;
  dockerHost: string;
  nodeName: string;
  kvstore: KvStoreBackend;
  kvstoreOpts: Readonly<Record<string, string>>;
  /**
   * `--kvstore-opt prefix=` (default {@link DEFAULT_KVSTORE_PREFIX}): the key prefix the cluster
   * store lives under, whatever the backend; '' = the unprefixed layout of earlier versions.
   * Validated at start by `kvstore/store-prefix.ts` (parseStorePrefix).
   */
  kvstorePrefix: string;
  /** `--kvstore-opt migrate-prefix=true`: move keys of the unprefixed layout under the prefix at start. */
  kvstoreMigratePrefix: boolean;
  defaultPool: string;
  defaultPoolPrefixLength: number;
  blockPrefixLength: number;
  bpfRoot: string;
  /** `host:port`, or '' when metrics are off. */
  metricsAddress: string;
  resyncIntervalMs: number;
  logLevel: string;
  enforcement: EnforcementMode;
  /** How long a container start waits for a new identity while the store is unreachable. */
  identityTimeoutMs: number;
  /** Encapsulation between hosts; 'disabled' = single host (no overlay device). */
  tunnel: TunnelMode;
  /** `tunnel` (encapsulate with `tunnel`) or `native` (kernel routes to peers' blocks; `tunnel` unused). */
  routingMode: RoutingMode;
  /** UDP port of the tunnel (8472 for VXLAN, 6081 for Geneve unless set). */
  tunnelPort: number;
  /** Who writes containers' outer headers: the BPF program ('bpf', default) or the tunnel device. */
  tunnelEncap: 'bpf' | 'device';
  /** This node's underlay IPv4 (peers send tunnelled traffic to it); '' = the default route's source address. */
  underlayIp: string;
  /** Packet and byte counters in conntrack entries (`cilium bpf ct list`); off saves a shared write per packet. */
  ctAccounting: boolean;
  /** Cluster DNS resolver: `ip:port` it listens on, '' = off. */
  dnsAddress: string;
  /**
   * Where the resolver forwards foreign names (`ip` or `ip:port`); undefined = the host's /etc/resolv.conf nameservers.
   */
  dnsUpstreams: readonly string[] | undefined;
}

interface OptionSpec {
  name: string;
  help: string;
  default: string;
  multiple?: boolean;
}

/** Every daemon option, with its default and help text. */
export const OPTIONS: readonly OptionSpec[] = [
  { name: 'config', help: 'config file (YAML or JSON) whose keys are these option names', default: '' },
  { name: 'state-dir', help: 'directory for the embedded store and daemon state', default: '/var/lib/cilium-docker' },
  {
    name: 'plugin-socket',
    help: 'Docker plugin socket; its file name (minus .sock) is the driver name',
    default: '/run/docker/plugins/cilium.sock',
  },
  {
    name: 'api-socket',
    help: 'agent API socket used by the cilium CLI (mode 0660)',
    default: '/run/cilium/cilium.sock',
  },
  { name: 'docker-host', help: "dockerd's API (events and inspect)", default: 'unix:///var/run/docker.sock' },
  { name: 'node-name', help: "this node's name in the cluster (default: hostname)", default: '' },
  { name: 'kvstore', help: 'store backend: local | etcd | consul', default: 'local' },
  {
    name: 'kvstore-opt',
    help:
      'store option key=value (repeatable), e.g. etcd.address=http://h:2379; ' +
      'prefix=cilium/state/ (the default), migrate-prefix=true',
    default: '',
    multiple: true,
  },
  {
    name: 'default-pool',
    help: 'pool carved into per-network subnets when `docker network create` has no --subnet',
    default: '10.200.0.0/16',
  },
  {
    name: 'default-pool-prefix-length',
    help: 'prefix length of the subnets carved from --default-pool',
    default: '24',
  },
  {
    name: 'block-prefix-length',
    help: 'prefix length of the per-node address blocks claimed in each pool',
    default: '26',
  },
  { name: 'bpf-root', help: 'bpffs directory where programs and maps are pinned', default: '/sys/fs/bpf/cilium' },
  {
    name: 'metrics-address',
    help: 'Prometheus metrics listen address host:port; empty turns metrics off',
    default: '127.0.0.1:9962',
  },
  { name: 'resync-interval', help: 'interval of the full store resync (e.g. 5m, 30s)', default: '5m' },
  { name: 'log-level', help: 'trace | debug | info | warn | error', default: 'info' },
  { name: 'enable-policy', help: 'policy enforcement mode: default | always | never', default: 'default' },
  {
    name: 'identity-timeout',
    help: 'how long a container start waits for a new identity when the store is unreachable',
    default: '30s',
  },
  { name: 'tunnel', help: 'encapsulation between hosts: vxlan | geneve | disabled', default: 'vxlan' },
  {
    name: 'routing-mode',
    help:
      'between hosts: tunnel (encapsulate, see --tunnel) | native (no encapsulation: ' +
      "routes to peers' blocks via their underlay IPs)",
    default: 'tunnel',
  },
  { name: 'tunnel-port', help: 'UDP port of the tunnel (default 8472 for vxlan, 6081 for geneve)', default: '' },
  {
    name: 'tunnel-encap',
    help:
      "who encapsulates containers' traffic to other hosts: " +
      "bpf (the veth's program writes the outer headers and hands the packet to the underlay device: " +
      'no route lookup per packet) | device (the tunnel device, which routes every packet)',
    default: 'bpf',
  },
  {
    name: 'underlay-ip',
    help: "this node's IPv4 address on the network between hosts (default: source address of the default route)",
    default: '',
  },
  {
    name: 'bpf-ct-accounting',
    help:
      'packet and byte counters in every conntrack entry (cilium bpf ct list): true | false; on, ' +
      'the two CPUs of a flow write its entry on every packet (about 200 ns more per packet here, bench ct-bounce)',
    default: 'false',
  },
  {
    name: 'dns-address',
    help:
      'cluster DNS resolver listen address ip[:port] (port 53 unless given); ' +
      'containers use it as their DNS server (dockerd --dns ip); empty = off',
    default: '',
  },
  {
    name: 'dns-upstream',
    help:
      'server ip[:port] the resolver forwards other names to (repeatable); default: ' +
      "the host's /etc/resolv.conf nameservers; none = answer REFUSED",
    default: '',
    multiple: true,
  },
];

/** Env variable name of an option: `state-dir` -> `CILIUM_DOCKER_STATE_DIR`. */
export function envName(option: string): string {
  return `CILIUM_DOCKER_${option.toUpperCase().replace(/-/g, '_')}`;
}

/** `--help` text, generated from OPTIONS. */
export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const def = o.default === '' ? '' : ` (default ${JSON.stringify(o.default)})`;
    return `  --${o.name.padEnd(28)} ${o.help}${def}\n  ${' '.repeat(30)} env ${envName(o.name)}`;
  });
  return (
    'Usage: cilium-docker [options]\n\nDocker network + IPAM driver with identity-aware eBPF policy.\n\nOptions:\n' +
    `${rows.join('\n')}\n  --help                         this text\n`
  );
}

/** Parses a duration like `5m`, `30s`, `1500ms`, `1h` into milliseconds. */
export function parseDuration(text: string, what: string): number {
  if (/^\s*-/.test(text))
    throw new ConfigError(`${what}: "${text}" is negative; give a duration above zero, e.g. 500ms, 30s, 5m or 1h`);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: "${text}" is not a duration; use e.g. 500ms, 30s, 5m or 1h`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * factor);
}

function parseIntIn(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`${what}: "${text}" must be an integer from ${min} to ${max}`);
  return n;
}

function parseCidr(text: string, what: string): string {
  const parsed = parseIpv4WithPrefix(text);
  if (!parsed) throw new ConfigError(`${what}: "${text}" is not an IPv4 CIDR such as 10.200.0.0/16`);
  if (hasHostBits(parsed.address, parsed.prefixLength)) {
    throw new ConfigError(
      `${what}: "${text}" has host bits set; ` +
        `the network is ${formatIpv4Cidr(cidrContaining(parsed.address, parsed.prefixLength))}`,
    );
  }
  return text;
}

/** Reads argv, env and the config file into a validated Config. Throws ConfigError. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  let flags: Record<string, string | string[] | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries([
        ...OPTIONS.map((o) => [o.name, { type: 'string' as const, multiple: o.multiple ?? false }]),
        ['help', { type: 'boolean' as const }],
      ]),
    }).values as Record<string, string | string[] | boolean | undefined>;
  } catch (err) {
    // Node's messages name the flag and the fix (`--resync-interval=-5m` for a value with a dash).
    throw new ConfigError((err as Error).message.replace(/\s*\n\s*/g, ' '), { cause: err });
  }
  if (flags.help === true) return 'help';

  const configPath = (flags.config as string | undefined) ?? env[envName('config')] ?? '';
  let file: Record<string, unknown> = {};
  if (configPath !== '') {
    try {
      const loaded: unknown = parseYaml(readFileSync(configPath, 'utf8'));
      if (loaded !== null && typeof loaded === 'object' && !Array.isArray(loaded))
        file = loaded as Record<string, unknown>;
      else throw new Error('top level is not a mapping');
    } catch (err) {
      throw new ConfigError(`config file ${configPath}: ${(err as Error).message}`);
    }
    for (const key of Object.keys(file)) {
      if (!OPTIONS.some((o) => o.name === key))
        throw new ConfigError(`config file ${configPath}: unknown option "${key}"`);
    }
  }

  const value = (name: string): string => {
    const flag = flags[name];
    if (typeof flag === 'string') return flag;
    const fromEnv = env[envName(name)];
    if (fromEnv !== undefined) return fromEnv;
    if (file[name] !== undefined) return String(file[name]);
    return OPTIONS.find((o) => o.name === name)!.default;
  };
  const list = (name: string): string[] => {
    const flag = flags[name];
    if (Array.isArray(flag) && flag.length > 0) return flag;
    const fromEnv = env[envName(name)];
    if (fromEnv !== undefined) return fromEnv.split(',').filter((s) => s !== '');
    const fromFile = file[name];
    if (Array.isArray(fromFile)) return fromFile.map(String);
    if (typeof fromFile === 'string') return [fromFile];
    return [];
  };

  const kvstore = value('kvstore');
  if (!isKvStoreBackend(kvstore)) {
    throw new ConfigError(`--kvstore: "${kvstore}" is not a backend; use local, etcd or consul`);
  }
  const kvstoreOpts: Record<string, string> = {};
  /** `prefix` and `migrate-prefix`: options of the store layer every backend shares, not of one backend. */
  const layoutOpts: Record<string, string> = {};
  for (const item of list('kvstore-opt')) {
    const eq = item.indexOf('=');
    if (eq <= 0)
      throw new ConfigError(`--kvstore-opt: "${item}" must be key=value, e.g. etcd.address=http://127.0.0.1:2379`);
    const key = item.slice(0, eq);
    if (key === 'prefix' || key === 'migrate-prefix') {
      layoutOpts[key] = item.slice(eq + 1);
      continue;
    }
    // Each backend checks its own option names (kvstore/*-options.ts); an option of another
    // backend would be ignored silently, e.g. etcd.address with the default --kvstore local.
    if (!key.startsWith(`${kvstore}.`)) {
      const other = KVSTORE_BACKENDS.find((b) => key.startsWith(`${b}.`));
      throw new ConfigError(
        other
          ? `--kvstore-opt ${key}: an option of the ${other} store, but --kvstore is ${kvstore}; ` +
              `add --kvstore ${other} or drop the option`
          : `--kvstore-opt ${key}: unknown option; options of the ${kvstore} store start with "${kvstore}."; ` +
              'prefix and migrate-prefix apply to every store (see --help and the README)',
      );
    }
    kvstoreOpts[key] = item.slice(eq + 1);
  }
  const migratePrefix = layoutOpts['migrate-prefix'] ?? 'false';
  if (migratePrefix !== 'true' && migratePrefix !== 'false') {
    throw new ConfigError(
      `--kvstore-opt migrate-prefix=${migratePrefix}: ` +
        'use true (move keys of the unprefixed layout under the prefix at start) or false',
    );
  }
  const enforcement = value('enable-policy');
  if (enforcement !== 'default' && enforcement !== 'always' && enforcement !== 'never') {
    throw new ConfigError(`--enable-policy: "${enforcement}" is not a mode; use default, always or never`);
  }
  const metricsAddress = value('metrics-address');
  const metricsPort = /^[^:\s]+:(\d{1,5})$/.exec(metricsAddress)?.[1];
  if (metricsAddress !== '' && (metricsPort === undefined || Number(metricsPort) < 1 || Number(metricsPort) > 65535)) {
    throw new ConfigError(
      `--metrics-address: "${metricsAddress}" must be host:port with a port from 1 to 65535 ` +
        '(or empty to turn metrics off)',
    );
  }
  const logLevel = value('log-level');
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new ConfigError(`--log-level: "${logLevel}" is not a level; use trace, debug, info, warn or error`);
  }
  const defaultPool = parseCidr(value('default-pool'), '--default-pool');
  const defaultPoolPrefixLength = parseIntIn(
    value('default-pool-prefix-length'),
    '--default-pool-prefix-length',
    8,
    30,
  );
  if (defaultPoolPrefixLength < Number(defaultPool.split('/')[1])) {
    throw new ConfigError(
      `--default-pool-prefix-length ${defaultPoolPrefixLength} is shorter than --default-pool ${defaultPool}`,
    );
  }
  const blockPrefixLength = parseIntIn(value('block-prefix-length'), '--block-prefix-length', 8, 32);
  if (blockPrefixLength < defaultPoolPrefixLength) {
    throw new ConfigError(
      `--block-prefix-length ${blockPrefixLength} is shorter than the /${defaultPoolPrefixLength} subnets carved ` +
        `from --default-pool (--default-pool-prefix-length): a node's block must fit in a network's subnet; ` +
        `use ${defaultPoolPrefixLength} or more`,
    );
  }
  const pluginSocket = value('plugin-socket');
  const apiSocket = value('api-socket');
  if (resolvePath(pluginSocket) === resolvePath(apiSocket)) {
    throw new ConfigError(`--plugin-socket and --api-socket are both ${pluginSocket}; give each its own path`);
  }
  const tunnel = value('tunnel');
  if (tunnel !== 'vxlan' && tunnel !== 'geneve' && tunnel !== 'disabled') {
    throw new ConfigError(`--tunnel: "${tunnel}" is not a mode; use vxlan, geneve or disabled`);
  }
  const routingMode = value('routing-mode');
  if (routingMode !== 'tunnel' && routingMode !== 'native') {
    throw new ConfigError(`--routing-mode: "${routingMode}" is not a mode; use tunnel or native`);
  }
  const tunnelPortText = value('tunnel-port');
  const tunnelPort =
    tunnelPortText === ''
      ? tunnel === 'geneve'
        ? DEFAULT_TUNNEL_PORTS.geneve
        : DEFAULT_TUNNEL_PORTS.vxlan
      : parseIntIn(tunnelPortText, '--tunnel-port', 1, 65535);
  const tunnelEncap = value('tunnel-encap');
  if (tunnelEncap !== 'bpf' && tunnelEncap !== 'device')
    throw new ConfigError(`--tunnel-encap: "${tunnelEncap}" is not a mode; use bpf or device`);
  const underlayIp = value('underlay-ip');
  if (underlayIp !== '' && parseIpv4(underlayIp) === undefined)
    throw new ConfigError(`--underlay-ip: "${underlayIp}" is not an IPv4 address`);
  const ctAccountingText = value('bpf-ct-accounting');
  if (!['true', 'false'].includes(ctAccountingText))
    throw new ConfigError(`--bpf-ct-accounting: "${ctAccountingText}" must be true or false`);
  const dnsAddress = parseDnsAddress(value('dns-address'));
  const upstreamList = list('dns-upstream');
  let dnsUpstreams: string[] | undefined;
  if (upstreamList.length === 1 && upstreamList[0] === 'none') dnsUpstreams = [];
  else if (upstreamList.length > 0) dnsUpstreams = upstreamList.map((u) => parseIpPort(u, '--dns-upstream'));
  return Object.freeze({
    stateDir: value('state-dir'),
    pluginSocket,
    apiSocket,
    dockerHost: value('docker-host'),
    nodeName: value('node-name') || hostname(),
    kvstore,
    kvstoreOpts: Object.freeze(kvstoreOpts),
    kvstorePrefix: layoutOpts.prefix ?? DEFAULT_KVSTORE_PREFIX,
    kvstoreMigratePrefix: migratePrefix === 'true',
    defaultPool,
    defaultPoolPrefixLength,
    blockPrefixLength,
    bpfRoot: value('bpf-root'),
    metricsAddress,
    resyncIntervalMs: parseDuration(value('resync-interval'), '--resync-interval'),
    logLevel,
    enforcement,
    identityTimeoutMs: parseDuration(value('identity-timeout'), '--identity-timeout'),
    tunnel,
    routingMode,
    tunnelPort,
    tunnelEncap,
    underlayIp,
    ctAccounting: ctAccountingText === 'true',
    dnsAddress,
    dnsUpstreams: dnsUpstreams && Object.freeze(dnsUpstreams),
  });
}

function parseIpPort(text: string, what: string): string {
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(text);
  if (!m || parseIpv4(m[1]!) === undefined || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
    throw new ConfigError(
      `${what}: "${text}" is not an IPv4 address with an optional port, e.g. 198.18.0.1 or 198.18.0.1:5353`,
    );
  }
  return text;
}

/** `--dns-address`: '' (off) or `ip[:port]`, normalised to `ip:port`. */
function parseDnsAddress(text: string): string {
  if (text === '') return '';
  const checked = parseIpPort(text, '--dns-address');
  return checked.includes(':') ? checked : `${checked}:53`;
}
