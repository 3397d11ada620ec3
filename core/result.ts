// The one row result of pairpref: what the engine answers, the wire carries, the SDK and the CLI
// return, and the browser page shows. snake_case like the submission CSV.
import type { Probs } from './postprocess.ts';

export interface RowError {
  /** A gRPC status code (core/status.ts): 3 INVALID_ARGUMENT bad input, 13 INTERNAL model failure. */
  readonly code: number;
  /** Offending field ("response_b", "raw.prompt", ...); "" when not field-specific. */
  readonly field: string;
  readonly message: string;
}

/**
 * One prediction. When `error` is set the row was not scored and the three probabilities are 0.
 */
export interface Prediction {
  readonly id: string;
  readonly winner_model_a: number;
  readonly winner_model_b: number;
  readonly winner_tie: number;
  /** Tokens the model read for the row (direct order), special tokens included. */
  readonly num_tokens: number;
  readonly truncated: boolean;
  readonly error?: RowError;
}

/** A streamed prediction also names the position of its row in the input (0-based). */
export interface StreamPrediction extends Prediction {
  readonly index: number;
}

export function scoredPrediction(id: string, probs: Probs, numTokens: number, truncated: boolean): Prediction {
  return { id, winner_model_a: probs[0], winner_model_b: probs[1], winner_tie: probs[2], num_tokens: numTokens, truncated };
}

/** The prediction of a row that was not scored. */
export function errorPrediction(id: string, error: RowError): Prediction {
  return { id, winner_model_a: 0, winner_model_b: 0, winner_tie: 0, num_tokens: 0, truncated: false, error };
}

/** [winner_model_a, winner_model_b, winner_tie] of a prediction. */
export function probsOf(p: Prediction): Probs {
  return [p.winner_model_a, p.winner_model_b, p.winner_tie];
}

/** Ids are for joining answers back; a row with a longer one is refused, and its id never echoed whole. */
export const MAX_ID_BYTES = 256;
/** How much of a refused id an answer echoes. */
const ID_ECHO_CHARS = 64;
const UTF8 = new TextEncoder();

/** The id as an answer carries it: whole when it is a valid id (at most 256 bytes), else cut to 64 characters. */
export function echoId(id: unknown): string {
  const s = typeof id === 'string' ? id : '';
  if (s.length <= ID_ECHO_CHARS || UTF8.encode(s).length <= MAX_ID_BYTES) return s;
  return `${s.slice(0, ID_ECHO_CHARS)}…`;
}

/** The id for a message: at most 64 characters, whatever its length. */
export function shortId(id: unknown): string {
  const s = typeof id === 'string' ? id : '';
  return s.length > ID_ECHO_CHARS ? `${s.slice(0, ID_ECHO_CHARS)}…` : s;
}
