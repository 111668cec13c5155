/**
 * On a user-defined network dockerd puts DNAT rules for its embedded DNS (127.0.0.11) into every
 * container's netns. The nat table makes netfilter conntrack track every packet there, a cost of
 * dockerd's that the raw-namespace baselines (routed veth, plain kernel VXLAN) do not pay.
 * `iptables -t nat -F; -X` inside the netns removes the hooks (checked by hand in a scratch netns:
 * nf_conntrack_count no longer grows with new flows; this module checks only that no nat rule is
 * left), which shows what the containers' datapath costs without dockerd's part. Names
 * stop resolving in those containers; the benches do not use them.
 */
import type { EndpointPair } from './endpoint-pair.js';
import { progress } from './lab-session.js';

/** Removes dockerd's nat table from both ends of `pair`; returns the rules each end had. */
export async function stripDockerNat(pair: EndpointPair, label: string): Promise<number[]> {
  const rules: number[] = [];
  for (const run of [pair.runInClient.bind(pair), pair.runInServer.bind(pair)]) {
    const before = await run(['iptables', '-t', 'nat', '-S'], 30_000);
    rules.push(before.stdout.split('\n').filter((l) => l.startsWith('-A ')).length);
    for (const args of [['-F'], ['-X']]) {
      const r = await run(['iptables', '-t', 'nat', ...args], 30_000);
      if (r.code !== 0) throw new Error(`${label}: iptables -t nat ${args[0]} in a container netns: ${r.stderr}`);
    }
    const after = await run(['iptables', '-t', 'nat', '-S'], 30_000);
    if (after.stdout.split('\n').some((l) => l.startsWith('-A ')))
      throw new Error(`${label}: nat rules left in a container netns:\n${after.stdout}`);
  }
  progress(`${label}: removed dockerd's nat table from both containers (${rules.join(' + ')} rules)`);
  return rules;
}
