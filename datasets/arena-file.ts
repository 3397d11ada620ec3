// Streaming readers for Arena-schema files: CSV, CSV.gz, JSONL and JSONL.gz, one record at a time
// (never the whole file in memory). Every record and every error carries its 1-based line number.
import { parse, type CsvError, type Parser } from 'csv-parse';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FIELDS, LABELS, type Comparison, type LabelIndex, type Turns } from '../core/types.ts';

export type { LabelIndex };
/** The label columns of a training file are the label names, in label order. */
export const LABEL_COLUMNS = LABELS;
const ID_AND_TEXT = ['id', ...FIELDS] as const;

export interface GoodRecord {
  readonly ok: true;
  /** Line where the record starts (the CSV header is line 1). */
  readonly line: number;
  readonly comparison: Comparison;
  /** null when labels were not asked for. */
  readonly label: LabelIndex | null;
}

/** A record that is unusable on its own (the file can still be read past it). */
export interface BadRecord {
  readonly ok: false;
  readonly line: number;
  /** The record's id when it has one. */
  readonly id: string | null;
  readonly field: string;
  readonly message: string;
}

export type FileRecord = GoodRecord | BadRecord;

/** The file cannot be read on (bad header, unterminated quote, broken gzip, ...) or a bad record under stop-on-error. */
export class ArenaFileError extends Error {
  readonly line: number;
  readonly field: string;
  constructor(path: string, line: number, field: string, message: string) {
    super(`${path}:${line}: ${field ? `${field}: ` : ''}${message}`);
    this.name = 'ArenaFileError';
    this.line = line;
    this.field = field;
  }
}

export interface ReadOptions {
  /** Read winner_model_a/b/tie into `label`; a file without those columns is then an error. */
  readonly labels?: boolean;
}

export type FileFormat = 'csv' | 'jsonl';

export function formatOf(path: string): FileFormat {
  return /\.(jsonl|ndjson)(\.gz)?$/i.test(path) ? 'jsonl' : 'csv';
}

function openText(path: string): Readable {
  const file = createReadStream(path);
  if (!/\.gz$/i.test(path)) return file;
  const gunzip = createGunzip();
  file.on('error', (e) => gunzip.destroy(e));
  return file.pipe(gunzip);
}

