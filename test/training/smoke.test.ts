// End-to-end training smoke test: the real pipeline (tokenizer, core/ shards, PyTorch, ONNX
// export, onnxruntime parity, evaluation) on ~200 rows with a tiny model, then the exported
// bundle is loaded through core/ + onnxruntime-node and scores rows. Needs /usr/bin/python3 with
// torch and onnx: without them this test fails and names the apt-get packages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FULL, SMOKE, runPipeline } from '../../training/pipeline.ts';
import { openBundle } from '../../training/onnx-eval.ts';
import { readArenaCsv, swapRow } from '../../training/arena-csv.ts';
import { runPython } from '../../platform/python.ts';

const DATA = '../shared/data';
const hasData = existsSync(join(DATA, 'alpaca-pairs-train.csv.gz'));

test('training pipeline runs end to end on ~200 rows and the exported bundle serves', {
  timeout: 240_000,
}, async () => {
  // The shared data is part of the test environment (CI always has it): absent is a failure, never a skip.
  assert.ok(hasData, '../shared/data is absent (needs alpaca-pairs-train/dev.csv.gz)');
  const root = mkdtempSync(join(tmpdir(), 'pairpref-smoke-'));
  try {
    const out = join(root, 'bundle');
    const lines: string[] = [];
    const result = await runPipeline({ ...FULL, ...SMOKE, data: DATA, out, work: join(root, 'work') }, (m) => lines.push(m));

    for (const f of ['model.onnx', 'tokenizer.json', 'preference.json', 'golden.json', 'metrics.json']) {
      assert.ok(existsSync(join(out, f)), `bundle lacks ${f}`);
    }
    assert.equal(result.tokenizer_parity.mismatches, 0);
    assert.equal(result.parity.id_mismatches, 0);
    assert.ok(result.parity.max_abs_diff <= 1e-4, `ONNX vs PyTorch ${result.parity.max_abs_diff}`);
    assert.equal(result.dev.rows, SMOKE.devLimit);
    // Members at 96 and 64 tokens: the bundle serves 96, and the graph's cut to 64 gave exactly
    // core/'s 64-token ids on every train and dev row, in both orientations.
    const lengths = SMOKE.members!.map((m) => m.maxLength);
    assert.deepEqual(lengths, [96, 64]);
    assert.equal(JSON.parse(readFileSync(join(out, 'preference.json'), 'utf8')).truncation.max_length, 96);
    assert.deepEqual(result.views, [{ view_max_length: 64, rows: 2 * (SMOKE.trainLimit! + SMOKE.devLimit!), mismatches: 0 }]);
    assert.ok(Number.isFinite(result.dev.log_loss) && result.dev.log_loss > 0);

    const bundle = await openBundle(out, { threads: 1 });
    try {
      const rows = [];
      for await (const r of readArenaCsv(join(DATA, 'alpaca-pairs-dev.csv.gz'), 3)) rows.push(r);
      const encoded = rows.map((r) => bundle.preprocessor.encode(r.comparison));
      assert.ok(encoded.every((e) => e.ids.length <= bundle.config.truncation.max_length));
      const probs = await bundle.score(encoded);
      for (const p of probs) {
        assert.ok(p.every((x) => x > 0 && x < 1));
        assert.ok(Math.abs(p[0] + p[1] + p[2] - 1) < 1e-6);
      }
      // Batched with longer rows (padding) or alone: the same answer.
      const alone = await bundle.score([encoded[2]!]);
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(alone[0]![k]! - probs[2]![k]!) < 1e-6);
      // The side-symmetric architecture: swapping the responses swaps p_a and p_b.
      const swapped = await bundle.score([bundle.preprocessor.encode(swapRow(rows[0]!).comparison)]);
      assert.ok(Math.abs(swapped[0]![1] - probs[0]![0]) < 0.05, `asymmetry ${swapped[0]![1]} vs ${probs[0]![0]}`);
    } finally {
      await bundle.close();
    }
    const golden = JSON.parse(readFileSync(join(out, 'golden.json'), 'utf8')) as { rows: Array<{ probs: number[] }> };
    assert.equal(golden.rows.length, SMOKE.goldenRows);
    // SMOKE stores weights as float16: the exporter reports how many initializers it converted.
    assert.ok(lines.some((l) => /"fp16_initializers": [1-9]/.test(l)), 'no float16 initializers in the export log');

    // --resume: the same shards and arguments reuse both members and export the same model.
    const again: string[] = [];
    const resumed = await runPipeline({ ...FULL, ...SMOKE, data: DATA, out, work: join(root, 'work'), resume: true }, (m) => again.push(m));
    assert.deepEqual(resumed.reused_members, [0, 1]);
    assert.ok(!again.some((l) => l.includes('[member ')), 'a member was retrained on resume');
    const golden2 = JSON.parse(readFileSync(join(out, 'golden.json'), 'utf8')) as typeof golden;
    assert.deepEqual(golden2.rows.map((r) => r.probs), golden.rows.map((r) => r.probs));

    // The view check can fail: one changed id in core/'s 64-token dev shard stops the export.
    const work = join(root, 'work');
    const shard = join(work, 'shards-64', 'dev.ids.i32');
    const ids = new Int32Array(readFileSync(shard).buffer.slice(0));
    ids[10] = (ids[10]! + 1) % 600;
    writeFileSync(shard, Buffer.from(ids.buffer));
    const failed: string[] = [];
    await assert.rejects(
      runPython(fileURLToPath(new URL('../../training/export.py', import.meta.url)), ['--ckpt', join(work, 'model0.pt'), join(work, 'model1.pt'), '--shards', join(work, 'shards-96'),
        '--view-shards', join(work, 'shards-64'), '--onnx', join(root, 'x.onnx'), '--reference', join(root, 'x.json')], (l) => failed.push(l)),
      /export\.py exited with 1/,
    );
    assert.ok(failed.some((l) => /BudgetView does not reproduce .*"mismatches": 1\b/.test(l)), failed.join('\n'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
