/**
 * The DNS resolver of `--dns-address` (dns/dns-server.ts), answering this node's endpoints and
 * the other nodes' published names, forwarding the rest to `--dns-upstream` or resolv.conf's.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.js';
import type { PeerWatcher } from '../cluster/peer-watcher.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import { DnsServer, nameserversOf } from '../dns/dns-server.js';
import type { NamedEndpoint } from '../dns/cluster-names.js';
import { ConfigError } from '../util/errors.js';
import { log } from '../util/log.js';

/** The resolver, not listening yet; undefined when `--dns-address` is empty. */
export function dnsServer(
  config: Config,
  endpoints: EndpointManager,
  peers: Pick<PeerWatcher, 'remoteNames'>,
): DnsServer | undefined {
  if (config.dnsAddress === '') return undefined;
  const [dnsHost, dnsPort] = config.dnsAddress.split(':') as [string, string];
  const upstreams = config.dnsUpstreams ?? nameserversOf(readFileSync('/etc/resolv.conf', 'utf8'), [dnsHost]);
  return new DnsServer({
    host: dnsHost,
    port: Number(dnsPort),
    upstreams: [...upstreams],
    log: log.child({ component: 'dns' }),
    endpoints: function* (): Generator<NamedEndpoint> {
      for (const e of endpoints.listEndpoints()) {
        const network = endpoints.clusterNetworkName(e.networkId);
        if (e.containerName && network)
          yield {
            ip: e.ipv4,
            name: e.containerName.replace(/^\//, ''),
            aliases: e.aliases,
            network,
            container: e.containerId,
          };
      }
      yield* peers.remoteNames();
    },
  });
}

/** Starts listening; an address that cannot be bound is a ConfigError naming `--dns-address`. */
export async function startDns(config: Config, dns: DnsServer): Promise<void> {
  await dns.start().catch((err: unknown) => {
    throw new ConfigError(
      `--dns-address ${config.dnsAddress}: cannot listen (${err instanceof Error ? err.message : String(err)}); ` +
        'give an address of this host whose port is free, or leave --dns-address empty',
    );
  });
}
