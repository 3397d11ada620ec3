// The native tokenizer (runtime/node/tokenizer.ts, the Rust `tokenizers` binding Node serves with)
// and core's pure-JS one (@huggingface/tokenizers, what the browser uses) give identical ids through
// core's whole preprocessing: a fixed sample of train, dev, multi-turn and long rows, both
// orientations, under the bundle's config and under truncation settings that cut most rows, plus
// edge strings (emoji, CJK, control characters, lone surrogates, 1 MB fields). The same check runs
// over every row of both splits with `node --import tsx training/tokenizer-parity.ts` (bench/README.md,
// Tokenization). The engine's tokenizer pool gives the same rows on either library.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import type { Comparison, PreferenceConfig } from '../../core/types.ts';
import { readGoodRecords } from '../../datasets/arena-file.ts';
import { startEncoderPool } from '../../engine/encoder-pool.ts';
import { loadBundle, nodeRuntime } from '../../runtime/node/index.ts';
import { createBatchTokenizer, loadNativeTokenizers } from '../../runtime/node/tokenizer.ts';
import { EDGE_STRINGS, emptyParity, LONE_SURROGATE_STRINGS, ParityChecker, parityConfigs, type PreprocessingParity } from '../../training/tokenizer-parity.ts';
import { SHARED_DATA } from '../helpers/shared-data.ts';

const BUNDLE = 'models/default';
const tokenizerJson = JSON.parse(readFileSync(`${BUNDLE}/tokenizer.json`, 'utf8')) as unknown;
const base: PreferenceConfig = resolvePreferenceConfig(JSON.parse(readFileSync(`${BUNDLE}/preference.json`, 'utf8')) as unknown);

/** Every `every`-th row of a shared data file (the files are grouped by source: a spread, not the first rows). */
async function spread(file: string, every: number): Promise<Comparison[]> {
  const url = new URL(file, SHARED_DATA);
  if (!existsSync(url)) throw new Error(`${url.pathname} is missing: the tokenizer parity test reads the real data from ../shared/data`);
  const out: Comparison[] = [];
  let i = 0;
  for await (const r of readGoodRecords(url.pathname)) if (i++ % every === 0) out.push(r.comparison);
  return out;
}

function assertNone(p: PreprocessingParity, what: string): void {
  assert.equal(p.mismatches, 0, `${what}: ${p.mismatches} mismatches, e.g. ${JSON.stringify(p.examples.slice(0, 3), null, 1)}`);
}

/** Seeded text of about `length` UTF-16 units: prose, code, emoji, CJK, controls, lone surrogates. */
function seededText(seed: number, length: number, words: readonly string[]): string {
  let s = seed;
  const parts: string[] = [];
  let n = 0;
  while (n < length) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const w = words[s % words.length]! + (s % 3 === 0 ? '' : ' ');
    parts.push(w);
    n += w.length;
  }
  return parts.join('');
}

const MIXED = ['the', 'tokenizer', 'of', '😀', '👩‍👩‍👧‍👦', '中文字符', '日本語の', '한국어', '\n\n', '  ', '\t', '----', 'x=1;', '\u0000', '\u007f', '\u200b', 'é', '\uD800', '\uDC00', '💡\uD83D', '1234567', "it's", 'Ω≈'];

test('the native binding loads on this platform', () => {
  const native = loadNativeTokenizers();
  assert.ok(native.ok, native.ok ? '' : native.reason);
  assert.match(native.library, /^tokenizers \d+\.\d+\.\d+ \(native\)$/);
});

test('edge strings tokenize to the same ids (emoji, CJK, control characters, lone surrogates, 1 MB)', async () => {
  const js = createTokenizer(tokenizerJson);
  const native = createBatchTokenizer(tokenizerJson);
  const texts = [...EDGE_STRINGS, ...LONE_SURROGATE_STRINGS, seededText(1, 1_000_000, MIXED), '中文字符和日本語のテキスト'.repeat(16_000)];
  const got = await native.encodeBatch(texts);
  texts.forEach((t, i) => assert.deepEqual(got[i], js.encode(t), JSON.stringify(t.slice(0, 60))));
  // A lone surrogate is U+FFFD to both (napi's UTF-8 conversion, TextEncoder), never an error.
  assert.deepEqual((await native.encodeBatch(['a\uD800b']))[0], (await native.encodeBatch(['a\uFFFDb']))[0]);
});

test("the test fixtures' tokenizers (byte-level, Gemma-kind with byte fallback, Llama-3-kind) give the same ids too", async () => {
  const fixtures = new URL('../fixtures/', import.meta.url);
  const files = [new URL('byte-tokenizer.json', fixtures)];
  const hf = new URL('hf/', fixtures);
  for (const d of readdirSync(hf, { withFileTypes: true })) {
    const f = new URL(`${d.name}/tokenizer.json`, hf);
    if (d.isDirectory() && existsSync(f)) files.push(f);
  }
  assert.ok(files.length >= 4, files.map((f) => f.pathname).join(', '));
  const texts = [...EDGE_STRINGS, ...LONE_SURROGATE_STRINGS, ' leading space', '  two  spaces  ', 'x\u00a0y', '١٢٣ 123456', seededText(3, 20_000, MIXED)];
  for (const r of await spread('alpaca-pairs-dev.csv.gz', 400)) if (r.kind === 'raw') texts.push(r.prompt, r.response_a);
  for (const f of files) {
    const json = JSON.parse(readFileSync(f, 'utf8')) as unknown;
    const js = createTokenizer(json);
    const got = await createBatchTokenizer(json).encodeBatch(texts);
    texts.forEach((t, i) => assert.deepEqual(got[i], js.encode(t), `${f.pathname}: ${JSON.stringify(t.slice(0, 60))}`));
  }
});

