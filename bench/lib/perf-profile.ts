/**
 * Where the CPUs go during one measurement: `perf record -e cpu-clock -a` (software clock
 * sampling: this VM has no PMU, so no cycles; JIT-ed BPF programs show as bpf_prog_<tag>_<name>
 * since net.core.bpf_jit_kallsyms is 1), then `perf report` by symbol, folded into a few
 * families (our BPF programs, netfilter, bridge, TCP/IP, copies, scheduler, idle, ...).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { runCommand } from '../../test/lab/exec.js';
import { registerEmergencyCleanup } from '../../test/lab/process-registry.js';
import { sleep } from './lab-session.js';

const PERF = '/usr/bin/perf';

/** One regex matching what any of `parts` matches (a long alternation written on several lines). */
function anyOf(...parts: RegExp[]): RegExp {
  return new RegExp(parts.map((re) => re.source).join('|'));
}

/** Symbol families, first match wins (order matters: bpf before the rest). */
const FAMILIES: Array<[string, RegExp]> = [
  ['idle', /halt|idle|mwait|cpuidle/],
  ['bpf programs', /^bpf_prog_/],
  ['bpf helpers/maps', /^(bpf_|trie_|htab_|__htab|lpm|longest_prefix|array_map|percpu_|pcpu_|ringbuf|__bpf)/],
  ['netfilter/conntrack', /^(nf_|nft_|ipt_|__nf|ip_tables|ipt|nf_conntrack|__nft|xt_|hash_conntrack|____nf)/],
  ['bridge + br_netfilter', /^(br_|__br|nf_bridge|brnf)/],
  ['tc / redirect', /^(tcf_|sch_handle|tc_run|skb_do_redirect|__bpf_redirect|tcx_|dev_queue_xmit|__dev_queue_xmit)/],
  ['veth', /^veth_/],
  ['copy to/from user', /copy_user|_copy_to_iter|_copy_from_iter|copyin|copyout|memcpy|memmove|rep_movs/],
  ['checksum', /csum/],
  [
    'tcp/ip stack',
    anyOf(
      /^(tcp_|__tcp|ip_|__ip|inet_|__inet|ipv4_|raw_|udp_|sk_|__sk|sock_|skb_|__skb|kfree_skb|__kfree_skb)/,
      /^(consume_skb|napi|__napi|netif_|__netif|net_rx|process_backlog|dst_|fib_|ip_finish|neigh_|eth_|dev_)/,
      /^(validate_xmit|__build_skb|__alloc_skb|kmalloc_reserve|page_frag|__dev)/,
    ),
  ],
  [
    'scheduler / syscalls',
    anyOf(
      /^(schedule|__schedule|pick_|enqueue|dequeue|update_|switch_|finish_task|try_to_wake|ttwu|__switch|entry_)/,
      /^(syscall|do_syscall|__x64|x64_sys|ep_|do_epoll|__wake_up|autoremove|wait_woken|__sys_|__se_sys|ksys_|vfs_)/,
      /^(fdget|__fget|sched_|psi_|native_|pvm_|irq|__irq|raw_spin|_raw_spin|read_tsc|ktime)/,
    ),
  ],
];

/** Sample share by family and the top symbols of one profile. */
export interface CpuProfile {
  /** % of all samples (both CPUs, idle included) per family. */
  families: Record<string, number>;
  top: Array<{ symbol: string; pct: number }>;
}

function family(symbol: string): string {
  for (const [name, re] of FAMILIES) if (re.test(symbol)) return name;
  return 'other';
}

/** Runs `measure` under a system-wide cpu-clock profile and summarises it. */
export async function profileDuring<T>(
  measure: () => Promise<T>,
  seconds: number,
): Promise<{ value: T; profile: CpuProfile }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-perf-'));
  const data = join(dir, 'perf.data');
  const rec = spawn(
    PERF,
    ['record', '-e', 'cpu-clock', '-F', '2999', '-a', '-o', data, '--', 'sleep', String(seconds + 1)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const unregister = registerEmergencyCleanup(() => {
    try {
      process.kill(rec.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  });
  const exited = new Promise<void>((r) => rec.once('exit', () => r()));
  try {
    await sleep(300); // perf attached
    const value = await measure();
    await exited;
    const rep = await runCommand(
      PERF,
      ['report', '-i', data, '--stdio', '--no-children', '--sort', 'sym', '-q', '--percent-limit', '0.1'],
      { timeoutMs: 120_000 },
    );
    const top: Array<{ symbol: string; pct: number }> = [];
    const families: Record<string, number> = {};
    for (const line of rep.stdout.split('\n')) {
      const m = /^\s*([\d.]+)%\s+\[[k.]\]\s+(\S+)/.exec(line);
      if (!m) continue;
      const pct = Number(m[1]);
      top.push({ symbol: m[2]!, pct });
      const f = family(m[2]!);
      families[f] = (families[f] ?? 0) + pct;
    }
    return { value, profile: { families, top: top.slice(0, 15) } };
  } finally {
    unregister();
    try {
      rec.kill('SIGKILL');
    } catch {
      // gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
