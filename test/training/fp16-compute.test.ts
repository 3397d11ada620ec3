// The float16-compute graph for GPU hosts (models/default/model.fp16.onnx, written by
// training/fp16_compute.py): the converter reproduces the shipped file byte for byte, the graph keeps
// the float32 graph's interface (so a bundle serving it needs no code change), and on 16 dev rows its
// probabilities stay within BOUND of the float32 graph's, both as onnxruntime's CPU provider runs it and
// as the --emulate graph (every activation rounded to float16) runs it. The same check fails on a graph
// with a wrong cast, and on a row whose raw feature counts exceed float16's range only when the features
// are cast to float16 before their log transform (the converter keeps that part in float32).
// Needs /usr/bin/python3 with onnx (the converter) and the dev split.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateGraph } from '../../core/graph.ts';
import { runBatch } from '../../core/run-batch.ts';
import type { EncodedRow } from '../../core/types.ts';
import { CPU, createSession, loadBundle } from '../../runtime/node/index.ts';
import { runPython } from '../../platform/python.ts';
import { compareGraphs, DEV, loadRows, type GraphScore } from '../../training/fp16-parity.ts';
import { readArenaCsv } from '../../training/arena-csv.ts';

const BUNDLE = 'models/default';
const SHIPPED = join(BUNDLE, 'model.fp16.onnx');
const ROWS = 16;
/**
 * Largest |p_fp16 - p_fp32| allowed. Over all 8,205 dev rows (training/fp16-parity.ts, MODEL_CARD.md)
 * the shipped graph on the CPU provider reached 1.5e-4 and the --emulate graph 3.6e-4; 16 of those rows
 * cannot exceed that by more than batch-shape rounding, so 1e-3 leaves 2.8x headroom on the worse one. A
 * wrong cast moves probabilities by 0.2 (below).
 */
const BOUND = 1e-3;

function check(score: GraphScore): string | null {
  return score.max_abs_dp <= BOUND ? null : `${score.model}: max |dp| ${score.max_abs_dp} over the bound ${BOUND}`;
}

let dir = '';
let data: Awaited<ReturnType<typeof loadRows>>;

async function python(script: string, args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await runPython(script, args, (l) => lines.push(l));
  return lines;
}

/** Rewrites a graph with the onnx package: `code` sees `m` (the ModelProto), `helper`, `TensorProto`. */
async function editGraph(src: string, dst: string, code: string): Promise<void> {
  const script = join(dir, 'edit.py');
  writeFileSync(
    script,
    ['import sys, onnx', 'from onnx import helper, TensorProto', 'm = onnx.load(sys.argv[1])', code,
      'onnx.checker.check_model(m, full_check=True)', 'onnx.save(m, sys.argv[2])'].join('\n'),
  );
  await python(script, [src, dst]);
}

