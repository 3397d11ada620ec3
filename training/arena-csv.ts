// Streams rows of an Arena-schema CSV(.gz) as core/ Comparisons plus their label.
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { parse } from 'csv-parse';
import type { Comparison } from '../core/types.ts';

/** 0 = a, 1 = b, 2 = tie; null for unlabeled (test-schema) rows. */
export type LabelIndex = 0 | 1 | 2;

export interface LabeledRow {
  readonly comparison: Comparison & { kind: 'raw' };
  readonly label: LabelIndex | null;
}

function labelOf(rec: Record<string, string>): LabelIndex | null {
  if (rec.winner_model_a === undefined) return null;
  if (rec.winner_model_a === '1') return 0;
  if (rec.winner_model_b === '1') return 1;
  if (rec.winner_tie === '1') return 2;
  throw new Error(`row ${rec.id}: no winner column is 1`);
}

/** Rows in file order; `limit` stops early (smoke runs, subsets). */
export async function* readArenaCsv(path: string, limit = Infinity): AsyncGenerator<LabeledRow> {
  if (limit <= 0) return;
  const input = createReadStream(path);
  const parser = (path.endsWith('.gz') ? input.pipe(createGunzip()) : input).pipe(
    parse({ columns: true, relax_quotes: false }),
  );
  let n = 0;
  try {
    for await (const rec of parser as AsyncIterable<Record<string, string>>) {
      yield {
        // 'raw' keeps the JSON-list strings byte for byte, as a CSV-fed server sees them.
        comparison: {
          id: String(rec.id),
          kind: 'raw',
          prompt: rec.prompt ?? '',
          response_a: rec.response_a ?? '',
          response_b: rec.response_b ?? '',
        },
        label: labelOf(rec),
      };
      if (++n >= limit) break;
    }
  } finally {
    input.destroy();
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
