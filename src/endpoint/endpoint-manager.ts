/**
 * Owns networks and endpoints on this node: their records (persisted in the store under
 * `docker/v1/<node>/…`), their lifecycle, their identities and the datapath calls.
 *
 * Every operation is idempotent, because dockerd retries calls (with empty bodies) and replays
 * teardown of endpoints the daemon may already have forgotten after a crash.
 * Operations on one endpoint are serialised so CreateEndpoint/Join/label updates never interleave.
 */
import type { KvStore } from '../kvstore/kvstore.js';
import { nodeRecordPrefix } from '../kvstore/store-scopes.js';
import type { Datapath, DatapathEndpoint, DatapathNetwork } from '../datapath/datapath.js';
import { vethNames } from '../datapath/link/veth.js';
import { IdentityAllocator } from '../identity/allocator.js';
import { LabelSet, SOURCE_DOCKER, legacyCanonical, type Label } from '../identity/labels.js';
import { containerLabels, type IgnoredContainerLabel } from '../identity/container-labels.js';
import { IDENTITY_INIT } from '../identity/reserved.js';
import { AddressInUseError, BadRequestError, EndpointNotFoundError, NetworkNotFoundError, CiliumDockerError } from '../util/errors.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type { Logger } from '../util/log.js';
import type { ContainerInfo, EndpointRecord, NetworkRecord } from './endpoint.js';
import type { NetworkDefinition, NetworkDetails, NetworkRegistry } from '../ipam/network-registry.js';

const MAX_ENDPOINT_ID = 4095;
/** Value of the label-encoding key (see restore). */
const LABEL_ENCODING_ESCAPED = 'escaped';

/** Input of createNetwork. */
export interface CreateNetworkInput {
  networkId: string;
  poolId?: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  mtu: number;
  options: Record<string, string>;
}

/** Input of createEndpoint. */
export interface CreateEndpointInput {
  networkId: string;
  endpointId: string;
  ipv4: string;
  prefixLength: number;
  /** MAC requested by Docker (`--mac-address`), or '' to let the kernel pick. */
  mac: string;
}

/** What Join answers. */
export interface JoinResult {
  srcName: string;
  gateway?: string;
  disableGatewayService: boolean;
}

/** Observers of endpoint changes (API metrics, policy regeneration). */
export type EndpointListener = (event: 'created' | 'updated' | 'deleted', endpoint: EndpointRecord) => void;

/** Node-local endpoint/network state and lifecycle. */
export class EndpointManager {
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** CreateEndpoint calls between their checks and their record: what they have claimed. */
  private readonly creating = new Map<string, Pick<EndpointRecord, 'id' | 'endpointId' | 'ipv4' | 'hostIfName' | 'containerIfName'>>();
  private readonly mutex = new KeyedMutex();
  private readonly listeners: EndpointListener[] = [];
  private readonly prefix: string;
  /** Endpoints admitted with reserved:init because the store could not give them an identity: since when. */
  private readonly identityWaits = new Map<string, number>();

  constructor(
    private readonly deps: {
      store: KvStore;
      nodeName: string;
      datapath: Datapath;
      identities: IdentityAllocator;
      log: Logger;
      /** Bound on one new-identity allocation (`--identity-timeout`); unbounded if omitted. */
      identityTimeoutMs?: number;
      /** Cluster-wide network names (`networks/v1/`); without it names stay node-local. */
      networks?: NetworkRegistry;
    },
  ) {
    this.prefix = nodeRecordPrefix(deps.nodeName);
  }

  /** Subscribes to endpoint changes. */
  onChange(listener: EndpointListener): void {
    this.listeners.push(listener);
  }

  private emit(event: 'created' | 'updated' | 'deleted', ep: EndpointRecord): void {
    for (const l of this.listeners) {
      try {
        l(event, ep);
      } catch (err) {
        this.deps.log.error({ err }, 'endpoint listener failed');
      }
    }
  }

  private networkKey(id: string): string {
    return `${this.prefix}networks/${id}`;
  }

