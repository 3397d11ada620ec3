// SDK rows in, wire comparisons out; wire predictions in, plain snake_case predictions out.
import { RowInputError } from '../core/errors.ts';
import { turnsToRaw } from '../core/parse.ts';
import { FIELDS, type Comparison, type Field, type Turns } from '../core/types.ts';
import type { Comparison as WireComparison, Prediction as WirePrediction } from '../proto/gen/pairpref/v1/preference.ts';

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

export interface PredictionError {
  /** gRPC status code: 3 (INVALID_ARGUMENT) bad input, 13 (INTERNAL) model failure. */
  readonly code: number;
  /** Offending field ("response_b", "raw.prompt", ...); "" when not field-specific. */
  readonly field: string;
  readonly message: string;
}

/**
 * One prediction, snake_case like the submission CSV. When `error` is set the row was not
 * scored and the three probabilities are 0.
 */
export interface Prediction {
  readonly id: string;
  readonly winner_model_a: number;
  readonly winner_model_b: number;
  readonly winner_tie: number;
  readonly num_tokens: number;
  readonly truncated: boolean;
  readonly error?: PredictionError;
}

/** A streamed prediction also names the position of its row in the input (0-based). */
export interface StreamPrediction extends Prediction {
  readonly index: number;
}

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

/** Core Comparison -> wire message. Turn lists with null turns go as raw JSON (proto strings cannot be null). */
export function comparisonToWire(c: Comparison): WireComparison {
  if (c.kind === 'raw') {
    return { id: c.id, prompt: [], responseA: [], responseB: [], raw: { prompt: c.prompt, responseA: c.response_a, responseB: c.response_b } };
  }
  if (FIELDS.some((f) => c[f].includes(null))) {
    return {
      id: c.id,
      prompt: [],
      responseA: [],
      responseB: [],
      raw: { prompt: turnsToRaw(c.prompt), responseA: turnsToRaw(c.response_a), responseB: turnsToRaw(c.response_b) },
    };
  }
  return { id: c.id, prompt: [...(c.prompt as string[])], responseA: [...(c.response_a as string[])], responseB: [...(c.response_b as string[])], raw: undefined };
}

export function predictionFromWire(p: WirePrediction): Prediction {
  const base = {
    id: p.id,
    winner_model_a: p.winnerModelA,
    winner_model_b: p.winnerModelB,
    winner_tie: p.winnerTie,
    num_tokens: p.numTokens,
    truncated: p.truncated,
  };
  return p.error ? { ...base, error: { code: p.error.code, field: p.error.field, message: p.error.message } } : base;
}

/** The prediction of a row that never reached a model. */
export function errorPrediction(id: string, error: PredictionError): Prediction {
  return { id, winner_model_a: 0, winner_model_b: 0, winner_tie: 0, num_tokens: 0, truncated: false, error };
}
