/**
 * Plain-text tables for CLI output: a header row and left-aligned columns separated by
 * three spaces (like Cilium's CLI).
 */
import { escapeTerminalText } from './terminal-text.js';

/**
 * One cell: a string is one line; an array is one line per element (a label set, one label per
 * line). Either way each line is shown literally: a newline or escape sequence inside a value is
 * printed as a visible escape (`\n`, `\x1b`), so no value can draw a row or drive the terminal.
 */
export type TableCell = string | readonly string[];

/** Renders rows under `headers`; a multi-line cell makes its row several lines high. */
export function renderTable(headers: string[], rows: TableCell[][]): string {
  const expanded: string[][] = [];
  for (const row of rows) {
    const parts = row.map((cell) => (typeof cell === 'string' ? [cell] : cell).map(escapeTerminalText));
    const height = Math.max(1, ...parts.map((p) => p.length));
    for (let i = 0; i < height; i++) expanded.push(parts.map((p) => p[i] ?? ''));
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...expanded.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  return `${[line(headers), ...expanded.map(line)].join('\n')}\n`;
}
