/**
 * The Docker watcher (docker/docker-watcher.ts) tied to the endpoint manager: it learns network
 * names and containers' labels and names from dockerd's API and hands them to the endpoints.
 */
import type { Config } from '../config/config.js';
import { DockerWatcher } from '../docker/docker-watcher.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import { log } from '../util/log.js';

/** The watcher, not started. */
export function dockerWatcher(config: Config, endpoints: EndpointManager): DockerWatcher {
  return new DockerWatcher({
    dockerHost: config.dockerHost,
    log: log.child({ component: 'docker' }),
    isOurEndpoint: (id) => endpoints.getEndpoint(id) !== undefined,
    isOurNetwork: (id) => endpoints.getNetwork(id) !== undefined,
    awaitingContainer: () => endpoints.awaitingContainer(),
    networkNamed: (networkId, name) => endpoints.setNetworkName(networkId, name),
    waitingEndpoints: () =>
      endpoints
        .listEndpoints()
        .filter((e) => e.state === 'waiting-for-identity')
        .map((e) => e.endpointId),
    attach: async (c) => {
      await endpoints.attachContainer(c.endpointId, {
        containerId: c.containerId,
        containerName: c.containerName,
        aliases: c.aliases,
        labels: c.labels,
        networkName: c.networkName,
      });
    },
  });
}