  /** `docker/v1/<node>/label-encoding` -> `escaped`: this node's records hold identities of the escaped label form. */
  private labelEncodingKey(): string {
    return `${this.prefix}label-encoding`;
  }

  private endpointKey(id: string): string {
    return `${this.prefix}endpoints/${id}`;
  }

  private async saveEndpoint(ep: EndpointRecord): Promise<void> {
    ep.updatedAt = new Date().toISOString();
    await this.deps.store.put(this.endpointKey(ep.endpointId), JSON.stringify(ep));
  }

  private toDatapathNetwork(n: NetworkRecord): DatapathNetwork {
    return { networkId: n.networkId, subnet: n.subnet, gateway: n.gateway, internal: n.internal };
  }

  /** The datapath's view of an endpoint. */
  toDatapathEndpoint(ep: EndpointRecord): DatapathEndpoint {
    return {
      id: ep.id,
      endpointId: ep.endpointId,
      networkId: ep.networkId,
      ipv4: ep.ipv4,
      hostIfName: ep.hostIfName,
      hostIfIndex: ep.hostIfIndex,
      containerIfName: ep.containerIfName,
      mac: ep.mac,
      mtu: ep.mtu,
      identity: ep.identity,
    };
  }

  /**
   * Loads networks and endpoints from the store after a restart, re-adopts identities, and
   * re-programs the datapath. Endpoints whose veth vanished while the daemon was down (their
   * container's namespace is gone) are removed; the returned list names them so the caller can
   * release their addresses.
   */
  async restore(): Promise<{ restored: number; stale: EndpointRecord[] }> {
    const nets = await this.deps.store.list(`${this.prefix}networks/`);
    for (const p of nets.pairs) {
      const n = JSON.parse(p.value) as NetworkRecord;
      this.networks.set(n.networkId, n);
      const clusterName = n.clusterName ?? n.name;
      if (clusterName !== undefined) this.deps.networks?.adopt(n.networkId, clusterName, n.clusterName !== undefined, networkDefinition(n));
    }
    for (const n of this.networks.values()) await this.deps.datapath.addNetwork(this.toDatapathNetwork(n), [...this.networks.values()].map((x) => this.toDatapathNetwork(x)));
    const eps = await this.deps.store.list(`${this.prefix}endpoints/`);
    // Records saved before label text was escaped may hold a number allocated under the
    // ambiguous unescaped form; those saved since (this key written) hold escaped ones.
    const escapedRecords = (await this.deps.store.get(this.labelEncodingKey()))?.value === LABEL_ENCODING_ESCAPED;
    const stale: EndpointRecord[] = [];
    let restored = 0;
    for (const p of eps.pairs) {
      const ep = JSON.parse(p.value) as EndpointRecord;
      const exists = await this.deps.datapath.endpointLinkExists(this.toDatapathEndpoint(ep));
      if (!exists) {
        stale.push(ep);
        await this.deps.store.delete(p.key);
        this.deps.log.info({ endpoint: ep.endpointId, ip: ep.ipv4 }, 'removed endpoint whose veth vanished while the daemon was down');
        continue;
      }
      this.endpoints.set(ep.endpointId, ep);
      if (ep.identity !== IDENTITY_INIT && ep.labels.length > 0) {
        const labels = LabelSet.parse(ep.labels);
        if (escapedRecords || legacyCanonical(labels) === labels.toCanonical()) this.deps.identities.adopt(labels, ep.identity);
        else {
          // Its number was allocated under the unescaped form, which another label set shares
          // (`app=x;container:role=admin` and {app=x, role=admin}): allocate afresh when the
          // Docker watcher attaches the container again; reserved:init until then.
          this.deps.log.warn({ endpoint: ep.endpointId, identity: ep.identity, labels: ep.labels }, 'identity allocated under the ambiguous unescaped label form: re-allocating it');
          ep.identity = IDENTITY_INIT;
          if (ep.state === 'ready') ep.state = 'waiting-for-identity';
          await this.saveEndpoint(ep);
        }
      }
      if (ep.state === 'waiting-for-identity' || ep.state === 'ready') {
        await this.deps.datapath.activateEndpoint(this.toDatapathEndpoint(ep));
        await this.deps.datapath.updateEndpoint(this.toDatapathEndpoint(ep));
      }
      restored++;
    }
    if (!escapedRecords) await this.deps.store.put(this.labelEncodingKey(), LABEL_ENCODING_ESCAPED);
    return { restored, stale };
  }

