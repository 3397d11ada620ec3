// The shipped model: models/default loads through core/ + onnxruntime-node, core/ still
// produces the ids it was trained and exported with, and its probabilities match the ones
// recorded at export (golden.json, PyTorch) within 1e-5, alone and inside a padded batch; on both
// tokenizers: core's pure-JS one and the native binding Node serves with (runtime/node/tokenizer.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { openBundle } from '../../training/onnx-eval.ts';
import { readArenaCsv } from '../../training/arena-csv.ts';
import { EDGE_STRINGS } from '../../training/tokenizer-parity.ts';
import { createBatchPreprocessor } from '../../core/preprocess.ts';
import type { Comparison, EncodedRow } from '../../core/types.ts';
import { createBatchTokenizer } from '../../runtime/node/tokenizer.ts';

const BUNDLE = 'models/default';
const DEV = '../shared/data/alpaca-pairs-dev.csv.gz';

interface Golden {
  readonly source: string;
  readonly rows: ReadonlyArray<{ id: string; ids: number[]; probs: [number, number, number] }>;
}

test('models/default is a complete bundle', () => {
  for (const f of ['model.onnx', 'tokenizer.json', 'preference.json', 'golden.json', 'MODEL_CARD.md']) {
    assert.ok(existsSync(join(BUNDLE, f)), `models/default lacks ${f}`);
  }
  const bytes = ['model.onnx', 'tokenizer.json', 'preference.json']
    .map((f) => readFileSync(join(BUNDLE, f)).length)
    .reduce((a, b) => a + b, 0);
  assert.ok(bytes <= 25 * 1024 * 1024, `bundle is ${bytes} bytes, over 25 MB`);
});

test('models/default tokenizer round-trips any Unicode (no unknown tokens)', () => {
  const tok = new Tokenizer(JSON.parse(readFileSync(join(BUNDLE, 'tokenizer.json'), 'utf8')) as object, {});
  for (const text of EDGE_STRINGS) {
    if (text === '' || text.includes('<|')) continue; // decode() rejects []; markers are split out on purpose
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    assert.equal(tok.decode(ids, { skip_special_tokens: false }), text, JSON.stringify(text));
  }
});

test('models/default reproduces the probabilities recorded at export, with the JS and the native tokenizer', async () => {
  assert.ok(existsSync(DEV), `${DEV} is missing: the golden rows are read from the dev split (../shared/data)`);
  const golden = JSON.parse(readFileSync(join(BUNDLE, 'golden.json'), 'utf8')) as Golden;
  assert.ok(golden.rows.length >= 4);
  const bundle = await openBundle(BUNDLE, { threads: 1 });
  try {
    const want = new Map(golden.rows.map((r) => [r.id, r] as const));
    const found = new Map<string, Comparison>();
    for await (const row of readArenaCsv(DEV)) {
      if (want.has(row.comparison.id)) found.set(row.comparison.id, row.comparison);
      if (found.size === want.size) break;
    }
    const comparisons = golden.rows.map((g) => {
      const c = found.get(g.id);
      assert.ok(c, `dev row ${g.id} not found`);
      return c;
    });
    const tokenizerJson = JSON.parse(readFileSync(join(BUNDLE, 'tokenizer.json'), 'utf8')) as unknown;
    const native = await createBatchPreprocessor(bundle.config, createBatchTokenizer(tokenizerJson));
    const encodings: Array<[string, EncodedRow[]]> = [
      ['js', comparisons.map((c) => bundle.preprocessor.encode(c))],
      [
        'native',
        (await native.encodeAll(comparisons)).map((s) => {
          if (!s.ok) throw s.error;
          return s.value;
        }),
      ],
    ];
    for (const [library, rows] of encodings) {
      for (const [i, g] of golden.rows.entries()) {
        assert.deepEqual(Array.from(rows[i]!.ids), g.ids, `core/ with the ${library} tokenizer encodes dev row ${g.id} differently than at export`);
      }
      const batched = await bundle.score(rows);
      for (const [i, g] of golden.rows.entries()) {
        const alone = (await bundle.score([rows[i]!]))[0]!;
        for (let k = 0; k < 3; k++) {
          assert.ok(Math.abs(alone[k]! - g.probs[k]!) <= 1e-5, `${library}: row ${g.id} label ${k}: ${alone[k]} vs ${g.probs[k]}`);
          assert.ok(Math.abs(batched[i]![k]! - g.probs[k]!) <= 1e-5, `${library}: row ${g.id} label ${k} (batched): ${batched[i]![k]}`);
        }
      }
    }
  } finally {
    await bundle.close();
  }
});
