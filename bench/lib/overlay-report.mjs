// Renders bench/overlay.ts results: medians per config, ratios within the run (to plain kernel
// VXLAN and to the routed limit), the 3-host import -> enforced latency, and the issue's targets:
// ours with policy >= 0.95x kernel VXLAN throughput, RR p50 <= 1.05x, >= Docker's classic overlay;
// import -> enforced on all 3 hosts p50 <= 1 s.
import { median, quantile, fmt } from './stats.mjs';

const CONFIGS = ['routed', 'kernel-vxlan', 'docker-overlay', 'ours', 'ours+policy'];
const TARGETS = { throughput: 0.95, rrP50: 1.05, importP50Ms: 1000 };

/** Median over rounds of a / b, each round's two samples paired (same round, adjacent in time). */
function pairedMedian(samples, a, b, pick) {
  const rounds = [...new Set(samples.map((x) => x.round))];
  const ratios = [];
  for (const r of rounds) {
    const sa = samples.find((x) => x.round === r && x.config === a);
    const sb = samples.find((x) => x.round === r && x.config === b);
    if (sa && sb) ratios.push(pick(sa) / pick(sb));
  }
  return median(ratios);
}

/** @param {import('./overlay-report.d.mts').OverlayResult} result */
export function renderOverlay(result) {
  const present = CONFIGS.filter((c) => result.samples.some((x) => x.config === c));
  const row = (config) => {
    const s = result.samples.filter((x) => x.config === config);
    return {
      gbps: median(s.map((x) => x.throughput.gbps)),
      p50: median(s.map((x) => x.rr.p50)),
      tps: median(s.map((x) => x.rr.tps)),
      retransmits: median(s.map((x) => x.throughput.retransmits)),
    };
  };
  const thr = (a, b) => pairedMedian(result.samples, a, b, (x) => x.throughput.gbps);
  const lat = (a, b) => pairedMedian(result.samples, a, b, (x) => x.rr.p50);
  const load = result.load
    ? ` Load after the rounds: ${fmt(result.load.load1, 2)}/${fmt(result.load.load5, 2)} (1/5 ` +
      `min) on ${result.load.cpus} CPUs.`
    : '';
  const lines = [
    `## overlay (${result.started})`,
    '',
    `Lab hosts on a shared underlay (veth + bridge, MTU 1500), ${result.rounds} interleaved rounds (order rotated), ` +
      `iperf3 ${result.seconds} s single stream, tcprr ${result.rrSeconds} s 64-byte RR.${load}`,
    'Ratios are medians of per-round ratios (the two samples of a ratio come from the same round, ' +
      'under a minute apart), so they hold better than the absolute figures on a loaded machine.',
    '',
    ...(result.strippedDockerNat
      ? [
          "**OV_STRIP_DOCKER_NAT**: dockerd's embedded-DNS nat table was removed from the containers' netns " +
            `before the rounds (${Object.entries(result.strippedDockerNat)
              .map(([k, v]) => `${k} ${v.join(' + ')} rules`)
              .join(', ')}); the routed and kernel-vxlan namespaces never had one.`,
          '',
        ]
      : []),
    '| config | Gbit/s (median) | × kernel-vxlan | × routed | RR p50 µs | × kernel-vxlan | RR tps | retransmits |',
    '|---|---|---|---|---|---|---|---|',
    ...present.map((c) => {
      const r = row(c);
      return (
        `| ${c} | ${fmt(r.gbps, 2)} | ${fmt(thr(c, 'kernel-vxlan'), 2)} | ${fmt(thr(c, 'routed'), 2)} | ` +
        `${fmt(r.p50, 1)} | ${fmt(lat(c, 'kernel-vxlan'), 2)} | ${fmt(r.tps)} | ${fmt(r.retransmits)} |`
      );
    }),
  ];
  const ours = { gbps: thr('ours+policy', 'kernel-vxlan'), p50: lat('ours+policy', 'kernel-vxlan') };
  const verdicts = [
    {
      name: `overlay: ours with policy >= ${TARGETS.throughput}x kernel VXLAN throughput`,
      ok: ours.gbps >= TARGETS.throughput,
      text: `${fmt(ours.gbps, 2)}x`,
    },
    {
      name: `overlay: ours with policy RR p50 <= ${TARGETS.rrP50}x kernel VXLAN`,
      ok: ours.p50 <= TARGETS.rrP50,
      text: `${fmt(ours.p50, 2)}x`,
    },
  ];
  if (present.includes('docker-overlay')) {
    const t = thr('ours+policy', 'docker-overlay');
    const l = lat('ours+policy', 'docker-overlay');
    verdicts.push({
      name: 'overlay: ours with policy >= Docker classic overlay (throughput, RR p50)',
      ok: t >= 1 && l <= 1,
      text: `${fmt(t, 2)}x throughput, ${fmt(l, 2)}x RR p50`,
    });
  }
  const imports = result.imports ?? [];
  if (imports.length > 0) {
    const drop = imports.map((x) => x.allDropMs).filter((x) => Number.isFinite(x));
    const wait = imports.map((x) => x.allWaitMs);
    const post = imports.map((x) => x.postMs);
    const perHost = [0, 1, 2].map((k) => median(imports.map((x) => x.dropMs[k]).filter((x) => Number.isFinite(x))));
    lines.push(
      '',
      `### policy import on host 1 -> enforced on all 3 hosts (${imports.length} imports)`,
      '',
      'Enforced = ' +
        (result.probe === 'probe'
          ? 'a tcprr probe (one request every ms on one established connection)'
          : 'a tcprr connprobe (a new TCP connection with one request every ms)') +
        ' into a selected container on each host stops getting answers; ' +
        'the time is the start of the first unanswered request after the import call ' +
        'began, max over the three hosts. ' +
        `\`policy wait\` = each daemon's \`GET /v1/policy/wait/REV\` (run in parallel after the import returned).`,
      '',
      '| measure | p50 ms | p90 ms | max ms |',
      '|---|---|---|---|',
      `| probe dropped on all 3 hosts | ${fmt(median(drop), 0)} | ${fmt(quantile(drop, 0.9), 0)} | ` +
        `${fmt(Math.max(...drop), 0)} |`,
      `| policy wait returned on all 3 | ${fmt(median(wait), 0)} | ${fmt(quantile(wait, 0.9), 0)} | ` +
        `${fmt(Math.max(...wait), 0)} |`,
      `| import call (POST) | ${fmt(median(post), 0)} | ${fmt(quantile(post, 0.9), 0)} | ` +
        `${fmt(Math.max(...post), 0)} |`,
      '',
      `Probe dropped, median per host (1 = importing host): ${perHost.map((x) => fmt(x, 0)).join(' / ')} ms; ` +
        `${imports.length - drop.length} imports where a probe never stalled.`,
    );
    const p50 = drop.length === imports.length ? median(drop) : NaN;
    verdicts.push({
      name: `overlay: policy import -> enforced on all 3 hosts p50 <= ${TARGETS.importP50Ms} ms`,
      ok: p50 <= TARGETS.importP50Ms,
      text: `${fmt(p50, 0)} ms`,
    });
  }
  lines.push(...renderProfile(result.profile));
  return { markdown: lines.join('\n'), verdicts };
}

