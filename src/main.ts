/**
 * Composition root of the cilium-docker daemon: config -> store -> IPAM, identities, datapath ->
 * endpoint manager -> plugin server, Docker watcher, agent API. The only module that wires
 * concrete implementations together; also owns signals and shutdown.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, helpText, type Config } from './config/config.js';
import { log, setLogLevel } from './util/log.js';
import { CiliumDockerError, ConfigError, UnsupportedError } from './util/errors.js';
import type { KvStore } from './kvstore/kvstore.js';
import { nodeRecordPrefix } from './kvstore/store-scopes.js';
import { LocalKvStore, localOptionsFromKvstoreOpts } from './kvstore/local/local-store.js';
import { InstrumentedKvStore } from './kvstore/instrumented-store.js';
import { openPrefixedStore, parseStorePrefix } from './kvstore/store-prefix.js';
import { EtcdKvStore, etcdOptionsFromKvstoreOpts } from './kvstore/etcd/etcd-store.js';
import { ConsulKvStore, consulOptionsFromKvstoreOpts } from './kvstore/consul/consul-store.js';
import { Metrics, serveMetrics } from './util/metrics.js';
import { Ipam } from './ipam/ipam.js';
import { NetworkRegistry } from './ipam/network-registry.js';
import { IdentityAllocator } from './identity/allocator.js';
import { BpfDatapath } from './datapath/bpf-datapath.js';
import { checkBpfRoot, datapathInstalled } from './datapath/bpf-datapath.js';
import { CleanupStack } from './util/cleanup-stack.js';
import { checkListenAddresses, type ListenAddress } from './util/listen-check.js';
import { assertPrivateDir, ensurePrivateDir } from './util/private-dir.js';
import { checkUnixSocketPath } from './util/http-server.js';
import { PolicyEngine } from './endpoint/policy-engine.js';
import { NodeSync } from './cluster/node-sync.js';
import { PeerWatcher } from './cluster/peer-watcher.js';
import { probeKernelFeatures, requireTunnelSupport } from './datapath/features.js';
import { findUnderlay } from './datapath/link/tunnel-link.js';
import { networkNumber, type TunnelSettings } from './datapath/bpf-datapath.js';
import { cronExpressionFor } from './cluster/resync-schedule.js';
import { dropReasonName } from './datapath/bpf/abi.js';
import { NotFoundError } from './util/errors.js';
import type { MonitorEventModel } from './api/models.js';
import { EndpointManager } from './endpoint/endpoint-manager.js';
import { networkDriverHandlers } from './plugin/network-driver.js';
import { ipamDriverHandlers } from './plugin/ipam-driver.js';
import { PluginServer } from './plugin/server.js';
import { NetworkCreationTracker } from './plugin/network-creation-tracker.js';
import { DockerWatcher } from './docker/docker-watcher.js';
import { ApiServer, type AgentBackend } from './api/server.js';
import { kvstoreRoutes } from './api/kvstore-routes.js';
import { nodeRoutes } from './api/node-routes.js';
import { versionRoutes } from './api/version-routes.js';
import { DnsServer, nameserversOf } from './dns/dns-server.js';
import type { NamedEndpoint } from './dns/cluster-names.js';
import type { EndpointModel, NetworkModel, StatusModel } from './api/models.js';
import type { EndpointRecord } from './endpoint/endpoint.js';

const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function openStore(config: Config): Promise<KvStore> {
  switch (config.kvstore) {
    case 'local':
      ensureStateDir(config);
      return LocalKvStore.open({ path: join(config.stateDir, 'kvstore.db'), ...localOptionsFromKvstoreOpts(config.kvstoreOpts) });
    case 'etcd':
      return EtcdKvStore.open(etcdOptionsFromKvstoreOpts(config.kvstoreOpts));
    case 'consul':
      return ConsulKvStore.open(consulOptionsFromKvstoreOpts(config.kvstoreOpts));
    default:
      throw new UnsupportedError(`--kvstore ${String(config.kvstore)} is not a backend; use local, etcd or consul`);
  }
}

/**
 * The node-local store (`kvstore/store-scopes.ts`): the cluster store itself with `--kvstore
 * local`, otherwise an embedded file of its own under the state dir (`node-state.db`, not
 * `kvstore.db`: a state dir that ran with `--kvstore local` before is never read as node state).
 */
