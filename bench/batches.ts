// How rows are grouped for the in-process comparisons: the server's length-sorted dynamic
// batches under a padded-token budget, and the fixed max_length padding baseline.
import type { EncodedRow } from '../core/types.ts';
import type { BatchingOptions } from '../core/batch.ts';

export interface PlannedBatch {
  readonly rows: readonly EncodedRow[];
  /** Every row is padded to this many tokens (0 = pad to the batch's longest row). */
  readonly padTo: number;
}

/** Longest first, cut like the scheduler's saturated path: rows x longest <= maxBatchTokens, <= maxBatchSize rows. */
export function sortedBatches(rows: readonly EncodedRow[], b: Pick<BatchingOptions, 'maxBatchTokens' | 'maxBatchSize'>): PlannedBatch[] {
  const sorted = [...rows].sort((x, y) => y.ids.length - x.ids.length);
  const out: PlannedBatch[] = [];
  for (let i = 0; i < sorted.length; ) {
    const len = Math.max(1, sorted[i]!.ids.length);
    const n = Math.max(1, Math.min(b.maxBatchSize, Math.floor(b.maxBatchTokens / len)));
    out.push({ rows: sorted.slice(i, i + n), padTo: 0 });
    i += n;
  }
  return out;
}

/** Arrival order, fixed batch size, every row padded to maxLength (the reference pipelines' slow baseline). */
export function fixedBatches(rows: readonly EncodedRow[], batchSize: number, maxLength: number): PlannedBatch[] {
  const out: PlannedBatch[] = [];
  for (let i = 0; i < rows.length; i += batchSize) out.push({ rows: rows.slice(i, i + batchSize), padTo: maxLength });
  return out;
}

export function paddedTokens(batches: readonly PlannedBatch[]): number {
  return batches.reduce((s, b) => s + b.rows.length * (b.padTo || Math.max(1, ...b.rows.map((r) => r.ids.length))), 0);
}
