// The results as a CSV file the page offers for download: one line per row, in input order, with
// where it was scored. The probability columns are the Arena submission's.
import type { RoutedRow } from '../../browser/router.ts';

export const RESULTS_CSV_HEADER = ['id', 'winner_model_a', 'winner_model_b', 'winner_tie', 'num_tokens', 'truncated', 'scored_by', 'provider', 'error'] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. */
function cell(v: string | number | boolean): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function resultsCsv(rows: readonly RoutedRow[]): string {
  const lines = rows.map((r) =>
    [r.id, r.winner_model_a, r.winner_model_b, r.winner_tie, r.num_tokens, r.truncated, r.scoredBy, r.provider ?? '', r.error ? r.error.message : ''].map(cell).join(','),
  );
  return [RESULTS_CSV_HEADER.join(','), ...lines].join('\n') + '\n';
}
