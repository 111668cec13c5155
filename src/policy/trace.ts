/**
 * `cilium policy trace`: would traffic from one label set to another be allowed, and which rule
 * decides? Modelled on Cilium 1.x's `/policy/resolve` output ("Tracing From: [...] => To: [...]",
 * a rule-by-rule account, "Final verdict: ALLOWED|DENIED").
 *
 * Traffic passes when the source's egress policy and the destination's ingress policy both allow
 * it. Egress is evaluated only for a source that is one of our endpoints (no `reserved:` label
 * other than `reserved:init`, no `cidr:` label); ingress likewise only for such a destination.
 * World, host and CIDR peers (`cidr:10.1.2.3/32` plus `reserved:world`) are only ever peers.
 *
 * Matching goes through the same functions as the selector cache (`peer-match.ts`) and the same
 * enforcement rules as the compiler, so a trace agrees with the compiled map.
 */
import { LabelSet, SOURCE_RESERVED } from '../identity/labels.js';
import { BadRequestError } from '../util/errors.js';
import { SOURCE_CIDR } from './cidr.js';
import { ALLOW_LOCALHOST_RULE, directionEnforced, type CompileOptions } from './compile.js';
import { PROTO_ANY, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from './policy-entries.js';
import { peerSelectsLabels, portRangeMatches } from './peer-match.js';
import type { PolicyRepository } from './repository.js';
import type { Direction, Peer, PeerRule, PolicyRule, PortProtocolName, PortRange } from './rule-types.js';
import type { SelectorCache } from './selector-cache.js';
import { formatSelector, selectorMatches } from './selector.js';

/** Outcome of a trace, per direction and overall. */
export type TraceVerdict = 'allowed' | 'denied';

/** What one direction's evaluation found. */
export interface DirectionTrace {
  readonly direction: Direction;
  /** False when the subject is not one of our endpoints (world, host, CIDR): nothing to enforce. */
  readonly evaluated: boolean;
  readonly enforced: boolean;
  readonly verdict: TraceVerdict;
  /** Policy name that decided (or `reserved:allow-localhost`); undefined for default deny or no enforcement. */
  readonly decidingRule: string | undefined;
  /** Document path of the deciding item, e.g. `spec.ingressDeny[0]`. */
  readonly decidingPath: string | undefined;
}

/** Result of {@link trace}. */
export interface TraceResult {
  readonly verdict: TraceVerdict;
  /** The rule that decided the final verdict: the denying one, else the ingress (then egress) allow. */
  readonly decidingRule: string | undefined;
  readonly egress: DirectionTrace;
  readonly ingress: DirectionTrace;
  /** Human-readable account, one line per item, ending with `Final verdict: ALLOWED|DENIED`. */
  readonly explanation: string[];
}

function toLabelSet(labels: LabelSet | readonly string[]): LabelSet {
  return labels instanceof LabelSet ? labels : LabelSet.parse(labels);
}

function isEndpoint(labels: LabelSet): boolean {
  return !labels.labels.some((l) => l.source === SOURCE_CIDR || (l.source === SOURCE_RESERVED && l.key !== 'init'));
}

function formatLabels(labels: LabelSet): string {
  return `[${labels.toStrings().join(' ')}]`;
}

function formatPorts(ports: readonly PortRange[]): string {
  if (ports.length === 0) return 'any port';
  return ports
    .map((p) =>
      p.protocol === 'ICMP'
        ? `ICMP type ${p.port}`
        : p.port === 0
          ? `any/${p.protocol}`
          : p.endPort > p.port
            ? `${p.port}-${p.endPort}/${p.protocol}`
            : `${p.port}/${p.protocol}`,
    )
    .join(', ');
}

function formatPeer(peer: Peer): string {
  switch (peer.kind) {
    case 'endpoints':
      return formatSelector(peer.selector);
    case 'entity':
      return `entity ${peer.entity}`;
    case 'cidr':
      return peer.except.length > 0 ? `${peer.cidr} except ${peer.except.join(', ')}` : peer.cidr;
  }
}

function formatPeers(item: PeerRule): string {
  if (item.peers === undefined) return 'any peer';
  if (item.peers.length === 0) return 'no peer (default deny only)';
  return item.peers.map(formatPeer).join(' | ');
}

function protocolNumber(name: PortProtocolName): number {
  return name === 'TCP' ? PROTO_TCP : name === 'UDP' ? PROTO_UDP : name === 'ICMP' ? PROTO_ICMP : PROTO_ANY;
}

interface Match {
  readonly rule: PolicyRule;
  readonly item: PeerRule;
}

function identityOf(labels: LabelSet, identities: SelectorCache | undefined): string {
  if (!identities) return 'not resolved';
  for (const [id, l] of identities.identities) if (l.equals(labels)) return String(id);
  return 'none allocated yet';
}

/**
 * Traces traffic from `from` to `to` on `dport`/`protocol` (0/`ANY`: all ports and protocols;
 * a port needs TCP or UDP). `identities` (optional) is only used to show identity numbers.
 * Options are the compiler's (enforcement mode, allow-localhost).
 */
export function trace(
  repository: PolicyRepository,
  identities: SelectorCache | undefined,
  from: LabelSet | readonly string[],
  to: LabelSet | readonly string[],
  dport = 0,
  protocol: PortProtocolName = 'ANY',
  options: CompileOptions = {},
): TraceResult {
  if (!Number.isInteger(dport) || dport < 0 || dport > 65535)
    throw new BadRequestError(`policy trace: port ${dport} is out of range; use 1-65535, or 0 for every port`);
  if (dport !== 0 && protocol === 'ANY')
    throw new BadRequestError(`policy trace: give the protocol with the port (${dport}/TCP or ${dport}/UDP)`);
  const src = toLabelSet(from);
  const dst = toLabelSet(to);
  const proto = protocolNumber(protocol);
  const mode = options.enforcement ?? 'default';
  const lines: string[] = [];
  const portText = dport === 0 ? (protocol === 'ANY' ? 'any' : `any/${protocol}`) : `${dport}/${protocol}`;
  lines.push(`Tracing From: ${formatLabels(src)} => To: ${formatLabels(dst)} Ports: [${portText}]`);
  lines.push(`Source identity: ${identityOf(src, identities)}; destination identity: ${identityOf(dst, identities)}`);

  const evaluate = (direction: Direction, subject: LabelSet, peer: LabelSet): DirectionTrace => {
    lines.push('');
    const noun = direction === 'ingress' ? 'Ingress' : 'Egress';
    if (!isEndpoint(subject)) {
      lines.push(`${noun}: ${formatLabels(subject)} is not an endpoint; no ${direction} policy applies`);
      return {
        direction,
        evaluated: false,
        enforced: false,
        verdict: 'allowed',
        decidingRule: undefined,
        decidingPath: undefined,
      };
    }
    lines.push(`Resolving ${direction} policy for ${formatLabels(subject)}`);
    const rules = repository.rules();
    const selecting: PolicyRule[] = [];
    const denies: Match[] = [];
    const allows: Match[] = [];
    for (const rule of rules) {
      if (!selectorMatches(rule.endpointSelector, subject)) {
        lines.push(
          `* Rule "${rule.policyName}" (${rule.path}): ` +
            `selector ${formatSelector(rule.endpointSelector)} does not select ${formatLabels(subject)}`,
        );
        continue;
      }
      selecting.push(rule);
      lines.push(
        `* Rule "${rule.policyName}" (${rule.path}): ` +
          `selector ${formatSelector(rule.endpointSelector)} selects ${formatLabels(subject)}`,
      );
      for (const item of rule.peerRules) {
        if (item.direction !== direction) continue;
        const peerOk = item.peers === undefined || item.peers.some((p) => peerSelectsLabels(p, peer));
        const portOk = item.ports.length === 0 || item.ports.some((p) => portRangeMatches(p, dport, proto));
        const word = item.verdict === 'deny' ? 'deny' : 'allow';
        const prep = direction === 'ingress' ? 'from' : 'to';
        const outcome =
          peerOk && portOk
            ? 'matches'
            : !peerOk
              ? `${direction === 'ingress' ? 'source' : 'destination'} does not match`
              : 'port does not match';
        lines.push(`    ${item.path}: ${word} ${prep} ${formatPeers(item)} on ${formatPorts(item.ports)}: ${outcome}`);
        if (peerOk && portOk) (item.verdict === 'deny' ? denies : allows).push({ rule, item });
      }
    }
    lines.push(`${selecting.length}/${rules.length} rules selected`);
    const enforced = directionEnforced(selecting, direction, mode);
    const result = (
      verdict: TraceVerdict,
      match: { rule: string; path: string } | undefined,
      why: string,
    ): DirectionTrace => {
      lines.push(`${noun} verdict: ${verdict} (${why})`);
      return { direction, evaluated: true, enforced, verdict, decidingRule: match?.rule, decidingPath: match?.path };
    };
    if (!enforced) {
      const why =
        mode === 'never'
          ? 'policy enforcement is disabled'
          : `no selecting rule has an ${direction} section, so ${direction} is not enforced`;
      return result('allowed', undefined, why);
    }
    const deny = denies[0];
    if (deny)
      return result(
        'denied',
        { rule: deny.rule.policyName, path: deny.item.path },
        `denied by "${deny.rule.policyName}" ${deny.item.path}; deny rules take precedence`,
      );
    const allow = allows[0];
    if (allow)
      return result(
        'allowed',
        { rule: allow.rule.policyName, path: allow.item.path },
        `allowed by "${allow.rule.policyName}" ${allow.item.path}`,
      );
    if (
      direction === 'ingress' &&
      (options.allowLocalhost ?? 'always') === 'always' &&
      peer.has(SOURCE_RESERVED, 'host')
    ) {
      return result(
        'allowed',
        { rule: ALLOW_LOCALHOST_RULE, path: '' },
        'the local host may always reach local endpoints (allow-localhost)',
      );
    }
    return result('denied', undefined, `no rule allows it; ${direction} is default deny`);
  };

  const egress = evaluate('egress', src, dst);
  const ingress = evaluate('ingress', dst, src);
  const verdict: TraceVerdict = egress.verdict === 'denied' || ingress.verdict === 'denied' ? 'denied' : 'allowed';
  const decidingRule =
    verdict === 'denied'
      ? (egress.verdict === 'denied' ? egress : ingress).decidingRule
      : (ingress.decidingRule ?? egress.decidingRule);
  lines.push('', `Final verdict: ${verdict === 'allowed' ? 'ALLOWED' : 'DENIED'}`);
  return { verdict, decidingRule, egress, ingress, explanation: lines };
}
