/**
 * Compilation of the repository into one endpoint's policy: enforcement per direction and the
 * sorted policy map entries (shape and lookup contract in `policy-entries.ts`).
 *
 * Semantics (Cilium `Documentation/security/policy/intro.rst`, "Policy Enforcement Modes"):
 * - `default`: a direction is enforced (default deny) when some rule selecting the endpoint has a
 *   section for it (`ingress`/`ingressDeny`, `egress`/`egressDeny`). Deny-only sections count:
 *   as in Cilium, add an allow (e.g. `fromEntities: [all]`) to deny a little and allow the rest.
 * - `always`: both directions are enforced for every endpoint.
 * - `never`: nothing is enforced and no entries are produced (deny rules included).
 * An unenforced direction yields no entries; the datapath must skip policy for it (Cilium sets
 * EP_F_SKIP_POLICY_*; DESIGN.md keeps Docker's per-network isolation for such endpoints).
 *
 * Entries per rule item: the peers (identities from the {@link SelectorCache}; `{}`/`all`/no peer
 * as identity 0) times the ports (no `toPorts` = every port and protocol). Deny wins: see
 * {@link PolicyEntryBuilder}. With `allowLocalhost: 'always'` (Cilium's default) an enforced
 * ingress also allows the local host (identity 1), unless a deny says otherwise.
 *
 * CIDR peers (design in `cidr.ts`): they produce entries for the CIDR identities present in the
 * identity set, like any other peer, and are also returned in prefix form as `cidrEntries`, so
 * the caller knows which prefixes need CIDR identities and ipcache entries
 * ({@link requiredCidrPrefixes} lists them for all rules at once).
 */
import type { LabelSet } from '../identity/labels.js';
import { NotFoundError } from '../util/errors.js';
import { comparePrefixes, formatPrefix, type IpPrefix } from './cidr.js';
import { isWildcardPeer, peerSelectsLabels } from './peer-match.js';
import {
  comparePolicyEntries,
  MAX_EXPANDED_RANGE,
  portRangeKeys,
  PolicyEntryBuilder,
  ruleCookie,
  type PolicyEntry,
  type PortKey,
} from './policy-entries.js';
import type { PolicyRepository } from './repository.js';
import { IDENTITY_HOST, IDENTITY_WILDCARD } from './reserved.js';
import type { Direction, PeerRule, PolicyRule, Verdict } from './rule-types.js';
import type { SelectorCache } from './selector-cache.js';

/** Cilium's policy enforcement modes. */
export type EnforcementMode = 'default' | 'always' | 'never';

/** Cilium's `--allow-localhost`: `always` (its default) lets the local host reach every endpoint. */
export type AllowLocalhost = 'always' | 'policy';

/** Options of compilation; defaults are Cilium's. */
export interface CompileOptions {
  /** Default `default`. */
  readonly enforcement?: EnforcementMode;
  /** Default `always`. */
  readonly allowLocalhost?: AllowLocalhost;
  /** Port ranges up to this size become exact-port entries; default {@link MAX_EXPANDED_RANGE}. */
  readonly maxExpandedPortRange?: number;
}

/** Name used in entries that come from the allow-localhost setting rather than a policy. */
export const ALLOW_LOCALHOST_RULE = 'reserved:allow-localhost';

/** A CIDR rule item in prefix form (one per prefix of `cidr` minus `except`, per port key). */
export interface CidrPolicyEntry {
  readonly direction: Direction;
  /** A prefix of the peer, e.g. `10.0.0.0/10` for `10.0.0.0/8 except 10.64.0.0/10 ...`. */
  readonly cidr: string;
  readonly dport: number;
  readonly portPrefixLen: number;
  readonly protocol: number;
  readonly verdict: Verdict;
  readonly ruleName: string;
  readonly cookie: number;
}

