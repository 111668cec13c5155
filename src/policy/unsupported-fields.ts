/**
 * Fields of Cilium's policy language that we reject on purpose, each with what to do instead.
 * Rejecting them by name (rather than as "unknown") tells users the field is real but not
 * enforced here; silently ignoring it would enforce a weaker policy than the one written.
 */

/** `metadata` fields Kubernetes has and we do not use. */
export const UNSUPPORTED_METADATA: Record<string, string> = {
  namespace: 'there are no namespaces here; remove metadata.namespace (every policy applies cluster-wide)',
  uid: 'is set by the Kubernetes API server; remove it',
  resourceVersion: 'is set by the Kubernetes API server; remove it',
  generation: 'is set by the Kubernetes API server; remove it',
  creationTimestamp: 'is set by the Kubernetes API server; remove it',
  managedFields: 'is set by the Kubernetes API server; remove it',
  selfLink: 'is set by the Kubernetes API server; remove it',
};
/** Top-level document fields we do not accept. */
export const UNSUPPORTED_TOP: Record<string, string> = {
  status: 'status is written by Cilium, not by users; remove it',
};
/** Rule (`spec`) fields of Cilium we do not enforce. */
export const UNSUPPORTED_SPEC: Record<string, string> = {
  nodeSelector: 'host policies (nodeSelector) are not supported; select containers with endpointSelector',
  enableDefaultDeny:
    'enableDefaultDeny is not supported yet; ' +
    'any ingress/egress section puts the selected endpoints into default deny for that direction',
  log: 'policy verdict logging (log) is not supported yet; remove it and use `cilium monitor`',
};
const AUTH_HINT = 'mutual authentication (authentication) is not supported; remove it';
/** `ingress`/`ingressDeny` item fields of Cilium we do not enforce. */
export const UNSUPPORTED_INGRESS: Record<string, string> = {
  fromRequires: 'fromRequires is not supported yet; add the required labels to each fromEndpoints selector instead',
  fromGroups: 'fromGroups (cloud provider groups) is not supported; use fromCIDR or fromCIDRSet',
  fromNodes: 'fromNodes is not supported; use fromEntities: [host] for the local host',
  authentication: AUTH_HINT,
};
/** `egress`/`egressDeny` item fields of Cilium we do not enforce. */
export const UNSUPPORTED_EGRESS: Record<string, string> = {
  toRequires: 'toRequires is not supported yet; add the required labels to each toEndpoints selector instead',
  toServices: "toServices is not supported; use toEndpoints with the backends' labels, or toCIDR",
  toFQDNs: 'DNS-based rules (toFQDNs) are not supported yet; use toCIDR or toCIDRSet with the addresses',
  toGroups: 'toGroups (cloud provider groups) is not supported; use toCIDR or toCIDRSet',
  toNodes: 'toNodes is not supported; use toEntities: [host] for the local host',
  authentication: AUTH_HINT,
};
const TLS_HINT = 'is not supported; TLS inspection needs the L7 proxy, which we do not have';
/** `toPorts[]` fields of Cilium we do not enforce (`rules` has its own message, built per item). */
export const UNSUPPORTED_PORT_RULE: Record<string, string> = {
  terminatingTLS: `terminatingTLS ${TLS_HINT}`,
  originatingTLS: `originatingTLS ${TLS_HINT}`,
  serverNames: 'SNI matching (serverNames) is not supported yet; remove it to allow the port for every server name',
  listener: 'custom Envoy listeners (listener) are not supported; remove it',
};
/** `*CIDRSet[]` fields of Cilium we do not enforce. */
export const UNSUPPORTED_CIDR_RULE: Record<string, string> = {
  cidrGroupRef: 'CiliumCIDRGroup references are not supported; list the prefixes in cidr and except',
  cidrGroupSelector: 'CiliumCIDRGroup selectors are not supported; list the prefixes in cidr and except',
};
/** The L7 rule kinds of `toPorts[].rules`, named in the rejection message. */
export const L7_KINDS = ['http', 'kafka', 'dns', 'l7proto', 'l7'];
