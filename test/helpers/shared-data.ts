// Rows of the real Arena-schema data in ../shared/data (never copied into the repo), read with the
// product's own reader.
import { existsSync } from 'node:fs';
import { readRawRows } from '../../datasets/arena-file.ts';
import type { Comparison } from '../../core/types.ts';

export const SHARED_DATA = new URL('../../../shared/data/', import.meta.url);

export type RawRow = Comparison & { kind: 'raw' };

/** First `limit` rows of a shared data file; throws (never skips) when the data is absent. */
export function readArena(file: string, limit: number): Promise<RawRow[]> {
  const url = new URL(file, SHARED_DATA);
  if (!existsSync(url)) throw new Error(`${url.pathname} is missing: tests read the real data from ../shared/data`);
  return readRawRows(url.pathname, limit);
}
