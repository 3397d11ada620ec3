// End-to-end training smoke test: the real pipeline (tokenizer, core/ shards, PyTorch, ONNX
// export, onnxruntime parity, evaluation) on ~200 rows with a tiny model, then the exported
// bundle is loaded through core/ + onnxruntime-node and scores rows. Needs /usr/bin/python3 with
// torch and onnx: without them this test fails and names the apt-get packages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FULL, SMOKE, runPipeline } from '../../training/pipeline.ts';
import { loadBundle } from '../../training/onnx-eval.ts';
import { readArenaCsv, swapRow } from '../../training/arena-csv.ts';

const DATA = '../shared/data';
const hasData = existsSync(join(DATA, 'alpaca-pairs-train.csv.gz'));

test('training pipeline runs end to end on ~200 rows and the exported bundle serves', {
  skip: hasData ? false : `../shared/data is absent (needs alpaca-pairs-train/dev.csv.gz)`,
  timeout: 240_000,
}, async () => {
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
    assert.ok(Number.isFinite(result.dev.log_loss) && result.dev.log_loss > 0);

    const bundle = await loadBundle(out, { threads: 1 });
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
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