/** Why a field is not a JSON list of strings/nulls, or null when it is. */
export function jsonListProblem(text: string): string | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${e instanceof Error ? e.message : String(e)})`;
  }
  return turnsProblem(v, 'a JSON list');
}

function turnsProblem(v: unknown, what: string): string | null {
  if (!Array.isArray(v)) return `not ${what} of strings (got ${v === null ? 'null' : typeof v})`;
  const i = v.findIndex((t: unknown) => typeof t !== 'string' && t !== null);
  return i < 0 ? null : `element ${i} is ${typeof v[i]}, not a string or null`;
}

function labelOf(values: readonly unknown[]): { label: LabelIndex } | { field: string; message: string } {
  const bits = values.map((v) => (v === 1 || v === '1' ? 1 : v === 0 || v === '0' ? 0 : null));
  const badAt = bits.findIndex((b) => b === null);
  if (badAt >= 0) return { field: LABEL_COLUMNS[badAt] as string, message: `label is ${JSON.stringify(values[badAt])}, not 0 or 1` };
  const ones = bits.flatMap((b, i) => (b === 1 ? [i] : []));
  if (ones.length !== 1) return { field: 'winner_model_a', message: `exactly one of ${LABEL_COLUMNS.join(', ')} must be 1 (got ${ones.length})` };
  return { label: ones[0] as LabelIndex };
}

/** Records of an Arena CSV / JSONL file (optionally gzipped), in file order. */
export function readArenaFile(path: string, opts: ReadOptions = {}): AsyncGenerator<FileRecord> {
  return formatOf(path) === 'jsonl' ? readJsonl(path, opts) : readCsv(path, opts);
}

/** Skipped empty lines lead a record's raw text; they do not count as its first line. */
function blankLinesBefore(raw: string): number {
  return (/^[\r\n]*/.exec(raw)?.[0].match(/\n/g) ?? []).length;
}

/** The CSV parser over a file, and the end line of the parser's last complete record. */
function openCsv(path: string): { input: Readable; parser: Parser; progress: { parsedEnd: number } } {
  const input = openText(path);
  // The parser runs ahead of the reading loop (buffered records are dropped when it fails), so the
  // line for a parse error comes from the parser's own last complete record, tracked here.
  const progress = { parsedEnd: 0 };
  const parser = input.pipe(
    parse({
      info: true,
      raw: true,
      relax_column_count: true,
      bom: true,
      skip_empty_lines: true,
      on_record: (record: string[], ctx: { lines: number }) => {
        progress.parsedEnd = ctx.lines;
        return record;
      },
    }),
  );
  input.on('error', (e) => parser.destroy(e));
  return { input, parser, progress };
}

/** Column index by name from the header record; an ArenaFileError when a needed column is missing. */
function headerColumns(path: string, record: string[], opts: ReadOptions): Record<string, number> {
  const col: Record<string, number> = Object.fromEntries(record.map((name, i) => [name.trim(), i]));
  const need = opts.labels ? [...ID_AND_TEXT, ...LABEL_COLUMNS] : ID_AND_TEXT;
  const missing = need.filter((c) => col[c] === undefined);
  if (missing.length > 0) {
    throw new ArenaFileError(path, 1, missing[0] as string, `header lacks column(s) ${missing.join(', ')} (has ${record.join(', ')})`);
  }
  return col;
}

/** One CSV data record (starting at `line`) as a good or bad record. */
function csvRecord(record: string[], header: string[], col: Record<string, number>, line: number, opts: ReadOptions): FileRecord {
  const get = (name: string): string | undefined => record[col[name] as number];
  const id = get('id') ?? null;
  const bad = (field: string, message: string): BadRecord => ({ ok: false, line, id, field, message });
  if (record.length !== header.length) {
    const missing = header.find((_, i) => i >= record.length);
    return bad(missing ?? '', `record has ${record.length} field(s), the header has ${header.length}${missing ? ` (missing ${header.slice(record.length).join(', ')})` : ''}`);
  }
  if (!id) return bad('id', 'id is empty');
  const texts = FIELDS.map((f) => get(f) as string);
  const problemAt = texts.findIndex((t) => jsonListProblem(t) !== null);
  if (problemAt >= 0) return bad(FIELDS[problemAt] as string, `${FIELDS[problemAt]} is ${jsonListProblem(texts[problemAt] as string)}`);
  let label: LabelIndex | null = null;
  if (opts.labels) {
    const l = labelOf(LABEL_COLUMNS.map((c) => get(c)));
    if (!('label' in l)) return bad(l.field, l.message);
    label = l.label;
  }
  // Raw: the JSON-list strings go to the model byte for byte, as the reference pipelines read them.
  const [prompt, response_a, response_b] = texts as [string, string, string];
  return { ok: true, line, comparison: { id, kind: 'raw', prompt, response_a, response_b }, label };
}

/** A failure while reading a CSV file as an ArenaFileError with the line it happened at. */
function csvReadError(path: string, e: unknown, parsedEnd: number): ArenaFileError {
  if (e instanceof ArenaFileError) return e;
  const err = e as CsvError & { code?: string };
  const what =
    err.code === 'CSV_QUOTE_NOT_CLOSED'
      ? `unterminated quoted field (runs to the end of the file): ${err.message}`
      : err.code === 'CSV_INVALID_CLOSING_QUOTE'
        ? `unterminated or stray quote in a quoted field: ${err.message}`
        : err.message;
  return new ArenaFileError(path, parsedEnd + 1 + blankLinesBefore(typeof err.raw === 'string' ? err.raw : ''), '', what);
}

async function* readCsv(path: string, opts: ReadOptions): AsyncGenerator<FileRecord> {
  const { input, parser, progress } = openCsv(path);
  let header: string[] | null = null;
  let col: Record<string, number> = {};
  let lastEnd = 0; // line where the previous record ended; the next starts after it
  try {
    for await (const { record, info, raw } of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
      const line = lastEnd + 1 + blankLinesBefore(raw);
      lastEnd = info.lines;
      if (!header) {
        header = record;
        col = headerColumns(path, record, opts);
        continue;
      }
      yield csvRecord(record, header, col, line, opts);
    }
    if (!header) throw new ArenaFileError(path, 1, '', 'file is empty (no header line)');
  } catch (e) {
    throw csvReadError(path, e, progress.parsedEnd);
  } finally {
    input.destroy();
  }
}

async function* readJsonl(path: string, opts: ReadOptions): AsyncGenerator<FileRecord> {
  const input = openText(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        yield { ok: false, line, id: null, field: '', message: `not valid JSON (${e instanceof Error ? e.message : String(e)})` };
        continue;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        yield { ok: false, line, id: null, field: '', message: 'line is not a JSON object' };
        continue;
      }
      const o = v as Record<string, unknown>;
      const id = typeof o.id === 'number' ? String(o.id) : typeof o.id === 'string' && o.id !== '' ? o.id : null;
      const bad = (field: string, message: string): BadRecord => ({ ok: false, line, id, field, message });
      if (id === null) {
        yield bad('id', o.id === undefined ? 'missing id' : 'id is not a non-empty string or a number');
        continue;
      }
      // Each field is an Arena JSON-list string (sent raw) or a turn array; all three use one form.
      const missing = FIELDS.find((f) => o[f] === undefined);
      if (missing) {
        yield bad(missing, `missing ${missing}`);
        continue;
      }
      const raw = FIELDS.every((f) => typeof o[f] === 'string');
      const problemField = FIELDS.find((f) => (raw ? jsonListProblem(o[f] as string) : typeof o[f] === 'string' ? 'a string while other fields are lists' : turnsProblem(o[f], 'a list')) !== null);
      if (problemField) {
        const p = o[problemField];
        const why = raw ? jsonListProblem(p as string) : typeof p === 'string' ? 'a string while other fields are turn lists; use one form' : turnsProblem(p, 'a list');
        yield bad(problemField, `${problemField} is ${why}`);
        continue;
      }
      let label: LabelIndex | null = null;
      if (opts.labels) {
        const l = labelOf(LABEL_COLUMNS.map((c) => o[c]));
        if (!('label' in l)) {
          yield bad(l.field, l.message);
          continue;
        }
        label = l.label;
      }
      const comparison: Comparison = raw
        ? { id, kind: 'raw', prompt: o.prompt as string, response_a: o.response_a as string, response_b: o.response_b as string }
        : { id, kind: 'turns', prompt: o.prompt as Turns, response_a: o.response_a as Turns, response_b: o.response_b as Turns };
      yield { ok: true, line, comparison, label };
    }
  } catch (e) {
    if (e instanceof ArenaFileError) throw e;
    throw new ArenaFileError(path, line + 1, '', e instanceof Error ? e.message : String(e));
  } finally {
    lines.close();
    input.destroy();
  }
}

/** Counts records without keeping them (for a progress bar's total). */
export async function countRecords(path: string): Promise<number> {
  let n = 0;
  try {
    for await (const _ of readArenaFile(path)) n++;
  } catch {
    // The real pass reports the error with its line.
  }
  return n;
}

/**
 * Good records only, in file order, up to `limit`: for tools that must not silently drop rows
 * (training, benchmarks, tests). A bad record is an ArenaFileError naming its line.
 */
export async function* readGoodRecords(path: string, opts: ReadOptions & { limit?: number } = {}): AsyncGenerator<GoodRecord> {
  const limit = opts.limit ?? Infinity;
  if (limit <= 0) return;
  let n = 0;
  for await (const r of readArenaFile(path, opts)) {
    if (!r.ok) throw new ArenaFileError(path, r.line, r.field, r.message);
    yield r;
    if (++n >= limit) return;
  }
}

/** The first `limit` rows of a CSV-schema file as raw comparisons (the JSON-list fields byte for byte). */
export async function readRawRows(path: string, limit: number): Promise<Array<Comparison & { kind: 'raw' }>> {
  const rows: Array<Comparison & { kind: 'raw' }> = [];
  for await (const r of readGoodRecords(path, { limit })) {
    if (r.comparison.kind !== 'raw') throw new ArenaFileError(path, r.line, '', 'expected JSON-list string fields');
    rows.push(r.comparison);
  }
  return rows;
}

/**
 * `n` items at even steps over `all` (all of them when n >= all.length), in file order: the shared
 * splits are ordered by source, so a quick subset must be spread over the file, not its first rows.
 */
export function evenlySpaced<T>(all: readonly T[], n: number): T[] {
  if (n >= all.length) return [...all];
  return Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)]!);
}
