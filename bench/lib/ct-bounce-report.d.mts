// Types of ct-bounce-report.mjs for the TypeScript benches.
export interface CtBounceRow {
  /** cfg_ct_accounting: the entry's packet and byte counters on. */
  accounting: boolean;
  /** One direction alone, or both at once on two CPUs. */
  scenario: 'alone' | 'together';
  direction: 'fwd' | 'rev';
  /** ns per run, one per round. */
  ns: number[];
}
export interface CtBounceResult {
  bench: 'ct-bounce';
  started: string;
  repeat: number;
  rounds: number;
  load: { load1: number; load5: number; cpus: number };
  loadEnd: { load1: number; load5: number; cpus: number };
  rows: CtBounceRow[];
}
export function renderCtBounce(result: CtBounceResult): {
  markdown: string;
  verdicts: Array<{ name: string; ok: boolean; text: string }>;
};
