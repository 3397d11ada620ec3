import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as core from '../../core/index.ts';
import { RowInputError, createPreprocessor, resolvePreferenceConfig, swapComparison, turnsToRaw } from '../../core/index.ts';
import type { Comparison } from '../../core/index.ts';
import { byteIds, byteTok, config } from './helpers.ts';

test('end to end: gemma preset, BOS/EOS, json parser, features', () => {
  const cfg = resolvePreferenceConfig({
    name: 'g',
    template: { preset: 'gemma-seq-cls' },
    special_tokens: { bos_id: 1, eos_id: 2 },
    truncation: { max_length: 256 },
    features: { names: ['a_log_chars', 'b_log_chars', 'len_log_ratio_b_a'] },
  });
  const pre = createPreprocessor(cfg, byteTok);
  assert.equal(pre.config, cfg);
  const row = pre.encode({ id: 'r1', kind: 'raw', prompt: '["hi", null]', response_a: '["😀"]', response_b: '["ok"]' });
  assert.deepEqual([...row.ids], [1, ...byteIds('<prompt>: hi \n\n<response_a>: 😀\n\n<response_b>: ok'), 2]);
  assert.equal(row.truncated, false);
  assert.deepEqual([...(row.features ?? [])], [Math.fround(Math.log1p(2)), Math.fround(Math.log1p(2)), 0]);
});

test('turn lists and raw CSV strings give the same ids, for json and naive parsers', () => {
  const t = { prompt: ['q "1"', null], response_a: ['a\nb'], response_b: ['😀', 'x'] } as const;
  for (const kind of ['json', 'naive'] as const) {
    const pre = createPreprocessor(config({ parser: { kind } }), byteTok);
    const fromTurns = pre.encode({ id: 'x', kind: 'turns', ...t });
    const fromRaw = pre.encode({ id: 'x', kind: 'raw', prompt: turnsToRaw(t.prompt), response_a: turnsToRaw(t.response_a), response_b: turnsToRaw(t.response_b) });
    assert.deepEqual(fromTurns, fromRaw, kind);
  }
  // And the two parsers differ on this row (naive keeps escapes and quotes).
  const naive = createPreprocessor(config({ parser: { kind: 'naive' } }), byteTok).encode({ id: 'x', kind: 'turns', ...t });
  assert.deepEqual([...naive.ids], byteIds('P:q \\"1\\"", null|A:a\\nb|B:😀", "x.'));
});

test('features are null when the config has none', () => {
  const row = createPreprocessor(config(), byteTok).encode({ id: 'x', kind: 'turns', prompt: ['h'], response_a: [], response_b: [] });
  assert.equal(row.features, null);
  assert.deepEqual([...row.ids], [83, 61, 107, 127, 68, 61, 127, 69, 61, 49]);
});

test('empty id is a RowInputError on field "id"; bad fields name the field', () => {
  const pre = createPreprocessor(config(), byteTok);
  assert.throws(
    () => pre.encode({ id: '', kind: 'turns', prompt: [], response_a: [], response_b: [] }),
    (e: unknown) => e instanceof RowInputError && e.field === 'id',
  );
  assert.throws(
    () => pre.encode({ id: 'abc', kind: 'raw', prompt: '[]', response_a: '[]', response_b: '{"x": 1}' }),
    (e: unknown) => e instanceof RowInputError && e.field === 'raw.response_b' && e.message.startsWith('row "abc": raw.response_b is not a JSON list of strings'),
  );
});

test('createPreprocessor refuses a max_length that cannot hold specials + template', () => {
  assert.throws(() => createPreprocessor(config({ truncation: { max_length: 9 } }), byteTok), /max_length 9 is too small/);
});

test('swapComparison exchanges the responses for both kinds and keeps the id', () => {
  const turns: Comparison = { id: 'k', kind: 'turns', prompt: ['p'], response_a: ['a'], response_b: ['b', null] };
  assert.deepEqual(swapComparison(turns), { id: 'k', kind: 'turns', prompt: ['p'], response_a: ['b', null], response_b: ['a'] });
  const raw: Comparison = { id: 'k', kind: 'raw', prompt: '["p"]', response_a: '["a"]', response_b: '["b"]' };
  assert.deepEqual(swapComparison(raw), { id: 'k', kind: 'raw', prompt: '["p"]', response_a: '["b"]', response_b: '["a"]' });
  assert.deepEqual(swapComparison(swapComparison(raw)), raw);
});

test('swap maps features a_* <-> b_* through the whole preprocessor', () => {
  const names = core.FEATURE_NAMES;
  const pre = createPreprocessor(config({ features: { names } }), byteTok);
  const c: Comparison = { id: 's', kind: 'turns', prompt: ['why?'], response_a: ['# A\n- x\n- y'], response_b: ['**b**?'] };
  const f = pre.encode(c).features;
  const g = pre.encode(swapComparison(c)).features;
  assert.ok(f !== null && g !== null);
  assert.deepEqual(core.swapFeatureValues(names, f), g);
});

test('index re-exports the public API', () => {
  for (const name of [
    'resolvePreferenceConfig', 'BundleConfigError', 'parseComparison', 'turnsToRaw', 'TEMPLATE_PRESETS', 'renderTemplate',
    'createTokenizer', 'encodeParsed', 'FEATURE_NAMES', 'computeFeatures', 'swapFeatureName', 'createPreprocessor',
    'swapComparison', 'RowInputError', 'LABELS', 'FIELDS',
  ]) {
    assert.ok(name in core, name);
  }
});
