// Trains the byte-level BPE tokenizer with the native HF `tokenizers` trainer, on the train split only.
//
// The native binding's Tokenizer.train() reads files line by line with a default BpeTrainer
// (vocab 30k, no way to pass options), so two adjustments keep the result equal to a proper
// byte-level BPE of the requested size:
//  - lines are training sequences, so "\n" would never merge with anything. The corpus writes
//    "\n" as form feed (also regex whitespace, one byte) and the two byte symbols are swapped
//    back in the vocab and merges afterwards.
//  - BPE merges are greedy and ordered, so the first N merges of a 30k run are exactly a run
//    with a smaller target; we truncate, then add every missing byte symbol so no input is unknown.
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { once } from 'node:events';
import tokenizers from 'tokenizers';
import { decodeField, readArenaCsv } from './arena-csv.ts';

const { BPE, Tokenizer, byteLevelPreTokenizer, byteLevelAlphabet } = tokenizers as unknown as {
  BPE: { empty(): unknown };
  Tokenizer: new (model: unknown) => NativeTokenizer;
  byteLevelPreTokenizer(addPrefixSpace?: boolean, useRegex?: boolean): unknown;
  byteLevelAlphabet(): string[];
};
interface NativeTokenizer {
  setPreTokenizer(p: unknown): void;
  train(files: string[]): void;
  save(path: string, pretty?: boolean): void;
}

/** Added tokens, in id order right after the BPE vocab: the template markers and specials. */
export const SPECIAL_TOKENS = ['<|pad|>', '<|bos|>', '<|eos|>', '<|prompt|>', '<|response_a|>', '<|response_b|>'] as const;

/** Writes one deduplicated text per line with "\n" stored as form feed (see header). */
export async function writeCorpus(csvPath: string, outPath: string, limit = Infinity): Promise<number> {
  mkdirSync(dirname(outPath), { recursive: true });
  const out = createWriteStream(outPath, 'utf8');
  const seen = new Set<string>();
  let n = 0;
  for await (const { comparison: c } of readArenaCsv(csvPath, limit)) {
    for (const raw of [c.prompt, c.response_a, c.response_b]) {
      const text = decodeField(raw);
      if (text.length === 0 || seen.has(text)) continue;
      seen.add(text);
      const line = text.replace(/\f/g, ' ').replace(/\r?\n/g, '\f') + '\n';
      if (!out.write(line)) await once(out, 'drain');
      n++;
    }
  }
  out.end();
  await once(out, 'finish');
  return n;
}

const NL = 'Ċ'; // byte-level symbol of 0x0A
const FF = 'Č'; // byte-level symbol of 0x0C

function swapNewline(token: string): string {
  return [...token].map((ch) => (ch === NL ? FF : ch === FF ? NL : ch)).join('');
}

/** The part of the native trainer's saved tokenizer that is read back: its merges, in order. */
interface TrainedTokenizerJson {
  model: { merges: Array<string | [string, string]> };
}

/** Trains and writes tokenizer.json; returns the final vocabulary size (added tokens included). */
export function trainTokenizer(corpusPath: string, outPath: string, vocabSize: number): number {
  const tok = new Tokenizer(BPE.empty());
  tok.setPreTokenizer(byteLevelPreTokenizer(false, true));
  tok.train([corpusPath]);
  const rawPath = outPath + '.raw.json';
  tok.save(rawPath, false);
  const json = JSON.parse(readFileSync(rawPath, 'utf8')) as TrainedTokenizerJson;

  const bpeSize = vocabSize - SPECIAL_TOKENS.length;
  const vocab: Record<string, number> = {};
  let next = 0;
  // Every byte symbol first (also ones the corpus never had), then merge results in merge order.
  const alphabet = byteLevelAlphabet().sort();
  for (const ch of alphabet) vocab[ch] = next++;
  const merges: [string, string][] = [];
  const pairs = json.model.merges.map((m) => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m));
  for (const [l, r] of pairs) {
    if (next >= bpeSize) break;
    const [ls, rs] = [swapNewline(l), swapNewline(r)];
    const merged = ls + rs;
    if (!(ls in vocab) || !(rs in vocab)) continue; // only when a part was an out-of-alphabet char
    merges.push([ls, rs]);
    if (!(merged in vocab)) vocab[merged] = next++;
  }
  const added = SPECIAL_TOKENS.map((content) => ({
    id: next++,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const out = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  writeFileSync(outPath, JSON.stringify(out));
  return next;
}

/** Id of an added token in a tokenizer.json written by trainTokenizer. */
export function specialId(tokenizerJson: { added_tokens: ReadonlyArray<{ id: number; content: string }> }, content: string): number {
  const t = tokenizerJson.added_tokens.find((a) => a.content === content);
  if (!t) throw new Error(`tokenizer has no added token ${content}`);
  return t.id;
}
