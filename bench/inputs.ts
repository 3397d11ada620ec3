// Benchmark inputs: rows of the real Arena-schema data in ../shared/data (never copied into the repo).
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { readRawRows } from '../datasets/arena-file.ts';
import type { Comparison } from '../core/types.ts';

export const DEFAULT_INPUTS = ['../shared/data/arena-hard-pairs.csv.gz', '../shared/data/alpaca-pairs-dev.csv.gz'];

export interface InputSet {
  /** Short label for tables: the file name without .csv.gz. */
  readonly name: string;
  readonly path: string;
  readonly rows: readonly Comparison[];
}

/** The first `limit` rows of an Arena-schema CSV (gzip or plain), as raw comparisons. */
export async function readInput(path: string, limit: number): Promise<InputSet> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`bench input ${abs} does not exist (the shared data lives in ../shared/data)`);
  const rows = await readRawRows(abs, limit);
  if (rows.length === 0) throw new Error(`bench input ${abs} has no rows`);
  return { name: basename(abs).replace(/\.csv(\.gz)?$/, ''), path: abs, rows };
}
