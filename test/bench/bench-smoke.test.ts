// End to end: `pairpref bench --json` on tiny settings (fixture model, 50 rows, 2 clients, the
// naive peer; the fixture's graph is not one training/export.py writes, so the PyTorch peer is pointed
// at a missing checkpoint; test/bench/torch-peer-onnx.test.ts runs it on models/default). Checks shape and sanity, not speed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatReport } from '../../bench/report.ts';
import type { BenchResult, ServerRun } from '../../bench/run.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pairpref-bench-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function positive(x: unknown, what: string): void {
  assert.equal(typeof x, 'number', `${what} is a number`);
  assert.ok(Number.isFinite(x) && (x as number) > 0, `${what} = ${String(x)} is finite and > 0`);
}

function checkRun(r: ServerRun, what: string): void {
  positive(r.rows_per_s, `${what} rows_per_s`);
  positive(r.tokens_per_s, `${what} tokens_per_s`);
  assert.equal(r.errors, 0, `${what} had no row errors`);
  const l = r.latency;
  assert.ok(l.p50_ms > 0 && l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms, `${what} percentiles ordered: ${JSON.stringify(l)}`);
  const shares = Object.values(r.busy_share);
  assert.ok(shares.length >= 1, `${what} reports busy share per device`);
  for (const s of shares) assert.ok(s > 0 && s <= 1.05, `${what} busy share ${s} in (0, 1]`);
}

