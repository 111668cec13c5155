// Renders bench/overlay.ts results: medians per config, ratios to plain kernel VXLAN, and the
// issue's targets (ours with policy >= 0.95x kernel VXLAN throughput, RR p50 <= 1.05x).
import { median, fmt } from './stats.mjs';

const CONFIGS = ['kernel-vxlan', 'ours', 'ours+policy'];
const TARGETS = { throughput: 0.95, rrP50: 1.05 };

/** @param {{ started: string, rounds: number, seconds: number, rrSeconds: number, load?: object, samples: Array<{ config: string, throughput: { gbps: number, retransmits: number }, rr: { p50: number, tps: number } }> }} result */
export function renderOverlay(result) {
  const row = (config) => {
    const s = result.samples.filter((x) => x.config === config);
    return {
      gbps: median(s.map((x) => x.throughput.gbps)),
      p50: median(s.map((x) => x.rr.p50)),
      tps: median(s.map((x) => x.rr.tps)),
      retransmits: median(s.map((x) => x.throughput.retransmits)),
    };
  };
  const base = row('kernel-vxlan');
  const lines = [
    `## overlay (${result.started})`,
    '',
    `Two lab hosts on a shared underlay (veth + bridge, MTU 1500), ${result.rounds} interleaved rounds, iperf3 ${result.seconds} s single stream, tcprr ${result.rrSeconds} s 64-byte RR.${result.load ? ` Load at end: ${JSON.stringify(result.load)}.` : ''}`,
    '',
    '| config | Gbit/s (median) | × kernel-vxlan | RR p50 µs | × kernel-vxlan | RR tps | retransmits |',
    '|---|---|---|---|---|---|---|',
    ...CONFIGS.map((c) => {
      const r = row(c);
      return `| ${c} | ${fmt(r.gbps, 2)} | ${fmt(r.gbps / base.gbps, 2)} | ${fmt(r.p50, 1)} | ${fmt(r.p50 / base.p50, 2)} | ${fmt(r.tps)} | ${fmt(r.retransmits)} |`;
    }),
  ];
  const ours = row('ours+policy');
  const verdicts = [
    { name: `overlay: ours with policy >= ${TARGETS.throughput}x kernel VXLAN throughput`, ok: ours.gbps / base.gbps >= TARGETS.throughput, text: `${fmt(ours.gbps / base.gbps, 2)}x` },
    { name: `overlay: ours with policy RR p50 <= ${TARGETS.rrP50}x kernel VXLAN`, ok: ours.p50 / base.p50 <= TARGETS.rrP50, text: `${fmt(ours.p50 / base.p50, 2)}x` },
  ];
  return { markdown: lines.join('\n'), verdicts };
}
