// A label-token bundle (LM logits [batch, seq, vocab], the three label tokens read at each row's
// last real position) through every place that runs batches: the in-process engine (the CLI's
// --model mode), the bench's limit loop and naive peer, and training's evaluation. The server's
// device workers are covered in server.test.ts ("gRPC server with other heads") and the page in
// test/web/web.spec.ts. Every path is compared with test/helpers/reference.ts, a deliberately
// separate computation (its own session, feeds and head code), not with core's runBatch.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sortedBatches } from '../../bench/batches.ts';
import { createCpuSession, prepare, probsOfRows, runPreparedLoop } from '../../bench/inprocess.ts';
import { startNaive } from '../../bench/processes.ts';
import { openLocal } from '../../cli/wiring.ts';
import { DEFAULT_BATCHING } from '../../core/batch.ts';
import { probsOf } from '../../core/result.ts';
import type { Comparison } from '../../core/types.ts';
import { comparisonToWire, predictionFromWire } from '../../protocol/wire.ts';
import { loadBundle } from '../../runtime/node/index.ts';
import { openBundle } from '../../training/onnx-eval.ts';
import { FIXTURE_LABEL_TOKEN_IDS, writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient } from '../helpers/grpc-client.ts';
import { referenceFor, type Reference } from '../helpers/reference.ts';
import { readArena } from '../helpers/shared-data.ts';

const TOL = 1e-6;
const work = mkdtempSync(join(tmpdir(), 'pairpref-label-token-'));
const dir = writeFixtureBundle(join(work, 'bundle'), { head: 'label-token', preference: { truncation: { max_length: 128 } } }).dir;
let rows: Comparison[];
let reference: Reference;
let want: (readonly number[])[];

function assertClose(got: readonly number[], expected: readonly number[], what: string): void {
  for (let k = 0; k < 3; k++) assert.ok(Math.abs(got[k]! - expected[k]!) <= TOL, `${what}: [${got.join(', ')}] vs reference [${expected.join(', ')}]`);
}

before(async () => {
  // Rows of different lengths, so batches are padded and the head must read each row's own last position.
  rows = [...(await readArena('alpaca-pairs-dev.csv.gz', 12)), { id: 'short', kind: 'turns', prompt: ['hi'], response_a: ['a'], response_b: ['b'] }];
  reference = await referenceFor(dir);
  want = [];
  for (const r of rows) want.push(await reference.score(r));
  // The fixture is a label-token graph: a wrong head would read other logits, not fail loudly.
  assert.deepEqual(loadBundle(dir).config.head, { kind: 'label-token', output: 'logits', token_ids: [...FIXTURE_LABEL_TOKEN_IDS] });
});

after(async () => {
  await reference.release();
  rmSync(work, { recursive: true, force: true });
});

describe('label-token bundle', () => {
  test('in-process engine (pairpref score/eval --model)', async () => {
    const local = await openLocal({ modelDir: dir, devices: 'cpu', preprocessThreads: 0 });
    try {
      const got = [];
      for await (const p of local.scoreStream(rows, { ordered: true, window: 8 })) got.push(p);
      assert.equal(got.length, rows.length);
      got.forEach((p, i) => {
        assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
        assertClose(probsOf(p), want[i]!, `row ${p.id}`);
      });
    } finally {
      await local.close();
    }
  });

  test("bench: the limit loop and the peer cross-check read the label tokens", async () => {
    const bundle = loadBundle(dir);
    const session = await createCpuSession(bundle, 1);
    try {
      const encoded = rows.map((r) => bundle.preprocessor.encode(r));
      const plan = sortedBatches(encoded, DEFAULT_BATCHING);
      const loop = await runPreparedLoop(session, prepare(session, plan, bundle.config), bundle.config);
      assert.equal(loop.rows, rows.length);
      const probs = await probsOfRows(session, encoded, bundle.config);
      probs.forEach((p, i) => assertClose(p, want[i]!, `row ${rows[i]!.id}`));
    } finally {
      await session.release();
    }
  });

  test('bench: the naive peer server', { timeout: 120_000 }, async () => {
    const naive = await startNaive(dir, 1);
    const client = testClient(naive.address);
    try {
      const got = await client.score(rows.map(comparisonToWire));
      got.map(predictionFromWire).forEach((p, i) => {
        assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
        assertClose(probsOf(p), want[i]!, `row ${p.id}`);
      });
    } finally {
      client.close();
      await naive.stop();
    }
  });

  test("training's evaluation (openBundle, as the pipeline scores dev)", async () => {
    const bundle = await openBundle(dir, { threads: 1 });
    try {
      const probs = await bundle.score(rows.map((r) => bundle.preprocessor.encode(r)));
      probs.forEach((p, i) => assertClose(p, want[i]!, `row ${rows[i]!.id}`));
    } finally {
      await bundle.close();
    }
  });
});