async function openNodeStore(config: Config, cluster: KvStore): Promise<KvStore> {
  if (config.kvstore === 'local') return cluster;
  ensureStateDir(config);
  const node = LocalKvStore.open({ path: join(config.stateDir, 'node-state.db') });
  // Nothing is migrated: records an older version kept in the cluster store are only reported.
  const prefix = nodeRecordPrefix(config.nodeName);
  const leftovers = await cluster.list(prefix).then((r) => r.pairs.length, () => 0);
  if (leftovers > 0 && (await node.list(prefix)).pairs.length === 0) {
    log.warn({ prefix, keys: leftovers, nodeStore: join(config.stateDir, 'node-state.db') }, 'endpoint records of this node found in the cluster store are not used: node-local state lives in the node store now (see README, Stores)');
  }
  return node;
}

/** The state directory, private to the daemon's user (0700; see util/private-dir.ts). */
function ensureStateDir(config: Config): void {
  const { narrowedFrom } = ensurePrivateDir(config.stateDir, '--state-dir');
  if (narrowedFrom) log.warn({ stateDir: config.stateDir, mode: narrowedFrom }, 'the state directory let other users read the store: narrowed to 0700');
}

/**
 * Everything that can be checked before the host is touched (links, pins, the masquerade rule,
 * sockets, the state directory): a bad setting fails the start naming its flag, leaving nothing.
 */
async function preflight(config: Config): Promise<void> {
  cronExpressionFor(config.resyncIntervalMs);
  if (config.kvstore === 'local') localOptionsFromKvstoreOpts(config.kvstoreOpts);
  else if (config.kvstore === 'etcd') etcdOptionsFromKvstoreOpts(config.kvstoreOpts);
  else consulOptionsFromKvstoreOpts(config.kvstoreOpts);
  parseStorePrefix(config.kvstorePrefix);
  assertPrivateDir(config.stateDir, '--state-dir');
  checkBpfRoot(config.bpfRoot);
  for (const [option, path] of [['--plugin-socket', config.pluginSocket], ['--api-socket', config.apiSocket]] as const) {
    await checkUnixSocketPath(path).catch((err: unknown) => {
      throw err instanceof CiliumDockerError ? new CiliumDockerError(err.kind, err.code, `${option}: ${err.message}`, { cause: err }) : err;
    });
  }
  const listeners: ListenAddress[] = [];
  for (const [option, address, protocols] of [['--metrics-address', config.metricsAddress, ['tcp']], ['--dns-address', config.dnsAddress, ['udp', 'tcp']]] as const) {
    if (address === '') continue;
    const colon = address.lastIndexOf(':');
    listeners.push({ option, host: address.slice(0, colon), port: Number(address.slice(colon + 1)), protocols });
  }
  await checkListenAddresses(listeners);
}

/**
 * Starts every part of the daemon; resolves with a stop function. A start that fails after the
 * pre-flight checks undoes what it did, newest first (each step registers its undo).
 */
