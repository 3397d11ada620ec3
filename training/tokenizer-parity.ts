// Tokenizer parity: the pure-JS @huggingface/tokenizers (core/tokenizer.ts: the browser, training's
// shards, the `--tokenizer js` path) and the native `tokenizers` binding (runtime/node/tokenizer.ts:
// what Node serves with by default) must give identical ids for the same tokenizer.json.
//
// Two checks, used by the training pipeline, by test/core/tokenizer-parity.test.ts on a fixed sample,
// and by this file run as a script over every row of the splits:
//   - texts: each text tokenized whole by both libraries;
//   - preprocessing: rows through core's full preprocessing (parse, template, truncation, specials),
//     in both orientations (as swap TTA sends them), under the bundle's own config and under other
//     truncation modes and lengths that cut most rows, with the sync driver on the JS tokenizer and the
//     batch driver on the native one (core/tokenizing.ts).
//
//   node --import tsx training/tokenizer-parity.ts [--bundle models/default] [--data ../shared/data]
//        [--files alpaca-pairs-train,alpaca-pairs-dev] [--limit N]
// prints one JSON object with the counts per file, and exits 1 when any id differs.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolvePreferenceConfig } from '../core/config.ts';
import { createBatchPreprocessor, createPreprocessor, swapComparison } from '../core/preprocess.ts';
import { parseComparison } from '../core/parse.ts';
import { createTokenizer } from '../core/tokenizer.ts';
import type { Comparison, PreferenceConfig } from '../core/types.ts';
import { readGoodRecords } from '../datasets/arena-file.ts';
import { createBatchTokenizer } from '../runtime/node/tokenizer.ts';
import { decodeField, readArenaCsv } from './arena-csv.ts';

/** Hand-picked strings that stress byte-level BPE: emoji (ZWJ, flags, skin tones), CJK, code, controls. */
export const EDGE_STRINGS: readonly string[] = [
  '', ' ', '\n', '\n\n\n', '\t\tindent', 'héllo wörld', 'naïve café résumé',
  '👩‍👩‍👧‍👦 family, 🇯🇵 flag, 👍🏽 thumbs', '😀😃😄😁😆😅🤣😂', '中文字符和日本語のテキスト 한국어',
  'def f(x):\n    return {"a": [1, 2, 3]}  # comment\n', 'for (let i = 0; i < n; i++) { a[i] ^= 0xFF; }',
  '```python\nimport numpy as np\nprint(np.arange(10))\n```', '$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$',
  'ends with spaces   ', '  leading', 'a\u0000b\u0001c\u007f', '\u200b\u200d\ufeff zero-width', 'Ω≈ç√∫˜µ≤≥÷',
  '<|response_a|> inside text <|pad|>', 'mixed\r\nline\rendings', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒎𝒂𝒕𝒉', '\u{10FFFF}\u{E000}',
];

/** Lone surrogates (both halves, at the start, the end, next to a valid pair): both libraries read U+FFFD. */
export const LONE_SURROGATE_STRINGS: readonly string[] = [
  'a\uD800b', 'a\uDC00b', '\uD83D', '\uDE00', 'x\uDE00\uD83Dy', 'end\uD83D', '\uDC00start', '😀\uD83D😀', '\uD800\uD800\uDC00', '\uFFFD',
];

/** Strings from the first rows of a split (all three fields). */
export async function sampleStrings(csvPath: string, rows: number): Promise<string[]> {
  const out: string[] = [];
  for await (const { comparison: c } of readArenaCsv(csvPath, rows)) {
    out.push(decodeField(c.prompt), decodeField(c.response_a), decodeField(c.response_b));
  }
  return out;
}

export interface Mismatch {
  readonly what: string;
  readonly js: string;
  readonly native: string;
}

export interface ParityResult {
  readonly checked: number;
  readonly mismatches: Array<{ text: string; js: number[]; native: number[] }>;
}

const NATIVE_BATCH = 64;

/** Each text tokenized whole by both libraries (JSON is tokenizer.json's text). */
export async function checkTokenizerParity(tokenizerJson: string, texts: readonly string[]): Promise<ParityResult> {
  const json = JSON.parse(tokenizerJson) as unknown;
  const js = createTokenizer(json);
  const native = createBatchTokenizer(json);
  const mismatches: ParityResult['mismatches'] = [];
  for (let s = 0; s < texts.length; s += NATIVE_BATCH) {
    const part = texts.slice(s, s + NATIVE_BATCH);
    const got = await native.encodeBatch(part);
    part.forEach((text, i) => {
      const a = js.encode(text);
      const b = got[i]!;
      if (!sameIds(a, b)) mismatches.push({ text, js: a, native: b });
    });
  }
  return { checked: texts.length, mismatches };
}

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The bundle's own preprocessing plus truncation settings that cut most rows: each mode at a length
 * well below the rows' (so encodePrefix's prefix path runs, not just whole-text tokenizing).
 */