/** One endpoint's compiled policy. */
export interface EndpointPolicy {
  /** The endpoint's identity. */
  readonly identity: number;
  /** Repository revision compiled from (the endpoint's realized revision once written). */
  readonly revision: number;
  readonly ingressEnforced: boolean;
  readonly egressEnforced: boolean;
  /** Policy map entries, sorted (see `comparePolicyEntries`). Empty for unenforced directions. */
  readonly entries: readonly PolicyEntry[];
  /**
   * Port prefix lengths other than 0 (any) and 16 (one port) used by `entries`, ascending: the
   * masks an exact-key datapath must also try (see `policy-entries.ts`). Empty unless a range
   * wider than `maxExpandedPortRange` is in play.
   */
  readonly portPrefixLengths: readonly number[];
  /** CIDR rule items in prefix form, sorted by direction, prefix, port. */
  readonly cidrEntries: readonly CidrPolicyEntry[];
  /** Names of the policies with a rule that selects the endpoint, sorted. */
  readonly selectingPolicies: readonly string[];
}

/** Whether rules selecting an endpoint enforce `direction` under `mode` (see the module comment). */
export function directionEnforced(rules: readonly PolicyRule[], direction: Direction, mode: EnforcementMode): boolean {
  if (mode === 'never') return false;
  if (mode === 'always') return true;
  return rules.some((r) => (direction === 'ingress' ? r.hasIngress : r.hasEgress));
}

const ANY_PORT: readonly PortKey[] = [{ dport: 0, portPrefixLen: 0, protocol: 0 }];

/** Entries (or peers) compiled between two pauses of {@link PolicyCompiler.compileInSlices}. */
export const COMPILE_SLICE = 4096;

/**
 * Compiles endpoints against one repository revision and one identity set. Create one per
 * (revision, identity set); it reuses the selector cache, so creating it again after a policy
 * change only evaluates the selectors that are new.
 */
export class PolicyCompiler {
  private readonly rules: readonly PolicyRule[];
  private readonly revision: number;
  private readonly mode: EnforcementMode;
  private readonly allowLocalhost: AllowLocalhost;
  private readonly maxExpanded: number;
  private readonly portKeys = new Map<PeerRule, readonly PortKey[]>();

  constructor(
    repository: PolicyRepository,
    private readonly cache: SelectorCache,
    options: CompileOptions = {},
  ) {
    this.rules = repository.rules();
    this.revision = repository.revision;
    this.mode = options.enforcement ?? 'default';
    this.allowLocalhost = options.allowLocalhost ?? 'always';
    this.maxExpanded = options.maxExpandedPortRange ?? MAX_EXPANDED_RANGE;
  }

  /** Rules whose endpointSelector selects `identity`, in repository order. */
  selectingRules(identity: number): PolicyRule[] {
    return this.rules.filter((r) => this.cache.selectEndpoints(r.endpointSelector).has(identity));
  }

  /**
   * For every identity of the cache, the rules selecting it (identities no rule selects are
   * absent). Pass an identity's list to {@link compile} to skip the per-endpoint rule scan.
   */
  rulesByIdentity(): Map<number, PolicyRule[]> {
    const byIdentity = new Map<number, PolicyRule[]>();
    for (const rule of this.rules) {
      for (const id of this.cache.selectEndpoints(rule.endpointSelector)) {
        let list = byIdentity.get(id);
        if (!list) {
          list = [];
          byIdentity.set(id, list);
        }
        list.push(rule);
      }
    }
    return byIdentity;
  }

  private keysOf(item: PeerRule): readonly PortKey[] {
    let keys = this.portKeys.get(item);
    if (!keys) {
      keys =
        item.ports.length === 0
          ? ANY_PORT
          : dedupePortKeys(item.ports.flatMap((p) => portRangeKeys(p, this.maxExpanded)));
      this.portKeys.set(item, keys);
    }
    return keys;
  }