before(async () => {
  // The shared data is part of the test environment (CI always has it): absent is a failure, never a skip.
  assert.ok(existsSync(DEV), `${DEV} is absent: these tests read dev rows from ../shared/data`);
  dir = mkdtempSync(join(tmpdir(), 'pairpref-fp16-'));
  await python('training/fp16_compute.py', [
    '--model', join(BUNDLE, 'model.onnx'), '--out', join(dir, 'model.fp16.onnx'),
    '--emulate', join(dir, 'emulate.onnx'), '--out-bundle', join(dir, 'bundle'),
  ]);
  data = await loadRows(BUNDLE, DEV, ROWS);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('fp16_compute.py reproduces models/default/model.fp16.onnx byte for byte', () => {
  const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  assert.equal(sha(join(dir, 'model.fp16.onnx')), sha(SHIPPED), 'rerun: /usr/bin/python3 training/fp16_compute.py');
  assert.equal(sha(join(dir, 'bundle', 'model.onnx')), sha(SHIPPED));
  // No larger than the float32-compute graph (float16 weights) give or take the casts it adds.
  assert.ok(readFileSync(SHIPPED).length <= readFileSync(join(BUNDLE, 'model.onnx')).length * 1.01);
});

test('the float16 graph has the float32 graph\'s inputs and outputs, and its bundle loads', { timeout: 60_000 }, async () => {
  const { config, modelPath } = loadBundle(BUNDLE);
  const f32 = await createSession({ modelPath, config }, CPU, 1);
  const f16 = await createSession({ modelPath: SHIPPED, config }, CPU, 1);
  try {
    assert.deepEqual(f16.signature, f32.signature);
    assert.deepEqual(f16.signature.inputs.map((v) => [v.name, v.type]), [['input_ids', 'int64'], ['attention_mask', 'int64'], ['features', 'float32']]);
    assert.deepEqual(f16.signature.outputs.map((v) => [v.name, v.type]), [['logits', 'float32']]);
    validateGraph(config, f16.signature);
  } finally {
    await f32.release();
    await f16.release();
  }
  const variant = loadBundle(join(dir, 'bundle'));
  assert.equal(variant.config.version, `${config.version}+fp16`);
  assert.deepEqual(variant.config.truncation, config.truncation);
});

test(`on ${ROWS} spread dev rows the float16 graph stays within ${BOUND} of float32 (CPU provider and full rounding)`, { timeout: 60_000 }, async () => {
  const r = await compareGraphs({ bundle: BUNDLE, models: [SHIPPED, join(dir, 'emulate.onnx')], threads: 1 }, data);
  assert.equal(r.rows, ROWS);
  for (const s of r.others) {
    assert.equal(check(s), null);
    assert.equal(s.argmax_changes, 0);
    assert.ok(Math.abs(s.log_loss - r.float32.log_loss) < 1e-3);
  }
  // The emulation does round activations: it is not the float32 graph in disguise.
  assert.ok(r.others[1]!.max_abs_dp > 0);
});

test('the check fails on a graph with a wrong cast', { timeout: 60_000 }, async () => {
  // The standardised features' edge cast of member 0 truncating to int32 before float16.
  const broken = join(dir, 'broken.onnx');
  await editGraph(SHIPPED, broken, [
    'n = next(n for n in m.graph.node if n.op_type == "Cast" and n.name.startswith("/members.0/Div_3_output_0"))',
    'i = helper.make_node("Cast", [n.input[0]], ["wrong_int32"], to=TensorProto.INT32, name="wrong_cast")',
    'n.input[0] = "wrong_int32"',
    'nodes = list(m.graph.node); nodes.insert(nodes.index(n), i)',
    'del m.graph.node[:]; m.graph.node.extend(nodes)',
  ].join('\n'));
  const r = await compareGraphs({ bundle: BUNDLE, models: [broken], threads: 1 }, data);
  assert.match(check(r.others[0]!) ?? '', /over the bound/);
});

test('feature counts beyond float16 range: finite and within the bound; casting features to float16 first is not', { timeout: 60_000 }, async () => {
  const { config, preprocessor, modelPath } = loadBundle(BUNDLE);
  let first: EncodedRow | undefined;
  for await (const row of readArenaCsv(DEV, 1)) {
    // 70,000 newlines and question marks in response B: raw counts above float16's 65,504.
    first = preprocessor.encode({ ...row.comparison, response_b: JSON.stringify(['?\n'.repeat(70_000)]) });
  }
  assert.ok(first && first.features);
  assert.ok(Math.max(...Array.from(first.features!, Math.abs)) > 65_504);
  const featuresFirst = join(dir, 'features-in-fp16.onnx');
  await editGraph(SHIPPED, featuresFirst, [
    'c = [helper.make_node("Cast", ["features"], ["f16"], to=TensorProto.FLOAT16), helper.make_node("Cast", ["f16"], ["f32"], to=TensorProto.FLOAT)]',
    'for n in m.graph.node:',
    '    n.input[:] = ["f32" if i == "features" else i for i in n.input]',
    'nodes = c + list(m.graph.node); del m.graph.node[:]; m.graph.node.extend(nodes)',
  ].join('\n'));
  const sessions = await Promise.all([modelPath, SHIPPED, featuresFirst].map((p) => createSession({ modelPath: p, config }, CPU, 1)));
  try {
    const [p32, p16] = [(await runBatch(sessions[0]!, config, [first]))[0]!, (await runBatch(sessions[1]!, config, [first]))[0]!];
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(p16[k]! - p32[k]!) <= BOUND, `label ${k}: ${p16[k]} vs ${p32[k]}`);
    await assert.rejects(runBatch(sessions[2]!, config, [first]), /non-finite/);
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
});
