// --devices webgpu (onnxruntime-node's bundled WebGPU provider, Dawn on Vulkan) must give the
// same probabilities as the CPU provider. On hosts without a GPU, Debian's chromium supplies a
// software Vulkan driver (SwiftShader), selected with VK_ICD_FILENAMES.
import { credentials } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readArena } from '../helpers/shared-data.ts';
import { LABELS, type Comparison } from '../../core/types.ts';
import { PairwisePreferenceClient, type ModelInfo, type Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import { loadNodeScorer, serveModel } from '../../cli/wiring.ts';
import { probsOf } from '../../core/result.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const NUM_ROWS = 20;
const TOL = 1e-4;

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

test('--devices webgpu gives the same probabilities as cpu', { timeout: 300_000 }, async () => {
  if (process.env['VK_ICD_FILENAMES'] === undefined) {
    assert.ok(existsSync(SWIFTSHADER_ICD), `${SWIFTSHADER_ICD} is missing: apt-get install chromium (its SwiftShader Vulkan driver backs WebGPU on hosts without a GPU)`);
    // Set before the device workers start: worker threads share this process's environment.
    process.env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pairpref-webgpu-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFixtureBundle(dir);
  const rows = await readArena('alpaca-pairs-dev.csv.gz', NUM_ROWS);

  let server: RunningServer;
  try {
    server = await serveModel({ modelDir: dir, host: '127.0.0.1', port: 0, devices: 'webgpu' });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const hint = /adapter/i.test(msg)
      ? `\nDawn found no Vulkan adapter. It dlopens libvulkan.so.1, which Debian's chromium ships only in /usr/lib/chromium ` +
        `(not on the loader path): the server must load it from there, or the host needs Debian's libvulkan1 or ` +
        `LD_LIBRARY_PATH=/usr/lib/chromium. VK_ICD_FILENAMES=${process.env['VK_ICD_FILENAMES']}`
      : '';
    assert.fail(`starting the server with --devices webgpu failed: ${msg}${hint}`);
  }
  cleanup.push(async () => void (await server.close()));
  const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
  cleanup.push(() => client.close());

  const info = await new Promise<ModelInfo>((resolve, reject) => client.getModelInfo({}, (err, res) => (err ? reject(err) : resolve(res))));
  assert.deepEqual(
    info.devices.map((d) => [d.name, d.executionProvider]),
    [['webgpu', 'webgpu']],
  );

  const predictions = await new Promise<Prediction[]>((resolve, reject) =>
    client.score(
      {
        comparisons: rows.map((r) => ({ id: r.id, prompt: [], responseA: [], responseB: [], raw: { prompt: r.prompt, responseA: r.response_a, responseB: r.response_b } })),
        options: { swapTta: false },
      },
      (err, res) => (err ? reject(err) : resolve(res.predictions)),
    ),
  );

  const cpu = await loadNodeScorer({ modelDir: dir, devices: 'cpu' });
  cleanup.push(() => cpu.close());
  const expected = await cpu.score(rows);

  assert.equal(predictions.length, rows.length);
  predictions.forEach((p, i) => {
    const want = expected[i]!;
    assert.equal(p.id, rows[i]!.id);
    assert.equal(p.error, undefined, `row ${p.id}: ${p.error?.message}`);
    assert.equal(want.error, undefined, `cpu row ${want.id}: ${want.error?.message}`);
    const got = [p.winnerModelA, p.winnerModelB, p.winnerTie];
    assert.ok(Math.abs(got[0]! + got[1]! + got[2]! - 1) <= 1e-6, `row ${p.id}: probabilities sum to ${got[0]! + got[1]! + got[2]!}`);
    for (let k = 0; k < 3; k++) {
      assert.ok(Math.abs(got[k]! - probsOf(want)[k]!) <= TOL, `row ${p.id} ${LABELS[k]}: webgpu ${got[k]} vs cpu ${probsOf(want)[k]}`);
    }
    assert.equal(p.numTokens, want.num_tokens);
  });
});
