// Labeled rows of an Arena-schema CSV(.gz) for training: the product's reader (datasets/arena-file.ts),
// strict, so a malformed row stops the pipeline instead of vanishing from the data.
import { readGoodRecords, type LabelIndex } from '../datasets/arena-file.ts';
import type { Comparison } from '../core/types.ts';

export type { LabelIndex };

export interface LabeledRow {
  readonly comparison: Comparison & { kind: 'raw' };
  readonly label: LabelIndex | null;
}

/** Rows in file order; `limit` stops early (smoke runs, subsets). */
export async function* readArenaCsv(path: string, limit = Infinity): AsyncGenerator<LabeledRow> {
  for await (const r of readGoodRecords(path, { labels: true, limit })) {
    // 'raw' keeps the JSON-list strings byte for byte, as a CSV-fed server sees them.
    if (r.comparison.kind !== 'raw') throw new Error(`${path}:${r.line}: training reads CSV files (JSON-list string fields)`);
    yield { comparison: r.comparison, label: r.label };
  }
}

/** The same comparison seen from the other side; the label follows the sides. */
export function swapRow(row: LabeledRow): LabeledRow {
  const c = row.comparison;
  const label = row.label === 0 ? 1 : row.label === 1 ? 0 : row.label;
  return { comparison: { ...c, response_a: c.response_b, response_b: c.response_a }, label };
}

/** A field's text for tokenizer training and checks: the JSON list's string turns joined by a space; malformed lists as they stand. */
export function decodeField(raw: string): string {
  try {
    const v: unknown = JSON.parse(raw);
    if (Array.isArray(v)) return v.map((t) => (typeof t === 'string' ? t : '')).join(' ');
  } catch {
    // not a JSON list: use the raw text
  }
  return raw;
}
