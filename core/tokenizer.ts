// tokenizer.json (Hugging Face format) -> TextTokenizer, via the pure-JS @huggingface/tokenizers
// so the same code runs in Node, browsers and training. Special tokens are never added here:
// core/ adds BOS/EOS itself from preference.json, after truncation.
import { Tokenizer } from '@huggingface/tokenizers';
import type { TextTokenizer } from './types.ts';

export function createTokenizer(tokenizerJson: unknown, tokenizerConfig?: unknown): TextTokenizer {
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null || !('model' in tokenizerJson)) {
    throw new Error('tokenizer.json: not a Hugging Face tokenizer (no "model" key)');
  }
  const config = typeof tokenizerConfig === 'object' && tokenizerConfig !== null ? tokenizerConfig : {};
  const tok = new Tokenizer(tokenizerJson, config);
  return {
    encode: (text: string): number[] => tok.encode(text, { add_special_tokens: false }).ids,
  };
}