  /** Records a network (CreateNetwork). Idempotent for the same id. */
  async createNetwork(input: CreateNetworkInput): Promise<NetworkRecord> {
    return this.mutex.run(`net:${input.networkId}`, async () => {
      const existing = this.networks.get(input.networkId);
      if (existing) return existing;
      const record: NetworkRecord = { ...input, createdAt: new Date().toISOString() };
      // A pool requested with --ipam-opt cilium.network: settle or compare the cluster record now,
      // so a conflicting definition fails `docker network create` itself.
      const clusterName = await this.deps.networks?.networkCreated(record.networkId, record.subnet, networkDetails(record));
      if (clusterName !== undefined) record.clusterName = clusterName;
      await this.deps.datapath.addNetwork(this.toDatapathNetwork(record), [...this.networks.values()].map((n) => this.toDatapathNetwork(n)));
      await this.deps.store.put(this.networkKey(record.networkId), JSON.stringify(record));
      this.networks.set(record.networkId, record);
      this.deps.log.info({ network: record.networkId, subnet: record.subnet, gateway: record.gateway }, 'network created');
      return record;
    });
  }

  /** Forgets a network (DeleteNetwork). Unknown ids succeed; a network with endpoints is refused. */
  async deleteNetwork(networkId: string): Promise<void> {
    await this.mutex.run(`net:${networkId}`, async () => {
      const record = this.networks.get(networkId);
      if (!record) return;
      const users = [...this.endpoints.values()].filter((e) => e.networkId === networkId);
      if (users.length > 0) {
        throw new CiliumDockerError('Conflict', 'ERR_NETWORK_IN_USE', `network ${short(networkId)} still has ${users.length} endpoint(s) (${users.map((e) => short(e.endpointId)).join(', ')}); stop or disconnect its containers first`);
      }
      this.networks.delete(networkId);
      await this.deps.datapath.removeNetwork(this.toDatapathNetwork(record), [...this.networks.values()].map((n) => this.toDatapathNetwork(n)));
      await this.deps.store.delete(this.networkKey(networkId));
      await this.deps.networks?.networkDeleted(networkId).catch((err: unknown) => {
        this.deps.log.warn({ network: networkId, err: err instanceof Error ? err.message : String(err) }, 'releasing the cluster network name failed; the resync removes it');
      });
      this.deps.log.info({ network: networkId }, 'network deleted');
    });
  }

  /** Sets a network's Docker name once learnt from the Docker API. */
  async setNetworkName(networkId: string, name: string): Promise<void> {
    const record = this.networks.get(networkId);
    if (!record || record.name === name) return;
    record.name = name;
    await this.deps.store.put(this.networkKey(networkId), JSON.stringify(record));
    // Registering the name talks to the cluster store; an attach (or an outage) must not wait on it.
    // It never throws: a store failure leaves the claim `unregistered` for the resync.
    void this.deps.networks?.nameLearned(networkId, name, networkDefinition(record));
  }

  /** The network record, or undefined. */
  getNetwork(networkId: string): NetworkRecord | undefined {
    return this.networks.get(networkId);
  }

  /** Every network on this node. */
  listNetworks(): NetworkRecord[] {
    return [...this.networks.values()];
  }

  /** Endpoints and endpoints being created (their veth not made yet), except `endpointId`. */
  private otherEndpoints(endpointId: string): Array<Pick<EndpointRecord, 'id' | 'endpointId' | 'ipv4' | 'hostIfName' | 'containerIfName'> & { containerName?: string }> {
    return [...this.endpoints.values(), ...this.creating.values()].filter((e) => e.endpointId !== endpointId);
  }

