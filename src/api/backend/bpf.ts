/**
 * `/v1/bpf/...` (`cilium bpf policy get|ipcache list|ct list|endpoint list`): the datapath's maps
 * as they are in the kernel, decoded, with identities and cookies named.
 */
import type { CtEntry, CtKey, EndpointInfo, IpcacheEntry, PolicyKey, PolicyValue } from '../../datapath/bpf/abi.js';
import type { EndpointEnforcement } from '../../datapath/datapath.js';
import type { EndpointManager } from '../../endpoint/endpoint-manager.js';
import type { PolicyEngine } from '../../endpoint/policy-engine.js';
import { IDENTITY_WILDCARD } from '../../identity/reserved.js';
import { NotFoundError } from '../../util/errors.js';
import type { AgentBackend } from '../server.js';

/** The map dumps of the datapath. */
export interface DatapathMapDump {
  endpointEnforcement(epId: number): EndpointEnforcement;
  policyEntries(epId: number): Promise<Array<[PolicyKey, PolicyValue]>>;
  ipcacheEntries(): Promise<Array<[string, IpcacheEntry]>>;
  conntrackEntries(): Promise<Array<[CtKey, CtEntry]>>;
  endpointEntries(): Promise<Array<[string, EndpointInfo]>>;
}

/** What the bpf handlers read. */
export interface BpfSources {
  datapath: DatapathMapDump;
  endpoints: Pick<EndpointManager, 'findEndpoint'>;
  policy: Pick<PolicyEngine, 'labelsOf' | 'policyForCookie'>;
  /** --ct-accounting: without it the counters hold only the packet that created an entry. */
  ctAccounting: boolean;
}

/** CLOCK_MONOTONIC seconds, the clock of conntrack expiry times (bpf_ktime_get_coarse_ns, a tick behind at most). */
function monotonicSeconds(): number {
  return Number(process.hrtime.bigint() / 1_000_000_000n);
}

type BpfHandlers = Pick<AgentBackend, 'bpfPolicy' | 'bpfIpcache' | 'bpfConntrack' | 'bpfEndpoints'>;

/** The bpf handlers of the agent API. */
export function bpfHandlers({ datapath, endpoints, policy, ctAccounting }: BpfSources): BpfHandlers {
  return {
    async bpfPolicy(ref) {
      const ep = endpoints.findEndpoint(ref);
      if (!ep)
        throw new NotFoundError(`endpoint "${ref}" not found; "cilium endpoint list" shows the endpoints of this node`);
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
          labels: k.peer === IDENTITY_WILDCARD ? ['(any)'] : (policy.labelsOf(k.peer)?.toStrings() ?? []),
          dport: k.dport,
          portPrefixLen: k.portPrefixLen,
          protocol: k.protocol,
          verdict: v.verdict,
          policy: policy.policyForCookie(v.cookie),
        })),
      };
    },
    async bpfIpcache() {
      return (await datapath.ipcacheEntries()).map(([prefix, e]) => ({
        prefix,
        identity: e.identity,
        netId: e.netId,
        tunnelEndpoint: e.tunnelEndpoint,
        tunnelNexthop: e.tunnelNexthop,
      }));
    },
    async bpfConntrack() {
      return (await datapath.conntrackEntries()).map(([k, v]) => ({
        saddr: k.saddr,
        daddr: k.daddr,
        sport: k.sport,
        dport: k.dport,
        protocol: k.protocol,
        srcIdentity: v.srcIdentity,
        ...(ctAccounting && {
          packetsFwd: String(v.packetsFwd),
          bytesFwd: String(v.bytesFwd),
          packetsRev: String(v.packetsRev),
          bytesRev: String(v.bytesRev),
        }),
        replySeen: v.replySeen,
        closing: v.closing,
        denied: v.denied,
        expiresInSeconds: v.expires - monotonicSeconds(),
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
}
