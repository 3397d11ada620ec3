// Text -> token ids for the scorer: one row's outcome, and how a chunk of rows is encoded by the
// tokenizer lanes (encoder-pool.ts: worker threads, or the event loop), with core's pure-JS
// tokenizer (synchronous, row by row) or a runtime's batch tokenizer (the native binding: the
// chunk's rows side by side, their tokenizing in a few batches; see core/tokenizing.ts).
import { RowInputError, type RowErrorField } from '../core/errors.ts';
import { createBatchPreprocessor, createPreprocessor, swapComparison, type BatchPreprocessor, type Preprocessor } from '../core/preprocess.ts';
import type { BundleSource } from '../core/runtime.ts';
import { createTokenizer } from '../core/tokenizer.ts';
import { isTokenizerModule, type Settled } from '../core/tokenizing.ts';
import type { Comparison, EncodedRow } from '../core/types.ts';
import type { DropReason } from './scheduler.ts';

export type Encoded =
  | { readonly ok: true; readonly direct: EncodedRow; readonly swapped: EncodedRow | null }
  /**
   * `input`: the row is bad (INVALID_ARGUMENT); `dropped`: its call was cancelled or ran out of
   * time before it was tokenized; otherwise preprocessing itself failed (INTERNAL).
   */
  | { readonly ok: false; readonly input: boolean; readonly field: RowErrorField; readonly message: string; readonly dropped?: DropReason };

/** `native`: the runtime's tokenizer when it has one and it loads (else JS, with a log line); `js`: core's pure-JS one. */
export type TokenizerChoice = 'native' | 'js';

/** Core's pure-JS tokenizer, as logs and benchmarks name it. */
export const JS_TOKENIZER = '@huggingface/tokenizers (pure JS)';

/** A lane's preprocessing: on core's synchronous JS tokenizer, or on a runtime's batch tokenizer. */
export type RowPreprocessing =
  | { readonly kind: 'sync'; readonly library: string; readonly pre: Preprocessor }
  | { readonly kind: 'batch'; readonly library: string; readonly pre: BatchPreprocessor };

/** The bundle's preprocessing with core's JS tokenizer. */
export function jsPreprocessing(source: BundleSource): RowPreprocessing {
  return { kind: 'sync', library: JS_TOKENIZER, pre: createPreprocessor(source.config, createTokenizer(source.tokenizerJson, source.tokenizerConfig)) };
}

/** The bundle's preprocessing on the tokenizer of a runtime's tokenizer module (core's TokenizerModule), imported by URL. */
export async function modulePreprocessing(module: string, source: BundleSource): Promise<RowPreprocessing> {
  const mod: unknown = await import(module);
  if (!isTokenizerModule(mod)) throw new Error(`${module} does not export createBatchTokenizer`);
  const pre = await createBatchPreprocessor(source.config, mod.createBatchTokenizer(source.tokenizerJson, source.tokenizerConfig));
  return { kind: 'batch', library: pre.library, pre };
}

function failure(e: unknown): Encoded {
  if (e instanceof RowInputError) return { ok: false, input: true, field: e.field, message: e.message };
  return { ok: false, input: false, field: '', message: e instanceof Error ? e.message : String(e) };
}

export function encodeRow(pre: Preprocessor, row: Comparison, swapTta: boolean): Encoded {
  try {
    return { ok: true, direct: pre.encode(row), swapped: swapTta ? pre.encode(swapComparison(row)) : null };
  } catch (e) {
    return failure(e);
  }
}

/** A chunk's outcome: one per row, and the time each row took to tokenize. */
export interface Tokenized {
  readonly results: Encoded[];
  readonly ms: number[];
}

/** Encodes rows one by one, timing each. */
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

/**
 * Encodes a chunk's rows side by side (with swap TTA, both orientations of each: the swapped one
 * reuses the direct one's tokenizations). The rows overlap, so each row's time is the chunk's
 * time divided evenly.
 */
export async function encodeBatchTimed(pre: BatchPreprocessor, rows: readonly Comparison[], swapTta: boolean): Promise<Tokenized> {
  const t = performance.now();
  let settled: Settled<EncodedRow>[];
  try {
    settled = await pre.encodeAll(swapTta ? [...rows, ...rows.map(swapComparison)] : rows);
  } catch (e) {
    // The tokenizer itself failed (not a row): every row of the chunk fails as INTERNAL.
    const ms = (performance.now() - t) / Math.max(1, rows.length);
    return { results: rows.map(() => failure(e instanceof RowInputError ? new Error(e.message) : e)), ms: rows.map(() => ms) };
  }
  const results = rows.map((_, i): Encoded => {
    const direct: Settled<EncodedRow> = settled[i]!;
    const swapped: Settled<EncodedRow> | null = swapTta ? settled[rows.length + i]! : null;
    if (!direct.ok) return failure(direct.error);
    if (swapped && !swapped.ok) return failure(swapped.error);
    return { ok: true, direct: direct.value, swapped: swapped ? swapped.value : null };
  });
  const each = rows.length === 0 ? 0 : (performance.now() - t) / rows.length;
  return { results, ms: rows.map(() => each) };
}

/** Encodes a chunk with a lane's preprocessing (the worker thread and the event-loop lane both use it). */
export function encodeChunk(p: RowPreprocessing, rows: readonly Comparison[], swapTta: boolean): Tokenized | Promise<Tokenized> {
  return p.kind === 'sync' ? encodeTimed(p.pre, rows, swapTta) : encodeBatchTimed(p.pre, rows, swapTta);
}
