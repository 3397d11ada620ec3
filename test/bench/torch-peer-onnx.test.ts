// The PyTorch peer on a fresh clone: no .pt checkpoint anywhere, so its weights come from the
// bundle's model.onnx (training/onnx_to_torch.py maps the initializers onto training/model.py).
// Its probabilities must be onnxruntime-node's (the bench's own session and batch path) on rows that
// exercise every part of the graph: long rows that two members see cut to 256 tokens in the graph
// (BudgetView), short multi-turn rows, one padded batch. Needs /usr/bin/python3 with torch and onnx.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createCpuSession, probsOfRows } from '../../bench/inprocess.ts';
import { judgeTorchPeer } from '../../bench/run.ts';
import { findTorchWeights, maxAbsProbDiff, PARITY_TOLERANCE, runTorchPeer, type TorchPeerResult } from '../../bench/torch-peer.ts';
import { PYTHON } from '../../platform/python.ts';
import { loadBundle } from '../../runtime/node/index.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { readArena } from '../helpers/shared-data.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT = fileURLToPath(new URL('../../models/default', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pairpref-torch-peer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** models/default as a fresh clone has it: the three tracked files and nothing else. */
function freshCloneBundle(): string {
  const b = join(dir, 'default');
  mkdirSync(b);
  for (const f of ['model.onnx', 'tokenizer.json', 'preference.json']) symlinkSync(join(DEFAULT, f), join(b, f));
  return b;
}

test('fresh clone: the PyTorch peer runs model.onnx\'s weights and matches onnxruntime-node', { timeout: 120_000 }, async () => {
  const model = freshCloneBundle();
  const found = findTorchWeights(model, undefined);
  assert.deepEqual(found.weights, { kind: 'onnx', bundle: model }, `weights from model.onnx without any checkpoint: ${found.why}`);

  const bundle = loadBundle(model);
  // 6 arena-hard rows (most reach the 512-token budget, so members 1 and 2 get the in-graph 256 cut)
  // and 6 short hh-harmless dialogues, in one batch padded to the longest.
  const raw = [...(await readArena('arena-hard-pairs.csv.gz', 6)), ...(await readArena('hh-harmless-test.csv.gz', 6))];
  const rows = raw.map((r) => bundle.preprocessor.encode(r));
  const lengths = rows.map((r) => r.ids.length);
  assert.ok(lengths.some((n) => n > 256) && lengths.some((n) => n < 256), `rows on both sides of the 256-token cut: ${lengths.join(', ')}`);

  const session = await createCpuSession(bundle, 1);
  let onnx;
  try {
    onnx = await probsOfRows(session, rows, bundle.config);
  } finally {
    await session.release();
  }
  const t = await runTorchPeer({ weights: found.weights!, rows, padId: bundle.config.special_tokens.pad_id, threads: 2, rowsFile: join(dir, 'rows.json'), device: 'cpu', checkRows: rows.length });
  assert.equal(t.device, 'cpu');
  assert.equal(t.check_probs.length, rows.length);
  assert.ok(t.rows_per_s > 0);
  const diff = maxAbsProbDiff(t.check_probs, onnx);
  console.log(`# PyTorch (weights from model.onnx) vs onnxruntime-node, ${rows.length} rows (${Math.min(...lengths)}-${Math.max(...lengths)} tokens): max |dp| ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-5, `max |dp| ${diff} (float32 weights identical to the graph's: rounding only)`);

  // What the bench reports from it: a ratio-bearing result, weights named.
  const judged = judgeTorchPeer(t, onnx, found.weights!);
  assert.ok('rows_per_s' in judged, JSON.stringify(judged));
  assert.equal(judged.weights_source, 'onnx');
  assert.equal(judged.parity_rows, rows.length);
});

test('the bench refuses a PyTorch ratio when the probabilities are not model.onnx\'s', () => {
  const onnx = [[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]] as const;
  const peer = (probs: number[][]): TorchPeerResult => ({ rows: 2, seconds: 1, rows_per_s: 2, batch: 8, threads: 2, torch: 'x', device: 'cpu', device_name: 'cpu', cuda_available: false, weights: 'w', check_probs: probs });
  const weights = { kind: 'checkpoint', files: ['other.pt'] } as const;
  const off = judgeTorchPeer(peer([[0.5, 0.3, 0.2], [0.1, 0.7, 0.2]]), onnx.map((r) => [...r]), weights);
  assert.ok('skipped' in off && /parity check failed: max \|dp\| 1\.00e-1/.test(off.skipped) && off.skipped.includes('other.pt'), JSON.stringify(off));
  const missing = judgeTorchPeer(peer([[0.5, 0.3, 0.2]]), onnx.map((r) => [...r]), weights);
  assert.ok('skipped' in missing, 'a missing row is a failed check');
  const nan = judgeTorchPeer(peer([[0.5, 0.3, 0.2], [NaN, 0.8, 0.1]]), onnx.map((r) => [...r]), weights);
  assert.ok('skipped' in nan, 'a NaN is a failed check');
  const ok = judgeTorchPeer(peer([[0.5, 0.3, 0.2], [0.1, 0.8 + PARITY_TOLERANCE / 2, 0.1]]), onnx.map((r) => [...r]), weights);
  assert.ok('rows_per_s' in ok);
});

test('a graph that training/export.py did not write is refused with the reason, not mis-mapped', { timeout: 60_000 }, async () => {
  const fixture = writeFixtureBundle(join(dir, 'fixture')).dir;
  const w = findTorchWeights(fixture, undefined);
  assert.equal(w.weights?.kind, 'onnx');
  const bundle = loadBundle(fixture);
  const rows = [bundle.preprocessor.encode((await readArena('hh-harmless-test.csv.gz', 1))[0]!)];
  await assert.rejects(
    runTorchPeer({ weights: w.weights!, rows, padId: bundle.config.special_tokens.pad_id, threads: 1, rowsFile: join(dir, 'fixture-rows.json'), device: 'cpu' }),
    /PyTorch peer failed .*not a training\/export\.py graph/,
  );
});

test('on a non-CPU device every tensor of the forward follows the model (meta device standing in for CUDA)', { timeout: 60_000 }, () => {
  // model.py's BudgetView once made its slot index with torch.arange on the CPU, so a CUDA forward failed
  // with "Expected all tensors to be on the same device"; the meta device fails the same way.
  const script = `
import sys, torch
sys.path[:0] = ['bench', 'training']
from onnx_to_torch import ensemble_from_onnx
dev = torch.device('meta')
e = ensemble_from_onnx('models/default').to(dev)
ids = torch.full((2, 300), 5, dtype=torch.int64, device=dev)
mask = torch.ones((2, 300), dtype=torch.int64, device=dev)
with torch.no_grad():
    out = e(ids, mask, torch.zeros((2, 31), device=dev))
print('forward', out.device, tuple(out.shape))
`;
  const r = spawnSync(PYTHON, ['-c', script], { cwd: ROOT, encoding: 'utf8', timeout: 55_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /forward meta \(2, 3\)/);
});
