/**
 * Composition root of the cilium-docker daemon: config -> store -> IPAM, identities, datapath ->
 * endpoint manager -> plugin server, Docker watcher, agent API. The only module that wires
 * concrete implementations together; also owns the start/stop order, signals and shutdown.
 * The checks before the host is touched are in daemon/preflight.ts, the agent API's handlers in
 * api/backend/ (one module per resource), this node's ip/v1 entries in cluster/ip-publisher.ts.
 */
import { readFileSync } from 'node:fs';
import { loadConfig, helpText, type Config } from './config/config.js';
import { log, setLogLevel } from './util/log.js';
import { CiliumDockerError, ConfigError } from './util/errors.js';
import { InstrumentedKvStore } from './kvstore/instrumented-store.js';
import { openPrefixedStore } from './kvstore/store-prefix.js';
import { Metrics, serveMetrics } from './util/metrics.js';
import { CleanupStack } from './util/cleanup-stack.js';
import { preflight } from './daemon/preflight.js';
import { STORE_LAYOUT_PREFIXES } from './daemon/store-layout.js';
import { openNodeStore, openStore } from './daemon/stores.js';
import { chooseRouting } from './daemon/routing.js';
import { Ipam } from './ipam/ipam.js';
import { NetworkRegistry } from './ipam/network-registry.js';
import { IdentityAllocator } from './identity/allocator.js';
import { BpfDatapath, checkBpfRoot, datapathInstalled, networkNumber } from './datapath/bpf-datapath.js';
import { probeKernelFeatures } from './datapath/features.js';
import { dropReasonName } from './datapath/bpf/abi.js';
import { PolicyEngine } from './endpoint/policy-engine.js';
import { EndpointManager } from './endpoint/endpoint-manager.js';
import { releaseStaleAddresses } from './endpoint/stale-addresses.js';
import { NodeSync } from './cluster/node-sync.js';
import { IpPublisher } from './cluster/ip-publisher.js';
import { PeerWatcher } from './cluster/peer-watcher.js';
import { networkDriverHandlers } from './plugin/network-driver.js';
import { ipamDriverHandlers } from './plugin/ipam-driver.js';
import { PluginServer } from './plugin/server.js';
import { NetworkCreationTracker } from './plugin/network-creation-tracker.js';
import { DockerWatcher } from './docker/docker-watcher.js';
import { ApiServer, type AgentBackend } from './api/server.js';
import { kvstoreRoutes } from './api/kvstore-routes.js';
import { nodeRoutes } from './api/node-routes.js';
import { versionRoutes } from './api/version-routes.js';
import { statusHandlers } from './api/backend/status.js';
import { endpointHandlers } from './api/backend/endpoint.js';
import { identityHandlers } from './api/backend/identity.js';
import { ipHandlers } from './api/backend/ip.js';
import { networkHandlers } from './api/backend/network.js';
import { cleanupHandlers } from './api/backend/cleanup.js';
import { policyHandlers } from './api/backend/policy.js';
import { monitorHandlers } from './api/backend/monitor.js';
import { bpfHandlers } from './api/backend/bpf.js';
import { DnsServer, nameserversOf } from './dns/dns-server.js';
import type { NamedEndpoint } from './dns/cluster-names.js';

const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

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
    log.error({ err: err instanceof Error ? err.message : String(err), steps: undo.size }, 'start-up failed: undoing what it did');
    await undo.unwind(log);
    throw err;
  }
}

