// Shared fixtures for the core golden tests. The byte tokenizer (test/fixtures/byte-tokenizer.json)
// has no merges: <pad>=0, <s>=1, </s>=2 and id(byte b) = b + 3, so ids follow from UTF-8 bytes.
import { readFileSync } from 'node:fs';
import { createTokenizer } from '../../core/tokenizer.ts';
import { resolvePreferenceConfig } from '../../core/config.ts';
import type { PreferenceConfig, TextTokenizer } from '../../core/types.ts';

export const byteTokenizerJson: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../fixtures/byte-tokenizer.json', import.meta.url), 'utf8'),
);

export const byteTok: TextTokenizer = createTokenizer(byteTokenizerJson);

/** The byte tokenizer's ids for a string: its UTF-8 bytes + 3 (lone surrogates become U+FFFD). */
export function byteIds(s: string): number[] {
  return [...new TextEncoder().encode(s)].map((b) => b + 3);
}

/** A short template whose ids are easy to derive: "P:" + P + "|A:" + A + "|B:" + B + ".". */
export const SHORT_TEMPLATE = {
  preset: null,
  prompt_prefix: 'P:', // 83 61
  response_a_prefix: '|A:', // 127 68 61
  response_b_prefix: '|B:', // 127 69 61
  suffix: '.', // 49
} as const;

export function config(overrides: Record<string, unknown> = {}): PreferenceConfig {
  return resolvePreferenceConfig({ name: 'test', template: SHORT_TEMPLATE, truncation: { max_length: 64 }, ...overrides });
}

/**
 * A byte-level BPE tokenizer WITH merges (built on the byte vocab), to check that prefix
 * tokenization equals full tokenization when tokens span several characters. useRegex=false
 * makes the whole text one pre-token (like SentencePiece-style BPE without pre-splitting).
 */
export function mergesTokenizerJson(useRegex: boolean): Record<string, unknown> {
  const base = structuredClone(byteTokenizerJson) as {
    pre_tokenizer: { use_regex: boolean };
    model: { vocab: Record<string, number>; merges: string[] };
  };
  const merges: Array<[string, string]> = [
    ['l', 'o'], ['lo', 'r'], ['e', 'm'], ['Ġ', 'i'], ['Ġi', 'p'], ['Ġip', 's'], ['u', 'm'], ['Ġips', 'um'],
    ['Ġ', 'l'], ['Ġl', 'or'], ['Ġlor', 'em'], ['lor', 'em'], ['-', '-'], ['--', '--'], ['----', '----'],
    ['Ġ', 'Ġ'], ['ĠĠ', 'ĠĠ'], ['ĊĠ', 'ĠĠ'], ['Ċ', 'Ġ'], ['ð', 'Ł'], ['ðŁ', 'ĺ'], ['ðŁĺ', 'Ģ'], ['Ġ', 'ðŁĺĢ'],
  ];
  let next = 259;
  for (const [x, y] of merges) {
    base.model.merges.push(`${x} ${y}`);
    base.model.vocab[x + y] ??= next++;
  }
  base.pre_tokenizer.use_regex = useRegex;
  return base;
}
