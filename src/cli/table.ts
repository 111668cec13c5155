/**
 * Plain-text tables for CLI output: a header row and left-aligned columns separated by
 * three spaces (like Cilium's CLI).
 */

/** Renders rows under `headers`; multi-line cells become extra lines in the same row. */
export function renderTable(headers: string[], rows: string[][]): string {
  const expanded: string[][] = [];
  for (const row of rows) {
    const parts = row.map((cell) => cell.split('\n'));
    const height = Math.max(1, ...parts.map((p) => p.length));
    for (let i = 0; i < height; i++) expanded.push(parts.map((p) => p[i] ?? ''));
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...expanded.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('   ').trimEnd();
  return [line(headers), ...expanded.map(line)].join('\n') + '\n';
}
