// Text -> token ids for the scorer: the contract, and the in-line implementation that runs on
// the calling thread. encoder-pool.ts runs the same encodeRow in worker threads.
import { RowInputError, type RowErrorField } from '../core/errors.ts';
import { swapComparison, type Preprocessor } from '../core/preprocess.ts';
import type { Comparison, EncodedRow } from '../core/types.ts';

export type Encoded =
  | { readonly ok: true; readonly direct: EncodedRow; readonly swapped: EncodedRow | null }
  /** `input`: the row is bad (INVALID_ARGUMENT); otherwise preprocessing itself failed. */
  | { readonly ok: false; readonly input: boolean; readonly field: RowErrorField; readonly message: string };

export interface RowEncoder {
  /** Worker threads doing the work; 0 when it runs on the calling thread. */
  readonly threads: number;
  /** One outcome per row, in order; never rejects for a bad row. */
  encode(rows: readonly Comparison[], swapTta: boolean): Promise<Encoded[]>;
  close(): Promise<void>;
}

export function encodeRow(pre: Preprocessor, row: Comparison, swapTta: boolean): Encoded {
  try {
    return { ok: true, direct: pre.encode(row), swapped: swapTta ? pre.encode(swapComparison(row)) : null };
  } catch (e) {
    if (e instanceof RowInputError) return { ok: false, input: true, field: e.field, message: e.message };
    return { ok: false, input: false, field: '', message: e instanceof Error ? e.message : String(e) };
  }
}

export function inlineEncoder(pre: Preprocessor): RowEncoder {
  return {
    threads: 0,
    encode: (rows, swapTta) => Promise.resolve(rows.map((r) => encodeRow(pre, r, swapTta))),
    close: () => Promise.resolve(),
  };
}
