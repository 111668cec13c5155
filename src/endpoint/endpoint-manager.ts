/**
 * Owns networks and endpoints on this node: their records (persisted in the store under
 * `docker/v1/<node>/…`), their lifecycle, their identities and the datapath calls.
 *
 * Every operation is idempotent, because dockerd retries calls (with empty bodies) and replays
 * teardown of endpoints the daemon may already have forgotten after a crash.
 * Operations on one endpoint are serialised so CreateEndpoint/Join/label updates never interleave.
 * The records' keys are endpoint-records.ts, the start after a restart endpoint-restore.ts, the
 * local id, address and veth names a new endpoint claims endpoint-claims.ts, attaching a
 * container (labels, names, identity) container-attach.ts.
 */
import type { KvStore } from '../kvstore/kvstore.js';
import type { Datapath, DatapathEndpoint } from '../datapath/datapath.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import { LabelSet } from '../identity/labels.js';
import { IDENTITY_INIT } from '../identity/reserved.js';
import { BadRequestError, EndpointNotFoundError, NetworkNotFoundError, CiliumDockerError } from '../util/errors.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type { Logger } from '../util/log.js';
import type { ContainerInfo, EndpointRecord, NetworkRecord } from './endpoint.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import {
  NodeRecords,
  networkDefinition,
  networkDetails,
  toDatapathEndpoint,
  toDatapathNetwork,
} from './endpoint-records.js';
import { restoreEndpoints } from './endpoint-restore.js';
import { allocateLocalId, checkAddressFree, freeVethNames, short, type ClaimedEndpoint } from './endpoint-claims.js';
import { ContainerAttacher } from './container-attach.js';

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
  private readonly creating = new Map<string, ClaimedEndpoint>();
  private readonly mutex = new KeyedMutex();
  private readonly listeners: EndpointListener[] = [];
  private readonly records: NodeRecords;
  private readonly attacher: ContainerAttacher;

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
    this.records = new NodeRecords(deps.store, deps.nodeName);
    this.attacher = new ContainerAttacher({
      endpoints: this.endpoints,
      mutex: this.mutex,
      records: this.records,
      datapath: deps.datapath,
      identities: deps.identities,
      log: deps.log,
      identityTimeoutMs: deps.identityTimeoutMs,
      setNetworkName: (networkId, name) => this.setNetworkName(networkId, name),
      emit: (event, ep) => this.emit(event, ep),
    });
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

  /** The datapath's view of an endpoint. */
  toDatapathEndpoint(ep: EndpointRecord): DatapathEndpoint {
    return toDatapathEndpoint(ep);
  }

  /**
   * Loads networks and endpoints from the store after a restart, re-adopts identities, and
   * re-programs the datapath. Endpoints whose veth vanished while the daemon was down (their
   * container's namespace is gone) are removed; the returned list names them so the caller can
   * release their addresses.
   */
  async restore(): Promise<{ restored: number; stale: EndpointRecord[] }> {
    const { datapath, identities, networks: names, log } = this.deps;
    return restoreEndpoints({
      records: this.records,
      datapath,
      identities,
      names,
      log,
      networks: this.networks,
      endpoints: this.endpoints,
    });
  }

  /** Records a network (CreateNetwork). Idempotent for the same id. */
  async createNetwork(input: CreateNetworkInput): Promise<NetworkRecord> {
    return this.mutex.run(`net:${input.networkId}`, async () => {
      const existing = this.networks.get(input.networkId);
      if (existing) return existing;
      const record: NetworkRecord = { ...input, createdAt: new Date().toISOString() };
      // A pool requested with --ipam-opt cilium.network: settle or compare the cluster record now,
      // so a conflicting definition fails `docker network create` itself.
      const clusterName = await this.deps.networks?.networkCreated(
        record.networkId,
        record.subnet,
        networkDetails(record),
      );
      if (clusterName !== undefined) record.clusterName = clusterName;
      await this.deps.datapath.addNetwork(
        toDatapathNetwork(record),
        [...this.networks.values()].map((n) => toDatapathNetwork(n)),
      );
      await this.records.saveNetwork(record);
      this.networks.set(record.networkId, record);
      this.deps.log.info(
        { network: record.networkId, subnet: record.subnet, gateway: record.gateway },
        'network created',
      );
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
        throw new CiliumDockerError(
          'Conflict',
          'ERR_NETWORK_IN_USE',
          `network ${short(networkId)} still has ${users.length} endpoint(s) ` +
            `(${users.map((e) => short(e.endpointId)).join(', ')}); stop or disconnect its containers first`,
        );
      }
      this.networks.delete(networkId);
      await this.deps.datapath.removeNetwork(
        toDatapathNetwork(record),
        [...this.networks.values()].map((n) => toDatapathNetwork(n)),
      );
      await this.records.deleteNetwork(networkId);
      await this.deps.networks?.networkDeleted(networkId).catch((err: unknown) => {
        this.deps.log.warn(
          { network: networkId, err },
          'releasing the cluster network name failed; the resync removes it',
        );
      });
      this.deps.log.info({ network: networkId }, 'network deleted');
    });
  }

  /** Sets a network's Docker name once learnt from the Docker API. */
  async setNetworkName(networkId: string, name: string): Promise<void> {
    const record = this.networks.get(networkId);
    if (!record || record.name === name) return;
    record.name = name;
    await this.records.saveNetwork(record);
    // Registering the name talks to the cluster store; an attach (or an outage) must not wait on it.
    // It never throws: a store failure leaves the claim `unregistered` for the resync.
    void this.deps.networks?.nameLearned(networkId, name, networkDefinition(record));
  }

  /** The network record, or undefined. */
  getNetwork(networkId: string): NetworkRecord | undefined {
    return this.networks.get(networkId);
  }

  /**
   * The name a network's endpoints publish and the DNS resolver scopes names by: `cilium.network`, else Docker's name.
   */
  clusterNetworkName(networkId: string): string | undefined {
    const n = this.networks.get(networkId);
    return n?.clusterName ?? n?.name;
  }

  /** Every network on this node. */
  listNetworks(): NetworkRecord[] {
    return [...this.networks.values()];
  }

  /** Endpoints and endpoints being created (their veth not made yet), except `endpointId`. */
  private otherEndpoints(endpointId: string): ClaimedEndpoint[] {
    return [...this.endpoints.values(), ...this.creating.values()].filter((e) => e.endpointId !== endpointId);
  }

  /** CreateEndpoint: makes the veth pair and the record. Idempotent for the same endpoint id. */
  async createEndpoint(input: CreateEndpointInput): Promise<EndpointRecord> {
    return this.mutex.run(`ep:${input.endpointId}`, async () => {
      const network = this.networks.get(input.networkId);
      if (!network) {
        throw new NetworkNotFoundError(
          `network ${short(input.networkId)} is not known to this cilium-docker daemon (was its state lost?); ` +
            'remove the network with "docker network rm" and create it again',
        );
      }
      const existing = this.endpoints.get(input.endpointId);
      if (existing) {
        if (existing.ipv4 !== input.ipv4)
          throw new BadRequestError(
            `endpoint ${short(input.endpointId)} already exists with address ${existing.ipv4}, not ${input.ipv4}`,
          );
        return existing;
      }
      // The network's name is defined differently elsewhere in the cluster: refuse rather than misroute.
      this.deps.networks?.check(input.networkId);
      // Nothing between these checks and the claim awaits: creations of other endpoint ids run
      // concurrently, and each must see what the others took (local id, address, veth name).
      const others = this.otherEndpoints(input.endpointId);
      checkAddressFree(others, input.endpointId, input.ipv4);
      const names = freeVethNames(others, input.endpointId, this.deps.log);
      const now = new Date().toISOString();
      const draft = {
        id: allocateLocalId(this.otherEndpoints('')),
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
        await this.records.saveEndpoint(record);
      } catch (err) {
        this.endpoints.delete(record.endpointId);
        await this.deps.datapath.removeEndpoint(toDatapathEndpoint(record)).catch(() => undefined);
        throw err;
      }
      this.deps.log.info(
        { endpoint: record.endpointId, id: record.id, ip: record.ipv4, veth: record.hostIfName },
        'endpoint created',
      );
      this.emit('created', record);
      return record;
    });
  }

  /** Join: routes the address to the veth and answers the interface and gateway. */
  async join(networkId: string, endpointId: string, sandboxKey: string): Promise<JoinResult> {
    return this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || ep.networkId !== networkId) {
        throw new EndpointNotFoundError(
          `endpoint ${short(endpointId)} on network ${short(networkId)} is not known to this ` +
            'daemon; start the container again',
        );
      }
      const network = this.networks.get(networkId);
      if (!network)
        throw new NetworkNotFoundError(
          `network ${short(networkId)} is not known to this daemon; re-create the network`,
        );
      await this.deps.datapath.activateEndpoint(toDatapathEndpoint(ep));
      if (ep.state === 'created' || ep.state === 'disconnected')
        ep.state = ep.identity === IDENTITY_INIT ? 'waiting-for-identity' : 'ready';
      ep.sandboxKey = sandboxKey;
      await this.records.saveEndpoint(ep);
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
      await this.records.saveEndpoint(ep);
      this.emit('updated', ep);
    });
  }

  /** DeleteEndpoint: removes the veth, the record and the identity reference. Unknown ids succeed. */
  async deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    await this.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.endpoints.get(endpointId);
      if (!ep || ep.networkId !== networkId) return;
      await this.deps.datapath.removeEndpoint(toDatapathEndpoint(ep));
      await this.records.deleteEndpoint(endpointId);
      this.endpoints.delete(endpointId);
      this.attacher.forget(endpointId);
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
   * Labels the endpoint with its container's labels, allocates its identity and programs the
   * datapath (the Docker watcher's call; container-attach.ts says how). Idempotent; throws when no
   * identity can be had yet, the endpoint then waits with reserved:init.
   */
  async attachContainer(endpointId: string, info: ContainerInfo): Promise<EndpointRecord | undefined> {
    return this.attacher.attach(endpointId, info);
  }

  /** Marks the endpoint's applied policy revision (called by the policy layer). */
  async setPolicyRevision(endpointId: string, revision: number): Promise<void> {
    const ep = this.endpoints.get(endpointId);
    if (!ep || ep.policyRevision === revision) return;
    ep.policyRevision = revision;
    await this.records.saveEndpoint(ep);
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

  /** True if some endpoint does not know its container yet (the Docker watcher has something to learn). */
  awaitingContainer(): boolean {
    for (const e of this.endpoints.values()) if (!e.containerId) return true;
    return false;
  }

  /** Every endpoint on this node, by local id. */
  listEndpoints(): EndpointRecord[] {
    return [...this.endpoints.values()].sort((a, b) => a.id - b.id);
  }

  /** Removes every link and route this node made (for `cilium cleanup`). */
  async cleanupDatapath(): Promise<void> {
    await this.deps.datapath.cleanup(
      this.listEndpoints().map((e) => toDatapathEndpoint(e)),
      this.listNetworks().map((n) => toDatapathNetwork(n)),
    );
  }
}