export function parityConfigs(base: PreferenceConfig): Array<{ readonly name: string; readonly config: PreferenceConfig }> {
  const cut = (mode: PreferenceConfig['truncation']['mode'], max_length: number): PreferenceConfig => ({ ...base, truncation: { ...base.truncation, mode, max_length } });
  return [
    { name: `bundle (${base.truncation.mode} ${base.truncation.max_length})`, config: base },
    { name: 'tail 256', config: cut('tail', 256) },
    { name: 'spread 192', config: cut('spread', 192) },
    { name: 'budget 96', config: cut('budget', 96) },
    { name: 'turns-from-last 160', config: cut('turns-from-last', 160) },
  ];
}

export interface PreprocessingParity {
  /** Rows read (each encoded in both orientations under every config). */
  rows: number;
  /** Row encodings compared: rows x 2 orientations x configs. */
  encodings: number;
  /** Of those, how many truncation cut (the same on both sides, or it is a mismatch). */
  truncated: number;
  /** Encodings both sides refused (a bad row: the same error message on both). */
  refused: number;
  /**
   * Whole-field texts tokenized by both: each field's turns joined as the model reads them, but with
   * lone surrogates kept (the bundle's parser may drop them), so those reach both tokenizers too.
   */
  texts: number;
  /** Their tokens. */
  tokens: number;
  mismatches: number;
  /** The first few mismatches, for the report. */
  examples: Mismatch[];
}

export function emptyParity(): PreprocessingParity {
  return { rows: 0, encodings: 0, truncated: 0, refused: 0, texts: 0, tokens: 0, mismatches: 0, examples: [] };
}

function show(ids: ArrayLike<number> | string): string {
  if (typeof ids === 'string') return ids;
  const a = Array.from(ids);
  return a.length > 40 ? `[${a.slice(0, 40).join(',')}, ... ${a.length} ids]` : `[${a.join(',')}]`;
}

function mismatch(p: PreprocessingParity, what: string, js: ArrayLike<number> | string, native: ArrayLike<number> | string): void {
  p.mismatches++;
  if (p.examples.length < 10) p.examples.push({ what, js: show(js), native: show(native) });
}

/** Compares both libraries on rows; call it chunk by chunk (it adds to `into`). */
export class ParityChecker {
  private constructor(
    private readonly configs: ReadonlyArray<{ name: string; js: ReturnType<typeof createPreprocessor>; native: Awaited<ReturnType<typeof createBatchPreprocessor>> }>,
    private readonly base: PreferenceConfig,
    private readonly jsTok: ReturnType<typeof createTokenizer>,
    private readonly nativeTok: ReturnType<typeof createBatchTokenizer>,
    private readonly memo: Map<string, number[]>,
  ) {}

  static async create(tokenizerJson: unknown, base: PreferenceConfig, configs = parityConfigs(base)): Promise<ParityChecker> {
    const jsTok = createTokenizer(tokenizerJson);
    const nativeTok = createBatchTokenizer(tokenizerJson);
    // The JS side answers a text it has already tokenized for this chunk of rows from memory (the
    // configs and the swapped orientation ask for many of the same texts; the JS library is the slow
    // one); the native side does the same within each encodeAll (core's runBatched).
    const memo = new Map<string, number[]>();
    const jsMemo = {
      encode(text: string): number[] {
        let ids = memo.get(text);
        if (ids === undefined) memo.set(text, (ids = jsTok.encode(text)));
        return ids;
      },
    };
    const built = await Promise.all(
      configs.map(async (c) => ({ name: c.name, js: createPreprocessor(c.config, jsMemo), native: await createBatchPreprocessor(c.config, nativeTok) })),
    );
    return new ParityChecker(built, base, jsMemo, nativeTok, memo);
  }

