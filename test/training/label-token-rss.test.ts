// The label-token gather added at load (core/graph-edit.ts) lowers the peak memory of a batch on the
// label-token fixture (vocab 32,000): without it onnxruntime allocates the [batch, seq, vocab] logits
// (and the softcap's intermediates of that size) and onnxruntime-node copies them into JavaScript;
// with it neither exists. Measured in child processes by training/label-token-rss.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureLabelTokenRss } from '../../training/label-token-rss.ts';

test('label-token fixture, 4 rows x 256 tokens: the edited graph saves at least twice the logits tensor of peak RSS, same probabilities', { timeout: 180_000 }, (t) => {
  const r = measureLabelTokenRss({ rows: 4, seq: 256 });
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.vocab, 32000);
  assert.equal(r.logitsMiB, 125);
  assert.equal(r.full.edits.length, 0);
  assert.match(r.edited.edits.join('\n'), /LM head MatMul .* never computed/);
  assert.equal(r.maxProbDiff, 0);
  // The copy into JavaScript alone is logitsMiB; onnxruntime's own buffer is at least as much again.
  assert.ok(r.savedMiB >= 2 * r.logitsMiB, `saved ${r.savedMiB} MiB; full ${r.full.peakMiB}, edited ${r.edited.peakMiB}`);
});
