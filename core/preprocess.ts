// One comparison row -> what the model reads: parse -> template/tokenize/truncate -> features.
import { RowInputError } from './errors.ts';
import { checkMaxLength, encodeParsed } from './encode.ts';
import { computeFeatures } from './features.ts';
import { parseComparison } from './parse.ts';
import type { Comparison, EncodedRow, PreferenceConfig, TextTokenizer } from './types.ts';

export interface Preprocessor {
  /** Throws RowInputError for a bad row (the field is named); never for a good one. */
  encode(c: Comparison): EncodedRow;
  readonly config: PreferenceConfig;
}

/** Fails at creation (bundle load) when max_length cannot hold specials + template. */
export function createPreprocessor(cfg: PreferenceConfig, tok: TextTokenizer): Preprocessor {
  checkMaxLength(cfg, tok);
  return {
    config: cfg,
    encode(c: Comparison): EncodedRow {
      if (typeof c.id !== 'string' || c.id === '') throw new RowInputError('id', 'row id is empty: every comparison needs a non-empty id');
      const parsed = parseComparison(c, cfg.parser);
      const { ids, truncated } = encodeParsed(parsed, cfg, tok);
      const features = cfg.features === null ? null : computeFeatures(parsed, cfg.features.names);
      return { ids, truncated, features };
    },
  };
}

/** The same row with response_a and response_b exchanged (swap TTA / augmentation). */
export function swapComparison(c: Comparison): Comparison {
  return c.kind === 'raw'
    ? { id: c.id, kind: 'raw', prompt: c.prompt, response_a: c.response_b, response_b: c.response_a }
    : { id: c.id, kind: 'turns', prompt: c.prompt, response_a: c.response_b, response_b: c.response_a };
}
