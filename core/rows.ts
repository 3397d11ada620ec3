// Rows as callers hold them (the SDK, the CLI's files, the in-process engine) -> core Comparisons.
import { RowInputError } from './errors.ts';
import { FIELDS, type Comparison, type Field, type Turns } from './types.ts';

/**
 * A comparison as callers hold it. Each text field is either
 * - a string: the Kaggle/Arena CSV form, a JSON list such as '["hi", null]', sent byte for byte
 *   (a `naive`-parser model needs those exact bytes), or
 * - a turn array: ['hi'] (null turns allowed).
 * All three fields must use the same form. A core `Comparison` (with `kind`) is accepted too.
 */
export type Row =
  | { readonly id: string | number; readonly prompt: string; readonly response_a: string; readonly response_b: string }
  | { readonly id: string | number; readonly prompt: Turns; readonly response_a: Turns; readonly response_b: Turns }
  | Comparison;

function isTurns(v: unknown): v is Turns {
  return Array.isArray(v) && v.every((t) => typeof t === 'string' || t === null);
}

/** Row -> core Comparison. Throws RowInputError naming the field when the row has the wrong shape. */
export function toComparison(row: Row): Comparison {
  if (typeof row !== 'object' || row === null) throw new RowInputError('', 'row is not an object');
  const id = typeof row.id === 'number' ? String(row.id) : row.id;
  if (typeof id !== 'string') throw new RowInputError('id', 'row id is not a string or number');
  if ('kind' in row && (row.kind === 'raw' || row.kind === 'turns')) return { ...row, id } as Comparison;
  const r = row as Record<Field, unknown>;
  if (FIELDS.every((f) => typeof r[f] === 'string')) {
    return { id, kind: 'raw', prompt: r.prompt as string, response_a: r.response_a as string, response_b: r.response_b as string };
  }
  if (FIELDS.every((f) => isTurns(r[f]))) {
    return { id, kind: 'turns', prompt: r.prompt as Turns, response_a: r.response_a as Turns, response_b: r.response_b as Turns };
  }
  const bad = FIELDS.find((f) => typeof r[f] !== 'string' && !isTurns(r[f]));
  if (bad) throw new RowInputError(bad, `row ${JSON.stringify(id)}: ${bad} is neither a JSON-list string nor an array of strings/nulls`);
  throw new RowInputError('', `row ${JSON.stringify(id)}: mixes JSON-list strings and turn arrays; use one form for all fields`);
}
