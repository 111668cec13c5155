/**
 * The endpoint manager's start after a restart: networks and endpoints read back from the node
 * store, identities re-adopted, the datapath programmed again, endpoints whose veth vanished
 * while the daemon was down removed.
 */
import type { Datapath } from '../datapath/datapath.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import { LabelSet, legacyCanonical } from '../identity/labels.js';
import { IDENTITY_INIT } from '../identity/reserved.js';
import type { NetworkRegistry } from '../ipam/network-registry.js';
import type { Logger } from '../util/log.js';
import type { EndpointRecord, NetworkRecord } from './endpoint.js';
import { networkDefinition, toDatapathEndpoint, toDatapathNetwork, type NodeRecords } from './endpoint-records.js';

/** What restoring reads from and fills in (the endpoint manager's maps). */
export interface RestoreTarget {
  records: NodeRecords;
  datapath: Datapath;
  identities: IdentityAllocator;
  names?: NetworkRegistry;
  log: Logger;
  networks: Map<string, NetworkRecord>;
  endpoints: Map<string, EndpointRecord>;
}

/**
 * Loads networks and endpoints into `target`, re-adopts identities and re-programs the datapath.
 * Resolves with how many endpoints came back and the stale ones (their records removed), whose
 * addresses the caller releases.
 */
export async function restoreEndpoints(target: RestoreTarget): Promise<{ restored: number; stale: EndpointRecord[] }> {
  const { records, datapath, identities, log, networks, endpoints } = target;
  for (const n of await records.listNetworks()) {
    networks.set(n.networkId, n);
    const clusterName = n.clusterName ?? n.name;
    if (clusterName !== undefined)
      target.names?.adopt(n.networkId, clusterName, n.clusterName !== undefined, networkDefinition(n));
  }
  for (const n of networks.values())
    await datapath.addNetwork(
      toDatapathNetwork(n),
      [...networks.values()].map((x) => toDatapathNetwork(x)),
    );
  const eps = await records.listEndpoints();
  // Records saved before label text was escaped may hold a number allocated under the
  // ambiguous unescaped form; those saved since (this key written) hold escaped ones.
  const escapedRecords = await records.labelsEscaped();
  const stale: EndpointRecord[] = [];
  let restored = 0;
  for (const { key, record: ep } of eps) {
    const exists = await datapath.endpointLinkExists(toDatapathEndpoint(ep));
    if (!exists) {
      stale.push(ep);
      await records.deleteKey(key);
      log.info(
        { endpoint: ep.endpointId, ip: ep.ipv4 },
        'removed endpoint whose veth vanished while the daemon was down',
      );
      continue;
    }
    endpoints.set(ep.endpointId, ep);
    if (ep.identity !== IDENTITY_INIT && ep.labels.length > 0) {
      const labels = LabelSet.parse(ep.labels);
      if (escapedRecords || legacyCanonical(labels) === labels.toCanonical()) identities.adopt(labels, ep.identity);
      else {
        // Its number was allocated under the unescaped form, which another label set shares
        // (`app=x;container:role=admin` and {app=x, role=admin}): allocate afresh when the
        // Docker watcher attaches the container again; reserved:init until then.
        log.warn(
          { endpoint: ep.endpointId, identity: ep.identity, labels: ep.labels },
          'identity allocated under the ambiguous unescaped label form: re-allocating it',
        );
        ep.identity = IDENTITY_INIT;
        if (ep.state === 'ready') ep.state = 'waiting-for-identity';
        await records.saveEndpoint(ep);
      }
    }
    if (ep.state === 'waiting-for-identity' || ep.state === 'ready') {
      await datapath.activateEndpoint(toDatapathEndpoint(ep));
      await datapath.updateEndpoint(toDatapathEndpoint(ep));
    }
    restored++;
  }
  if (!escapedRecords) await records.markLabelsEscaped();
  return { restored, stale };
}