async function startParts(config: Config, undo: CleanupStack): Promise<{ stop: () => Promise<void> }> {
  const started = Date.now();
  const metrics = new Metrics();
  // Kernel features first: a tunnel the kernel cannot do fails the start before anything is configured.
  const features = await probeKernelFeatures();
  log.info({ vxlanExternal: features.vxlanExternal, geneveExternal: features.geneveExternal }, 'kernel features probed');
  const { tunnel, native } = await chooseRouting(config, features);
  const rawStore = await openStore(config);
  undo.push('close the store', () => rawStore.close());
  // Every cluster key under --kvstore-opt prefix; the embedded store is this node's alone, so its
  // unprefixed keys of an earlier version are moved without asking (kvstore/store-prefix.ts).
  const { store: prefixedStore } = await openPrefixedStore(rawStore, {
    prefix: config.kvstorePrefix,
    migrate: config.kvstore === 'local' || config.kvstoreMigratePrefix,
    layout: STORE_LAYOUT_PREFIXES,
    backend: `--kvstore ${config.kvstore}`,
    log: log.child({ component: 'kvstore' }),
  });
  const store = new InstrumentedKvStore(prefixedStore, (action, seconds, ok) => {
    metrics.kvstoreSeconds.observe({ action, outcome: ok ? 'success' : 'fail' }, seconds);
  });
  const nodeStore = await openNodeStore(config, store);
  if (nodeStore !== store) undo.push('close the node store', () => nodeStore.close());
  const ipam = new Ipam({
    store,
    nodeStore,
    nodeName: config.nodeName,
    defaultPool: config.defaultPool,
    defaultPoolPrefixLength: config.defaultPoolPrefixLength,
    blockPrefixLength: config.blockPrefixLength,
  });
  const identities = new IdentityAllocator({ store, nodeName: config.nodeName, log: log.child({ component: 'identity' }) });
  const datapath = new BpfDatapath({ bpfRoot: config.bpfRoot, log: log.child({ component: 'datapath' }), tunnel, native, ctAccounting: config.ctAccounting });
  // An earlier agent's datapath keeps running containers connected: a failed start only lets go
  // of it. One this start created (perhaps half-way) is removed: links, pins, the masquerade rule.
  const earlierDatapath = await datapathInstalled(config.bpfRoot);
  undo.push(earlierDatapath ? 'release the datapath' : 'remove the datapath', () => (earlierDatapath ? datapath.close() : datapath.cleanup([], [])));
  await datapath.init();
  const networks = new NetworkRegistry({ store, nodeName: config.nodeName, ipam, log: log.child({ component: 'networks' }) });
  const endpoints = new EndpointManager({ store: nodeStore, identityTimeoutMs: config.identityTimeoutMs, nodeName: config.nodeName, datapath, identities, networks, log: log.child({ component: 'endpoint' }) });
  const policy = new PolicyEngine({
    store,
    endpoints,
    datapath,
    enforcement: config.enforcement,
    log: log.child({ component: 'policy' }),
    toDatapathEndpoint: (e) => endpoints.toDatapathEndpoint(e),
    onRegenerated: (seconds) => metrics.regenerationSeconds.observe({ scope: 'total' }, seconds),
  });

  // Before any identity is adopted or allocated: identities stored in the unescaped label form.
  await identities.migrateLabelEncoding();
  const { restored, stale } = await endpoints.restore();
  await releaseStaleAddresses(stale, { getNetwork: (id) => endpoints.getNetwork(id), ipam });
  log.info({ restored, stale: stale.length }, 'endpoints restored');
  await policy.start();
  /** The network name endpoints publish and the DNS resolver scopes names by: `cilium.network`, else Docker's name. */
  const clusterNetworkName = (networkId: string): string | undefined => {
    const n = endpoints.getNetwork(networkId);
    return n?.clusterName ?? n?.name;
  };
  const ips = new IpPublisher({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'cluster' }),
    localIps: () =>
      endpoints
        .listEndpoints()
        .filter((e) => e.state !== 'created')
        .map((e) => ({ ip: e.ipv4, identity: e.identity, endpoint: e.id, name: e.containerName?.replace(/^\//, ''), aliases: e.aliases, network: clusterNetworkName(e.networkId) })),
  });
  const nodeSync = new NodeSync({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'cluster' }),
    intervalMs: config.resyncIntervalMs,
    ips,
    reassertIdentities: async () => {
      await identities.reassertReferences();
      await identities.collectUnreferenced();
    },
    reassertNetworks: () => networks.reassert(),
    relist: async () => {
      await policy.relist();
      await peers.relist();
    },
    tunnel: tunnel && { kind: tunnel.kind, port: tunnel.port, underlayIp: tunnel.underlayIp },
    native: native && { underlayIp: native.underlayIp },
    localBlocks: async () => (await ipam.listPools()).flatMap((p) => p.blocks.filter((b) => b.node === config.nodeName).map((b) => b.cidr)),
  });
  const peers = new PeerWatcher({ store, nodeName: config.nodeName, datapath, networkNumber, routes: (native || tunnel) && datapath, routingMode: native ? 'native' : 'tunnel', log: log.child({ component: 'peers' }) });
  endpoints.onChange(() => ips.schedule());
  await nodeSync.start();
  await networks.start().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'watching network names failed; the resync compares them'));
  await peers.start().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'listing peers failed; the resync retries'));
  const reconnectable = rawStore as { onReconnect?: (cb: (reason: unknown) => void) => unknown };
  reconnectable.onReconnect?.((reason) => {
    log.info({ reason }, 'store reconnected: resyncing now');
    void nodeSync.resync('reconnect').catch(() => undefined);
  });

  let dns: DnsServer | undefined;
  if (config.dnsAddress !== '') {
    const [dnsHost, dnsPort] = config.dnsAddress.split(':') as [string, string];
    const upstreams = config.dnsUpstreams ?? nameserversOf(readFileSync('/etc/resolv.conf', 'utf8'), [dnsHost]);
    dns = new DnsServer({
      host: dnsHost,
      port: Number(dnsPort),
      upstreams: [...upstreams],
      log: log.child({ component: 'dns' }),
      endpoints: function* (): Generator<NamedEndpoint> {
        for (const e of endpoints.listEndpoints()) {
          const network = clusterNetworkName(e.networkId);
          if (e.containerName && network) yield { ip: e.ipv4, name: e.containerName.replace(/^\//, ''), aliases: e.aliases, network, container: e.containerId };
        }
        yield* peers.remoteNames();
      },
    });
  }

  const creations = new NetworkCreationTracker();
  const plugin = new PluginServer({
    socketPath: config.pluginSocket,
    network: networkDriverHandlers(endpoints, creations, ipam, { defaultMtu: datapath.overlayMtu }),
    ipam: ipamDriverHandlers(ipam, creations, networks),
    log: log.child({ component: 'plugin' }),
    observe: (call, _ms, error) => metrics.pluginCalls.inc({ call, outcome: error ? 'fail' : 'success' }),
  });

  const watcher = new DockerWatcher({
    dockerHost: config.dockerHost,
    log: log.child({ component: 'docker' }),
    isOurEndpoint: (id) => endpoints.getEndpoint(id) !== undefined,
    isOurNetwork: (id) => endpoints.getNetwork(id) !== undefined,
    awaitingContainer: () => endpoints.awaitingContainer(),
    networkNamed: (networkId, name) => endpoints.setNetworkName(networkId, name),
    waitingEndpoints: () => endpoints.listEndpoints().filter((e) => e.state === 'waiting-for-identity').map((e) => e.endpointId),
    attach: async (c) => {
      await endpoints.attachContainer(c.endpointId, { containerId: c.containerId, containerName: c.containerName, aliases: c.aliases, labels: c.labels, networkName: c.networkName });
    },
  });
  // Endpoints admitted as waiting-for-identity during an outage get theirs as soon as the store
  // is back, not at the next sweep.
  reconnectable.onReconnect?.(() => void watcher.sweepWaiting().catch(() => undefined));

  const backend: AgentBackend = {
    ...statusHandlers({
      nodeName: config.nodeName,
      version: VERSION,
      startedAt: started,
      kvstoreBackend: config.kvstore,
      store,
      endpoints,
      identities,
      plugin,
      docker: watcher,
      datapath,
      resync: nodeSync,
      overlay: { tunnel, native, datapath, peers },
      dns,
    }),
    ...endpointHandlers(endpoints),
    ...identityHandlers(identities),
    ...ipHandlers({ nodeName: config.nodeName, endpoints, store }),
    ...networkHandlers({ networks, endpoints }),
    ...cleanupHandlers({ endpoints, datapath, peers, bpfRoot: config.bpfRoot }),
    ...policyHandlers(policy),
    ...monitorHandlers({ datapath, policy }),
    ...bpfHandlers({ datapath, endpoints, policy, ctAccounting: config.ctAccounting }),
  };
  const api = new ApiServer({ socketPath: config.apiSocket, backend, log: log.child({ component: 'api' }), routes: [kvstoreRoutes(store), nodeRoutes({ peers, store }), versionRoutes(VERSION, config.nodeName)] });

  metrics.onCollect(async () => {
    metrics.endpoints.reset();
    for (const e of endpoints.listEndpoints()) metrics.endpoints.inc({ state: e.state });
    metrics.identities.set((await identities.list().catch(() => [])).filter((i) => !i.reserved).length);
    metrics.kvstoreHealthy.set(store.reachable ? 1 : 0);
    metrics.policies.set(policy.policyCount);
    metrics.policyMaxRevision.set(policy.revision);
    metrics.drops.reset();
    metrics.forwards.reset();
    for (const sample of await datapath.metricsSamples()) {
      if (sample.reason === 0) metrics.forwards.inc({ direction: sample.direction.toUpperCase() }, Number(sample.packets));
      else metrics.drops.inc({ reason: dropReasonName(sample.reason), direction: sample.direction.toUpperCase() }, Number(sample.packets));
    }
  });

  await plugin.start();
  undo.push('remove the plugin socket', () => plugin.stop());
  await api.start();
  undo.push('remove the API socket', () => api.stop());
  await dns?.start().catch((err: unknown) => {
    throw new ConfigError(`--dns-address ${config.dnsAddress}: cannot listen (${err instanceof Error ? err.message : String(err)}); give an address of this host whose port is free, or leave --dns-address empty`);
  });
  if (dns) undo.push('stop the DNS resolver', () => dns.stop());
  const metricsServer = config.metricsAddress === '' ? undefined : await serveMetrics(metrics, config.metricsAddress);
  watcher.start();
  log.info({ node: config.nodeName, kvstore: config.kvstore, version: VERSION }, 'cilium-docker ready');

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
    log.fatal({ code, err: err instanceof Error ? err.message : String(err) }, 'cannot start');
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
