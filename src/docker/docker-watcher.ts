/**
 * Learns which container is behind each endpoint, and its labels, from the Docker API —
 * asynchronously, because Docker sends drivers neither container ids nor labels nor network
 * names (protocol reference 3.3), and a plugin handler must never call dockerd while dockerd
 * waits on it.
 *
 * Sources: the event stream (container `start` and `rename`, network `connect`; network `create`
 * for network names), a full scan (containers and networks) at start and after every reconnect of the
 * stream, and a short periodic sweep for endpoints still waiting for their labels. This is the only module that imports
 * dockerode.
 */
import Docker from 'dockerode';
import type { Logger } from '../util/log.js';

/** What the watcher learnt about one endpoint's container. */
export interface ResolvedContainer {
  endpointId: string;
  networkId: string;
  containerId: string;
  containerName: string;
  /**
   * The container's other names on that network (`--network-alias`, compose service names, and the short
   * id dockerd adds on user-defined networks), without its name.
   */
  aliases: string[];
  labels: Record<string, string>;
  networkName: string;
}

/** Callbacks into the endpoint layer. */
export interface DockerWatcherDeps {
  dockerHost: string;
  log: Logger;
  /** True if the endpoint id belongs to this daemon. */
  isOurEndpoint(endpointId: string): boolean;
  /** True if the network id is one of ours; `connect` events of other networks are ignored. */
  isOurNetwork?(networkId: string): boolean;
  /**
   * True while some endpoint of ours does not know its container yet. A container `start` event
   * can only teach something then: without it, starts of other drivers' containers (and the
   * second event of each of ours, after its `connect`) cost no inspect.
   */
  awaitingContainer?(): boolean;
  /** Endpoint ids still waiting for their container's labels. */
  waitingEndpoints(): string[];
  /** Hands over a resolved container; errors are logged and retried by the sweep. */
  attach(container: ResolvedContainer): Promise<void>;
  /**
   * A network's Docker name (from its `create` event, or the network list at start and after a
   * reconnect); called for every network, ours or not. Errors are logged.
   */
  networkNamed?(networkId: string, name: string): Promise<void>;
  /** Sweep interval for waiting endpoints (ms). */
  sweepIntervalMs?: number;
}

/** `unix:///var/run/docker.sock` or `tcp://host:port` -> dockerode options. */
function dockerOptions(host: string): Docker.DockerOptions {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  return { host: url.hostname, port: Number(url.port || 2375), protocol: 'http' };
}