  /**
   * Refuses an address another endpoint of this node holds: its /32 route and datapath entry
   * would move to the new veth. Pools never overlap, so an address is unique across networks.
   */
  private checkAddressFree(endpointId: string, ipv4: string): void {
    const holder = this.otherEndpoints(endpointId).find((e) => e.ipv4 === ipv4);
    if (!holder) return;
    const who = holder.containerName ? `endpoint ${short(holder.endpointId)} of container ${holder.containerName}` : `endpoint ${short(holder.endpointId)}`;
    throw new AddressInUseError(
      `cannot create endpoint ${short(endpointId)} with address ${ipv4}: ${who} on this node holds it; ` +
        'an address is released only after its endpoint is deleted (docker stop/rm or network disconnect the container that has it)',
    );
  }

  /**
   * The endpoint's veth names: derived from its id, or, when another endpoint already has those
   * (ids that share their first 11 hex characters), a variant no other endpoint has. Names are
   * recorded with the endpoint, so a restart does not derive them again.
   */
  private freeVethNames(endpointId: string): { host: string; container: string } {
    const taken = new Set(this.otherEndpoints(endpointId).flatMap((e) => [e.hostIfName, e.containerIfName]));
    for (let attempt = 0; ; attempt++) {
      const names = vethNames(endpointId, attempt);
      if (taken.has(names.host) || taken.has(names.container)) continue;
      if (attempt > 0) this.deps.log.warn({ endpoint: endpointId, veth: names.host }, 'veth name of another endpoint with the same id prefix: using a derived name');
      return names;
    }
  }

  private allocateLocalId(): number {
    const used = new Set(this.otherEndpoints('').map((e) => e.id));
    for (let id = 1; id <= MAX_ENDPOINT_ID; id++) if (!used.has(id)) return id;
    throw new CiliumDockerError('Conflict', 'ERR_TOO_MANY_ENDPOINTS', `this node already has ${MAX_ENDPOINT_ID} endpoints; remove containers first`);
  }

  /** CreateEndpoint: makes the veth pair and the record. Idempotent for the same endpoint id. */
  async createEndpoint(input: CreateEndpointInput): Promise<EndpointRecord> {
    return this.mutex.run(`ep:${input.endpointId}`, async () => {
      const network = this.networks.get(input.networkId);
      if (!network) {
        throw new NetworkNotFoundError(`network ${short(input.networkId)} is not known to this cilium-docker daemon (was its state lost?); remove the network with "docker network rm" and create it again`);
      }
      const existing = this.endpoints.get(input.endpointId);
      if (existing) {
        if (existing.ipv4 !== input.ipv4) throw new BadRequestError(`endpoint ${short(input.endpointId)} already exists with address ${existing.ipv4}, not ${input.ipv4}`);
        return existing;
      }
      // The network's name is defined differently elsewhere in the cluster: refuse rather than misroute.
      this.deps.networks?.check(input.networkId);
      // Nothing between these checks and the claim awaits: creations of other endpoint ids run
      // concurrently, and each must see what the others took (local id, address, veth name).
      this.checkAddressFree(input.endpointId, input.ipv4);
      const names = this.freeVethNames(input.endpointId);
      const now = new Date().toISOString();
      const draft = {
        id: this.allocateLocalId(),
        endpointId: input.endpointId,
        networkId: input.networkId,
        ipv4: input.ipv4,
        hostIfName: names.host,
        containerIfName: names.container,
        mtu: network.mtu,
        identity: IDENTITY_INIT,
      };
      this.creating.set(input.endpointId, draft);
      let link: { mac: string; hostIfIndex: number };
      try {
        link = await this.deps.datapath.createEndpointLink({ ...draft, mac: input.mac || undefined });
      } finally {
        this.creating.delete(input.endpointId);
      }
      const record: EndpointRecord = {
        ...draft,
        prefixLength: input.prefixLength,
        mac: link.mac,
        hostIfIndex: link.hostIfIndex,
        state: 'created',
        labels: [],
        policyRevision: 0,
        createdAt: now,
        updatedAt: now,
      };
      this.endpoints.set(record.endpointId, record);
      try {
        await this.saveEndpoint(record);
      } catch (err) {
        this.endpoints.delete(record.endpointId);
        await this.deps.datapath.removeEndpoint(this.toDatapathEndpoint(record)).catch(() => undefined);
        throw err;
      }
      this.deps.log.info({ endpoint: record.endpointId, id: record.id, ip: record.ipv4, veth: record.hostIfName }, 'endpoint created');
      this.emit('created', record);
      return record;
    });
  }