  /** Compiles the policy of the endpoint with this identity (NotFoundError if the cache lacks it). */
  compile(identity: number, selecting?: readonly PolicyRule[]): EndpointPolicy {
    const steps = this.compileSteps(identity, selecting);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * {@link compile}, awaiting `pause()` after every slice of about {@link COMPILE_SLICE} entries:
   * the daemon yields to its event loop there, so a policy with tens of thousands of peers does
   * not hold up plugin calls. CIDR identities must not be synced meanwhile (the engine's queue
   * runs one compilation or CIDR sync at a time); an identity arriving from the store meanwhile
   * is safe (Set iteration tolerates it) and schedules another regeneration anyway.
   */
  async compileInSlices(
    identity: number,
    selecting: readonly PolicyRule[] | undefined,
    pause: () => Promise<void>,
  ): Promise<EndpointPolicy> {
    const steps = this.compileSteps(identity, selecting);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
      await pause();
    }
  }

  /** The compilation, yielding between slices of work (see {@link compileInSlices}). */
  private *compileSteps(identity: number, selecting?: readonly PolicyRule[]): Generator<void, EndpointPolicy, void> {
    if (!this.cache.labelsOf(identity)) {
      throw new NotFoundError(
        `identity ${identity} is not in the identity set given to the policy compiler; ` +
          'add it before compiling its endpoint',
      );
    }
    const rules = selecting ?? this.selectingRules(identity);
    const enforced = {
      ingress: directionEnforced(rules, 'ingress', this.mode),
      egress: directionEnforced(rules, 'egress', this.mode),
    };
    const builder = new PolicyEntryBuilder();
    const cidr = new Map<string, { entry: CidrPolicyEntry; prefix: IpPrefix }>();
    let work = 0;
    for (const rule of rules) {
      const cookie = ruleCookie(rule.policyName);
      for (const item of rule.peerRules) {
        if (!enforced[item.direction]) continue;
        const ports = this.keysOf(item);
        const { direction, verdict } = item;
        const ruleName = rule.policyName;
        const base = { direction, verdict, ruleName, cookie };
        // Object literals, not spreads: this runs once per (peer identity x port) and dominates compile time.
        const addPeer = (peer: number) => {
          for (const p of ports) {
            builder.add({
              direction,
              peer,
              dport: p.dport,
              portPrefixLen: p.portPrefixLen,
              protocol: p.protocol,
              verdict,
              ruleName,
              cookie,
            });
          }
        };
        if (item.peers === undefined) {
          addPeer(IDENTITY_WILDCARD);
          continue;
        }
        for (const peer of item.peers) {
          if (isWildcardPeer(peer)) {
            addPeer(IDENTITY_WILDCARD);
            continue;
          }
          const selection = this.cache.selectPeer(peer);
          if (!selection.wildcard) {
            for (const id of selection.identities) {
              addPeer(id);
              work += ports.length;
              if (work >= COMPILE_SLICE) {
                work = 0;
                yield;
              }
            }
          }
          if (peer.kind === 'cidr') {
            for (const prefix of peer.prefixes) addCidrEntries(cidr, prefix, ports, base);
            work += peer.prefixes.length * ports.length;
          }
          if (++work >= COMPILE_SLICE) {
            work = 0;
            yield;
          }
        }
      }
    }
    if (enforced.ingress && this.allowLocalhost === 'always') {
      builder.add({
        direction: 'ingress',
        peer: IDENTITY_HOST,
        dport: 0,
        portPrefixLen: 0,
        protocol: 0,
        verdict: 'allow',
        ruleName: ALLOW_LOCALHOST_RULE,
        cookie: 0,
      });
    }
    yield;
    const entries = builder.finish();
    yield;
    const prefixLengths = new Set<number>();
    for (const e of entries) if (e.portPrefixLen !== 0 && e.portPrefixLen !== 16) prefixLengths.add(e.portPrefixLen);
    return {
      identity,
      revision: this.revision,
      ingressEnforced: enforced.ingress,
      egressEnforced: enforced.egress,
      entries,
      portPrefixLengths: [...prefixLengths].sort((a, b) => a - b),
      cidrEntries: [...cidr.values()].sort(compareCidrEntries).map((c) => c.entry),
      selectingPolicies: [...new Set(rules.map((r) => r.policyName))].sort(),
    };
  }
}

