// The results as a CSV file the page offers for download: one line per row, in input order, with
// where it was scored. The probability columns are the Arena submission's.
import type { RoutedRow } from '../../browser/router.ts';
import { csvField } from '../../core/csv.ts';

export const RESULTS_CSV_HEADER = ['id', 'winner_model_a', 'winner_model_b', 'winner_tie', 'num_tokens', 'truncated', 'scored_by', 'provider', 'error'] as const;

export function resultsCsv(rows: readonly RoutedRow[]): string {
  const lines = rows.map((r) =>
    [r.id, r.winner_model_a, r.winner_model_b, r.winner_tie, r.num_tokens, r.truncated, r.scoredBy, r.provider ?? '', r.error ? r.error.message : ''].map(csvField).join(','),
  );
  return [RESULTS_CSV_HEADER.join(','), ...lines].join('\n') + '\n';
}