test('edge rows through core preprocessing: same ids from both, every truncation mode, lone surrogates kept and dropped', async () => {
  const configs = [...parityConfigs(base), { name: 'bundle, lone surrogates kept', config: { ...base, parser: { ...base.parser, lone_surrogates: 'keep' as const } } }];
  const checker = await ParityChecker.create(tokenizerJson, base, configs);
  const rows: Comparison[] = [];
  const fields = [...EDGE_STRINGS, ...LONE_SURROGATE_STRINGS];
  fields.forEach((t, i) => rows.push({ id: `edge-${i}`, kind: 'turns', prompt: [t], response_a: [fields[(i + 7) % fields.length]!, t], response_b: [t + t] }));
  const mb = seededText(2, 1_000_000, MIXED);
  rows.push(
    { id: 'mb-mixed', kind: 'turns', prompt: ['hi'], response_a: [mb], response_b: ['ok'] },
    // A markdown table's rows (runs of 3 dashes) and 1 MB of one emoji; then a run of dashes that the vocab
    // spans 512 at a time (encodePrefix doubles its prefix until it holds enough tokens). A 1 MB run of
    // dashes is one pre-token: the JS library's BPE takes seconds on it, so the run here is 8k.
    { id: 'mb-table', kind: 'turns', prompt: ['| --- | --- |\n'.repeat(72_000)], response_a: ['a'], response_b: ['😀'.repeat(500_000)] },
    { id: 'dashes', kind: 'turns', prompt: ['-'.repeat(8_192)], response_a: ['-'.repeat(8_191) + 'x'], response_b: ['b'] },
    { id: 'mb-cjk', kind: 'turns', prompt: ['q'], response_a: ['中文字符和日本語のテキスト'.repeat(16_000)], response_b: [mb.slice(0, 500_000), mb.slice(500_000)] },
    { id: 'mb-surrogates', kind: 'turns', prompt: ['\uD800'.repeat(300_000)], response_a: ['\uDC00x'.repeat(300_000)], response_b: ['b'] },
    { id: 'empty', kind: 'turns', prompt: [], response_a: [''], response_b: [null] },
    { id: '', kind: 'turns', prompt: ['no id'], response_a: ['a'], response_b: ['b'] },
    { id: 'bad-json', kind: 'raw', prompt: '["unclosed', response_a: '["a"]', response_b: '["b"]' },
  );
  const p = emptyParity();
  // The 1 MB fields are not tokenized whole here (truncation never does; the first test does it once).
  await checker.check(rows, p, { texts: false });
  assertNone(p, 'edge rows');
  assert.equal(p.encodings, rows.length * 2 * configs.length);
  assert.equal(p.refused, 2 * 2 * configs.length, 'the row without an id and the bad JSON list are refused by both, with the same message');
  assert.ok(p.truncated > 0);
});

test('a fixed sample of train, dev, multi-turn and long rows: same ids from both, both orientations, with truncation', async () => {
  const checker = await ParityChecker.create(tokenizerJson, base);
  const samples: Array<[string, number]> = [
    ['alpaca-pairs-train.csv.gz', 500],
    ['alpaca-pairs-dev.csv.gz', 64],
    ['hh-harmless-test.csv.gz', 40],
    ['arena-hard-pairs.csv.gz', 50],
  ];
  for (const [file, every] of samples) {
    const rows = await spread(file, every);
    assert.ok(rows.length >= 25, `${file}: ${rows.length} rows`);
    const p = emptyParity();
    await checker.check(rows, p);
    assertNone(p, file);
    assert.equal(p.encodings, rows.length * 2 * parityConfigs(base).length);
    assert.ok(p.truncated > p.encodings / 4, `${file}: truncation cut only ${p.truncated} of ${p.encodings} encodings`);
    assert.equal(p.texts, rows.length * 3);
  }
});

test("the engine's tokenizer pool: native and JS give the same rows (ids, truncated, features), swap TTA included, on the event loop and in a worker", async () => {
  const bundle = loadBundle(BUNDLE);
  const rows = (await spread('alpaca-pairs-dev.csv.gz', 200)).concat(await spread('hh-harmless-test.csv.gz', 200));
  const js = await startEncoderPool(bundle, 0, undefined, { module: null });
  const want = await js.encode(rows, true);
  await js.close();
  assert.match(js.library, /@huggingface\/tokenizers/);
  for (const threads of [0, 1]) {
    const pool = await startEncoderPool(bundle, threads, undefined, { module: nodeRuntime.tokenizerModule });
    try {
      assert.equal(pool.fallback, null);
      assert.match(pool.library, /native/);
      const got = await pool.encode(rows, true);
      assert.deepEqual(got, want, `threads ${threads}`);
    } finally {
      await pool.close();
    }
  }
});

test('a tokenizer module that cannot load: the pool falls back to the JS tokenizer and says why', async () => {
  const bundle = loadBundle(BUNDLE);
  const pool = await startEncoderPool(bundle, 1, undefined, { module: new URL('./no-such-tokenizer.ts', import.meta.url).href });
  try {
    assert.match(pool.fallback ?? '', /no-such-tokenizer/);
    assert.match(pool.library, /@huggingface\/tokenizers/);
    const [r] = await pool.encode([{ id: 'x', kind: 'turns', prompt: ['hi'], response_a: ['a'], response_b: ['b'] }], false);
    assert.ok(r?.ok);
  } finally {
    await pool.close();
  }
});
