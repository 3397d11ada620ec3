// Ways of calling the native tokenizer binding, for the measurement behind the engine's choice
// (ARCHITECTURE.md, Tokenizers; bench/README.md, Tokenization). Plugged into the engine's pool
// as a tokenizer module (core's TokenizerModule), like runtime/node/tokenizer.ts; worker threads
// read the variant from PAIRPREF_BENCH_NATIVE_CALLS (a worker's environment is a copy of the
// parent's):
//   batch   one encodeBatch per round of a chunk (what runtime/node/tokenizer.ts does)
//   each    one encode per text, all of a round's at once (Promise.all)
//   serial  one encode per text, each awaited before the next: async end to end, nothing batched
import { createRequire } from 'node:module';
import type { BatchTokenizer } from '../core/tokenizing.ts';
import { createBatchTokenizer as productTokenizer } from '../runtime/node/tokenizer.ts';

export const NATIVE_CALLS = ['batch', 'each', 'serial'] as const;
export type NativeCalls = (typeof NATIVE_CALLS)[number];

interface Encoding {
  getIds(): number[];
}
interface Native {
  encode(text: string, pair: null, opts: { addSpecialTokens: boolean }): Promise<Encoding>;
}

export function createBatchTokenizer(tokenizerJson: unknown, tokenizerConfig?: unknown): BatchTokenizer {
  const calls = (process.env.PAIRPREF_BENCH_NATIVE_CALLS ?? 'batch') as NativeCalls;
  const product = productTokenizer(tokenizerJson, tokenizerConfig);
  if (calls === 'batch') return product;
  const { Tokenizer } = createRequire(import.meta.url)('tokenizers') as { Tokenizer: { fromString(s: string): Native } };
  const tok = Tokenizer.fromString(JSON.stringify(tokenizerJson));
  const opts = { addSpecialTokens: false };
  const one = async (t: string): Promise<number[]> => (await tok.encode(t, null, opts)).getIds();
  return {
    library: `${product.library}, ${calls}`,
    encodeBatch:
      calls === 'each'
        ? (texts) => Promise.all(texts.map(one))
        : async (texts) => {
            const out: number[][] = [];
            for (const t of texts) out.push(await one(t));
            return out;
          },
  };
}
