/**
 * This node's claims on cluster network names in the store, the protocol between hosts (the same
 * fences as pools and identities): a claimer writes its user key first, then creates the record
 * (create-only) or touches it by compare-and-swap; whoever removes a record (the last user
 * leaving, or the resync sweeping a record whose users' leases expired) reads it, lists its users,
 * and deletes it only at the revision it read. So a record is never removed under a node that
 * claimed it: either the remover sees the user key, or the claimer's touch fails and it creates
 * the record again. Two names created on overlapping subnets at the same moment: the later record
 * loses. Callers hold the name's lock (network-registry.ts).
 */
import type { KvStore } from '../kvstore/kvstore.js';
import { KvConflictError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { type ClusterNetwork, differences, type NetworkDefinition, subnetTaken } from './network-definition.js';
import {
  listNetworkRecords,
  networkRecordKey,
  networkUserKey,
  networkUsersPrefix,
  readNetworkRecord,
  subnetOwner,
} from './network-records.js';

/** Attempts of one claim or removal while other hosts keep changing the record. */
export const MAX_CLAIM_ATTEMPTS = 16;

/** A claim's result: the record agreed with, or the record in the way and what differs. */
export type ClaimOutcome =
  | { ok: true; record: ClusterNetwork }
  | { ok: false; record: ClusterNetwork; message: string };

/** The store side of one node's network names: claim, release, remove when unused. */
export class NetworkNameClaims {
  constructor(
    private readonly store: KvStore,
    private readonly node: string,
    private readonly log: Logger,
  ) {}

  /** Registers `definition` under `name` for this node: user key, then create or touch the record. */
  async claim(name: string, definition: NetworkDefinition, networkId: string | undefined): Promise<ClaimOutcome> {
    const userValue = JSON.stringify(networkId === undefined ? { definition } : { networkId, definition });
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const { records } = await listNetworkRecords(this.store, this.log);
      const other = subnetOwner(records, name, definition.subnet);
      if (other) {
        await this.dropUserKey(name);
        return { ok: false, record: other.record, message: subnetTaken(definition.subnet, other.record) };
      }
      const existing = records.get(name);
      if (existing) {
        const message = differences(existing.record, definition, this.node);
        if (message) {
          await this.dropUserKey(name);
          return { ok: false, record: existing.record, message };
        }
        await this.store.put(networkUserKey(name, this.node), userValue, { leased: true });
        const settled: ClusterNetwork =
          existing.record.details || !definition.details
            ? existing.record
            : { ...existing.record, details: definition.details };
        const touched = await this.store.atomicPut(
          networkRecordKey(name),
          JSON.stringify(settled),
          existing.modRevision,
        );
        if (touched.ok) return { ok: true, record: settled };
        continue; // changed or removed meanwhile: compare again
      }
      await this.store.put(networkUserKey(name, this.node), userValue, { leased: true });
      const record: ClusterNetwork = { name, ...definition, createdBy: this.node, createdAt: new Date().toISOString() };
      const created = await this.store.create(networkRecordKey(name), JSON.stringify(record));
      if (!created.ok) continue;
      // Two names created on overlapping subnets at the same moment: the later record loses.
      const winner = subnetOwner(
        (await listNetworkRecords(this.store, this.log)).records,
        name,
        definition.subnet,
        created.revision,
      );
      if (winner) {
        await this.store.atomicDelete(networkRecordKey(name), created.revision);
        await this.dropUserKey(name);
        return { ok: false, record: winner.record, message: subnetTaken(definition.subnet, winner.record) };
      }
      this.log.info({ name, subnet: definition.subnet }, 'network name registered in the cluster');
      return { ok: true, record };
    }
    throw new KvConflictError(`could not register network "${name}": other hosts kept changing its record; retry`);
  }

  /** This node stops using `name`: drops its user key, then the record if no node uses it. */
  async release(name: string): Promise<void> {
    await this.dropUserKey(name);
    await this.removeIfUnused(name);
  }

  private async dropUserKey(name: string): Promise<void> {
    await this.store.delete(networkUserKey(name, this.node));
  }

  /** Deletes the record at the revision read before listing its users, when it has none. */
  async removeIfUnused(name: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const stored = await readNetworkRecord(this.store, name);
      if (!stored) return;
      const { pairs } = await this.store.list(networkUsersPrefix(name));
      if (pairs.length > 0) return;
      if (await this.store.atomicDelete(networkRecordKey(name), stored.modRevision)) {
        this.log.info({ name, subnet: stored.record.subnet }, 'network name removed from the cluster: no node uses it');
        return;
      }
    }
  }
}
