/**
 * Outbound NAT for container traffic to the world: ONE static iptables rule,
 * `-t nat -A POSTROUTING -m mark --mark 0xc00/0xf00 -j MASQUERADE`.
 *
 * Why a rule and not BPF: source NAT needs its own connection table and port allocation to map
 * replies back; the kernel's conntrack/NAT already does this correctly for every protocol
 * (ICMP errors, fragments, port clashes), and the BPF program only has to decide *which* packets
 * leave for the world (destination neither a container nor the host), which it marks. Why one
 * rule: it depends on no pool, so networks come and go without touching the firewall.
 */
import { execFile } from 'node:child_process';
import { DatapathError } from '../util/errors.js';

/** Must equal MARK_MASQUERADE / MARK_MASQUERADE_MASK in bpf/include/abi.h. */
export const MASQUERADE_MARK = '0xc00/0xf00';
const RULE = [
  '-t',
  'nat',
  '-m',
  'mark',
  '--mark',
  MASQUERADE_MARK,
  '-m',
  'comment',
  '--comment',
  'cilium-docker: masquerade to world',
  '-j',
  'MASQUERADE',
];

function iptables(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.env.CILIUM_DOCKER_IPTABLES ?? 'iptables',
      ['-w', '5', ...args],
      { timeout: 15_000 },
      (err, _stdout, stderr) => {
        resolve({
          code: err ? ((err as NodeJS.ErrnoException & { code?: number }).code as unknown as number) || 1 : 0,
          stderr,
        });
      },
    );
  });
}

/** Installs the rule if absent (idempotent). */
export async function ensureMasqueradeRule(): Promise<void> {
  const check = await iptables([...RULE.slice(0, 2), '-C', 'POSTROUTING', ...RULE.slice(2)]);
  if (check.code === 0) return;
  const add = await iptables([...RULE.slice(0, 2), '-A', 'POSTROUTING', ...RULE.slice(2)]);
  if (add.code !== 0)
    throw new DatapathError(
      `cannot install the masquerade rule (iptables -t nat -A POSTROUTING -m mark --mark ${MASQUERADE_MARK} -j ` +
        `MASQUERADE): ${add.stderr.trim()}`,
    );
}

/** Removes the rule if present (for `cilium cleanup`). */
export async function removeMasqueradeRule(): Promise<void> {
  for (;;) {
    const del = await iptables([...RULE.slice(0, 2), '-D', 'POSTROUTING', ...RULE.slice(2)]);
    if (del.code !== 0) return;
  }
}
