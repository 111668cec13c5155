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
type Cost = Record<string, { runs: number; nsPerRun: number }>;
interface Families {
  families: Record<string, number>;
  top: Array<{ symbol: string; pct: number }>;
}
/** OV_PROFILE / OV_PERF phases. Program costs are per host: [sender, receiver]. */
export interface OverlayProfile {
  bpf?: Record<
    string,
    {
      rr: { p50: number; transactions: number };
      rrPrograms: Cost[];
      tput: { gbps: number; seconds: number };
      tputPrograms: Cost[];
    }
  >;
  perf?: Record<string, { tput: { gbps: number } & Families; rr: { p50: number } & Families }>;
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
  samples: Array<{
    config: string;
    round: number;
    throughput: { gbps: number; retransmits: number };
    rr: { p50: number; tps: number };
  }>;
  imports?: ImportSample[];
  profile?: OverlayProfile;
  /** OV_STRIP_DOCKER_NAT: nat rules removed from [client, server] netns per config. */
  strippedDockerNat?: Record<string, number[]>;
}
export function renderOverlay(result: OverlayResult): {
  markdown: string;
  verdicts: Array<{ name: string; ok: boolean; text: string }>;
};
