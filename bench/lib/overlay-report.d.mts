// Types of overlay-report.mjs for the TypeScript benches.
export interface OverlayResult {
  bench: 'overlay';
  started: string;
  rounds: number;
  seconds: number;
  rrSeconds: number;
  load?: object;
  samples: Array<{ config: string; round: number; throughput: { gbps: number; retransmits: number }; rr: { p50: number; tps: number } }>;
}
export function renderOverlay(result: OverlayResult): { markdown: string; verdicts: Array<{ name: string; ok: boolean; text: string }> };
