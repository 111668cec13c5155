// Markdown report of a datapath bench result (bench/datapath.ts writes the JSON). Pure: JSON in,
// text out, plus the target verdicts for the runner.
import { fmt, median, pairedRatio, summarize } from './stats.mjs';

const LABEL = {
  a: '(a) raw routed veth pair (limit)',
  b: '(b) Docker bridge driver, lab dockerd `--iptables=false`',
  bipt: "(b') Docker bridge driver + Docker's iptables ruleset",
  c: '(c) **ours**, 1 allow policy',
  c0: '(c0) ours, no policy selecting the pair',
  d: '(d) **ours**, + 50 000 policy map entries',
  e: '(e) routed veth + 50 000 iptables rules',
};

/** Targets (task "datapath benchmark"; baselines.md section 1 and 2). */
export const TARGETS = {
  cVsATput: 0.95, // (c) >= 0.95x (a) throughput
  cVsARrP50: 1.1, // (c) RR p50 <= 1.10x (a)
  cVsB: 1.1, // (c) >= 1.10x (b)
  dVsC: 0.97, // (d) >= 0.97x (c)
  installPerS: 1e6, // policy map entries/s through bpf-napi
};

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const verdict = (ok) => (ok ? '**meets**' : '**misses**');
const cell = (s, d) => `${fmt(s.median, d)} [${fmt(s.min, d)}–${fmt(s.max, d)}]`;

