/**
 * Composition root of the cilium-docker daemon: config -> store -> IPAM, identities, datapath ->
 * endpoint manager -> plugin server, Docker watcher, agent API. The only module that wires
 * concrete implementations together; also owns the start/stop order, the undo steps of a failed
 * start, signals and shutdown. How each part is built is in daemon/ (pre-flight checks, stores,
 * routing, local parts, cluster side, DNS, plugin socket, Docker watcher, agent API, metrics).
 */
import { loadConfig, helpText, type Config } from './config/config.js';
import { log, setLogLevel } from './util/log.js';
import { CiliumDockerError, ConfigError } from './util/errors.js';
import { Metrics, serveMetrics } from './util/metrics.js';
import { CleanupStack } from './util/cleanup-stack.js';
import { preflight } from './daemon/preflight.js';
import { openStores } from './daemon/stores.js';
import { chooseRouting } from './daemon/routing.js';
import { endpointLayer, storeParts } from './daemon/local-parts.js';
import { BpfDatapath, checkBpfRoot, datapathInstalled } from './datapath/bpf-datapath.js';
import { probeKernelFeatures } from './datapath/features.js';
import { releaseStaleAddresses } from './endpoint/stale-addresses.js';
import { clusterParts } from './daemon/cluster.js';
import { dnsServer, startDns } from './daemon/dns.js';
import { dockerWatcher } from './daemon/docker.js';
import { collectMetrics } from './daemon/metrics-collection.js';
import { pluginServer } from './daemon/plugin.js';
import { agentApi } from './daemon/agent-api.js';
import { DAEMON_VERSION } from './daemon/version.js';

/**
 * Starts every part of the daemon; resolves with a stop function. A start that fails after the
 * pre-flight checks undoes what it did, newest first (each step registers its undo).
 */
export async function startDaemon(config: Config): Promise<{ stop: () => Promise<void> }> {
  setLogLevel(config.logLevel);
  await preflight(config, checkBpfRoot);
  const undo = new CleanupStack();
  try {
    return await startParts(config, undo);
  } catch (err) {
    log.error({ err, steps: undo.size }, 'start-up failed: undoing what it did');
    await undo.unwind(log);
    throw err;
  }
}

async function startParts(config: Config, undo: CleanupStack): Promise<{ stop: () => Promise<void> }> {
  const started = Date.now();
  const metrics = new Metrics();
  // Kernel features first: a tunnel the kernel cannot do fails the start before anything is configured.
  const features = await probeKernelFeatures();
  log.info(
    { vxlanExternal: features.vxlanExternal, geneveExternal: features.geneveExternal },
    'kernel features probed',
  );
  const { tunnel, native } = await chooseRouting(config, features);
  // Undo steps: close the store, close the node store (when it is a file of its own).
  const { store, nodeStore, onReconnect } = await openStores(config, undo, metrics);
  const { ipam, identities } = storeParts(config, { store, nodeStore });
  const datapath = new BpfDatapath({
    bpfRoot: config.bpfRoot,
    log: log.child({ component: 'datapath' }),
    tunnel,
    native,
    ctAccounting: config.ctAccounting,
  });
  // An earlier agent's datapath keeps running containers connected: a failed start only lets go
  // of it. One this start created (perhaps half-way) is removed: links, pins, the masquerade rule.
  const earlierDatapath = await datapathInstalled(config.bpfRoot);
  undo.push(earlierDatapath ? 'release the datapath' : 'remove the datapath', () =>
    earlierDatapath ? datapath.close() : datapath.cleanup([], []),
  );
  await datapath.init();
  const { networks, endpoints, policy } = endpointLayer(config, {
    store,
    nodeStore,
    ipam,
    identities,
    datapath,
    metrics,
  });

  // Before any identity is adopted or allocated: identities stored in the unescaped label form.
  await identities.migrateLabelEncoding();
  const { restored, stale } = await endpoints.restore();
  await releaseStaleAddresses(stale, { getNetwork: (id) => endpoints.getNetwork(id), ipam });
  log.info({ restored, stale: stale.length }, 'endpoints restored');
  await policy.start();
  const { ips, nodeSync, peers } = clusterParts(config, {
    store,
    endpoints,
    identities,
    networks,
    policy,
    ipam,
    datapath,
    tunnel,
    native,
  });
  endpoints.onChange(() => ips.schedule());
  await nodeSync.start();
  await networks
    .start()
    .catch((err: unknown) => log.warn({ err }, 'watching network names failed; the resync compares them'));
  await peers.start().catch((err: unknown) => log.warn({ err }, 'listing peers failed; the resync retries'));
  onReconnect((reason) => {
    log.info({ reason }, 'store reconnected: resyncing now');
    void nodeSync.resync('reconnect').catch(() => undefined);
  });

  const dns = dnsServer(config, endpoints, peers);
  const plugin = pluginServer(config, { endpoints, ipam, networks, metrics, defaultMtu: datapath.overlayMtu });
  const watcher = dockerWatcher(config, endpoints);
  // Endpoints admitted as waiting-for-identity during an outage get theirs as soon as the store
  // is back, not at the next sweep.
  onReconnect(() => void watcher.sweepWaiting().catch(() => undefined));

  const api = agentApi(config, {
    version: DAEMON_VERSION,
    startedAt: started,
    store,
    endpoints,
    identities,
    networks,
    policy,
    plugin,
    docker: watcher,
    resync: nodeSync,
    dns,
    peers,
    datapath,
    tunnel,
    native,
  });
  collectMetrics(metrics, { endpoints, identities, store, policy, datapath });
  await plugin.start();
  undo.push('remove the plugin socket', () => plugin.stop());
  await api.start();
  undo.push('remove the API socket', () => api.stop());
  if (dns) {
    await startDns(config, dns);
    undo.push('stop the DNS resolver', () => dns.stop());
  }
  const metricsServer = config.metricsAddress === '' ? undefined : await serveMetrics(metrics, config.metricsAddress);
  watcher.start();
  log.info({ node: config.nodeName, kvstore: config.kvstore, version: DAEMON_VERSION }, 'cilium-docker ready');

  return {
    async stop() {
      // A clean stop leaves the datapath in place: containers keep their connectivity.
      watcher.stop();
      nodeSync.stop();
      networks.stop();
      peers.stop();
      policy.stop();
      metricsServer?.close();
      await Promise.allSettled([plugin.stop(), api.stop(), dns?.stop()]);
      await store.close();
      if (nodeStore !== store) await nodeStore.close();
      await datapath.close();
    },
  };
}

async function run(): Promise<void> {
  let config: Config | 'help';
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`cilium-docker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  if (config === 'help') {
    process.stdout.write(helpText());
    return;
  }
  let daemon: { stop: () => Promise<void> };
  try {
    daemon = await startDaemon(config);
  } catch (err) {
    const code = err instanceof CiliumDockerError ? err.code : 'ERR_INTERNAL';
    log.fatal({ code, err }, 'cannot start');
    process.stderr.write(`cilium-docker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping (datapath stays in place)');
    daemon.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

await run();