  /** Join: routes the address to the veth and answers the interface and gateway. */
  async join(networkId: string, endpointId: string, sandboxKey: string): Promise<JoinResult> {
    return this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || ep.networkId !== networkId) {
        throw new EndpointNotFoundError(`endpoint ${short(endpointId)} on network ${short(networkId)} is not known to this daemon; start the container again`);
      }
      const network = this.networks.get(networkId);
      if (!network) throw new NetworkNotFoundError(`network ${short(networkId)} is not known to this daemon; re-create the network`);
      await this.deps.datapath.activateEndpoint(this.toDatapathEndpoint(ep));
      if (ep.state === 'created' || ep.state === 'disconnected') ep.state = ep.identity === IDENTITY_INIT ? 'waiting-for-identity' : 'ready';
      ep.sandboxKey = sandboxKey;
      await this.saveEndpoint(ep);
      this.emit('updated', ep);
      if (network.internal) return { srcName: ep.containerIfName, disableGatewayService: true };
      return { srcName: ep.containerIfName, gateway: network.gateway, disableGatewayService: false };
    });
  }

  /** Leave: the container is detached; the veth stays until DeleteEndpoint. Unknown ids succeed. */
  async leave(networkId: string, endpointId: string): Promise<void> {
    await this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || ep.networkId !== networkId) return;
      ep.state = 'disconnected';
      await this.saveEndpoint(ep);
      this.emit('updated', ep);
    });
  }

  /** DeleteEndpoint: removes the veth, the record and the identity reference. Unknown ids succeed. */
  async deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    await this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || ep.networkId !== networkId) return;
      await this.deps.datapath.removeEndpoint(this.toDatapathEndpoint(ep));
      await this.deps.store.delete(this.endpointKey(endpointId));
      this.endpoints.delete(endpointId);
      this.identityWaits.delete(endpointId);
      if (ep.identity !== IDENTITY_INIT && ep.labels.length > 0) {
        await this.deps.identities.release(LabelSet.parse(ep.labels)).catch((err: unknown) => {
          this.deps.log.warn({ err, endpoint: endpointId }, 'identity release failed; the resync will retry');
        });
      }
      this.deps.log.info({ endpoint: endpointId, ip: ep.ipv4 }, 'endpoint deleted');
      this.emit('deleted', ep);
    });
  }

  /**
   * Labels the endpoint with its container's labels (`container:k=v`, plus
   * `docker:network=<name>`), allocates its identity and programs the datapath. Called by the
   * Docker watcher, asynchronously to the plugin calls (which is why a container start cannot be
   * failed from here: the container runs already). Idempotent.
   *
   * A label set this node knows costs no store round trip, so it works during a store outage. A
   * new one is allocated outside the endpoint's lock, bounded by `identityTimeoutMs`; when that
   * fails the endpoint stays admitted as `waiting-for-identity` with identity reserved:init and its
   * labels recorded (its own policy is compiled from them, see PolicyEngine), the error is thrown
   * and the watcher retries until the store answers.
   */
  async attachContainer(endpointId: string, info: ContainerInfo): Promise<EndpointRecord | undefined> {
    const pending = await this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep) return undefined;
      await this.setNetworkName(ep.networkId, info.networkName);
      const { labels: newSet, ignored } = endpointLabels(info);
      const oldSet = ep.labels.length > 0 ? LabelSet.parse(ep.labels) : undefined;
      if (oldSet?.equals(newSet) && ep.identity !== IDENTITY_INIT && ep.containerId === info.containerId) {
        // Same container, same labels: only its names may have changed (`docker rename`).
        if (setNames(ep, info)) {
          await this.saveEndpoint(ep);
          this.deps.log.info({ endpoint: endpointId, container: ep.containerName, aliases: ep.aliases }, 'container names changed');
          this.emit('updated', ep);
        }
        return { done: ep };
      }
      if (ignored.length > 0) this.deps.log.warn({ endpoint: endpointId, container: info.containerName, ignored }, 'ignored container labels that cannot be identity labels');
      if (this.deps.identities.lookupLocal(newSet) !== undefined) {
        const identity = await this.deps.identities.acquire(newSet);
        return { done: await this.applyIdentity(ep, info, newSet, identity) };
      }
      if (ep.identity === IDENTITY_INIT && (!sameStrings(ep.labels, newSet.toStrings()) || ep.containerId !== info.containerId)) {
        // Record the labels before the (possibly slow) allocation: policy and `cilium endpoint list` see them.
        ep.labels = newSet.toStrings();
        ep.containerId = info.containerId;
        setNames(ep, info);
        await this.saveEndpoint(ep);
        this.emit('updated', ep);
      }
      return { allocate: newSet };
    });
    if (!pending) return undefined;
    if ('done' in pending) return pending.done;
    const labels = pending.allocate;
    let identity: number;
    try {
      identity = await this.deps.identities.acquire(labels, this.deps.identityTimeoutMs === undefined ? {} : { timeoutMs: this.deps.identityTimeoutMs });
    } catch (err) {
      const ep = this.endpoints.get(endpointId);
      if (ep && ep.identity === IDENTITY_INIT && !this.identityWaits.has(endpointId)) {
        this.identityWaits.set(endpointId, Date.now());
        this.deps.log.warn(
          { endpoint: endpointId, id: ep.id, container: info.containerName, labels: labels.toStrings(), code: err instanceof CiliumDockerError ? err.code : undefined, err: err instanceof Error ? err.message : String(err) },
          'new identity unavailable: endpoint admitted as waiting-for-identity with reserved:init (its own policy from its labels applies, peers see reserved:init) until the store answers',
        );
      }
      throw err;
    }
    return this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || (ep.containerId !== undefined && ep.containerId !== info.containerId) || (ep.identity === IDENTITY_INIT && !sameStrings(ep.labels, labels.toStrings()))) {
        // The endpoint went away (or changed) while we allocated: give the reference back.
        await this.deps.identities.release(labels).catch(() => undefined);
        return ep;
      }
      const waitedSince = this.identityWaits.get(endpointId);
      this.identityWaits.delete(endpointId);
      if (waitedSince !== undefined) {
        this.deps.log.info({ endpoint: endpointId, identity, waitedSeconds: Math.round((Date.now() - waitedSince) / 1000) }, 'identity allocated after the store answered again');
      }
      return this.applyIdentity(ep, info, labels, identity);
    });
  }

  /** Gives the endpoint its identity (one reference already taken) and programs it. Under the endpoint's lock. */
  private async applyIdentity(ep: EndpointRecord, info: ContainerInfo, newSet: LabelSet, identity: number): Promise<EndpointRecord> {
    const oldSet = ep.labels.length > 0 ? LabelSet.parse(ep.labels) : undefined;
    const previousIdentity = ep.identity;
    if (previousIdentity === identity && oldSet?.equals(newSet)) {
      // Already applied (a retry raced a completed attach): drop the extra reference.
      await this.deps.identities.release(newSet).catch(() => undefined);
      ep.containerId = info.containerId;
      if (setNames(ep, info)) {
        await this.saveEndpoint(ep);
        this.emit('updated', ep);
      }
      return ep;
    }
    ep.labels = newSet.toStrings();
    ep.identity = identity;
    ep.containerId = info.containerId;
    setNames(ep, info);
    if (ep.state === 'waiting-for-identity') ep.state = 'ready';
    try {
      await this.deps.datapath.updateEndpoint(this.toDatapathEndpoint(ep));
      await this.saveEndpoint(ep);
    } finally {
      if (oldSet && previousIdentity !== IDENTITY_INIT) await this.deps.identities.release(oldSet).catch(() => undefined);
    }
    this.deps.log.info({ endpoint: ep.endpointId, container: info.containerName, identity, labels: ep.labels }, 'endpoint ready');
    this.emit('updated', ep);
    return ep;
  }

  /** Marks the endpoint's applied policy revision (called by the policy layer). */
  async setPolicyRevision(endpointId: string, revision: number): Promise<void> {
    const ep = this.endpoints.get(endpointId);
    if (!ep || ep.policyRevision === revision) return;
    ep.policyRevision = revision;
    await this.saveEndpoint(ep);
  }

  /** The endpoint by Docker endpoint id, or undefined. */
  getEndpoint(endpointId: string): EndpointRecord | undefined {
    return this.endpoints.get(endpointId);
  }

  /** Finds an endpoint by local numeric id, Docker endpoint id (prefix), container id (prefix) or container name. */
  findEndpoint(ref: string): EndpointRecord | undefined {
    const all = [...this.endpoints.values()];
    if (/^\d+$/.test(ref)) {
      const byId = all.find((e) => e.id === Number(ref));
      if (byId) return byId;
    }
    return (
      all.find((e) => e.endpointId === ref) ??
      all.find((e) => e.containerName === ref || e.containerName === `/${ref}`) ??
      (ref.length >= 4 ? all.find((e) => e.endpointId.startsWith(ref) || e.containerId?.startsWith(ref)) : undefined)
    );
  }

  /** Every endpoint on this node, by local id. */
  /** True if some endpoint does not know its container yet (the Docker watcher has something to learn). */
  awaitingContainer(): boolean {
    for (const e of this.endpoints.values()) if (!e.containerId) return true;
    return false;
  }

  listEndpoints(): EndpointRecord[] {
    return [...this.endpoints.values()].sort((a, b) => a.id - b.id);
  }

  /** Removes every link and route this node made (for `cilium cleanup`). */
  async cleanupDatapath(): Promise<void> {
    await this.deps.datapath.cleanup(
      this.listEndpoints().map((e) => this.toDatapathEndpoint(e)),
      this.listNetworks().map((n) => this.toDatapathNetwork(n)),
    );
  }
}

