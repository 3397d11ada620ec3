// core/graph.ts validateGraph on signatures of Hugging Face exports: optional inputs pairpref can
// compute (position_ids, token_type_ids), KV-cache inputs it refuses with the export to use instead,
// and the head output types it can read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { BundleError, validateGraph, type GraphSignature, type GraphValue } from '../../core/graph.ts';

const v = (name: string, type = 'int64', shape: Array<number | string> = ['batch_size', 'sequence_length']): GraphValue => ({ name, isTensor: true, type, shape });
const seqCls = (over: Record<string, unknown> = {}) => resolvePreferenceConfig({ name: 't', template: 'llama-seq-cls', truncation: { max_length: 64 }, ...over });
const sig = (inputs: GraphValue[], out: GraphValue = v('logits', 'float32', ['batch_size', 3])): GraphSignature => ({ inputs, outputs: [out] });

function problems(config: ReturnType<typeof seqCls>, s: GraphSignature): string {
  try {
    validateGraph(config, s);
    return '';
  } catch (e) {
    assert.ok(e instanceof BundleError);
    return e.message;
  }
}

test('position_ids and token_type_ids: fed when declared and in the graph; a declared one the graph lacks is fine', () => {
  const declared = seqCls({ inputs: { position_ids: 'position_ids', token_type_ids: 'token_type_ids' } });
  assert.equal(problems(declared, sig([v('input_ids'), v('attention_mask'), v('position_ids'), v('token_type_ids')])), '');
  assert.equal(problems(declared, sig([v('input_ids'), v('attention_mask')])), '');
  assert.match(problems(declared, sig([v('input_ids'), v('attention_mask'), v('position_ids', 'int32')])), /inputs\.position_ids "position_ids" is int32\[batch_size, sequence_length\], expected int64/);
});

test('each graph input pairpref does not feed is named, with the preference.json line that feeds it', () => {
  const msg = problems(seqCls(), sig([v('input_ids'), v('attention_mask'), v('position_ids'), v('token_type_ids'), v('pixel_values', 'float32')]));
  assert.match(msg, /graph input "position_ids" \(int64\[batch_size, sequence_length\]\) is not fed: declare it in preference\.json as "inputs": \{ "position_ids": "position_ids" \} \(pairpref computes it from the attention mask/);
  assert.match(msg, /graph input "token_type_ids" .* is not fed: declare it in preference\.json as "inputs": \{ "token_type_ids": "token_type_ids" \} \(pairpref feeds zeros\)/);
  assert.match(msg, /graph input "pixel_values" \(float32\[batch_size, sequence_length\]\) is not declared in preference\.json/);
  assert.equal(msg.split('\n  - ').length - 1, 3, msg);
});

test('a -with-past export is refused once, naming the export task to use instead', () => {
  const past = Array.from({ length: 8 }, (_, i) => v(`past_key_values.${i >> 1}.${i % 2 ? 'value' : 'key'}`, 'float16', ['batch_size', 8, 'past_sequence_length', 64]));
  const msg = problems(seqCls({ inputs: { position_ids: 'position_ids' } }), sig([v('input_ids'), v('attention_mask'), v('position_ids'), ...past]));
  assert.match(msg, /graph inputs "past_key_values\.0\.key", "past_key_values\.0\.value", "past_key_values\.1\.key", "past_key_values\.1\.value" and 4 more take a KV cache/);
  assert.match(msg, /--task text-classification \(a seq-cls head\) or --task text-generation \(a label-token head; not text-generation-with-past\)/);
  assert.equal(msg.split('\n  - ').length - 1, 1, msg);
  assert.match(problems(seqCls(), sig([v('input_ids'), v('attention_mask'), v('use_cache_branch', 'bool', [1])])), /take a KV cache/);
});

test('head outputs: float32, float16 and bfloat16 are read; other types are named', () => {
  for (const t of ['float32', 'float16', 'bfloat16']) assert.equal(problems(seqCls(), sig([v('input_ids'), v('attention_mask')], v('logits', t, ['batch_size', 3]))), '');
  assert.match(problems(seqCls(), sig([v('input_ids'), v('attention_mask')], v('logits', 'int64', ['batch_size', 3]))), /head\.output "logits" is int64\[batch_size, 3\], expected float32, float16, bfloat16/);
  const label = resolvePreferenceConfig({ name: 't', template: 'label-token', truncation: { max_length: 64 }, head: { kind: 'label-token', token_ids: [1, 2, 32000] }, inputs: { position_ids: 'position_ids' } });
  const lm = sig([v('input_ids'), v('attention_mask'), v('position_ids')], v('logits', 'float16', ['batch_size', 'sequence_length', 32000]));
  assert.match(problems(label, lm), /head\.token_ids 32000 are outside the output vocabulary of 32000/);
});
