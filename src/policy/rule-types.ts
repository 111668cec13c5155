/**
 * The validated, normalised form of the CiliumNetworkPolicy subset we enforce.
 *
 * `parse.ts` turns documents into these types; everything after parsing (repository, compiler,
 * trace) works on them only. Field names follow Cilium's rule spec (`pkg/policy/api/rule.go`);
 * paths recorded here (`spec.ingress[0]`) are the document paths, so traces and errors can point
 * at what the user wrote.
 */
import type { IpPrefix } from './cidr.js';
import type { Entity } from './reserved.js';
import type { EndpointSelector } from './selector.js';

/** Traffic direction as seen from the selected endpoint. */
export type Direction = 'ingress' | 'egress';

/** What a matching rule does. Deny beats allow (Cilium `ingressDeny`/`egressDeny`). */
export type Verdict = 'allow' | 'deny';

/**
 * Protocols a port rule may name; `ANY` means TCP and UDP when a port is given. `ICMP` comes from
 * `icmps` only (Cilium's encoding: the ICMP type is the port, IPv4 only here).
 */
export type PortProtocolName = 'TCP' | 'UDP' | 'ANY' | 'ICMP';

/**
 * One `toPorts[].ports[]` item, or one `icmps[].fields[]` item (protocol ICMP, `port` = `endPort`
 * = the type). `port` 0 means every port (not for ICMP); `endPort` equals `port` for one port.
 */
export interface PortRange {
  readonly port: number;
  readonly endPort: number;
  readonly protocol: PortProtocolName;
}

/** A peer of a rule: a label selector, an entity, or a CIDR (already minus its `except`s). */
export type Peer =
  | { readonly kind: 'endpoints'; readonly selector: EndpointSelector }
  | { readonly kind: 'entity'; readonly entity: Entity }
  | {
      readonly kind: 'cidr';
      /** The prefix as written (normalised), e.g. `10.0.0.0/8`. */
      readonly cidr: string;
      /** The `except` prefixes as written (normalised). */
      readonly except: readonly string[];
      /** `cidr` minus `except`: disjoint prefixes, the addresses this peer stands for. */
      readonly prefixes: readonly IpPrefix[];
    };

/**
 * One item of `ingress`, `egress`, `ingressDeny` or `egressDeny`: traffic from/to `peers` on
 * `ports`. `peers` undefined means any peer (the item had only `toPorts`, or was `{}` with ports);
 * an empty `ports` list means every port and protocol.
 */
export interface PeerRule {
  readonly direction: Direction;
  readonly verdict: Verdict;
  /** undefined: any peer. Otherwise the union of the listed peers. */
  readonly peers: readonly Peer[] | undefined;
  /** Empty: all ports and protocols. */
  readonly ports: readonly PortRange[];
  /** Document path of the item, e.g. `spec.ingressDeny[1]` or `specs[2].egress[0]`. */
  readonly path: string;
}

/**
 * A rule label (`labels: [{key, value, source}]`): how Cilium names rules outside Kubernetes
 * (`cilium policy get|delete <labels>`). `source` defaults to `unspec`.
 */
export interface RuleLabel {
  readonly source: string;
  readonly key: string;
  readonly value: string;
}

/** One Cilium rule (a `spec`, or one element of `specs`) of a named policy. */
export interface PolicyRule {
  /** `metadata.name` of the policy this rule belongs to. */
  readonly policyName: string;
  /** The rule's `labels`, sorted by source, key, value; empty when it has none. */
  readonly labels: readonly RuleLabel[];
  /** `spec` or `specs[i]`. */
  readonly path: string;
  readonly description: string | undefined;
  /** Which endpoints the rule applies to. */
  readonly endpointSelector: EndpointSelector;
  /** True if the rule has an `ingress` or `ingressDeny` section (turns on ingress default-deny). */
  readonly hasIngress: boolean;
  /** True if the rule has an `egress` or `egressDeny` section (turns on egress default-deny). */
  readonly hasEgress: boolean;
  /** All items of the four sections, in document order (ingress, ingressDeny, egress, egressDeny). */
  readonly peerRules: readonly PeerRule[];
}

/** Accepted kinds; a clusterwide policy is the same thing here (there are no namespaces). */
export type PolicyKind = 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';

/** A validated policy document. */
export interface CiliumNetworkPolicy {
  readonly name: string;
  readonly kind: PolicyKind;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** `spec` first (if present), then `specs` in order. */
  readonly rules: readonly PolicyRule[];
  /** The document as given (plain JSON data): what `get` shows and what is persisted. */
  readonly document: Readonly<Record<string, unknown>>;
  /**
   * Set when the policy was made from bare rules at import (see `bare-rules.ts`): the labels its
   * rules share. Importing it replaces the stored rules that carry these labels, as in Cilium.
   */
  readonly ruleLabels?: readonly RuleLabel[];
}
