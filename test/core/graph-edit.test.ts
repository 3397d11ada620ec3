// core/onnx-proto.ts (the wire-level reader and rewriter) and core/graph-edit.ts (the edits a runtime
// applies at load), on graphs written by test/helpers/onnx-graphs.ts with a schema of their own, and
// run for real in onnxruntime-node: an edited graph must give exactly the numbers the original did.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { HEAD_FLOAT32_OUTPUT, LABEL_LOGITS_OUTPUT, LABEL_POSITIONS_INPUT, planServedGraph } from '../../core/graph-edit.ts';
import { byteSource, externalDataFiles, readOnnxModel, rewriteModel } from '../../core/onnx-proto.ts';
import { halfToNumber, logitsOf } from '../../core/postprocess.ts';
import type { PreferenceConfig } from '../../core/types.ts';
import { buildModel, decodeModel, externalTensor, floatTensor, node, scalar, T, valueInfo } from '../helpers/onnx-graphs.ts';

const H = 4;
const V = 11;
const IDS = [2, 7, 10] as const;

function labelConfig(ids: readonly number[] = IDS): PreferenceConfig {
  return resolvePreferenceConfig({ name: 't', template: 'label-token', truncation: { max_length: 64 }, head: { kind: 'label-token', token_ids: ids } });
}
const seqClsConfig = resolvePreferenceConfig({ name: 't', template: 'gemma-seq-cls', truncation: { max_length: 64 } });

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>, output: string): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(model);
  try {
    return (await s.run(feeds, [output]))[output]!;
  } finally {
    await s.release();
  }
}

const B = 2;
const S = 3;
const hidden = values(B * S * H, 1);
const last = [2, 1];
/** row * S + last position, as core/feeds.ts computes it. */
const flat = new ort.Tensor('int64', BigInt64Array.from(last.map((p, i) => BigInt(i * S + p))), [B]);

/** Full logits [B, S, V] of the original graph, read at each row's last position and the label ids. */
async function expectedLabelLogits(model: Uint8Array): Promise<number[]> {
  const full = await run(model, { hidden: new ort.Tensor('float32', hidden, [B, S, H]) }, 'logits');
  const d = full.data as Float32Array;
  return last.flatMap((p, i) => IDS.map((t) => d[(i * S + p) * V + t]!));
}

function lmGraph(opts: { weight: 'plain' | 'transposed-fp16'; tail: boolean; other?: 'softmax' }): Uint8Array {
  const w = values(H * V, 2);
  const nodes: Array<Record<string, unknown>> = [];
  const initializers = [];
  let weight = 'W';
  if (opts.weight === 'plain') initializers.push(floatTensor('W', [H, V], w));
  else {
    // [V, H] float16 behind a Cast and a Transpose, as tied embeddings and --fp16-weights exports have it.
    const half = new Uint16Array(V * H);
    const wt = new Float32Array(V * H);
    for (let h = 0; h < H; h++) for (let v = 0; v < V; v++) wt[v * H + h] = w[h * V + v]!;
    wt.forEach((x, i) => (half[i] = toHalfBits(x)));
    initializers.push({ name: 'E16', dims: [V, H], data_type: T.FLOAT16, raw_data: new Uint8Array(half.buffer) });
    nodes.push(node('Cast', ['E16'], ['E'], [{ name: 'to', i: T.FLOAT }]), node('Transpose', ['E'], ['Et'], [{ name: 'perm', ints: [1, 0] }]));
    weight = 'Et';
  }
  nodes.push(node('MatMul', ['hidden', weight], [opts.tail || opts.other ? 'mm' : 'logits'], [], 'lm_head'));
  if (opts.tail) {
    initializers.push(floatTensor('bias', [V], values(V, 3)));
    nodes.push(scalar('cap', 30), node('Div', ['mm', 'cap'], ['d']), node('Tanh', ['d'], ['t']), node('Mul', ['t', 'cap'], ['capped']));
    nodes.push(node('Add', ['bias', 'capped'], [opts.other ? 'added' : 'logits']));
  }
  if (opts.other === 'softmax') nodes.push(node('Softmax', [opts.tail ? 'added' : 'mm'], ['logits'], [{ name: 'axis', i: -1 }]));
  return buildModel({ nodes, initializers, inputs: [valueInfo('hidden', T.FLOAT, ['batch', 'seq', H])], outputs: [valueInfo('logits', T.FLOAT, ['batch', 'seq', V])] });
}

function toHalfBits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign; // tiny values flush to zero (test weights are not tiny)
  const r = (exp << 10) | (mant >>> 13);
  return sign | (r + ((mant >>> 12) & 1)); // round half up on the dropped bits
}

