import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BundleConfigError, resolvePreferenceConfig } from '../../core/config.ts';
import { FEATURE_NAMES } from '../../core/features.ts';
import { TEMPLATE_PRESETS } from '../../core/template.ts';

const minimal = { name: 'm', template: { preset: 'gemma-seq-cls' }, truncation: { max_length: 1024 } };

function rejects(json: unknown, message: string | RegExp): void {
  assert.throws(
    () => resolvePreferenceConfig(json),
    (e: unknown) => {
      assert.ok(e instanceof BundleConfigError, `expected BundleConfigError, got ${String(e)}`);
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

test('minimal preference.json gets every default', () => {
  assert.deepEqual(resolvePreferenceConfig(minimal), {
    name: 'm',
    version: '0',
    labels: ['winner_model_a', 'winner_model_b', 'winner_tie'],
    parser: { kind: 'json', turns: 'all', null_turn: '', lone_surrogates: 'drop', turn_joiner: ' ' },
    template: {
      preset: 'gemma-seq-cls',
      prompt_prefix: '<prompt>: ',
      response_a_prefix: '\n\n<response_a>: ',
      response_b_prefix: '\n\n<response_b>: ',
      suffix: '',
    },
    special_tokens: { bos_id: null, eos_id: null, pad_id: 0, padding_side: 'right' },
    truncation: { mode: 'tail', max_length: 1024, fallback_caps: { prompt: 256, response_a: 512, response_b: 512 } },
    head: { kind: 'seq-cls', output: 'logits' },
    inputs: { input_ids: 'input_ids', attention_mask: 'attention_mask' },
    features: null,
  });
});

test('resolving a resolved config is the identity', () => {
  const once = resolvePreferenceConfig({
    ...minimal,
    features: { names: ['a_log_chars', 'b_log_chars'] },
    head: { kind: 'label-token', token_ids: [10, 11, 12] },
  });
  assert.deepEqual(resolvePreferenceConfig(JSON.parse(JSON.stringify(once))), once);
});

test('template preset is expanded and explicit fields override it', () => {
  const cfg = resolvePreferenceConfig({ ...minimal, template: { preset: 'llama-seq-cls', suffix: '!' } });
  assert.deepEqual(cfg.template, { ...TEMPLATE_PRESETS['llama-seq-cls'], suffix: '!' });
  assert.deepEqual(resolvePreferenceConfig({ ...minimal, template: 'label-token' }).template, TEMPLATE_PRESETS['label-token']);
});

test('explicit template without preset: prefixes required, suffix defaults to ""', () => {
  const t = { preset: null, prompt_prefix: 'P', response_a_prefix: 'A', response_b_prefix: 'B' };
  assert.deepEqual(resolvePreferenceConfig({ ...minimal, template: t }).template, { ...t, suffix: '' });
  rejects(
    { ...minimal, template: { prompt_prefix: 'P', response_a_prefix: 'A' } },
    /^preference\.json: template\.response_b_prefix is required when template\.preset is null/,
  );
  rejects({ ...minimal, template: { preset: 'gpt' } }, 'preference.json: template.preset must be one of gemma-seq-cls, llama-seq-cls, label-token (got "gpt")');
  rejects({ name: 'm', truncation: { max_length: 8 } }, /^preference\.json: template is required/);
});

test('bad truncation mode names the path and the options', () => {
  rejects(
    { ...minimal, truncation: { mode: 'foo', max_length: 8 } },
    'preference.json: truncation.mode must be one of tail, spread, budget, turns-from-last (got "foo")',
  );
});

test('missing or bad max_length', () => {
  rejects({ ...minimal, truncation: { mode: 'tail' } }, 'preference.json: truncation.max_length is required (a positive integer)');
  rejects({ ...minimal, truncation: { max_length: 0 } }, 'preference.json: truncation.max_length must be a positive integer (got 0)');
  rejects({ ...minimal, truncation: { max_length: 1.5 } }, 'preference.json: truncation.max_length must be a positive integer (got 1.5)');
  rejects({ ...minimal, truncation: { max_length: '2048' } }, 'preference.json: truncation.max_length must be a positive integer (got "2048")');
  rejects({ name: 'm', template: 'gemma-seq-cls' }, /^preference\.json: truncation is required/);
});

test('unknown keys are rejected at the top level and inside sections', () => {
  rejects({ ...minimal, parsr: { kind: 'naive' } }, /^preference\.json: parsr is not a known key; expected one of name, version, labels/);
  rejects({ ...minimal, truncation: { max_length: 8, fallback_cap: {} } }, /^preference\.json: truncation\.fallback_cap is not a known key/);
  rejects({ ...minimal, special_tokens: { add_eos: true } }, /^preference\.json: special_tokens\.add_eos is not a known key/);
});

test('features: names must be known, unique and non-empty; input defaults to "features"', () => {
  rejects(
    { ...minimal, features: { names: ['a_log_chars', 'a_vibes'] } },
    new RegExp(`^preference\\.json: features\\.names\\[1\\] must be one of ${FEATURE_NAMES[0]}, .* \\(got "a_vibes"\\)$`),
  );
  rejects({ ...minimal, features: { names: [] } }, /^preference\.json: features\.names must be a non-empty list/);
  rejects({ ...minimal, features: { names: ['a_bold', 'a_bold'] } }, 'preference.json: features.names[1] repeats "a_bold"');
  const cfg = resolvePreferenceConfig({ ...minimal, features: { names: ['b_bold', 'a_bold'] } });
  assert.deepEqual(cfg.features, { input: 'features', names: ['b_bold', 'a_bold'] });
});

test('labels must be the fixed order; name is required; version defaults', () => {
  rejects({ ...minimal, labels: ['winner_model_b', 'winner_model_a', 'winner_tie'] }, /^preference\.json: labels must be \["winner_model_a","winner_model_b","winner_tie"\]/);
  rejects({ template: 'gemma-seq-cls', truncation: { max_length: 8 } }, 'preference.json: name is required (a string)');
  rejects({ ...minimal, version: 3 }, 'preference.json: version must be a string (got 3)');
  assert.equal(resolvePreferenceConfig({ ...minimal, version: '1.2' }).version, '1.2');
  rejects([], 'preference.json: must be a JSON object (got [])');
});

test('head: label-token needs 3 non-negative token ids; seq-cls takes none', () => {
  assert.deepEqual(resolvePreferenceConfig({ ...minimal, head: { kind: 'label-token', token_ids: [64, 65, 48723] } }).head, {
    kind: 'label-token',
    output: 'logits',
    token_ids: [64, 65, 48723],
  });
  rejects({ ...minimal, head: { kind: 'label-token' } }, /^preference\.json: head\.token_ids must be 3 token ids \[a, b, tie\]/);
  rejects({ ...minimal, head: { kind: 'label-token', token_ids: [1, -2, 3] } }, 'preference.json: head.token_ids[1] must be a non-negative integer (got -2)');
  rejects({ ...minimal, head: { token_ids: [1, 2, 3] } }, /^preference\.json: head\.token_ids is only allowed with head\.kind "label-token"/);
});

test('special tokens, parser and inputs validation', () => {
  const cfg = resolvePreferenceConfig({
    ...minimal,
    special_tokens: { bos_id: 2, eos_id: 1, pad_id: 0, padding_side: 'left' },
    parser: { kind: 'naive', turns: 'last', lone_surrogates: 'empty-field' },
    inputs: { attention_mask: null },
  });
  assert.deepEqual(cfg.special_tokens, { bos_id: 2, eos_id: 1, pad_id: 0, padding_side: 'left' });
  assert.deepEqual(cfg.parser, { kind: 'naive', turns: 'last', null_turn: '', lone_surrogates: 'empty-field', turn_joiner: ' ' });
  assert.deepEqual(cfg.inputs, { input_ids: 'input_ids', attention_mask: null });
  rejects({ ...minimal, special_tokens: { padding_side: 'top' } }, 'preference.json: special_tokens.padding_side must be one of right, left (got "top")');
  rejects({ ...minimal, special_tokens: { bos_id: -1 } }, 'preference.json: special_tokens.bos_id must be a non-negative integer (got -1)');
  rejects({ ...minimal, parser: { lone_surrogates: 'fix' } }, 'preference.json: parser.lone_surrogates must be one of drop, empty-field, keep (got "fix")');
  rejects({ ...minimal, parser: { turn_joiner: 1 } }, 'preference.json: parser.turn_joiner must be a string (got 1)');
});
