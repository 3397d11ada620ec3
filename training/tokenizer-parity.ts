// Checks that the pure-JS @huggingface/tokenizers (what core/ serves with) and the native
// trainer's tokenizer produce identical ids for the same tokenizer.json.
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';
import tokenizers from 'tokenizers';
import { decodeField, readArenaCsv } from './arena-csv.ts';

interface NativeEncoding { getIds(): number[] }
interface NativeTokenizer { encode(text: string, pair?: null, opts?: { addSpecialTokens?: boolean }): Promise<NativeEncoding> }
const { Tokenizer: Native } = tokenizers as unknown as { Tokenizer: { fromString(s: string): NativeTokenizer } };

/** Hand-picked strings that stress byte-level BPE: emoji (ZWJ, flags, skin tones), CJK, code, controls. */
export const EDGE_STRINGS: readonly string[] = [
  '', ' ', '\n', '\n\n\n', '\t\tindent', 'héllo wörld', 'naïve café résumé',
  '👩‍👩‍👧‍👦 family, 🇯🇵 flag, 👍🏽 thumbs', '😀😃😄😁😆😅🤣😂', '中文字符和日本語のテキスト 한국어',
  'def f(x):\n    return {"a": [1, 2, 3]}  # comment\n', 'for (let i = 0; i < n; i++) { a[i] ^= 0xFF; }',
  '```python\nimport numpy as np\nprint(np.arange(10))\n```', '$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$',
  'ends with spaces   ', '  leading', 'a\u0000b\u0001c\u007f', '\u200b\u200d\ufeff zero-width', 'Ω≈ç√∫˜µ≤≥÷',
  '<|response_a|> inside text <|pad|>', 'mixed\r\nline\rendings', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒎𝒂𝒕𝒉', '\u{10FFFF}\u{E000}',
];

/** Strings from the first rows of a split (all three fields). */
export async function sampleStrings(csvPath: string, rows: number): Promise<string[]> {
  const out: string[] = [];
  for await (const { comparison: c } of readArenaCsv(csvPath, rows)) {
    out.push(decodeField(c.prompt), decodeField(c.response_a), decodeField(c.response_b));
  }
  return out;
}

export interface ParityResult { readonly checked: number; readonly mismatches: Array<{ text: string; js: number[]; native: number[] }> }

export async function checkTokenizerParity(tokenizerJson: string, texts: readonly string[]): Promise<ParityResult> {
  const json = JSON.parse(tokenizerJson) as object;
  const js = new JsTokenizer(json, {});
  const native = Native.fromString(tokenizerJson);
  const mismatches: ParityResult['mismatches'] = [];
  for (const text of texts) {
    const a: number[] = Array.from(js.encode(text, { add_special_tokens: false }).ids, Number);
    const b = (await native.encode(text, null, { addSpecialTokens: false })).getIds();
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) mismatches.push({ text, js: a, native: b });
  }
  return { checked: texts.length, mismatches };
}
