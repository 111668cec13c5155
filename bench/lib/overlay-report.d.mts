// Types of overlay-report.mjs for the TypeScript benches.
export interface ImportSample {
  revision: number;
  /** The import call (POST /v1/policy on host 1), ms. */
  postMs: number;
  /** Per host: ms from the import call's start until `policy wait REV` returned there. */
  waitMs: number[];
  /** Per host: ms from the import call's start until the probe's first unanswered request (NaN: never stalled). */
  dropMs: number[];
  allWaitMs: number;
  allDropMs: number;
}
export interface OverlayResult {
  bench: 'overlay';
  started: string;
  rounds: number;
  seconds: number;
  rrSeconds: number;
  /** The import probe's tcprr mode (connprobe: a new connection per request; probe: one established flow). */
  probe?: string;
  load?: { load1: number; load5: number; cpus: number };
  loadEnd?: { load1: number; load5: number; cpus: number };
  samples: Array<{ config: string; round: number; throughput: { gbps: number; retransmits: number }; rr: { p50: number; tps: number } }>;
  imports?: ImportSample[];
}
export function renderOverlay(result: OverlayResult): { markdown: string; verdicts: Array<{ name: string; ok: boolean; text: string }> };
