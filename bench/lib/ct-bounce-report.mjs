// Renders bench/ct-bounce.ts's result: ns per run of from_container on one flow's two directions,
// each alone and both at once on two CPUs, with and without the conntrack counters.

/**
 * @typedef {{ accounting: boolean, scenario: 'alone' | 'together', direction: 'fwd' | 'rev',
 *   ns: number[] }} CtBounceRow
 * @typedef {{ bench: 'ct-bounce', started: string, repeat: number, rounds: number,
 *   load: { load1: number, load5: number, cpus: number }, loadEnd: { load1: number, load5: number, cpus: number },
 *   rows: CtBounceRow[] }} CtBounceResult
 */

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** @param {number[]} xs */
const span = (xs) => `${median(xs).toFixed(0)} [${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}]`;

/**
 * @param {CtBounceResult} r
 * @returns {{ markdown: string, verdicts: Array<{ ok: boolean, text: string }> }}
 */
export function renderCtBounce(r) {
  const lines = [
    `## ct-bounce (${r.started})`,
    '',
    'One established TCP flow A -> B between two local endpoints: from_container on its forward packets pinned to ' +
      `CPU0, on its replies pinned to CPU1; ${r.repeat} runs per measurement (BPF_PROG_TEST_RUN), ` +
      `${r.rounds} interleaved rounds, median [min–max] ns per run. Load ${r.load.load1}/${r.load.load5} before, ` +
      `${r.loadEnd.load1}/${r.loadEnd.load5} after (1/5 min) on ${r.load.cpus} CPUs.`,
    '',
    '| conntrack counters | direction | alone | both CPUs at once | at once − alone |',
    '|---|---|---|---|---|',
  ];
  for (const accounting of [true, false]) {
    for (const d of ['fwd', 'rev']) {
      const pick = (scenario) =>
        r.rows.find((x) => x.accounting === accounting && x.scenario === scenario && x.direction === d)?.ns ?? [];
      const alone = pick('alone');
      const together = pick('together');
      if (!alone.length || !together.length) continue;
      lines.push(
        `| ${accounting ? 'on' : 'off'} | ${d} | ${span(alone)} | ${span(together)} | ` +
          `${(median(together) - median(alone)).toFixed(0)} |`,
      );
    }
  }
  return { markdown: lines.join('\n'), verdicts: [] };
}