export async function startDaemon(config: Config): Promise<{ stop: () => Promise<void> }> {
  setLogLevel(config.logLevel);
  await preflight(config);
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
  let tunnel: (TunnelSettings & { underlayIp: string }) | undefined;
  let native: { underlayMtu: number; underlayIp: string; device: string } | undefined;
  if (config.routingMode === 'native') {
    // No encapsulation: --tunnel does not apply; peers route our blocks to the underlay address.
    const underlay = await findUnderlay(config.underlayIp);
    if (underlay) native = { underlayMtu: underlay.mtu, underlayIp: underlay.ip, device: underlay.device };
    else log.warn({ routingMode: 'native' }, 'no underlay address (no default route and no --underlay-ip): native routing off, this node is reachable from no other node');
  } else if (config.tunnel !== 'disabled') {
    requireTunnelSupport(config.tunnel, features);
    const underlay = await findUnderlay(config.underlayIp);
    if (underlay) tunnel = { kind: config.tunnel, port: config.tunnelPort, underlayMtu: underlay.mtu, underlayIp: underlay.ip, underlayDevice: underlay.device, encap: config.tunnelEncap };
    else log.warn({ tunnel: config.tunnel }, 'no underlay address (no default route and no --underlay-ip): overlay off, this node is reachable from no other node');
  }
  const rawStore = await openStore(config);
  undo.push('close the store', () => rawStore.close());
  // Every cluster key under --kvstore-opt prefix; the embedded store is this node's alone, so its
  // unprefixed keys of an earlier version are moved without asking (kvstore/store-prefix.ts).
  const { store: prefixedStore } = await openPrefixedStore(rawStore, {
    prefix: config.kvstorePrefix,
    migrate: config.kvstore === 'local' || config.kvstoreMigratePrefix,
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
  for (const ep of stale) {
    const network = endpoints.getNetwork(ep.networkId);
    const pools = await ipam.listPools();
    const pool = pools.find((p) => p.pool === network?.subnet);
    if (pool) await ipam.releaseAddress(pool.poolId, ep.ipv4);
  }
  log.info({ restored, stale: stale.length }, 'endpoints restored');
  await policy.start();
  /** The network name endpoints publish and the DNS resolver scopes names by: `cilium.network`, else Docker's name. */
  const clusterNetworkName = (networkId: string): string | undefined => {
    const n = endpoints.getNetwork(networkId);
    return n?.clusterName ?? n?.name;
  };
  const nodeSync = new NodeSync({
    store,
    nodeName: config.nodeName,
    log: log.child({ component: 'cluster' }),
    intervalMs: config.resyncIntervalMs,
    localIps: () =>
      endpoints
        .listEndpoints()
        .filter((e) => e.state !== 'created')
        .map((e) => ({ ip: e.ipv4, identity: e.identity, endpoint: e.id, name: e.containerName?.replace(/^\//, ''), aliases: e.aliases, network: clusterNetworkName(e.networkId) })),
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
  let publishing = false;
  let publishAgain = false;
  const publishIps = (): void => {
    if (publishing) {
      publishAgain = true;
      return;
    }
    publishing = true;
    void nodeSync
      .publishIps()
      .catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'publishing ip entries failed; the resync retries'))
      .finally(() => {
        publishing = false;
        if (publishAgain) {
          publishAgain = false;
          publishIps();
        }
      });
  };
  endpoints.onChange(() => publishIps());
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

  const toModel = (e: EndpointRecord): EndpointModel => ({
    id: e.id,
    endpointId: e.endpointId,
    networkId: e.networkId,
    networkName: endpoints.getNetwork(e.networkId)?.name,
    containerId: e.containerId,
    containerName: e.containerName,
    ...(e.aliases ? { aliases: e.aliases } : {}),
    ipv4: e.ipv4,
    mac: e.mac,
    hostInterface: e.hostIfName,
    state: e.state,
    identity: e.identity,
    labels: e.labels,
    policyRevision: e.policyRevision,
    createdAt: e.createdAt,
  });

  /** `cilium status`'s overlay section: the tunnel or the native routes, and the peers either way. */
  const overlayStatus = async (): Promise<StatusModel['overlay']> => {
    if (!tunnel && !native) return undefined;
    const common = {
      mtu: datapath.overlayMtu ?? 0,
      lastSync: peers.lastSync,
      peers: peers.peers().map((p) => ({ name: p.name, underlayIp: p.underlayIp, bootId: p.bootId, blocks: p.blocks, endpoints: p.endpoints })),
    };
    if (tunnel) return { routingMode: 'tunnel', tunnel: tunnel.kind, port: tunnel.port, encap: tunnel.encap, underlayDevice: tunnel.underlayDevice, device: datapath.tunnelDevice ?? '', underlayIp: tunnel.underlayIp, ...common, routes: await datapath.peerRoutes().catch(() => []) };
    return { routingMode: 'native', tunnel: 'disabled', port: 0, device: native!.device, underlayIp: native!.underlayIp, ...common, routes: await datapath.peerRoutes().catch(() => []) };
  };

  const backend: AgentBackend = {
    async status() {
      const kv = await store.status().catch((err: unknown) => ({ backend: config.kvstore, healthy: false, detail: String(err) }));
      const byState: Record<string, number> = {};
      for (const e of endpoints.listEndpoints()) byState[e.state] = (byState[e.state] ?? 0) + 1;
      const ids = await identities.list().catch(() => []);
      return {
        node: config.nodeName,
        version: VERSION,
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        driver: plugin.driverName,
        kvstore: { backend: kv.backend, healthy: kv.healthy, detail: kv.detail },
        docker: watcher.status(),
        datapath: datapath.name,
        resync: nodeSync.getStatus(),
        endpoints: byState,
        identities: ids.filter((i) => !i.reserved).length,
        networks: endpoints.listNetworks().length,
        overlay: await overlayStatus(),
        dns: dns?.status(),
      };
    },
    listEndpoints: () => endpoints.listEndpoints().map(toModel),
    getEndpoint: (ref) => {
      const e = endpoints.findEndpoint(ref);
      return e ? toModel(e) : undefined;
    },
    async listIdentities() {
      const nodes = await identities.referencingNodes().catch(() => undefined);
      return (await identities.list()).map((i) => ({ id: i.id, labels: i.labels.toStrings(), reserved: i.reserved, localReferences: i.localReferences, ...(nodes && !i.reserved && { nodes: nodes.get(i.id) ?? [] }) }));
    },
    async getIdentity(id) {
      const i = await identities.get(id);
      const nodes = i && !i.reserved ? await identities.referencingNodes(i.labels).catch(() => undefined) : undefined;
      return i ? { id: i.id, labels: i.labels.toStrings(), reserved: i.reserved, localReferences: i.localReferences, ...(nodes && { nodes: nodes.get(i.id) ?? [] }) } : undefined;
    },
    async listIps() {
      const local = endpoints.listEndpoints().map((e) => ({ ip: e.ipv4, identity: e.identity, node: config.nodeName, endpoint: e.id, source: 'local' as const }));
      const seen = new Set(local.map((e) => e.ip));
      // Other nodes' endpoints, from their leased ip/v1/<ip> keys (unreachable store: local only).
      const remote = (await store.list('ip/v1/').catch(() => ({ pairs: [] }))).pairs
        .map((p) => ({ ip: p.key.slice('ip/v1/'.length), ...(JSON.parse(p.value) as { identity: number; node: string }) }))
        .filter((e) => e.node !== config.nodeName && !seen.has(e.ip))
        .map((e) => ({ ip: e.ip, identity: e.identity, node: e.node, source: 'remote' as const }));
      return [...local, ...remote].sort((a, b) => (a.ip < b.ip ? -1 : 1));
    },
    async listNetworks() {
      // Cluster records (unreachable store: this node's view only), then local networks on top.
      const records = await networks.list().catch(() => []);
      const claims = new Map(networks.claims().map((c) => [c.networkId, c]));
      const rows = new Map<string, NetworkModel>();
      for (const { record, users } of records) {
        rows.set(record.name, {
          name: record.name,
          subnet: record.subnet,
          ipRange: record.ipRange,
          gateway: record.details?.gateway,
          internal: record.details?.internal,
          mtu: record.details?.mtu,
          createdBy: record.createdBy,
          createdAt: record.createdAt,
          nodes: users.map((u) => u.node).sort(),
          status: 'remote',
        });
      }
      const unnamed: NetworkModel[] = [];
      for (const n of endpoints.listNetworks()) {
        const claim = claims.get(n.networkId);
        const cluster = claim ? rows.get(claim.name) : undefined;
        const row: NetworkModel = {
          name: claim?.name ?? '',
          networkId: n.networkId,
          subnet: n.subnet,
          ipRange: cluster?.ipRange ?? claim?.definition.ipRange,
          gateway: n.gateway,
          internal: n.internal,
          createdBy: cluster?.createdBy,
          createdAt: cluster?.createdAt,
          nodes: cluster?.nodes ?? [],
          status: !claim ? 'unnamed' : claim.status === 'agreed' ? 'ok' : claim.status,
          detail: claim?.detail,
        };
        if (claim) rows.set(claim.name, row);
        else unnamed.push(row);
      }
      return [...[...rows.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), ...unnamed];
    },
    async cleanup() {
      const removed = endpoints.listEndpoints().map((e) => e.hostIfName);
      const routes = await datapath.peerRoutes().catch(() => []);
      // The watcher would re-program what cleanup removes (peer routes) at its next event.
      peers.stop();
      await endpoints.cleanupDatapath();
      return { removed: [...removed, 'cilium_host', 'cilium_net', `pins under ${config.bpfRoot}`, 'masquerade rule', ...routes.map((r) => `route ${r.prefix} via ${r.via}`)] };
    },
    async importPolicy(text) {
      return { revision: await policy.importPolicy(text) };
    },
    async getPolicy(name) {
      return policy.getPolicies(name);
    },
    async deletePolicy(name) {
      return { revision: await policy.deletePolicy(name) };
    },
    async tracePolicy(req) {
      const r = policy.trace(req.srcLabels, req.dstLabels, req.dport, req.protocol);
      return { verdict: r.verdict, decidingRule: r.decidingRule, explanation: r.explanation };
    },
    waitPolicy: (revision, timeoutMs) => policy.waitForRevision(revision, timeoutMs),
    subscribeMonitor(types, onEvent) {
      return datapath.onEvent((e) => {
        if (types && !types.has(e.type)) return;
        const labels = (id: number) => policy.labelsOf(id)?.toStrings() ?? (id === 2 ? ['reserved:world'] : []);
        const model: MonitorEventModel = {
          type: e.type,
          time: new Date().toISOString(),
          endpoint: e.epId,
          direction: e.direction,
          srcIdentity: e.srcIdentity,
          dstIdentity: e.dstIdentity,
          srcLabels: labels(e.srcIdentity),
          dstLabels: labels(e.dstIdentity),
          saddr: e.saddr,
          daddr: e.daddr,
          sport: e.sport,
          dport: e.dport,
          protocol: e.protocol,
          length: e.length,
        };
        if (e.type === 'drop') {
          model.reason = e.reason;
          model.reasonName = dropReasonName(e.reason);
        } else if (e.type === 'policy-verdict') {
          model.verdict = e.verdict;
          model.match = e.match;
          model.policy = policy.policyForCookie(e.cookie);
        } else {
          model.observationPoint = e.observationPoint;
        }
        onEvent(model);
      });
    },
    async bpfPolicy(ref) {
      const ep = endpoints.findEndpoint(ref);
      if (!ep) throw new NotFoundError(`endpoint "${ref}" not found; "cilium endpoint list" shows the endpoints of this node`);
      const flags = datapath.endpointEnforcement(ep.id);
      const entries = await datapath.policyEntries(ep.id);
      return {
        endpoint: ep.id,
        identity: ep.identity,
        enforceIngress: flags.enforceIngress,
        enforceEgress: flags.enforceEgress,
        entries: entries.map(([k, v]) => ({
          direction: k.direction,
          identity: k.peer,
          labels: k.peer === 0 ? ['(any)'] : (policy.labelsOf(k.peer)?.toStrings() ?? []),
          dport: k.dport,
          portPrefixLen: k.portPrefixLen,
          protocol: k.protocol,
          verdict: v.verdict,
          policy: policy.policyForCookie(v.cookie),
        })),
      };
    },
    async bpfIpcache() {
      return (await datapath.ipcacheEntries()).map(([prefix, e]) => ({ prefix, identity: e.identity, netId: e.netId, tunnelEndpoint: e.tunnelEndpoint, tunnelNexthop: e.tunnelNexthop }));
    },
    async bpfConntrack() {
      const now = Math.floor(performance.now() / 1000);
      return (await datapath.conntrackEntries()).map(([k, v]) => ({
        saddr: k.saddr,
        daddr: k.daddr,
        sport: k.sport,
        dport: k.dport,
        protocol: k.protocol,
        srcIdentity: v.srcIdentity,
        // Without accounting the counters hold only the packet that created the entry: not shown.
        ...(config.ctAccounting && { packetsFwd: String(v.packetsFwd), bytesFwd: String(v.bytesFwd), packetsRev: String(v.packetsRev), bytesRev: String(v.bytesRev) }),
        replySeen: v.replySeen,
        closing: v.closing,
        denied: v.denied,
        expiresInSeconds: v.expires - monotonicSeconds(now),
      }));
    },
    async bpfEndpoints() {
      return (await datapath.endpointEntries()).map(([ip, e]) => ({
        ip,
        endpoint: e.epId,
        ifindex: e.ifindex,
        identity: e.identity,
        netId: e.netId,
        enforceIngress: e.enforceIngress,
        enforceEgress: e.enforceEgress,
        mac: e.mac,
        nodeMac: e.nodeMac,
      }));
    },
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

/** CLOCK_MONOTONIC seconds, the clock of conntrack expiry times (bpf_ktime_get_coarse_ns, a tick behind at most). */
function monotonicSeconds(_fallback: number): number {
  return Number(process.hrtime.bigint() / 1_000_000_000n);
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
