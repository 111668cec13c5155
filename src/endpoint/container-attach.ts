/**
 * Attaching a container to its endpoint (the Docker watcher's call, asynchronous to the plugin
 * calls): the endpoint takes the container's labels and names, gets the identity of its labels
 * and is programmed with it. A new identity is allocated outside the endpoint's lock and bounded
 * by `--identity-timeout`; an endpoint whose allocation fails waits with reserved:init (tracked
 * here, for the log line when the store answers again).
 */
import type { Datapath } from '../datapath/datapath.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import { LabelSet } from '../identity/labels.js';
import { IDENTITY_INIT } from '../identity/reserved.js';
import { CiliumDockerError } from '../util/errors.js';
import type { KeyedMutex } from '../util/keyed-mutex.js';
import type { Logger } from '../util/log.js';
import type { ContainerInfo, EndpointRecord } from './endpoint.js';
import { endpointLabels, sameStrings, setNames } from './endpoint-labels.js';
import { toDatapathEndpoint, type NodeRecords } from './endpoint-records.js';

/** The endpoint manager's state and lock that attaching works under. */
export interface AttachContext {
  endpoints: ReadonlyMap<string, EndpointRecord>;
  /** The endpoint manager's lock: `ep:<endpoint id>` serialises one endpoint's operations. */
  mutex: KeyedMutex;
  records: NodeRecords;
  datapath: Datapath;
  identities: IdentityAllocator;
  log: Logger;
  /** Bound on one new-identity allocation (`--identity-timeout`); unbounded if undefined. */
  identityTimeoutMs: number | undefined;
  setNetworkName(networkId: string, name: string): Promise<void>;
  emit(event: 'updated', ep: EndpointRecord): void;
}

/** Gives endpoints their containers' labels, names and identities. */
export class ContainerAttacher {
  /** Endpoints admitted with reserved:init because the store could not give them an identity: since when. */
  private readonly waits = new Map<string, number>();

  constructor(private readonly ctx: AttachContext) {}

  /** Forgets a deleted endpoint's wait for an identity. */
  forget(endpointId: string): void {
    this.waits.delete(endpointId);
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
  async attach(endpointId: string, info: ContainerInfo): Promise<EndpointRecord | undefined> {
    const pending = await this.ctx.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.ctx.endpoints.get(endpointId);
      if (!ep) return undefined;
      await this.ctx.setNetworkName(ep.networkId, info.networkName);
      const { labels: newSet, ignored } = endpointLabels(info);
      const oldSet = ep.labels.length > 0 ? LabelSet.parse(ep.labels) : undefined;
      if (oldSet?.equals(newSet) && ep.identity !== IDENTITY_INIT && ep.containerId === info.containerId) {
        // Same container, same labels: only its names may have changed (`docker rename`).
        if (setNames(ep, info)) {
          await this.ctx.records.saveEndpoint(ep);
          this.ctx.log.info(
            { endpoint: endpointId, container: ep.containerName, aliases: ep.aliases },
            'container names changed',
          );
          this.ctx.emit('updated', ep);
        }
        return { done: ep };
      }
      if (ignored.length > 0)
        this.ctx.log.warn(
          { endpoint: endpointId, container: info.containerName, ignored },
          'ignored container labels that cannot be identity labels',
        );
      if (this.ctx.identities.lookupLocal(newSet) !== undefined) {
        const identity = await this.ctx.identities.acquire(newSet);
        return { done: await this.applyIdentity(ep, info, newSet, identity) };
      }
      if (
        ep.identity === IDENTITY_INIT &&
        (!sameStrings(ep.labels, newSet.toStrings()) || ep.containerId !== info.containerId)
      ) {
        // Record the labels before the (possibly slow) allocation: policy and `cilium endpoint list` see them.
        ep.labels = newSet.toStrings();
        ep.containerId = info.containerId;
        setNames(ep, info);
        await this.ctx.records.saveEndpoint(ep);
        this.ctx.emit('updated', ep);
      }
      return { allocate: newSet };
    });
    if (!pending) return undefined;
    if ('done' in pending) return pending.done;
    const labels = pending.allocate;
    let identity: number;
    try {
      identity = await this.ctx.identities.acquire(
        labels,
        this.ctx.identityTimeoutMs === undefined ? {} : { timeoutMs: this.ctx.identityTimeoutMs },
      );
    } catch (err) {
      const ep = this.ctx.endpoints.get(endpointId);
      if (ep && ep.identity === IDENTITY_INIT && !this.waits.has(endpointId)) {
        this.waits.set(endpointId, Date.now());
        this.ctx.log.warn(
          {
            endpoint: endpointId,
            id: ep.id,
            container: info.containerName,
            labels: labels.toStrings(),
            code: err instanceof CiliumDockerError ? err.code : undefined,
            err,
          },
          'new identity unavailable: endpoint admitted as waiting-for-identity with reserved:init (its own policy ' +
            'from its labels applies, peers see reserved:init) until the store answers',
        );
      }
      throw err;
    }
    return this.ctx.mutex.run(`ep:${endpointId}`, async () => {
      const ep = this.ctx.endpoints.get(endpointId);
      if (
        !ep ||
        (ep.containerId !== undefined && ep.containerId !== info.containerId) ||
        (ep.identity === IDENTITY_INIT && !sameStrings(ep.labels, labels.toStrings()))
      ) {
        // The endpoint went away (or changed) while we allocated: give the reference back.
        await this.ctx.identities.release(labels).catch(() => undefined);
        return ep;
      }
      const waitedSince = this.waits.get(endpointId);
      this.waits.delete(endpointId);
      if (waitedSince !== undefined) {
        this.ctx.log.info(
          { endpoint: endpointId, identity, waitedSeconds: Math.round((Date.now() - waitedSince) / 1000) },
          'identity allocated after the store answered again',
        );
      }
      return this.applyIdentity(ep, info, labels, identity);
    });
  }

  /** Gives the endpoint its identity (one reference already taken) and programs it. Under the endpoint's lock. */
  private async applyIdentity(
    ep: EndpointRecord,
    info: ContainerInfo,
    newSet: LabelSet,
    identity: number,
  ): Promise<EndpointRecord> {
    const oldSet = ep.labels.length > 0 ? LabelSet.parse(ep.labels) : undefined;
    const previousIdentity = ep.identity;
    if (previousIdentity === identity && oldSet?.equals(newSet)) {
      // Already applied (a retry raced a completed attach): drop the extra reference.
      await this.ctx.identities.release(newSet).catch(() => undefined);
      ep.containerId = info.containerId;
      if (setNames(ep, info)) {
        await this.ctx.records.saveEndpoint(ep);
        this.ctx.emit('updated', ep);
      }
      return ep;
    }
    ep.labels = newSet.toStrings();
    ep.identity = identity;
    ep.containerId = info.containerId;
    setNames(ep, info);
    if (ep.state === 'waiting-for-identity') ep.state = 'ready';
    try {
      await this.ctx.datapath.updateEndpoint(toDatapathEndpoint(ep));
      await this.ctx.records.saveEndpoint(ep);
    } finally {
      if (oldSet && previousIdentity !== IDENTITY_INIT)
        await this.ctx.identities.release(oldSet).catch(() => undefined);
    }
    this.ctx.log.info(
      { endpoint: ep.endpointId, container: info.containerName, identity, labels: ep.labels },
      'endpoint ready',
    );
    this.ctx.emit('updated', ep);
    return ep;
  }
}
