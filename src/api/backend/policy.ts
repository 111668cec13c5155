/**
 * `/v1/policy` (`cilium policy import|get|delete|trace|wait`): the policy repository and the
 * engine that applies it (Cilium's daemon/cmd/policy.go).
 */
import type { PolicyEngine } from '../../endpoint/policy-engine.js';
import type { AgentBackend } from '../server.js';

/** What the policy handlers use. */
export type PolicySource = Pick<
  PolicyEngine,
  | 'importPolicy'
  | 'getPolicies'
  | 'deletePolicy'
  | 'getPoliciesByLabels'
  | 'deletePolicyByLabels'
  | 'trace'
  | 'waitForRevision'
>;

type PolicyHandlers = Pick<
  AgentBackend,
  | 'importPolicy'
  | 'getPolicy'
  | 'deletePolicy'
  | 'getPolicyByLabels'
  | 'deletePolicyByLabels'
  | 'tracePolicy'
  | 'waitPolicy'
>;

/** The policy handlers of the agent API. */
export function policyHandlers(policy: PolicySource): PolicyHandlers {
  return {
    async importPolicy(text) {
      return { revision: await policy.importPolicy(text) };
    },
    async getPolicy(name) {
      return policy.getPolicies(name);
    },
    async deletePolicy(name) {
      return { revision: await policy.deletePolicy(name) };
    },
    async getPolicyByLabels(labels) {
      return policy.getPoliciesByLabels(labels);
    },
    async deletePolicyByLabels(labels) {
      return { revision: await policy.deletePolicyByLabels(labels) };
    },
    async tracePolicy(req) {
      const r = policy.trace(req.srcLabels, req.dstLabels, req.dport, req.protocol);
      return { verdict: r.verdict, decidingRule: r.decidingRule, explanation: r.explanation };
    },
    waitPolicy: (revision, timeoutMs) => policy.waitForRevision(revision, timeoutMs),
  };
}
