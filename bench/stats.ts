// Latency summaries: nearest-rank percentiles over per-row milliseconds.

export interface LatencySummary {
  readonly count: number;
  readonly p50_ms: number;
  readonly p95_ms: number;
  readonly p99_ms: number;
  readonly mean_ms: number;
  readonly max_ms: number;
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(latenciesMs: readonly number[]): LatencySummary {
  const s = [...latenciesMs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  const r = (x: number): number => Math.round(x * 100) / 100;
  return {
    count: s.length,
    p50_ms: r(percentile(s, 0.5)),
    p95_ms: r(percentile(s, 0.95)),
    p99_ms: r(percentile(s, 0.99)),
    mean_ms: r(mean),
    max_ms: r(s[s.length - 1] ?? NaN),
  };
}
