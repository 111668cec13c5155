/**
 * `GET /v1/monitor` (`cilium monitor`): the datapath's events as the API's models, each
 * identity with its labels and each policy verdict with the policy that decided it.
 */
import type { DatapathEvent } from '../../datapath/bpf/abi.js';
import { dropReasonName } from '../../datapath/bpf/abi.js';
import type { PolicyEngine } from '../../endpoint/policy-engine.js';
import { IDENTITY_WORLD } from '../../identity/reserved.js';
import type { MonitorEventModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** What the monitor handler reads. */
export interface MonitorSources {
  /** The datapath's event stream; returns an unsubscribe function. */
  datapath: { onEvent(listener: (e: DatapathEvent) => void): () => void };
  policy: Pick<PolicyEngine, 'labelsOf' | 'policyForCookie'>;
}

/**
 * One datapath event as the API shows it. An identity the engine does not know has no labels,
 * except world: the engine holds only the identities policies select, and world is the source
 * of most drops.
 */
export function monitorEventModel(
  e: DatapathEvent,
  policy: MonitorSources['policy'],
  time = new Date(),
): MonitorEventModel {
  const labels = (id: number) => policy.labelsOf(id)?.toStrings() ?? (id === IDENTITY_WORLD ? ['reserved:world'] : []);
  const model: MonitorEventModel = {
    type: e.type,
    time: time.toISOString(),
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
  return model;
}

/** The monitor handler of the agent API. */
export function monitorHandlers({ datapath, policy }: MonitorSources): Pick<AgentBackend, 'subscribeMonitor'> {
  return {
    subscribeMonitor(types, onEvent) {
      return datapath.onEvent((e) => {
        if (types && !types.has(e.type)) return;
        onEvent(monitorEventModel(e, policy));
      });
    },
  };
}
