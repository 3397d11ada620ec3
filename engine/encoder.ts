// Text -> token ids for the scorer: one row's outcome, and encodeRow / encodeTimed, which the
// tokenizer lanes (encoder-pool.ts: worker threads, or the event loop) run.
import { RowInputError, type RowErrorField } from '../core/errors.ts';
import { swapComparison, type Preprocessor } from '../core/preprocess.ts';
import type { Comparison, EncodedRow } from '../core/types.ts';
import type { DropReason } from './scheduler.ts';

export type Encoded =
  | { readonly ok: true; readonly direct: EncodedRow; readonly swapped: EncodedRow | null }
  /**
   * `input`: the row is bad (INVALID_ARGUMENT); `dropped`: its call was cancelled or ran out of
   * time before it was tokenized; otherwise preprocessing itself failed (INTERNAL).
   */
  | { readonly ok: false; readonly input: boolean; readonly field: RowErrorField; readonly message: string; readonly dropped?: DropReason };

export function encodeRow(pre: Preprocessor, row: Comparison, swapTta: boolean): Encoded {
  try {
    return { ok: true, direct: pre.encode(row), swapped: swapTta ? pre.encode(swapComparison(row)) : null };
  } catch (e) {
    if (e instanceof RowInputError) return { ok: false, input: true, field: e.field, message: e.message };
    return { ok: false, input: false, field: '', message: e instanceof Error ? e.message : String(e) };
  }
}

/** A chunk's outcome: one per row, and the time each row took to tokenize. */
export interface Tokenized {
  readonly results: Encoded[];
  readonly ms: number[];
}

/** Encodes rows one by one, timing each (the worker thread and the event-loop lane both use it). */
export function encodeTimed(pre: Preprocessor, rows: readonly Comparison[], swapTta: boolean): Tokenized {
  const ms: number[] = [];
  const results = rows.map((r) => {
    const t = performance.now();
    const e = encodeRow(pre, r, swapTta);
    ms.push(performance.now() - t);
    return e;
  });
  return { results, ms };
}
