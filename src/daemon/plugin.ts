/**
 * The Docker plugin socket (`--plugin-socket`): the NetworkDriver and IpamDriver handlers over the
 * endpoint manager, the IPAM and the cluster's network names, each call counted in the metrics.
 */
import type { Config } from '../config/config.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { Ipam } from '../ipam/ipam.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import { networkDriverHandlers } from '../plugin/network-driver.js';
import { ipamDriverHandlers } from '../plugin/ipam-driver.js';
import { PluginServer } from '../plugin/server.js';
import { NetworkCreationTracker } from '../plugin/network-creation-tracker.js';
import { log } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';

/** The plugin server, not listening yet. `defaultMtu`: the overlay's MTU, if any (the datapath's). */
export function pluginServer(
  config: Config,
  parts: {
    endpoints: EndpointManager;
    ipam: Ipam;
    networks: NetworkRegistry;
    metrics: Metrics;
    defaultMtu: number | undefined;
  },
): PluginServer {
  const { endpoints, ipam, networks, metrics } = parts;
  const creations = new NetworkCreationTracker();
  return new PluginServer({
    socketPath: config.pluginSocket,
    network: networkDriverHandlers(endpoints, creations, ipam, { defaultMtu: parts.defaultMtu }),
    ipam: ipamDriverHandlers(ipam, creations, networks),
    log: log.child({ component: 'plugin' }),
    observe: (call, _ms, error) => metrics.pluginCalls.inc({ call, outcome: error ? 'fail' : 'success' }),
  });
}