test('pairpref bench --json runs end to end on the fixture and reports every field', { timeout: 240_000 }, () => {
  const model = writeFixtureBundle(join(dir, 'fixture'), { preference: { truncation: { max_length: 512 } } }).dir;
  const r = spawnSync(
    process.execPath,
    ['bin/pairpref.mjs', 'bench', '--model', model, '--rows', '50', '--clients', '2', '--naive-clients', '4', '--peer-rows', '30', '--devices', 'cpu;cpu,cpu', '--torch-checkpoint', join(dir, 'absent.pt'), '--tokenizer-workers', '1,2', '--json'],
    { cwd: ROOT, encoding: 'utf8', timeout: 230_000 },
  );
  assert.equal(r.status, 0, `bench exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one JSON object on stdout');
  const b = JSON.parse(lines[0]!) as BenchResult;

  for (const k of ['model', 'machine', 'settings', 'tokenization', 'tokenization_workers', 'throughput', 'pairpref', 'limit', 'fixed_padding', 'naive', 'pytorch', 'latency', 'scaling', 'webgpu_adapter', 'ratios', 'targets', 'notes']) {
    assert.ok(k in b, `JSON has ${k}`);
  }
  assert.equal(b.model.name, 'fixture');
  assert.ok(b.notes.some((n) => n.includes('fixture')), 'says the figures come from the fixture model');
  assert.equal(b.throughput.length, 2, 'one throughput row per default input');
  for (const t of b.throughput) {
    assert.equal(t.rows, 50);
    checkRun(t.pairpref, `throughput ${t.input}`);
    positive(t.limit_rows_per_s, `limit ${t.input}`);
  }
  positive(b.pairpref.peak_rss_mib, 'peak RSS');
  positive(b.limit.rows_per_s, 'limit rows/s');
  assert.equal(b.settings.gpu_host, false);
  assert.equal(b.settings.limit_device, 'cpu');
  assert.equal(b.limit.device, 'cpu');
  assert.equal(b.webgpu_adapter, null, 'no webgpu list, no adapter chosen');
  // Tokenization through the engine's pool, per worker count asked for.
  assert.deepEqual(b.tokenization_workers.by_workers.map((w) => w.workers), [1, 2]);
  for (const w of b.tokenization_workers.by_workers) {
    positive(w.rows_per_s, `tokenization with ${w.workers} workers`);
    assert.equal(w.rows, 50);
    assert.equal(w.errors, 0);
  }
  // Fixed padding on the multi-turn split (rows spread over the file), with its length spread.
  assert.equal(b.fixed_padding.input, 'hh-harmless-test');
  assert.equal(b.fixed_padding.rows, 50);
  assert.match(b.fixed_padding.sample, /evenly spaced/);
  assert.ok(b.fixed_padding.p10_tokens <= b.fixed_padding.p50_tokens && b.fixed_padding.p50_tokens <= b.fixed_padding.p90_tokens);
  assert.ok(b.notes.some((n) => n.includes('vs_fixed_padding is measured on hh-harmless-test')));
  positive(b.fixed_padding.fixed_rows_per_s, 'fixed padding rows/s');
  positive(b.fixed_padding.dynamic_rows_per_s, 'dynamic padding rows/s');
  assert.ok(b.fixed_padding.fixed_padded_tokens >= b.fixed_padding.dynamic_padded_tokens, 'fixed padding never pads less');
  assert.ok('naive_rows_per_s' in b.naive, 'the naive peer ran');
  if ('naive_rows_per_s' in b.naive) {
    assert.equal(b.naive.device, 'cpu', 'the naive peer runs on the headline device');
    positive(b.naive.naive_rows_per_s, 'naive rows/s');
    positive(b.naive.pairpref_unary_rows_per_s, 'pairpref unary rows/s');
  }
  assert.ok('skipped' in b.pytorch && b.pytorch.skipped.includes('absent.pt does not exist'), `PyTorch peer says why it did not run: ${JSON.stringify(b.pytorch)}`);
  assert.equal(b.ratios.vs_pytorch, null);
  assert.equal(b.ratios.vs_pytorch_device, null);

  for (const k of ['vs_limit', 'vs_naive', 'vs_fixed_padding'] as const) positive(b.ratios[k], `ratios.${k}`);
  assert.equal(b.targets.vs_pytorch.met, null, 'an unmeasured target is neither met nor failed');
  assert.match(b.targets.vs_pytorch.reason ?? '', /absent\.pt does not exist/, 'and says why');
  assert.equal(typeof b.targets.vs_limit.met, 'boolean');
  assert.deepEqual(Object.keys(b.targets).sort(), ['half_peak_p99_over_p50', 'vs_limit', 'vs_naive', 'vs_pytorch']);
  for (const t of Object.values(b.targets)) if (t.met === false) assert.ok(t.reason && t.reason.length > 20, `an unmet target carries its measured reason: ${JSON.stringify(t)}`);

  const lat = b.latency;
  positive(lat.half_peak_rate, 'half-peak rate');
  assert.ok(lat.half_peak.p50_ms <= lat.half_peak.p99_ms, 'half-peak percentiles ordered');
  positive(lat.p99_over_p50, 'p99/p50');
  positive(lat.single_row_unary.p50_ms, 'single-row unary p50');

  // The headline ratios are the raw figures divided (rounded to 3 places), and each target's flag follows its value.
  const near = (got: number | null, want: number, what: string): void =>
    assert.ok(got !== null && Math.abs(got - want) <= 0.01 * want + 1e-3, `${what}: ${got} vs ${want}`);
  for (const t of b.throughput) near(t.vs_limit, t.pairpref.rows_per_s / t.limit_rows_per_s, `vs_limit ${t.input}`);
  assert.equal(b.ratios.vs_limit, Math.min(...b.throughput.map((t) => t.vs_limit)), 'vs_limit is the worst input');
  if ('naive_rows_per_s' in b.naive) near(b.ratios.vs_naive, b.naive.pairpref_unary_rows_per_s / b.naive.naive_rows_per_s, 'vs_naive');
  near(b.ratios.vs_fixed_padding, b.fixed_padding.dynamic_rows_per_s / b.fixed_padding.fixed_rows_per_s, 'vs_fixed_padding');
  assert.equal(b.targets.vs_limit.met, b.ratios.vs_limit >= 0.8);
  assert.equal(b.targets.vs_limit.goal_met, b.ratios.vs_limit >= 0.9);
  assert.equal(b.targets.vs_naive.target, '>= 1.5 (CPU)');
  assert.equal(b.targets.vs_naive.met, b.ratios.vs_naive! >= 1.5);
  assert.equal(b.targets.half_peak_p99_over_p50.met, lat.p99_over_p50 <= 2.5);
  // The table (the default output) names the worst input on the limit row with that input's own figures.
  const worst = b.throughput.find((t) => t.vs_limit === b.ratios.vs_limit)!;
  assert.match(formatReport(b), new RegExp(`\\| limit [^\n]*${worst.input}, the worst input\\) \\| ${worst.pairpref.rows_per_s.toFixed(1)} rows/s \\| ${worst.limit_rows_per_s.toFixed(1)} rows/s`));

  assert.deepEqual(b.scaling.map((s) => s.devices), ['cpu', 'cpu,cpu']);
  for (const s of b.scaling) checkRun(s, `scaling ${s.devices}`);
  assert.deepEqual(Object.keys(b.scaling[1]!.busy_share).sort(), ['cpu:0', 'cpu:1'], 'both sessions report busy time');
  assert.deepEqual(Object.keys(b.scaling[1]!.tokens_per_device).sort(), ['cpu:0', 'cpu:1'], 'and their tokens (the two-GPU split check reads them)');
});
