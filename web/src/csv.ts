// An Arena-schema CSV (id, prompt, response_a, response_b; text fields are JSON lists of turns)
// -> comparison rows, with errors a person can act on.
import { parse } from 'csv-parse/browser/esm/sync';
import type { Comparison } from '../../core/types.ts';

export const MAX_CSV_ROWS = 100;
const REQUIRED = ['prompt', 'response_a', 'response_b'] as const;

export class CsvInputError extends Error {
  override name = 'CsvInputError';
}

export function comparisonsFromCsv(text: string, fileName = 'the CSV'): Comparison[] {
  if (text.trim() === '') throw new CsvInputError(`${fileName} is empty: expected a header row (id, prompt, response_a, response_b) and up to ${MAX_CSV_ROWS} rows`);
  let records: Record<string, string>[];
  try {
    records = parse(text, { columns: true, skip_empty_lines: true, bom: true, to: MAX_CSV_ROWS + 1 }) as Record<string, string>[];
  } catch (e) {
    // csv-parse messages already name the line ("Quote Not Closed: the parsing is finished with an opening quote at line 3").
    throw new CsvInputError(`${fileName} is not valid CSV: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (records.length === 0) throw new CsvInputError(`${fileName} has a header but no rows`);
  const columns = Object.keys(records[0]!);
  const missing = REQUIRED.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw new CsvInputError(`${fileName} lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (found: ${columns.join(', ') || 'none'}); the Arena schema is id, prompt, response_a, response_b`);
  }
  if (records.length > MAX_CSV_ROWS) throw new CsvInputError(`${fileName} has more than ${MAX_CSV_ROWS} rows: the page scores up to ${MAX_CSV_ROWS} at a time`);
  return records.map((r, i): Comparison => ({
    id: r['id'] !== undefined && r['id'] !== '' ? r['id'] : `row ${i + 1}`,
    kind: 'raw',
    prompt: r['prompt'] ?? '',
    response_a: r['response_a'] ?? '',
    response_b: r['response_b'] ?? '',
  }));
}