describe('onnx-proto: reading and rewriting', () => {
  test('a rewrite without edits gives back the same bytes; doc strings and metadata stay', () => {
    const bytes = lmGraph({ weight: 'transposed-fp16', tail: true });
    const m = readOnnxModel(byteSource(bytes));
    assert.deepEqual(rewriteModel(m, {}), new Uint8Array(bytes));
    assert.equal(m.graph.nodes.length, 8);
    assert.deepEqual(m.opsets, [{ domain: '', version: 17 }]);
    assert.deepEqual(m.graph.initializers.map((t) => [t.name, t.dataType, t.dims]), [['E16', 10, [V, H]], ['bias', 1, [V]]]);
    const cap = m.graph.nodes.find((n) => n.opType === 'Constant')!;
    assert.deepEqual(cap.attributes[0]!.t!.dims, []);
  });
  test('external data: every file named once, with the bytes its tensors need', () => {
    const bytes = buildModel({
      nodes: [node('Add', ['x', 'a'], ['y']), node('Add', ['y', 'b'], ['z'])],
      initializers: [externalTensor('a', [4], T.FLOAT, 'model.onnx_data', 0, 16), externalTensor('b', [4], T.FLOAT, 'model.onnx_data', 16, 16)],
      inputs: [valueInfo('x', T.FLOAT, [4]), valueInfo('a', T.FLOAT, [4])],
      outputs: [valueInfo('z', T.FLOAT, [4])],
    });
    const m = readOnnxModel(byteSource(bytes));
    assert.deepEqual(externalDataFiles(m.graph), [{ location: 'model.onnx_data', tensors: 2, minBytes: 32 }]);
    // "a" is an initializer listed as an input (IR < 4 style): not something to feed.
    assert.deepEqual(planServedGraph(m, seqClsConfig).signature.inputs.map((i) => i.name), ['x']);
  });
  test('a file that is not ONNX fails with a message, never a hang', () => {
    assert.throws(() => readOnnxModel(byteSource(new TextEncoder().encode('not a model at all'))), /OnnxFormatError|malformed|no graph|wire type/);
  });
});

describe('graph-edit: label-token heads', () => {
  for (const [what, opts] of [
    ['MatMul with a [hidden, vocab] initializer', { weight: 'plain', tail: false }],
    ['softcap Div/Tanh/Mul and a per-token bias after the MatMul', { weight: 'plain', tail: true }],
    ['tied float16 embeddings behind Cast and Transpose', { weight: 'transposed-fp16', tail: true }],
  ] as const) {
    test(`LM head recognised (${what}): [batch, 3] read before the LM head, equal to the full logits`, async () => {
      const bytes = lmGraph(opts);
      const plan = planServedGraph(byteSource(bytes), labelConfig());
      assert.ok(plan.bytes);
      assert.match(plan.notes.join('\n'), /reads the 3 label columns .*never computed/);
      assert.deepEqual(plan.served, { inputs: ['hidden', LABEL_POSITIONS_INPUT], output: LABEL_LOGITS_OUTPUT, labelLogits: true, labelPositions: LABEL_POSITIONS_INPUT });
      // The edited graph has no MatMul with V columns left: nothing [.., vocab]-sized is computed.
      const edited = readOnnxModel(byteSource(plan.bytes));
      assert.ok(!edited.graph.nodes.some((n) => n.name === 'lm_head'));
      assert.deepEqual(edited.graph.outputs.map((o) => [o.name, o.shape]), [[LABEL_LOGITS_OUTPUT, ['batch', 3]]]);
      const got = await run(plan.bytes, { hidden: new ort.Tensor('float32', hidden, [B, S, H]), [LABEL_POSITIONS_INPUT]: flat }, LABEL_LOGITS_OUTPUT);
      assert.deepEqual(got.dims, [B, 3]);
      const want = await expectedLabelLogits(bytes);
      [...(got.data as Float32Array)].forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-6 * Math.max(1, Math.abs(want[i]!)), `${i}: ${x} vs ${want[i]}`));
    });
  }
  test('an LM head it does not recognise: the gather follows the logits, same numbers', async () => {
    const bytes = lmGraph({ weight: 'plain', tail: true, other: 'softmax' });
    const plan = planServedGraph(byteSource(bytes), labelConfig());
    assert.match(plan.notes.join('\n'), /gathered after "logits" .*not recognised: "logits" comes from Softmax/);
    const got = await run(plan.bytes!, { hidden: new ort.Tensor('float32', hidden, [B, S, H]), [LABEL_POSITIONS_INPUT]: flat }, LABEL_LOGITS_OUTPUT);
    const want = await expectedLabelLogits(bytes);
    assert.deepEqual([...(got.data as Float32Array)], want.map((x) => Math.fround(x)));
  });
  test('[batch, vocab] logits: only the three columns, no positions input', async () => {
    const w = values(H * V, 4);
    const bytes = buildModel({
      nodes: [node('MatMul', ['h', 'W'], ['logits'])],
      initializers: [floatTensor('W', [H, V], w)],
      inputs: [valueInfo('h', T.FLOAT, ['batch', H])],
      outputs: [valueInfo('logits', T.FLOAT, ['batch', V])],
    });
    const plan = planServedGraph(byteSource(bytes), labelConfig());
    assert.equal(plan.served.labelPositions, null);
    const h = new ort.Tensor('float32', values(B * H, 5), [B, H]);
    const got = (await run(plan.bytes!, { h }, LABEL_LOGITS_OUTPUT)).data as Float32Array;
    const full = (await run(bytes, { h }, 'logits')).data as Float32Array;
    assert.deepEqual([...got], [0, 1].flatMap((i) => IDS.map((t) => full[i * V + t]!)));
  });
});

