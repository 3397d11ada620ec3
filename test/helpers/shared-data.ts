// Reads rows of the real Arena-schema data in ../shared/data (never copied into the repo).
import { parse } from 'csv-parse/sync';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { Comparison } from '../../core/types.ts';

export const SHARED_DATA = new URL('../../../shared/data/', import.meta.url);

export interface ArenaRow {
  readonly id: string;
  readonly prompt: string;
  readonly response_a: string;
  readonly response_b: string;
  readonly winner_model_a?: string;
  readonly winner_model_b?: string;
  readonly winner_tie?: string;
}

/** First `limit` rows of a shared data file; throws (never skips) when the data is absent. */
export function readArena(file: string, limit: number): ArenaRow[] {
  const url = new URL(file, SHARED_DATA);
  if (!existsSync(url)) throw new Error(`${url.pathname} is missing: tests read the real data from ../shared/data`);
  const text = gunzipSync(readFileSync(url)).toString('utf8');
  // Cut roughly after `limit` records to avoid parsing the whole file: parse with to_line is not
  // record-aware, so parse all but stop early via `to`.
  return parse(text, { columns: true, to: limit }) as ArenaRow[];
}

export function rawComparison(r: ArenaRow): Comparison {
  return { id: r.id, kind: 'raw', prompt: r.prompt, response_a: r.response_a, response_b: r.response_b };
}
