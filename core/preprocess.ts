// One comparison row -> what the model reads: parse -> template/tokenize/truncate -> features.
// Two drivers of the same steps (core/tokenizing.ts): createPreprocessor on a synchronous
// tokenizer (the pure-JS one: browser, training, tests), createBatchPreprocessor on a batch
// tokenizer (the native binding in Node's tokenizer workers), which encodes many rows side by side.
import { RowInputError } from './errors.ts';
import { checkPieces, encodeParsedSteps, templatePieceSteps, type PieceIds } from './encode.ts';
import { computeFeatures } from './features.ts';
import { parseComparison } from './parse.ts';
import { runBatched, runSync, settleAll, type BatchTokenizer, type Settled, type Tokenizing } from './tokenizing.ts';
import type { Comparison, EncodedRow, PreferenceConfig, TextTokenizer } from './types.ts';

export interface Preprocessor {
  /** Throws RowInputError for a bad row (the field is named); never for a good one. */
  encode(c: Comparison): EncodedRow;
  readonly config: PreferenceConfig;
}

/** Preprocessing on a batch tokenizer: rows are encoded side by side, their tokenizing batched. */
export interface BatchPreprocessor {
  readonly config: PreferenceConfig;
  /** The tokenizer library (for logs and benchmarks). */
  readonly library: string;
  /**
   * Each row's outcome, in order: its EncodedRow, or its error (a RowInputError for a bad row).
   * Every round of tokenizing the rows need goes to the tokenizer as one batch.
   */
  encodeAll(rows: readonly Comparison[]): Promise<Settled<EncodedRow>[]>;
}

/** One row's steps, given the template pieces' ids (tokenized once per preprocessor). */
function* rowSteps(c: Comparison, cfg: PreferenceConfig, pieces: PieceIds): Tokenizing<EncodedRow> {
  if (typeof c.id !== 'string' || c.id === '') throw new RowInputError('id', 'row id is empty: every comparison needs a non-empty id');
  const parsed = parseComparison(c, cfg.parser);
  const { ids, truncated } = yield* encodeParsedSteps(parsed, cfg, pieces);
  const features = cfg.features === null ? null : computeFeatures(parsed, cfg.features.names);
  return { ids, truncated, features };
}

/** Fails at creation (bundle load) when max_length cannot hold specials + template. */
export function createPreprocessor(cfg: PreferenceConfig, tok: TextTokenizer): Preprocessor {
  const pieces = runSync(tok, templatePieceSteps(cfg));
  checkPieces(cfg, pieces);
  return {
    config: cfg,
    encode: (c) => runSync(tok, rowSteps(c, cfg, pieces)),
  };
}

/** The same preprocessing on a batch tokenizer; fails like createPreprocessor at creation. */
export async function createBatchPreprocessor(cfg: PreferenceConfig, tok: BatchTokenizer): Promise<BatchPreprocessor> {
  const pieces = await runBatched(tok, templatePieceSteps(cfg));
  checkPieces(cfg, pieces);
  return {
    config: cfg,
    library: tok.library,
    encodeAll: (rows) => runBatched(tok, settleAll(rows.map((c) => rowSteps(c, cfg, pieces)))),
  };
}

/** The same row with response_a and response_b exchanged (swap TTA / augmentation). */
export function swapComparison(c: Comparison): Comparison {
  return c.kind === 'raw'
    ? { id: c.id, kind: 'raw', prompt: c.prompt, response_a: c.response_b, response_b: c.response_a }
    : { id: c.id, kind: 'turns', prompt: c.prompt, response_a: c.response_b, response_b: c.response_a };
}