/** Follows the Docker API and resolves endpoints to containers. */
export class DockerWatcher {
  private readonly docker: Docker;
  private stream: NodeJS.ReadableStream | undefined;
  private stopped = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 500;
  private connected = false;
  private lastError = '';
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly deps: DockerWatcherDeps) {
    this.docker = new Docker(dockerOptions(deps.dockerHost));
  }

  /** Health for `cilium status`. */
  status(): { connected: boolean; detail: string } {
    return {
      connected: this.connected,
      detail: this.connected ? this.deps.dockerHost : `${this.deps.dockerHost}: ${this.lastError || 'not connected'}`,
    };
  }

  /** Starts following events (never throws; reconnects with backoff). */
  start(): void {
    void this.connect();
    this.sweepTimer = setInterval(() => void this.sweepWaiting(), this.deps.sweepIntervalMs ?? 3000);
    this.sweepTimer.unref();
  }

  /** Stops following. */
  stop(): void {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const s = this.stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    s?.destroy?.();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.connected = false;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
    this.reconnectTimer.unref();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const stream = (await this.docker.getEvents({
        filters: { type: ['container', 'network'], event: ['start', 'rename', 'connect', 'create'] },
      })) as NodeJS.ReadableStream;
      this.stream = stream;
      this.connected = true;
      this.backoffMs = 500;
      this.deps.log.info({ docker: this.deps.dockerHost }, 'following Docker events');
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line !== '') this.onEvent(line);
        }
      });
      const onEnd = (err?: Error) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.lastError = err?.message ?? 'event stream ended';
        if (!this.stopped) this.deps.log.warn({ err: this.lastError }, 'Docker event stream lost; reconnecting');
        this.scheduleReconnect();
      };
      stream.on('error', onEnd);
      stream.on('end', () => onEnd());
      // Anything that happened while we were not listening.
      void this.scanNetworks();
      void this.scanAll();
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.deps.log.warn({ err: this.lastError, docker: this.deps.dockerHost }, 'cannot reach dockerd; retrying');
      this.scheduleReconnect();
    }
  }

  private onEvent(line: string): void {
    let ev: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    if (ev.Type === 'network' && ev.Action === 'create') {
      const name = ev.Actor?.Attributes?.name;
      if (ev.Actor?.ID && name) void this.nameNetwork(ev.Actor.ID, name);
      return;
    }
    if (ev.Type === 'container' && ev.Action === 'rename') {
      // A running container's new name (its endpoints are attached already: always look).
      if (ev.Actor?.ID) void this.resolveContainer(ev.Actor.ID);
      return;
    }
    if (ev.Type === 'container' && ev.Action !== 'start') return;
    if (ev.Type === 'network' && ev.Actor?.ID && this.deps.isOurNetwork && !this.deps.isOurNetwork(ev.Actor.ID)) return;
    if (ev.Type === 'container' && this.deps.awaitingContainer && !this.deps.awaitingContainer()) return;
    const containerId = ev.Type === 'container' ? ev.Actor?.ID : ev.Actor?.Attributes?.container;
    if (containerId) void this.resolveContainer(containerId);
  }

  /** Inspects every running container once (start-up, reconnect). */
  async scanAll(): Promise<void> {
    try {
      const list = await this.docker.listContainers();
      await Promise.all(list.map((c) => this.resolveContainer(c.Id)));
    } catch (err) {
      this.deps.log.warn({ err }, 'container scan failed');
    }
  }

  /** Hands every network's name to `networkNamed` (start-up, reconnect). */
  async scanNetworks(): Promise<void> {
    if (!this.deps.networkNamed) return;
    try {
      const list = await this.docker.listNetworks();
      await Promise.all(list.map((n) => this.nameNetwork(n.Id, n.Name)));
    } catch (err) {
      this.deps.log.warn({ err }, 'network scan failed');
    }
  }

  private async nameNetwork(networkId: string, name: string): Promise<void> {
    try {
      await this.deps.networkNamed?.(networkId, name);
    } catch (err) {
      this.deps.log.warn({ network: networkId, name, err }, 'recording the network name failed');
    }
  }

  /** Looks again at containers whose endpoints still wait for an identity (also after a store reconnect). */
  async sweepWaiting(): Promise<void> {
    if (this.deps.waitingEndpoints().length === 0 || !this.connected) return;
    await this.scanAll();
  }

  /** Inspects one container and hands over each of its endpoints that is ours. */
  resolveContainer(containerId: string): Promise<void> {
    const running = this.inFlight.get(containerId);
    if (running) return running;
    const work = this.doResolve(containerId).finally(() => this.inFlight.delete(containerId));
    this.inFlight.set(containerId, work);
    return work;
  }

  private async doResolve(containerId: string): Promise<void> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(containerId).inspect();
    } catch (err) {
      this.deps.log.debug({ container: containerId, err }, 'inspect failed');
      return;
    }
    const networks = info.NetworkSettings?.Networks ?? {};
    for (const [networkName, net] of Object.entries(networks)) {
      const endpointId = net?.EndpointID;
      if (!endpointId || !this.deps.isOurEndpoint(endpointId)) continue;
      const containerName = info.Name.replace(/^\//, '');
      try {
        await this.deps.attach({
          endpointId,
          networkId: net.NetworkID,
          containerId: info.Id,
          containerName,
          aliases: containerAliases(net.Aliases, containerName),
          labels: info.Config?.Labels ?? {},
          networkName,
        });
      } catch (err) {
        this.deps.log.warn({ endpoint: endpointId, err }, 'attaching container labels failed; will retry');
      }
    }
  }
}

/** A network entry's `Aliases` (any JSON) -> the distinct non-empty strings other than the name. */
function containerAliases(raw: unknown, containerName: string): string[] {
  if (!Array.isArray(raw)) return [];
  return [
    ...new Set(raw.filter((a: unknown): a is string => typeof a === 'string' && a !== '' && a !== containerName)),
  ];
}
