// Markdown report of a programs bench result (bench/programs.ts writes the JSON). Pure: JSON in,
// text out, plus the target verdicts for the runner (this bench has no targets).
import { fmt, median, pairedRatio, summarize } from './stats.mjs';

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** What each difference of two paths isolates (the code between them in bpf/lxc.bpf.c). */
const DIFFERENCES = [
  ['local-policy', 'local', 'destination ingress policy: 2 LPM lookups in cilium_policy (peer, wildcard), 3 entries'],
  ['local-policy-50k', 'local-policy', 'the same lookups with 50 000 more entries under the destination'],
  ['local-50k', 'local', 'control: the large datapath without a policy lookup (should be ~0)'],
  ['reply', 'local', 'reply: a missed forward ct lookup + the reversed one, no policy'],
  [
    'stack',
    'local',
    'ipcache LPM lookup instead of a local endpoint hit; no MAC rewrite, one metrics update instead of two',
  ],
  ['encap', 'stack', 'bpf_skb_set_tunnel_key + redirect instead of the masquerade mark'],
  [
    'to-container',
    'local-policy',
    'to_container (ipcache LPM for the source + ingress policy) vs from_container to a local enforcing peer',
  ],
  ['local', 'floor', 'from_container local path minus test-run harness and program entry'],
];

/**
 * PROG_OBJECTS: every path on each object, interleaved per round; the ratio to the first object
 * is the median of per-round ratios (the tables above are the first object's).
 */
function renderObjects(res) {
  const [first, ...rest] = res.objects;
  const xs = (variant, object) =>
    res.objectSamples
      .filter((x) => x.variant === variant && x.object === object)
      .sort((a, b) => a.round - b.round)
      .map((x) => x.nsPerRun);
  const rows = res.variants.map((v) => {
    const base = xs(v.key, first.label);
    return [
      `\`${v.key}\``,
      fmt(median(base)),
      ...rest.flatMap((o) => {
        const mine = xs(v.key, o.label);
        return [fmt(median(mine)), `${fmt(pairedRatio(mine, base), 2)}×`];
      }),
    ];
  });
  return [
    `Objects, interleaved in every round: ${res.objects.map((o) => `${o.label} = ${o.path}`).join('; ')}.`,
    '',
    table(['path', `${first.label} ns/run`, ...rest.flatMap((o) => [`${o.label} ns/run`, `× ${first.label}`])], rows),
  ];
}

/** Renders the programs result; returns { markdown, verdicts }. */
export function renderPrograms(res) {
  const out = [];
  const s = res.settings;
  const m = res.machine;
  const busy = m.loadBefore?.load1 > 0.5 || m.loadAfter?.load1 > 1;
  out.push(`## Benchmark — BPF programs, ns per run (BPF_PROG_TEST_RUN) (${res.startedAt}, ${fmt(res.durationS)} s)`);
  out.push('');
  const staleObject = res.code?.object?.sourcesNewer?.length
    ? `, **older than ${res.code.object.sourcesNewer.join(', ')}**: rebuild with scripts/build-bpf.sh`
    : '';
  const uncommitted = res.code?.uncommittedFiles
    ? ` + ${res.code.uncommittedFiles} uncommitted file(s) under bpf/ src/ native/`
    : '';
  out.push(
    `bpf/lxc.bpf.o (built ${res.code?.object?.built}${staleObject}), ` +
      `HEAD ${res.code?.head}${uncommitted}, kernel ${m.kernel}. ` +
      (s.cold > 0
        ? `**Cold caches**: ${fmt(s.rounds)} interleaved rounds × ${fmt(s.cold)} single runs per path, ` +
          `each right after ${fmt(s.coldMib)} MiB of memory was rewritten (median per round) (TCP ACK`
        : `${fmt(s.rounds)} interleaved rounds × ${fmt(s.repeat)} runs per path (TCP ACK`) +
      `  of an established flow, ${fmt(s.packetBytes)} bytes of IPv4); ` +
      `policy maps: ${fmt(res.policyEntries?.small)} entries (small), ${fmt(res.policyEntries?.large)} (large). ` +
      `Load average ${m.loadBefore?.load1} before / ${m.loadAfter?.load1} after on ${m.loadBefore?.cpus} CPUs` +
      (busy ? ' — **other work was running**: read the ratios (same round), not the absolute figures.' : '.') +
      (s.cold > 0
        ? " ns/run is the kernel's figure for one run (integer ns, clock reads included)."
        : " ns/run is the kernel's average over the repetitions (integer ns)."),
  );
  out.push('');

  const byVariant = new Map(
    res.variants.map((v) => [
      v.key,
      res.samples
        .filter((x) => x.variant === v.key)
        .sort((a, b) => a.round - b.round)
        .map((x) => x.nsPerRun),
    ]),
  );
  const base = byVariant.get('local') ?? [];
  const rows = res.variants.map((v) => {
    const xs = byVariant.get(v.key);
    const sum = summarize(xs);
    return [
      `\`${v.key}\``,
      `${v.program}${v.datapath === 'large' ? ' (large)' : ''}`,
      v.what,
      `${fmt(sum.median)} [${fmt(sum.min)}–${fmt(sum.max)}]`,
      `${fmt(pairedRatio(xs, base), 2)}×`,
    ];
  });
  for (const n of res.notMeasured ?? [])
    rows.push([
      `\`${n.key}\``,
      n.program,
      `not measurable: ${n.reason} (observed: retval ${n.retval}, ${n.dropReasons.join(', ') || 'no counter moved'})`,
      '–',
      '–',
    ]);
  out.push(table(['path', 'program', 'what', 'ns/run median [min–max]', '× local (per-round median)'], rows));
  out.push('');

  const diffRows = [];
  for (const [a, b, what] of DIFFERENCES) {
    const xa = byVariant.get(a);
    const xb = byVariant.get(b);
    if (!xa || !xb) continue;
    const d = xa.map((x, i) => x - xb[i]).filter((x) => Number.isFinite(x));
    const sum = summarize(d);
    diffRows.push([`\`${a}\` − \`${b}\``, what, `${fmt(median(d))} [${fmt(sum.min)}–${fmt(sum.max)}]`]);
  }
  out.push('Differences (per round, same run):');
  out.push('');
  out.push(table(['difference', 'isolates', 'ns/run median [min–max]'], diffRows));
  if (res.objects?.length > 1) out.push('', ...renderObjects(res));
  return { markdown: out.join('\n'), verdicts: [] };
}