/** The bpf_stats and perf phases (OV_PROFILE, OV_PERF), when they ran. */
function renderProfile(profile) {
  const out = [];
  const bpf = profile?.bpf ?? {};
  if (Object.keys(bpf).length > 0) {
    out.push(
      '',
      '### Per-run cost of our programs (`kernel.bpf_stats_enabled=1`, one RR and one iperf3 run after the rounds)',
      '',
    );
    out.push(
      '| config | measurement | host | program | runs | ns/run | runs per RR transaction / per Gbit |',
      '|---|---|---|---|---|---|---|',
    );
    for (const [config, b] of Object.entries(bpf)) {
      for (const [kind, progs, per] of [
        ['RR', b.rrPrograms, b.rr.transactions],
        ['iperf3', b.tputPrograms, b.tput.gbps * b.tput.seconds],
      ]) {
        progs.forEach((byName, h) => {
          for (const [name, c] of Object.entries(byName)) {
            if (c.runs === 0) continue;
            out.push(
              `| ${config} | ${kind} | ${h === 0 ? 'sender' : 'receiver'} | ${name} | ${fmt(c.runs)} | ` +
                `${fmt(c.nsPerRun, 0)} | ${fmt(c.runs / per, 2)} |`,
            );
          }
        });
      }
    }
  }
  const perf = profile?.perf ?? {};
  if (Object.keys(perf).length > 0) {
    for (const kind of ['tput', 'rr']) {
      const fams = [...new Set(Object.values(perf).flatMap((p) => Object.keys(p[kind].families ?? {})))].sort();
      out.push(
        '',
        `### Where the CPUs go during ${kind === 'tput' ? 'iperf3' : 'RR'} ` +
          `(\`perf record -e cpu-clock -a\`, % of samples)`,
        '',
      );
      out.push(
        `| family | ${Object.keys(perf).join(' | ')} |`,
        `|---|${Object.keys(perf)
          .map(() => '---')
          .join('|')}|`,
      );
      for (const f of fams)
        out.push(
          `| ${f} | ${Object.values(perf)
            .map((p) => fmt(p[kind].families?.[f] ?? 0, 1))
            .join(' | ')} |`,
        );
      out.push(
        '',
        ...Object.entries(perf).map(
          ([k, p]) =>
            `- ${k} top: ${(p[kind].top ?? [])
              .slice(0, 8)
              .map((t) => `${t.symbol} ${fmt(t.pct, 1)}`)
              .join(', ')}`,
        ),
      );
    }
  }
  return out;
}
