/**
 * Label-level matching of peers and ports: the single definition of "this rule item applies to
 * that peer on that port", used by the selector cache (per identity) and by trace (per label set),
 * so a trace can never disagree with the compiled map.
 */
import type { LabelSet } from '../identity/labels.js';
import { cidrPeerSelects, identityPrefix } from './cidr.js';
import { entitySelects } from './reserved.js';
import type { Peer, PortRange } from './rule-types.js';
import { selectorMatches } from './selector.js';

/** True if `peer` selects an identity with these labels (`{}` and `all` select everything). */
export function peerSelectsLabels(peer: Peer, labels: LabelSet): boolean {
  switch (peer.kind) {
    case 'endpoints':
      return selectorMatches(peer.selector, labels);
    case 'entity':
      return entitySelects(peer.entity, labels);
    case 'cidr': {
      const prefix = identityPrefix(labels);
      return prefix !== undefined && cidrPeerSelects(peer.prefixes, prefix);
    }
  }
}

/** True for the peers that compile to the wildcard identity 0: `{}` and the `all` entity. */
export function isWildcardPeer(peer: Peer): boolean {
  return (
    (peer.kind === 'endpoints' && peer.selector.requirements.length === 0) ||
    (peer.kind === 'entity' && peer.entity === 'all')
  );
}

/**
 * True if a `ports[]` item covers traffic to `dport` with IANA `protocol`. `dport` 0 stands for
 * "every port" and `protocol` 0 for "every protocol": only items that cover all of them match.
 */
export function portRangeMatches(range: PortRange, dport: number, protocol: number): boolean {
  if (range.protocol === 'TCP' && protocol !== 6) return false;
  if (range.protocol === 'UDP' && protocol !== 17) return false;
  if (range.protocol === 'ANY' && range.port !== 0 && protocol !== 6 && protocol !== 17) return false;
  if (range.port === 0) return true;
  return dport !== 0 && dport >= range.port && dport <= range.endPort;
}
