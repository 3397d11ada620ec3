// Tokenizers of the two kinds the reference pipelines' models ship, trained small on the train split
// with the native HF `tokenizers` trainer, for the Hugging Face-shaped test fixtures
// (training/hf_fixtures.py, test/fixtures/hf/):
//
//  - gemma: SentencePiece-style BPE as Gemma's tokenizer.json has it: a Replace(" " -> "▁")
//    normalizer, no pre-tokenizer, byte fallback (<0x00>..<0xFF> right after the specials, so any
//    character outside the vocabulary becomes its UTF-8 bytes), specials <pad>=0 <eos>=1 <bos>=2
//    <unk>=3 as in Gemma.
//  - llama3: byte-level BPE as Llama-3's tokenizer.json has it: a Split pre-tokenizer with
//    Llama-3's regex, then ByteLevel without its own regex, ignore_merges, and the specials
//    <|begin_of_text|> and <|end_of_text|> after the BPE vocabulary.
//
// The native binding's train() takes no trainer options (vocab 30k); as in tokenizer-train.ts, lines
// are training sequences, "\n" is written as form feed and swapped back, and merges are cut to size
// (BPE merges are ordered, so the first N of a run are a run of size N).
//
//   tsx training/hf-tokenizers.ts --csv ../shared/data/alpaca-pairs-train.csv.gz --rows 3000 --out DIR
// writes DIR/gemma-tokenizer.json and DIR/llama3-tokenizer.json.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tokenizers from 'tokenizers';
import { writeCorpus } from './tokenizer-train.ts';

const { BPE, Tokenizer, byteLevelPreTokenizer, byteLevelAlphabet, metaspacePreTokenizer } = tokenizers as unknown as {
  BPE: { empty(): unknown };
  Tokenizer: new (model: unknown) => NativeTokenizer;
  byteLevelPreTokenizer(addPrefixSpace?: boolean, useRegex?: boolean): unknown;
  byteLevelAlphabet(): string[];
  metaspacePreTokenizer(replacement?: string, prependScheme?: string, split?: boolean): unknown;
};
interface NativeTokenizer {
  setPreTokenizer(p: unknown): void;
  train(files: string[]): void;
  save(path: string, pretty?: boolean): void;
}

/** Llama-3's pre-tokenizer regex, as its tokenizer.json has it. */
export const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface Trained {
  merges: Array<[string, string]>;
  vocab: Record<string, number>;
}

function train(corpus: string, preTokenizer: unknown, work: string): Trained {
  const tok = new Tokenizer(BPE.empty());
  tok.setPreTokenizer(preTokenizer);
  tok.train([corpus]);
  const raw = join(work, 'raw.json');
  tok.save(raw, false);
  const json = JSON.parse(readFileSync(raw, 'utf8')) as { model: { vocab: Record<string, number>; merges: Array<string | [string, string]> } };
  return { vocab: json.model.vocab, merges: json.model.merges.map((m) => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m)) };
}

function swapChars(token: string, a: string, b: string): string {
  return [...token].map((ch) => (ch === a ? b : ch === b ? a : ch)).join('');
}

function added(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function bpeModel(vocab: Record<string, number>, merges: Array<[string, string]>, extra: Record<string, unknown>): Record<string, unknown> {
  return { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, ...extra, vocab, merges };
}

/** Gemma's kind (see the top of the file); `vocabSize` counts everything. Returns the tokenizer.json. */
export function gemmaStyle(corpus: string, work: string, vocabSize: number): Record<string, unknown> {
  const t = train(corpus, metaspacePreTokenizer('▁', 'never', true), work);
  const FF = '\f';
  const vocab: Record<string, number> = {};
  const specials = ['<pad>', '<eos>', '<bos>', '<unk>'];
  specials.forEach((s, i) => (vocab[s] = i));
  let next = specials.length;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = next++;
  // Single characters: the ones the kept merges use, then printable ASCII; the rest fall back to bytes.
  const chars = new Set<string>(['▁', '\n']);
  for (let c = 0x21; c < 0x7f; c++) chars.add(String.fromCharCode(c));
  const merges: Array<[string, string]> = [];
  const budget = vocabSize - next;
  const mergeTokens: string[] = [];
  for (const [l0, r0] of t.merges) {
    const l = swapChars(l0, FF, '\n');
    const r = swapChars(r0, FF, '\n');
    const parts = [...l, ...r];
    const newChars = parts.filter((ch) => !chars.has(ch));
    if (chars.size + newChars.length + mergeTokens.length + 1 > budget) break;
    for (const ch of newChars) chars.add(ch);
    merges.push([l, r]);
    if (!mergeTokens.includes(l + r)) mergeTokens.push(l + r);
  }
  for (const ch of [...chars].sort()) if (!(ch in vocab)) vocab[ch] = next++;
  for (const tok of mergeTokens) if (!(tok in vocab)) vocab[tok] = next++;
  // A merge is usable only when both parts are tokens (multi-character parts are earlier merges).
  const usable = merges.filter(([l, r]) => l in vocab && r in vocab);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => added(i, s)),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }],
    },
    model: bpeModel(vocab, usable, { unk_token: '<unk>', fuse_unk: true, byte_fallback: true }),
  };
}

/** Llama-3's kind (see the top of the file): `bpeSize` BPE tokens, then the two specials. */
export function llama3Style(corpus: string, work: string, bpeSize: number): Record<string, unknown> {
  const t = train(corpus, byteLevelPreTokenizer(false, true), work);
  const NL = 'Ċ'; // byte-level symbols of 0x0A and 0x0C
  const FF = 'Č';
  const vocab: Record<string, number> = {};
  let next = 0;
  for (const ch of byteLevelAlphabet().sort()) vocab[ch] = next++;
  const merges: Array<[string, string]> = [];
  for (const [l0, r0] of t.merges) {
    if (next >= bpeSize) break;
    const [l, r] = [swapChars(l0, NL, FF), swapChars(r0, NL, FF)];
    if (!(l in vocab) || !(r in vocab)) continue;
    merges.push([l, r]);
    if (!(l + r in vocab)) vocab[l + r] = next++;
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(next, '<|begin_of_text|>'), added(next + 1, '<|end_of_text|>')],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_SPLIT_REGEX }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(vocab, merges, { ignore_merges: true }),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt?: string): string => {
    const i = args.indexOf(name);
    const v = i >= 0 ? args[i + 1] : dflt;
    if (v === undefined) throw new Error(`${name} is required`);
    return v;
  };
  const out = opt('--out');
  const work = join(out, '.work');
  mkdirSync(work, { recursive: true });
  const corpus = join(work, 'corpus.txt');
  const lines = await writeCorpus(opt('--csv', '../shared/data/alpaca-pairs-train.csv.gz'), corpus, Number(opt('--rows', '3000')));
  const gemma = gemmaStyle(corpus, work, Number(opt('--gemma-vocab', '8000')));
  writeFileSync(join(out, 'gemma-tokenizer.json'), JSON.stringify(gemma));
  const llama = llama3Style(corpus, work, Number(opt('--llama-bpe', '30000')));
  writeFileSync(join(out, 'llama3-tokenizer.json'), JSON.stringify(llama));
  rmSync(work, { recursive: true, force: true });
  const size = (j: Record<string, unknown>): number => Object.keys((j['model'] as { vocab: object }).vocab).length;
  console.log(JSON.stringify({ corpus_lines: lines, gemma_vocab: size(gemma), llama3_bpe_vocab: size(llama) }));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
