import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FEATURE_NAMES,
  computeFeatures,
  isAntisymmetricFeature,
  swapFeatureName,
  swapFeatureValues,
} from '../../core/features.ts';
import type { ParsedComparison } from '../../core/types.ts';

const value = (p: ParsedComparison, name: string): number => computeFeatures(p, [name])[0] as number;
const f32 = (x: number): number => Math.fround(x);

const rich: ParsedComparison = {
  prompt: ['Explain sorting?', 'And in Python?'],
  response_a: ['# Title\n\n- one\n- two\n1. three\n\n**bold** and __also__?', '```py\nsorted(x)\n```'],
  response_b: ['Short answer.'],
};

test('every feature name has an a/b twin or is prompt/antisymmetric; swapFeatureName is an involution', () => {
  assert.equal(new Set(FEATURE_NAMES).size, FEATURE_NAMES.length);
  for (const name of FEATURE_NAMES) {
    const twin = swapFeatureName(name);
    assert.ok(FEATURE_NAMES.includes(twin), `${name} -> ${twin}`);
    assert.equal(swapFeatureName(twin), name);
    if (name.startsWith('a_')) assert.equal(twin, `b_${name.slice(2)}`);
  }
  assert.equal(swapFeatureName('len_log_ratio_b_a'), 'len_log_ratio_b_a');
  assert.ok(isAntisymmetricFeature('len_log_ratio_b_a'));
  assert.ok(!isAntisymmetricFeature('a_log_chars'));
});

test('hand-checked values', () => {
  assert.equal(value(rich, 'prompt_turns'), 2);
  assert.equal(value(rich, 'prompt_log_chars'), f32(Math.log1p(16 + 14)));
  assert.equal(value(rich, 'prompt_log_words'), f32(Math.log1p(5)));
  assert.equal(value(rich, 'a_headers'), 1);
  assert.equal(value(rich, 'a_list_items'), 3);
  assert.equal(value(rich, 'a_code_fences'), 2);
  assert.equal(value(rich, 'a_bold'), 2);
  assert.equal(value(rich, 'a_questions'), 1);
  assert.equal(value(rich, 'a_turns'), 2);
  // Turn 1 has 6 newlines, turn 2 has 2; the turn boundary is not counted.
  assert.equal(value(rich, 'a_newlines'), 8);
  assert.equal(value(rich, 'b_newlines'), 0);
  assert.equal(value(rich, 'b_log_chars'), f32(Math.log1p(13)));
  assert.equal(value(rich, 'b_log_words'), f32(Math.log1p(2)));
  const aChars = rich.response_a.reduce((s, t) => s + t.length, 0);
  assert.equal(value(rich, 'len_log_ratio_b_a'), f32(Math.log(14 / (aChars + 1))));
  assert.equal(value(rich, 'headers_diff_b_a'), -1);
  assert.equal(value(rich, 'a_empty'), 0);
  assert.equal(value({ prompt: [], response_a: [''], response_b: [' \n'] }, 'b_empty'), 1);
});

test('all features are finite, for empty, emoji, surrogate and 1 MB inputs', () => {
  const big = 'word '.repeat(200_000) + '\n# h\n'.repeat(1000);
  const cases: ParsedComparison[] = [
    { prompt: [], response_a: [], response_b: [] },
    { prompt: [''], response_a: [''], response_b: [''] },
    { prompt: ['😀'], response_a: ['\uD800'], response_b: ['**'] },
    rich,
    { prompt: ['p'], response_a: [big], response_b: ['x'] },
  ];
  for (const p of cases) {
    const values = computeFeatures(p, FEATURE_NAMES);
    assert.equal(values.length, FEATURE_NAMES.length);
    values.forEach((v, i) => assert.ok(Number.isFinite(v), `${FEATURE_NAMES[i]} = ${v}`));
  }
});

test('the swapped comparison maps a_* to b_* and negates *_b_a', () => {
  const swapped: ParsedComparison = { prompt: rich.prompt, response_a: rich.response_b, response_b: rich.response_a };
  const values = computeFeatures(rich, FEATURE_NAMES);
  const swappedValues = computeFeatures(swapped, FEATURE_NAMES);
  FEATURE_NAMES.forEach((name, i) => {
    const twin = FEATURE_NAMES.indexOf(swapFeatureName(name));
    const expected = isAntisymmetricFeature(name) ? -(values[twin] as number) : values[twin];
    assert.equal(swappedValues[i], expected, name);
  });
  assert.deepEqual(swapFeatureValues(FEATURE_NAMES, values), swappedValues);
  assert.notDeepEqual(values, swappedValues);
});

test('features come out in the order of the names asked for', () => {
  const names = ['b_bold', 'prompt_turns', 'a_bold'];
  assert.deepEqual([...computeFeatures(rich, names)], [0, 2, 2]);
  assert.throws(() => computeFeatures(rich, ['a_vibes']), /unknown feature "a_vibes"/);
});
