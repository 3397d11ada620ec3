// Benchmark inputs: rows of the real Arena-schema data in ../shared/data (never copied into the repo).
import { parse } from 'csv-parse/sync';
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Comparison } from '../core/types.ts';
import type { Comparison as WireComparison } from '../proto/gen/pairpref/v1/preference.ts';

export const DEFAULT_INPUTS = ['../shared/data/arena-hard-pairs.csv.gz', '../shared/data/alpaca-pairs-dev.csv.gz'];

export interface InputSet {
  /** Short label for tables: the file name without .csv.gz. */
  readonly name: string;
  readonly path: string;
  readonly rows: readonly Comparison[];
}

interface ArenaRecord {
  readonly id: string;
  readonly prompt: string;
  readonly response_a: string;
  readonly response_b: string;
}

/** The first `limit` rows of an Arena-schema CSV (gzip or plain), as raw comparisons. */
export function readInput(path: string, limit: number): InputSet {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`bench input ${abs} does not exist (the shared data lives in ../shared/data)`);
  const buf = readFileSync(abs);
  const text = abs.endsWith('.gz') ? gunzipSync(buf).toString('utf8') : buf.toString('utf8');
  const records = parse(text, { columns: true, to: limit }) as ArenaRecord[];
  if (records.length === 0) throw new Error(`bench input ${abs} has no rows`);
  const rows: Comparison[] = records.map((r, i) => ({
    id: r.id || `row-${i}`,
    kind: 'raw',
    prompt: r.prompt,
    response_a: r.response_a,
    response_b: r.response_b,
  }));
  return { name: basename(abs).replace(/\.csv(\.gz)?$/, ''), path: abs, rows };
}

/** The gRPC form of a raw comparison. */
export function toWire(row: Comparison): WireComparison {
  if (row.kind !== 'raw') throw new Error('bench rows are raw comparisons');
  return { id: row.id, prompt: [], responseA: [], responseB: [], raw: { prompt: row.prompt, responseA: row.response_a, responseB: row.response_b } };
}