describe('graph-edit: output types', () => {
  const seqCls = (outType: number, extra = false): Uint8Array =>
    buildModel({
      nodes: [node('MatMul', ['x', 'W'], ['m']), node('Cast', ['m'], ['logits'], [{ name: 'to', i: outType }]), ...(extra ? [node('Cast', ['m'], ['aux'], [{ name: 'to', i: T.BFLOAT16 }])] : [])],
      initializers: [floatTensor('W', [H, 3], values(H * 3, 6))],
      inputs: [valueInfo('x', T.FLOAT, ['batch', H])],
      outputs: [valueInfo('logits', outType, ['batch', 3]), ...(extra ? [valueInfo('aux', T.BFLOAT16, ['batch', 3])] : [])],
    });
  const x = new ort.Tensor('float32', Float32Array.from([0.5, -1, 2, 0.25, 1, 1, -1, 3]), [2, H]);

  test('a bfloat16 head output gets a Cast to float32 (onnxruntime-node cannot open the graph as it is)', async () => {
    const bytes = seqCls(T.BFLOAT16, true);
    await assert.rejects(ort.InferenceSession.create(bytes), /Unsupported data type: 16/);
    const plan = planServedGraph(byteSource(bytes), seqClsConfig);
    assert.equal(plan.served.output, HEAD_FLOAT32_OUTPUT);
    assert.match(plan.notes.join('\n'), /bfloat16: cast to float32 in the graph/);
    assert.match(plan.notes.join('\n'), /dropped bfloat16 graph outputs pairpref does not read: aux/);
    assert.equal(plan.signature.outputs[0]!.type, 'bfloat16', 'the check sees the graph as shipped');
    const got = (await run(plan.bytes!, { x }, HEAD_FLOAT32_OUTPUT)).data as Float32Array;
    const exact = (await run(seqCls(T.FLOAT), { x }, 'logits')).data as Float32Array;
    // bfloat16 keeps 8 significant bits.
    exact.forEach((v, i) => assert.ok(Math.abs(got[i]! - v) <= Math.abs(v) / 128, `${got[i]} vs ${v}`));
  });
  test('float16 and float32 outputs are served unedited; float16 logits are widened exactly', async () => {
    for (const t of [T.FLOAT, T.FLOAT16]) assert.equal(planServedGraph(byteSource(seqCls(t)), seqClsConfig).bytes, null);
    const half = await run(seqCls(T.FLOAT16), { x }, 'logits');
    assert.equal(half.type, 'float16');
    const wide = logitsOf(half.type, half.data, 'logits');
    const exact = (await run(seqCls(T.FLOAT), { x }, 'logits')).data as Float32Array;
    exact.forEach((v, i) => assert.ok(Math.abs(wide[i]! - v) <= Math.abs(v) / 1024, `${wide[i]} vs ${v}`));
  });
  test('halfToNumber reads IEEE 754 halves exactly', () => {
    assert.deepEqual([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0xfc00].map(halfToNumber), [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity, -Infinity]);
    assert.ok(Object.is(halfToNumber(0x8000), -0));
    assert.ok(Number.isNaN(halfToNumber(0x7e00)));
    assert.throws(() => logitsOf('int64', new BigInt64Array(3), 'output "logits"'), /output "logits" is int64, expected float32 or float16/);
  });
  test('a label-token model with float32 ids out of range, or an output missing: left to the graph check', () => {
    const bytes = lmGraph({ weight: 'plain', tail: false });
    const missing = resolvePreferenceConfig({ name: 't', template: 'label-token', truncation: { max_length: 64 }, head: { kind: 'label-token', output: 'nope', token_ids: [1, 2, 3] } });
    assert.equal(planServedGraph(byteSource(bytes), missing).bytes, null);
    // Ids past the vocabulary: no edit (validateGraph names them from the graph as shipped).
    assert.equal(planServedGraph(byteSource(bytes), labelConfig([1, 2, V])).bytes, null);
    // Decoded by an independent schema, the edited model is well-formed protobuf with the new items last.
    const plan = planServedGraph(byteSource(bytes), labelConfig());
    const g = (decodeModel(plan.bytes!) as { graph: { input: Array<{ name: string }>; output: Array<{ name: string }>; initializer: Array<{ name: string }> } }).graph;
    assert.deepEqual(g.input.map((i) => i.name), ['hidden', LABEL_POSITIONS_INPUT]);
    assert.deepEqual(g.output.map((o) => o.name), [LABEL_LOGITS_OUTPUT]);
    assert.deepEqual(g.initializer.map((i) => i.name), ['W', 'pairpref/label_token_ids']);
  });
});
