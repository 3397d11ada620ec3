// core/feeds.ts: the optional inputs (position_ids from the mask, token_type_ids, an edited
// label-token graph's positions) are fed exactly when the served graph has them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { padBatch } from '../../core/batch.ts';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { batchFeeds, inputNames, positionIds } from '../../core/feeds.ts';
import { LABEL_POSITIONS_INPUT, type ServedGraph } from '../../core/graph-edit.ts';
import type { EncodedRow } from '../../core/types.ts';

const rows: EncodedRow[] = [
  { ids: Int32Array.from([5, 6, 7]), truncated: false, features: null },
  { ids: Int32Array.from([8]), truncated: false, features: null },
];
const tensors = { int64: (data: BigInt64Array, dims: readonly number[]) => ({ data: [...data].map(Number), dims: [...dims] }), float32: (data: Float32Array, dims: readonly number[]) => ({ data: [...data], dims: [...dims] }) };
const config = (side: 'left' | 'right') =>
  resolvePreferenceConfig({ name: 't', template: 'label-token', truncation: { max_length: 64 }, special_tokens: { pad_id: 0, padding_side: side }, head: { kind: 'label-token', token_ids: [1, 2, 3] }, inputs: { position_ids: 'position_ids', token_type_ids: 'token_type_ids' } });
const graph = (inputs: string[], labelPositions: string | null = null): ServedGraph => ({ inputs, output: null, labelLogits: labelPositions !== null, labelPositions });

test('position ids count real tokens from 0 on either padding side; pads get 1, as transformers does', () => {
  assert.deepEqual([...positionIds(BigInt64Array.from([1n, 1n, 1n, 1n, 0n, 0n]), 2, 3)].map(Number), [0, 1, 2, 0, 1, 1]);
  assert.deepEqual([...positionIds(BigInt64Array.from([1n, 1n, 1n, 0n, 0n, 1n]), 2, 3)].map(Number), [0, 1, 2, 1, 1, 0]);
});

test('optional inputs are fed only when the served graph has them', () => {
  for (const side of ['right', 'left'] as const) {
    const cfg = config(side);
    const b = padBatch(rows, cfg.special_tokens);
    const all = batchFeeds(b, inputNames(cfg, graph(['input_ids', 'attention_mask', 'position_ids', 'token_type_ids', LABEL_POSITIONS_INPUT], LABEL_POSITIONS_INPUT)), tensors);
    assert.deepEqual(Object.keys(all).sort(), ['attention_mask', 'input_ids', 'pairpref_label_positions', 'position_ids', 'token_type_ids']);
    assert.deepEqual(all['position_ids']!.data, side === 'right' ? [0, 1, 2, 0, 1, 1] : [0, 1, 2, 1, 1, 0]);
    assert.deepEqual(all['token_type_ids']!.data, [0, 0, 0, 0, 0, 0]);
    // row * seqLen + the row's last real position
    assert.deepEqual(all[LABEL_POSITIONS_INPUT]!, { data: side === 'right' ? [2, 3] : [2, 5], dims: [2] });
    const plain = batchFeeds(b, inputNames(cfg, graph(['input_ids', 'attention_mask'])), tensors);
    assert.deepEqual(Object.keys(plain).sort(), ['attention_mask', 'input_ids']);
    // A session that does not describe its graph gets what preference.json requires and nothing optional.
    assert.deepEqual(Object.keys(batchFeeds(b, inputNames(cfg), tensors)).sort(), ['attention_mask', 'input_ids']);
  }
});

test('preference.json: inputs.position_ids and inputs.token_type_ids are optional names', () => {
  assert.deepEqual(config('right').inputs, { input_ids: 'input_ids', attention_mask: 'attention_mask', position_ids: 'position_ids', token_type_ids: 'token_type_ids' });
  const none = resolvePreferenceConfig({ name: 't', template: 'gemma-seq-cls', truncation: { max_length: 64 }, inputs: { position_ids: null } });
  assert.deepEqual(none.inputs, { input_ids: 'input_ids', attention_mask: 'attention_mask' });
  assert.throws(() => resolvePreferenceConfig({ name: 't', template: 'gemma-seq-cls', truncation: { max_length: 64 }, inputs: { position_ids: '' } }), /inputs\.position_ids must not be empty/);
  assert.throws(() => resolvePreferenceConfig({ name: 't', template: 'gemma-seq-cls', truncation: { max_length: 64 }, inputs: { past_key_values: 'x' } }), /inputs\.past_key_values is not a known key; expected one of input_ids, attention_mask, position_ids, token_type_ids/);
});
