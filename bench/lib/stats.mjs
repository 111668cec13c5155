// Small statistics helpers shared by the benches (TypeScript imports this file too) and the report.

/** Sorted copy of the finite numbers in `xs`. */
function sorted(xs) {
  return xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
}

/** Quantile with linear interpolation between closest ranks (q in [0, 1]); NaN for no data. */
export function quantile(xs, q) {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const median = (xs) => quantile(xs, 0.5);

/** n, median, p90, min, max, mean of a sample. */
export function summarize(xs) {
  const s = sorted(xs);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    min: s.length ? s[0] : NaN,
    max: s.length ? s[s.length - 1] : NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

/** Median of per-round ratios a[i] / b[i] (pairs where either side is missing are skipped). */
export function pairedRatio(a, b) {
  const r = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] > 0) r.push(a[i] / b[i]);
  }
  return median(r);
}

/** Formats a number for a table: `digits` decimals, thin grouping for thousands, '–' for NaN. */
export function fmt(x, digits = 0) {
  if (x === undefined || x === null || !Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).replace(/,/g, ' ');
}