  /** Rows through every config, both orientations, and (unless `texts` is false) each row's fields tokenized whole too. */
  async check(rows: readonly Comparison[], into: PreprocessingParity, opts: { texts?: boolean } = {}): Promise<void> {
    this.memo.clear();
    into.rows += rows.length;
    const both = [...rows, ...rows.map(swapComparison)];
    for (const c of this.configs) {
      const native = await c.native.encodeAll(both);
      both.forEach((row, i) => {
        const what = `${c.name}: row ${JSON.stringify(row.id)}${i >= rows.length ? ' swapped' : ''}`;
        into.encodings++;
        const n = native[i]!;
        let j: ReturnType<typeof c.js.encode>;
        try {
          j = c.js.encode(row);
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          if (n.ok || (n.error instanceof Error ? n.error.message : String(n.error)) !== msg) mismatch(into, what, `error: ${msg}`, n.ok ? n.value.ids : `error: ${String(n.error)}`);
          else into.refused++;
          return;
        }
        if (!n.ok) return mismatch(into, what, j.ids, `error: ${n.error instanceof Error ? n.error.message : String(n.error)}`);
        if (!sameIds(j.ids, n.value.ids) || j.truncated !== n.value.truncated) return mismatch(into, what, j.ids, n.value.ids);
        if (j.truncated) into.truncated++;
      });
    }
    if (opts.texts === false) return;
    // Whole fields, as the parser gives them to truncation (a text shorter than the cut is tokenized whole).
    const texts: string[] = [];
    const parser = { ...this.base.parser, lone_surrogates: 'keep' as const };
    for (const row of rows) {
      try {
        const p = parseComparison(row, parser);
        texts.push(...[p.prompt, p.response_a, p.response_b].map((turns) => turns.join(this.base.parser.turn_joiner)));
      } catch {
        // a bad row: refused above, on both sides
      }
    }
    await this.checkTexts(texts, into, 'field');
  }

  /** Texts tokenized whole by both libraries. */
  async checkTexts(texts: readonly string[], into: PreprocessingParity, label = 'text'): Promise<void> {
    for (let s = 0; s < texts.length; s += NATIVE_BATCH) {
      const part = texts.slice(s, s + NATIVE_BATCH);
      const got = await this.nativeTok.encodeBatch(part);
      part.forEach((text, i) => {
        into.texts++;
        const a = this.jsTok.encode(text);
        into.tokens += a.length;
        if (!sameIds(a, got[i]!)) mismatch(into, `${label} ${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '...' : text)}`, a, got[i]!);
      });
    }
  }
}

/** Every row of a file (or its first `limit`), in chunks, through a checker. */
export async function fileParity(checker: ParityChecker, path: string, opts: { limit?: number; onProgress?: (p: PreprocessingParity) => void } = {}): Promise<PreprocessingParity> {
  const p = emptyParity();
  let chunk: Comparison[] = [];
  for await (const r of readGoodRecords(path, { limit: opts.limit ?? Infinity })) {
    chunk.push(r.comparison);
    if (chunk.length === 256) {
      await checker.check(chunk, p);
      chunk = [];
      opts.onProgress?.(p);
    }
  }
  if (chunk.length > 0) await checker.check(chunk, p);
  return p;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: readonly string[]): Promise<number> {
  const bundle = resolve(flag(args, '--bundle') ?? 'models/default');
  const data = resolve(flag(args, '--data') ?? '../shared/data');
  const files = (flag(args, '--files') ?? 'alpaca-pairs-train,alpaca-pairs-dev').split(',');
  const limitArg = flag(args, '--limit');
  const limit = limitArg === undefined ? Infinity : Number(limitArg);
  const tokenizerJson = JSON.parse(readFileSync(join(bundle, 'tokenizer.json'), 'utf8')) as unknown;
  const base = resolvePreferenceConfig(JSON.parse(readFileSync(join(bundle, 'preference.json'), 'utf8')) as unknown);
  const checker = await ParityChecker.create(tokenizerJson, base);
  const t0 = Date.now();
  const out: Record<string, PreprocessingParity> = {};
  for (const f of files) {
    const path = join(data, `${f}.csv.gz`);
    out[f] = await fileParity(checker, path, {
      limit,
      onProgress: (p) => {
        if (p.rows % 4096 === 0) process.stderr.write(`${f}: ${p.rows} rows, ${p.mismatches} mismatches (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
      },
    });
  }
  const edge = emptyParity();
  await checker.checkTexts([...EDGE_STRINGS, ...LONE_SURROGATE_STRINGS], edge, 'edge');
  out['edge strings'] = edge;
  const total = Object.values(out).reduce((s, p) => s + p.mismatches, 0);
  process.stdout.write(
    JSON.stringify({ bundle, configs: parityConfigs(base).map((c) => c.name), seconds: Math.round((Date.now() - t0) / 1000), mismatches: total, files: out }, null, 2) + '\n',
  );
  return total === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('training/tokenizer-parity.ts')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`tokenizer-parity: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
