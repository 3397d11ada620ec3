// Benchmark inputs: rows of the real Arena-schema data in ../shared/data (never copied into the repo).
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { evenlySpaced, readRawRows } from '../datasets/arena-file.ts';
import type { Comparison } from '../core/types.ts';

export const DEFAULT_INPUTS = ['../shared/data/arena-hard-pairs.csv.gz', '../shared/data/alpaca-pairs-dev.csv.gz'];

/**
 * The fixed-padding comparison's input: multi-turn dialogues whose lengths spread from a few dozen
 * tokens to the budget (at the default model's 512: p10 66, median 211, p90 512, 20 % truncated over
 * 400 evenly spaced rows), unlike arena-hard, where 80 % of its first 400 rows reach the budget and dynamic
 * padding has almost nothing to save.
 */
export const FIXED_PADDING_INPUT = '../shared/data/hh-harmless-test.csv.gz';

export interface InputSet {
  /** Short label for tables: the file name without .csv.gz. */
  readonly name: string;
  readonly path: string;
  readonly rows: readonly Comparison[];
}

/**
 * The first `limit` rows of an Arena-schema CSV (gzip or plain), as raw comparisons; with `spread`,
 * `limit` rows evenly spaced over the whole file instead (for files ordered by anything).
 */
export async function readInput(path: string, limit: number, spread = false): Promise<InputSet> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`bench input ${abs} does not exist (the shared data lives in ../shared/data)`);
  const all = await readRawRows(abs, spread ? Number.MAX_SAFE_INTEGER : limit);
  if (all.length === 0) throw new Error(`bench input ${abs} has no rows`);
  const rows = spread ? evenlySpaced(all, limit) : all;
  return { name: basename(abs).replace(/\.csv(\.gz)?$/, ''), path: abs, rows };
}
