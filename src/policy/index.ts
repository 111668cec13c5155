/**
 * The policy module's public surface: parse and validate CiliumNetworkPolicy documents, keep them
 * in a revisioned repository, match selectors against identities, compile per-endpoint policy map
 * entries (with batched diffs) and trace decisions. Pure: no I/O, no timers.
 */
export * from './cidr.js';
export * from './compile.js';
export { POLICY_LIMITS } from './limits.js';
export * from './parse.js';
export { MAX_ICMP_FIELDS, MAX_PORTS_PER_RULE } from './parse-ports.js';
export { formatRuleLabel, parseRuleLabelText } from './parse-rule.js';
export { RULE_LABELS_ANNOTATION } from './bare-rules.js';
export * from './peer-match.js';
export * from './policy-entries.js';
export * from './repository.js';
export * from './reserved.js';
export type * from './rule-types.js';
export * from './selector-cache.js';
export * from './selector.js';
export * from './trace.js';
