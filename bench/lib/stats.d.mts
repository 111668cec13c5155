// Types of stats.mjs for the TypeScript benches.
export interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}
export function quantile(xs: readonly number[], q: number): number;
export function median(xs: readonly number[]): number;
export function summarize(xs: readonly number[]): Summary;
export function pairedRatio(a: readonly number[], b: readonly number[]): number;
export function fmt(x: number | undefined | null, digits?: number): string;