/**
 * The endpoint's labels: each valid container label as `container:<Docker key>=<value>` (see
 * identity/container-labels.ts; no label text can choose another source), plus
 * `docker:network=<name>`; and the container labels left out.
 */
export function endpointLabels(info: ContainerInfo): { labels: LabelSet; ignored: IgnoredContainerLabel[] } {
  const { labels, ignored } = containerLabels(info.labels);
  const all: Label[] = [...labels, { source: SOURCE_DOCKER, key: 'network', value: info.networkName }];
  return { labels: new LabelSet(all), ignored };
}

/** Two label string lists are equal, element by element. */
function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `-o com.docker.network.driver.mtu` as given (undefined when the default applies). */
const OPTION_MTU = 'com.docker.network.driver.mtu';

/** The settings of a local network that must agree with its cluster definition. */
function networkDetails(n: NetworkRecord): NetworkDetails {
  const details: NetworkDetails = { gateway: n.gateway, internal: n.internal };
  if (n.options[OPTION_MTU] !== undefined) details.mtu = n.mtu;
  return details;
}

function networkDefinition(n: NetworkRecord): NetworkDefinition {
  return { subnet: n.subnet, details: networkDetails(n) };
}

function short(id: string): string {
  return id.slice(0, 12);
}

/** Records the container's name and aliases on the endpoint; true when either changed. */
function setNames(ep: EndpointRecord, info: ContainerInfo): boolean {
  const aliases = info.aliases && info.aliases.length > 0 ? [...info.aliases].sort() : undefined;
  const changed = ep.containerName !== info.containerName || (ep.aliases ?? []).join('\n') !== (aliases ?? []).join('\n');
  ep.containerName = info.containerName;
  if (aliases) ep.aliases = aliases;
  else delete ep.aliases;
  return changed;
}