function dedupePortKeys(keys: PortKey[]): PortKey[] {
  const seen = new Map(keys.map((k) => [`${k.dport}/${k.portPrefixLen}/${k.protocol}`, k]));
  return [...seen.values()];
}

function addCidrEntries(
  into: Map<string, { entry: CidrPolicyEntry; prefix: IpPrefix }>,
  prefix: IpPrefix,
  ports: readonly PortKey[],
  base: { direction: Direction; verdict: Verdict; ruleName: string; cookie: number },
): void {
  const cidr = formatPrefix(prefix);
  for (const p of ports) {
    const entry: CidrPolicyEntry = { ...base, ...p, cidr };
    const key = `${base.direction}/${cidr}/${p.dport}/${p.portPrefixLen}/${p.protocol}`;
    const existing = into.get(key)?.entry;
    if (
      !existing ||
      (existing.verdict === 'allow' && entry.verdict === 'deny') ||
      (existing.verdict === entry.verdict && entry.ruleName < existing.ruleName)
    ) {
      into.set(key, { entry, prefix });
    }
  }
}

function compareCidrEntries(
  a: { entry: CidrPolicyEntry; prefix: IpPrefix },
  b: { entry: CidrPolicyEntry; prefix: IpPrefix },
): number {
  if (a.entry.direction !== b.entry.direction) return a.entry.direction === 'ingress' ? -1 : 1;
  return comparePrefixes(a.prefix, b.prefix) || comparePolicyEntries({ ...a.entry, peer: 0 }, { ...b.entry, peer: 0 });
}

/**
 * Compiles one endpoint. Convenience over {@link PolicyCompiler} for a single call; use the class
 * to compile many endpoints against the same revision.
 */
export function compileEndpointPolicy(
  repository: PolicyRepository,
  cache: SelectorCache,
  identity: number,
  options?: CompileOptions,
): EndpointPolicy {
  return new PolicyCompiler(repository, cache, options).compile(identity);
}

/**
 * Every prefix the ipcache needs a CIDR identity for: the prefixes of all CIDR peers of all rules
 * (`cidr` minus `except`), deduplicated and sorted. The caller allocates an identity with
 * `cidrIdentityLabels(prefix)` for each and adds it to the selector cache.
 */
export function requiredCidrPrefixes(repository: PolicyRepository): string[] {
  const prefixes = new Map<string, IpPrefix>();
  for (const rule of repository.rules()) {
    for (const item of rule.peerRules) {
      for (const peer of item.peers ?? []) {
        if (peer.kind !== 'cidr') continue;
        for (const p of peer.prefixes) prefixes.set(formatPrefix(p), p);
      }
    }
  }
  return [...prefixes.entries()].sort(([, a], [, b]) => comparePrefixes(a, b)).map(([text]) => text);
}

/**
 * Identities whose endpoints must be regenerated after identities with these labels were added,
 * removed or relabelled (pass the labels of each, old and new): the endpoints selected by a rule
 * that has a peer selecting one of them. Endpoints of the changed identities themselves are
 * compiled by the caller anyway. Wildcard peers (`{}`, `all`, no peer) compile to identity 0 and
 * do not depend on the identity set. Sorted ascending.
 */
export function identitiesAffectedByIdentityChange(
  repository: PolicyRepository,
  cache: SelectorCache,
  changed: Iterable<LabelSet>,
): number[] {
  const labelSets = [...changed];
  const ids = new Set<number>();
  for (const rule of repository.rules()) {
    const peerChanged = rule.peerRules.some((item) =>
      (item.peers ?? []).some(
        (peer) => !isWildcardPeer(peer) && labelSets.some((labels) => peerSelectsLabels(peer, labels)),
      ),
    );
    if (!peerChanged) continue;
    for (const id of cache.selectEndpoints(rule.endpointSelector)) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}