/** Renders the datapath result; returns { markdown, verdicts: [{ name, ok, text }] }. */
export function renderDatapath(res) {
  const out = [];
  const verdicts = [];
  const s = res.settings;
  const m = res.machine;
  const cfg = res.configs ?? {};
  out.push(`## Benchmark 2 — datapath, container ↔ container on one host (${res.startedAt}, ${fmt(res.durationS)} s)`);
  out.push('');
  out.push(
    `Kernel ${m.versions?.kernel}, ${m.versions?.iperf3}, Node ${m.versions?.node}. ` +
      `Load average ${m.loadBefore?.load1} before / ${m.loadAfter?.load1} after on ${m.loadBefore?.cpus} CPUs` +
      (m.loadBefore?.load1 > 1 || m.loadAfter?.load1 > 2
        ? ' — **other work was running: read the paired ratios, not absolute numbers**.'
        : '.') +
      ` ${s.rounds} interleaved rounds (order rotated each ` +
      `round${s.warmupS > 0 ? `, after an unrecorded ${s.warmupS} s warm-up of each config` : ''}); ` +
      'per config and round one ' +
      `\`iperf3 -t ${s.iperfS}\` (TCP, 1 stream, receiver Gbit/s; client \`taskset -c 0\`, server \`-c 1\`), ` +
      `then \`tcprr\` for ${s.rrS} s ` +
      `(64-byte TCP_NODELAY ping-pong, client and server both on CPU1 = "same-CPU" RR)` +
      ((s.rrSlices ?? 1) > 1
        ? ` in ${s.rrSlices} passes of ${fmt(s.rrS / s.rrSlices, 1)} s over the configs (alternating direction; ` +
          `per round: median of the passes' percentiles, total transactions/s)`
        : '') +
      '. Cells: median [min–max] over rounds; ratios: median of per-round paired ratios.',
  );
  const c = res.code;
  if (c)
    out.push(
      'Code measured: ' +
        `HEAD ${c.head}${c.uncommittedSrcFiles ? ` + ${c.uncommittedSrcFiles} uncommitted file(s) under src/` : ''}, ` +
        `dist built ${c.distBuiltAt}, bpf/lxc.bpf.o built ${c.bpfObjectBuiltAt}; ` +
        `daemon datapath \`${c.datapath}\`, kvstore \`${c.kvstore}\`.`,
    );
  if (res.phases)
    out.push(
      `Time per phase (s): ${Object.entries(res.phases)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')} (then the lab hosts are removed).`,
    );
  out.push('');

  const samples = res.samples ?? [];
  const configs = s.configs.filter((c) => samples.some((x) => x.config === c));
  const series = (c, f) => {
    const arr = [];
    for (const x of samples.filter((y) => y.config === c)) arr[x.round] = f(x);
    return arr;
  };
  const gbps = (c) => series(c, (x) => x.tput.gbps);
  const p50 = (c) => series(c, (x) => x.rr.p50);
  const p99 = (c) => series(c, (x) => x.rr.p99);
  const tps = (c) => series(c, (x) => x.rr.tps);
  const sum = (arr) => summarize(arr.filter((v) => v !== undefined));
  const has = (c) => configs.includes(c);

  if (configs.length > 0) {
    const targetCell = {
      a: '',
      b: '',
      bipt: '',
      c: `≥ ${TARGETS.cVsATput}× / ≤ ${TARGETS.cVsARrP50}×`,
      c0: '',
      d: '',
      e: '',
    };
    out.push(
      table(
        [
          'config',
          'TCP 1 stream Gbit/s',
          'RR p50 µs',
          'RR p99 µs',
          'RR trans/s',
          'Gbit/s vs (a)',
          'RR p50 vs (a)',
          'target vs (a)',
        ],
        configs.map((c) => [
          LABEL[c],
          cell(sum(gbps(c)), 2),
          cell(sum(p50(c)), 1),
          cell(sum(p99(c)), 1),
          cell(sum(tps(c)), 0),
          has('a') ? `${fmt(pairedRatio(gbps(c), gbps('a')), 3)}×` : '–',
          has('a') ? `${fmt(pairedRatio(p50(c), p50('a')), 3)}×` : '–',
          targetCell[c],
        ]),
      ),
    );
    out.push('');

    // A round is "quiet" when CPU0 (not used by the RR pair) was mostly idle during every RR run
    // of the round: other work on the machine then did not sit on the measured CPUs.
    const QUIET_BUSY = 50;
    const quietRounds = new Set();
    for (let r = 0; r < s.rounds; r++) {
      const inRound = samples.filter((x) => x.round === r);
      if (inRound.length > 0 && inRound.every((x) => (x.rr.machineCpuBusy?.[0] ?? 100) < QUIET_BUSY))
        quietRounds.add(r);
    }
    const quietOnly = (arr) => arr.map((v, i) => (quietRounds.has(i) ? v : undefined));
    const rows = [];
    const check = (name, c1, c2, metric, f, target, higherIsBetter, count = true) => {
      if (!has(c1) || !has(c2)) return;
      const paired = pairedRatio(f(c1), f(c2));
      const pairedQuiet = quietRounds.size > 0 ? `${fmt(pairedRatio(quietOnly(f(c1)), quietOnly(f(c2))), 3)}×` : '–';
      const ofMedians = median(f(c1).filter((v) => v !== undefined)) / median(f(c2).filter((v) => v !== undefined));
      const ok = target === undefined ? undefined : higherIsBetter ? paired >= target : paired <= target;
      const digits = target !== undefined && Math.abs(paired - target) < 0.001 ? 4 : 3;
      rows.push([
        name,
        metric,
        `**${fmt(paired, digits)}×**`,
        pairedQuiet,
        `${fmt(ofMedians, 3)}×`,
        target === undefined ? 'reference' : `${higherIsBetter ? '≥' : '≤'} ${target}×`,
        ok === undefined ? '' : verdict(ok),
      ]);
      if (ok !== undefined && count)
        verdicts.push({
          name: `datapath: ${name} ${metric} ${higherIsBetter ? '>=' : '<='} ${target}x`,
          ok,
          text: `${fmt(paired, digits)}x`,
        });
    };
    check('(c) / (a)', 'c', 'a', 'Gbit/s', gbps, TARGETS.cVsATput, true);
    check('(c) / (a)', 'c', 'a', 'RR p50', p50, TARGETS.cVsARrP50, false);
    check('(c) / (a)', 'c', 'a', 'RR trans/s', tps, undefined, true);
    check('(c) / (b)', 'c', 'b', 'Gbit/s', gbps, TARGETS.cVsB, true);
    check('(c) / (b)', 'c', 'b', 'RR trans/s', tps, TARGETS.cVsB, true);
    check('(c) / (b)', 'c', 'b', 'RR p50', p50, undefined, false);
    check("(c) / (b')", 'c', 'bipt', 'Gbit/s', gbps, undefined, true);
    check("(c) / (b')", 'c', 'bipt', 'RR trans/s', tps, undefined, true);
    check('(c) / (c0)', 'c', 'c0', 'Gbit/s', gbps, undefined, true);
    check('(c) / (c0)', 'c', 'c0', 'RR p50', p50, undefined, false);
    check('(c0) / (a)', 'c0', 'a', 'Gbit/s', gbps, undefined, true);
    check('(c0) / (a)', 'c0', 'a', 'RR p50', p50, undefined, false);
    check('(d) / (c)', 'd', 'c', 'Gbit/s', gbps, TARGETS.dVsC, true);
    check('(d) / (c)', 'd', 'c', 'RR trans/s', tps, TARGETS.dVsC, true);
    check('(d) / (c)', 'd', 'c', 'RR p50', p50, undefined, false);
    check('(e) / (a)', 'e', 'a', 'Gbit/s', gbps, undefined, true);
    check('(e) / (a)', 'e', 'a', 'RR p50', p50, undefined, false);
    check('(d) / (e)', 'd', 'e', 'Gbit/s', gbps, undefined, true);
    check('(d) / (e)', 'd', 'e', 'RR trans/s', tps, undefined, true);
    if (rows.length > 0) {
      out.push(
        'Paired ratios and targets ("(c) ≥ 1.10× (b)" and "(d) ≥ 0.97× (c)" are checked on both ' +
          'throughput and RR transactions/s):',
      );
      out.push('');
      out.push(
        table(
          [
            'comparison',
            'metric',
            'paired ratio (median of rounds)',
            `same, quiet rounds only (${quietRounds.size} of ${s.rounds})`,
            'ratio of medians',
            'target',
            'verdict',
          ],
          rows,
        ),
      );
      out.push('');
      out.push(
        'Verdicts use every round. "Quiet" rounds: CPU0 (which the RR pair does not use) ' +
          `< ${QUIET_BUSY} % busy during every RR run of the round` +
          (quietRounds.size < s.rounds
            ? ` — **${s.rounds - quietRounds.size} of ${s.rounds} rounds ran while other work occupied the machine**.`
            : '.'),
      );
      out.push('');
    }

    const notes = [];
    if (cfg.a)
      notes.push(
        `(a) namespaces \`${cfg.a.client}\`, \`${cfg.a.router}\`, \`${cfg.a.server}\`; ` +
          `${cfg.a.iptablesInRouter} iptables rules in the router.`,
      );
    if (cfg.b)
      notes.push(
        `(b) lab dockerd runs with \`--iptables=false --ip-masq=false\` (the lab's setting), ` +
          'so **no Docker ruleset** is loaded; ' +
          `\`bridge-nf-call-iptables\` = ${cfg.b.bridgeNfCallIptables} in its netns (br_netfilter hooks run, ` +
          `with ${cfg.b.iptablesRules} rules to walk).`,
      );
    if (cfg.bipt)
      notes.push(
        `(b') a second lab dockerd with \`--iptables=true --ip-masq=true\` appended: ` +
          `dockerd installed its own ${cfg.bipt.iptablesRules} rules ` +
          '(DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2, MASQUERADE of the subnet; conntrack ESTABLISHED), ' +
          `\`bridge-nf-call-iptables\` = ${cfg.bipt.bridgeNfCallIptables}: the real Docker setup, baselines 1(e).`,
      );
    if (cfg.c)
      notes.push(
        `(c) \`c-srv\` holds ${cfg.c.srvPolicyMapEntries} policy map entries (ingress enforced); lab host of its own.`,
      );
    if (cfg.c0)
      notes.push(
        `(c0) \`c0-cli\` → \`c0-srv\` in (c)'s host, selected by no policy: the programs run (endpoint, ` +
          'ipcache and conntrack lookups, redirect) but no policy lookup.',
      );
    if (cfg.d)
      notes.push(
        `(d) \`d-srv\` holds **${fmt(cfg.d.srvPolicyMapEntries)}** policy map entries (checked with ` +
          `\`GET /v1/bpf/policy/d-srv\`), from ` +
          `${cfg.d.fill?.policies} policies allowing app=cli on ${fmt(cfg.d.fill?.entries)} distinct TCP ports ` +
          '(10000+), beside the measured allow; ' +
          `import → \`policy wait\` of those took ${fmt(cfg.d.fill?.importToWaitMs)} ms. Lab host of its own, ` +
          `so (c)'s map does not hold them.`,
      );
    if (cfg.strippedDockerNat)
      notes.push(
        `**DP_STRIP_DOCKER_NAT**: dockerd's nat table (its embedded-DNS DNAT) ` +
          `was removed from every container's netns before the rounds ` +
          `(${Object.entries(cfg.strippedDockerNat)
            .map(([k, v]) => `(${k}) ${v.natRulesRemoved.join(' + ')} rules`)
            .join(', ')}), so no netfilter conntrack runs there; (a) never had any.`,
      );
    if (cfg.e)
      notes.push(
        `(e) ${fmt(cfg.e.rules)} rules restored into the router's FORWARD chain in ${fmt(cfg.e.restoreMs)} ms ` +
          `(${cfg.e.iptables}); every packet walks all of them.`,
      );
    if (notes.length > 0) {
      out.push(notes.map((n) => `- ${n}`).join('\n'));
      out.push('');
    }
    const retrans = configs
      .map((c) => `${c} ${fmt(median(series(c, (x) => x.tput.retransmits).filter((v) => v !== undefined)))}`)
      .join(', ');
    const cpu = configs
      .map(
        (c) =>
          `${c} ${fmt(median(series(c, (x) => x.tput.cpuSender).filter((v) => v !== undefined)))}/` +
          `${fmt(median(series(c, (x) => x.tput.cpuReceiver).filter((v) => v !== undefined)))}`,
      )
      .join(', ');
    const busy0 = configs
      .map((c) => `${c} ${fmt(median(series(c, (x) => x.rr.machineCpuBusy?.[0]).filter((v) => v !== undefined)))}`)
      .join(', ');
    out.push(`iperf3 median retransmits: ${retrans}. iperf3 CPU % sender/receiver (median): ${cpu}.`);
    out.push(
      'CPU0 busy % during the RR runs (client and server are on CPU1, ' +
        `so this is other work on the machine; median): ${busy0}.`,
    );
    const slicesOf = (c) => samples.filter((x) => x.config === c).flatMap((x) => x.rr.slices ?? [x.rr]);
    const slow = configs.map((c) => {
      const all = slicesOf(c);
      const typical = median(all.map((x) => x.p50));
      return `${c} ${all.filter((x) => x.p50 > typical * 1.2).length}/${all.length}`;
    });
    out.push(
      `RR runs more than 20 % above their config's median p50 (this VM has slow phases of seconds, ` +
        `+~7 µs RTT on every config while CPU0 is idle): ${slow.join(', ')}.`,
    );
    out.push('');
  }

  // Profile.
  const prof = res.profile;
  if (prof && Object.keys(prof).length > 0) {
    out.push(
      '### Per-run cost of our programs (`kernel.bpf_stats_enabled=1` for this phase only, one RR and one iperf3 run)',
    );
    out.push('');
    out.push(
      table(
        [
          'config',
          'from_container ns/run during RR',
          'runs per RR transaction',
          'BPF µs per RR transaction',
          'to_container runs during RR',
          'from_container ns/run during iperf3',
          'runs during iperf3',
          'RR p50 µs in this run',
        ],
        Object.entries(prof).map(([k, p]) => [
          LABEL[k] ?? k,
          fmt(p.rrPrograms?.from_container?.nsPerRun, 0),
          fmt(p.rrRunsPerTransaction, 2),
          fmt((p.rrPrograms?.from_container?.nsPerRun * p.rrRunsPerTransaction) / 1000, 2),
          fmt(p.rrPrograms?.to_container?.runs, 0),
          fmt(p.tputPrograms?.from_container?.nsPerRun, 0),
          fmt(p.tputPrograms?.from_container?.runs, 0),
          fmt(p.rr?.p50, 1),
        ]),
      ),
    );
    out.push('');
  }

  // perf families.
  const perf = res.perf;
  if (perf && Object.keys(perf).length > 0) {
    const fams = [
      ...new Set(
        Object.values(perf).flatMap((p) => [
          ...Object.keys(p.tput.families ?? {}),
          ...Object.keys(p.rr.families ?? {}),
        ]),
      ),
    ].sort();
    for (const [kind, title] of [
      ['tput', 'iperf3'],
      ['rr', 'RR'],
    ]) {
      out.push(
        `### Where the CPUs go during one ${title} run (\`perf record -e cpu-clock -a\`, ` +
          '% of all samples on both CPUs)',
      );
      out.push('');
      out.push(
        table(
          ['family', ...Object.keys(perf).map((k) => `(${k === 'bipt' ? "b'" : k})`)],
          fams.map((f) => [f, ...Object.values(perf).map((p) => fmt(p[kind].families?.[f] ?? 0, 1))]),
        ),
      );
      out.push('');
      out.push(
        Object.entries(perf)
          .map(
            ([k, p]) =>
              `- (${k}) top: ${(p[kind].top ?? [])
                .slice(0, 6)
                .map((t) => `${t.symbol} ${fmt(t.pct, 1)}`)
                .join(', ')}`,
          )
          .join('\n'),
      );
      out.push('');
    }
  }

  // Latency.
  const lat = res.latency;
  if (lat) {
    const imp = lat.imports ?? [];
    const col = (f) => summarize(imp.map(f));
    out.push(`### Import → enforced, ${lat.endpoints} endpoints on our networks (${imp.length} imports)`);
    out.push('');
    out.push(
      `${lat.endpoints} busybox containers (labels group=lat, idx=<i>: ${lat.endpoints} identities) ` +
        `on ${lat.networks ?? 1} of our networks, started together in ${fmt(lat.containersStartMs / 1000, 1)} s. ` +
        'Each import: one policy selecting all of them (ingress from group=lat on one other port), from no policy; ' +
        `the probe is a \`tcprr probe\` ` +
        `(one 64-byte transaction per ms) ${lat.probe}, a port the policy does not allow: ` +
        '"dropped" = send time of its first unanswered request. Then the policy is deleted (and waited for).',
    );
    out.push('');
    out.push(
      table(
        ['measure', 'p50 ms', 'min ms', 'max ms'],
        [
          ['`POST /v1/policy` returns', col((x) => x.postMs)],
          ['import → `GET /v1/policy/wait/<rev>` returns (all endpoints applied)', col((x) => x.importToWaitMs)],
          ['import → probe flow dropped in the kernel', col((x) => x.probeDroppedMs)],
          ['delete → wait returns', col((x) => x.deleteToWaitMs)],
        ].map(([name, st]) => [name, `**${fmt(st.median, 0)}**`, fmt(st.min, 0), fmt(st.max, 0)]),
      ),
    );
    out.push('');
    const endpoints = [...new Set(imp.map((x) => x.endpoints))].join(', ');
    out.push(
      `Endpoints counted by the wait: ${endpoints}. Probe stalled after every import: ` +
        `${imp.every((x) => x.probeStalled) ? 'yes' : '**no**'}.`,
    );
    const regen = imp.map((x) => x.regenerations).filter(Boolean);
    if (regen.length > 0) {
      out.push(
        `From the daemon log (\`endpoint regenerated\` lines inside each import window): ` +
          `${fmt(median(regen.map((g) => g.count)))} regenerations per import, ` +
          `one after the other, median ${fmt(median(regen.map((g) => g.medianMs)))} ms each (max ` +
          `${fmt(Math.max(...regen.map((g) => g.maxMs)))} ms), ` +
          `summing to ${fmt(median(regen.map((g) => g.totalMs)))} ms per import.`,
      );
    }
    const d = lat.diagnostic;
    if (d) {
      const top = (d.spawns ?? [])
        .slice(0, 4)
        .map((x) => `\`${x.command}\` ×${x.count} (${fmt(x.totalMs)} ms)`)
        .join(', ');
      out.push(
        `One more import under \`strace -f\` on the daemon (not in the figures; ${fmt(d.importToWaitMs)} ms traced): ` +
          `${fmt((d.spawns ?? []).reduce((a, x) => a + x.count, 0))} processes spawned${top ? ` — ${top}` : ''}; ` +
          `${fmt(d.syncs)} fsync/fdatasync (${fmt(d.syncMs)} ms) for ${d.endpoints} endpoints.`,
      );
    }
    out.push('');
  }

  // Install rate.
  const ins = res.install;
  if (ins) {
    const rate = (f) => summarize(ins.reps.map((r) => ins.entries / (f(r) / 1000)));
    const msOf = (f) => summarize(ins.reps.map(f));
    out.push(
      `### Policy install rate through bpf-napi (${fmt(ins.entries)} entries into \`cilium_policy\`, LPM trie, ` +
        `key ${ins.keyBytes} B / value ${ins.valueBytes} B, ${ins.reps.length} reps)`,
    );
    out.push('');
    const typed = rate((r) => r.typedMs);
    const raw = rate((r) => r.rawMs);
    const rows = [
      [
        '`PolicyMap.setMany` (encode with abi.ts + one batch update): what a regeneration pays',
        msOf((r) => r.typedMs),
        typed,
        true,
      ],
      ['addon `mapUpdateBatch` on pre-encoded buffers (kernel + addon only)', msOf((r) => r.rawMs), raw, true],
      ['`BpfMap.deleteBatch` of all of them', msOf((r) => r.deleteMs), rate((r) => r.deleteMs), false],
    ];
    if (ins.reps[0]?.encodeMs !== undefined)
      rows.push([
        ins.reps[0]?.allocMs === undefined
          ? 'encoding alone (abi.ts writers into two packed buffers, no syscall)'
          : 'encoding alone (abi.ts encoders + Buffer.concat, no syscall)',
        msOf((r) => r.encodeMs),
        rate((r) => r.encodeMs),
        false,
      ]);
    if (ins.reps[0]?.allocMs !== undefined)
      rows.push([
        `of which: ${fmt(2 * ins.entries)} × \`Buffer.alloc\` of ${ins.keyBytes} / ${ins.valueBytes} bytes (one per ` +
          'key and per value, as the encoders do)',
        msOf((r) => r.allocMs),
        rate((r) => r.allocMs),
        false,
      ]);
    if (ins.reps[0]?.hashRawMs !== undefined)
      rows.push([
        'reference: same batch into a `BPF_MAP_TYPE_HASH` of the same key/value',
        msOf((r) => r.hashRawMs),
        rate((r) => r.hashRawMs),
        false,
      ]);
    out.push(
      table(
        ['path', 'median ms [min–max]', 'entries/s median', 'target'],
        rows.map(([name, ms, r, isTarget]) => [
          name,
          cell(ms, 0),
          `**${fmt(r.median / 1e6, 2)} M/s**`,
          isTarget ? `≥ ${fmt(TARGETS.installPerS / 1e6, 0)} M/s → ${verdict(r.median >= TARGETS.installPerS)}` : '',
        ]),
      ),
    );
    out.push('');
    verdicts.push({
      name: `install: ${fmt(ins.entries)} policy entries via PolicyMap.setMany (encode + batch) >= 1M/s`,
      ok: typed.median >= TARGETS.installPerS,
      text: `${fmt(typed.median / 1e6, 2)} M/s`,
    });
    verdicts.push({
      name: `install: ${fmt(ins.entries)} pre-encoded policy entries via the addon's batch update >= 1M/s`,
      ok: raw.median >= TARGETS.installPerS,
      text: `${fmt(raw.median / 1e6, 2)} M/s`,
    });
    const sync = summarize(ins.reps.map((r) => r.sync1Ms).filter((v) => Number.isFinite(v)));
    const steady = summarize(ins.reps.map((r) => r.sync1SteadyMs).filter((v) => Number.isFinite(v)));
    out.push(
      steady.n > 0
        ? `\`PolicyMap.syncEndpoint\` of ONE endpoint's 100 entries while the map holds the ${fmt(ins.entries)} ` +
            `entries of others: first ${fmt(sync.median, 0)} ms (loads the per-endpoint mirror: one full read, ` +
            `as after a restart), then ${fmt(steady.median, 1)} ms (2 entries changed; diffs against the mirror).`
        : `\`PolicyMap.syncEndpoint\` of ONE endpoint's 100 entries while the map holds the ${fmt(ins.entries)} ` +
            `entries of others: ${fmt(sync.median, 0)} ms ` +
            "(diff-apply reads the whole map to find the endpoint's current entries).",
    );
    out.push('');
  }
  return { markdown: out.join('\n'), verdicts };
}
