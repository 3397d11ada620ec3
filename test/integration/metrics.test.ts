// --metrics-port: Prometheus text with row outcomes, latency and per-device work; calls by method and
// status code; the stage histograms (tokenization, queue, inference, batch rows and tokens).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { credentials, Metadata } from '@grpc/grpc-js';
import { loadNodeScorer, serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient } from '../../proto/gen/pairpref/v1/preference.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';
import { freePort, sample } from '../helpers/net.ts';

test('metrics count rows by outcome and report device work', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', metricsPort: 0 });
  const client = testClient(server.address);
  try {
    assert.ok(server.metricsPort && server.metricsPort > 0);
    const rows = Array.from({ length: 5 }, (_, i) => wire({ id: `r${i}`, prompt: ['q'], responseA: ['a'.repeat(i + 1)], responseB: ['b'] }));
    rows.push(wire({ id: 'bad', raw: { prompt: 'x', responseA: '[]', responseB: '[]' } }));
    await client.score(rows);
    const res = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^pairpref_rows_total\{outcome="ok"\} 5$/m);
    assert.match(text, /^pairpref_rows_total\{outcome="error_3"\} 1$/m);
    assert.match(text, /^pairpref_row_latency_seconds_count 6$/m);
    assert.match(text, /^pairpref_device_padded_tokens\{device="cpu"\} [1-9]\d*$/m);
    // Per-device work (what `pairpref bench` reads for busy shares): the 5 good rows ran on cpu.
    assert.match(text, /^pairpref_device_rows\{device="cpu"\} 5$/m);
    assert.match(text, /^pairpref_device_batches\{device="cpu"\} [1-5]$/m);
    assert.match(text, /^pairpref_device_tokens\{device="cpu"\} [1-9]\d*$/m);
    const busy = /^pairpref_device_busy_seconds\{device="cpu"\} (\S+)$/m.exec(text);
    assert.ok(busy && Number(busy[1]) > 0, `busy seconds reported: ${busy?.[1]}`);
    assert.equal((await fetch(`http://127.0.0.1:${server.metricsPort}/other`)).status, 404);
  } finally {
    client.close();
    await server.close();
  }
});

test('stage histograms and call counts follow the work done (te_* / nv_inference_* shapes)', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', metricsPort: 0, maxRowsPerCall: 8 });
  const client = testClient(server.address);
  try {
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    const good = Array.from({ length: 5 }, (_, i) => wire({ id: `r${i}`, prompt: ['q'], responseA: ['a'.repeat(3 * i + 1)], responseB: ['b'] }));
    const bad = wire({ id: 'bad', raw: { prompt: 'x', responseA: '[]', responseB: '[]' } });
    // Swap TTA: each good row runs twice; the bad row is tokenized (and refused there), never run.
    await client.score([...good, bad], true);
    // A call over --max-rows-per-call: INVALID_ARGUMENT before any work.
    await assert.rejects(client.score(Array.from({ length: 9 }, (_, i) => wire({ id: `x${i}`, prompt: ['q'], responseA: ['a'], responseB: ['b'] }))), /INVALID_ARGUMENT|limit is 8/);
    assert.equal((await client.scoreStream([wire({ id: 's', prompt: ['q'], responseA: ['a'], responseB: ['b'] })])).length, 1);
    await client.modelInfo();
    const text = await scrape();

    // Calls by method and status code.
    assert.equal(sample(text, 'pairpref_requests_total{method="Score",code="OK"}'), 1, text);
    assert.equal(sample(text, 'pairpref_requests_total{method="Score",code="INVALID_ARGUMENT"}'), 1);
    assert.equal(sample(text, 'pairpref_requests_total{method="ScoreStream",code="OK"}'), 1);
    assert.equal(sample(text, 'pairpref_requests_total{method="GetModelInfo",code="OK"}'), 1);
    assert.equal(sample(text, 'pairpref_request_duration_seconds_count{method="Score"}'), 2);
    assert.ok(sample(text, 'pairpref_request_duration_seconds_sum{method="Score"}')! > 0);

    // Rows tokenized: 6 in the first call (the bad one too), 1 in the stream.
    assert.equal(sample(text, 'pairpref_tokenization_duration_seconds_count'), 7);
    assert.ok(sample(text, 'pairpref_tokenization_duration_seconds_sum')! > 0);
    // Rows run: 5 x 2 (swap TTA) + 1 from the stream, each queued once and in one batch.
    assert.equal(sample(text, 'pairpref_queue_duration_seconds_count'), 11);
    assert.equal(sample(text, 'pairpref_batch_rows_sum{device="cpu"}'), 11);
    // Batches and tokens agree with the per-device totals the scheduler keeps.
    const batches = sample(text, 'pairpref_device_batches{device="cpu"}');
    assert.ok(batches !== null && batches >= 2, `at least the call's and the stream's batch: ${batches}`);
    assert.equal(sample(text, 'pairpref_batch_rows_count{device="cpu"}'), batches);
    assert.equal(sample(text, 'pairpref_inference_duration_seconds_count{device="cpu"}'), batches);
    assert.equal(sample(text, 'pairpref_batch_tokens_sum{device="cpu"}'), sample(text, 'pairpref_device_tokens{device="cpu"}'));
    assert.equal(sample(text, 'pairpref_batch_tokens_count{device="cpu"}'), batches);
    // Every batch took some time, all of it on the device, and no longer than the device was busy.
    const inferenceSum = sample(text, 'pairpref_inference_duration_seconds_sum{device="cpu"}')!;
    assert.ok(inferenceSum > 0 && inferenceSum <= sample(text, 'pairpref_device_busy_seconds{device="cpu"}')! + 1e-6, text);
    // Buckets are cumulative and end at +Inf = count.
    assert.equal(sample(text, 'pairpref_batch_rows_bucket{le="+Inf",device="cpu"}'), batches);
    assert.equal(sample(text, 'pairpref_batch_rows_bucket{le="1024",device="cpu"}'), batches);
    // The existing names are still there.
    assert.equal(sample(text, 'pairpref_rows_total{outcome="ok"}'), 6);
    assert.notEqual(sample(text, 'pairpref_backlog_tokens{stage="batch"}'), null);
  } finally {
    client.close();
    await server.close();
  }
});

test('calls refused while the model loads, or without the bearer token, are counted by code', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  const port = await freePort();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  // The listener is up while load() runs: calls get UNAVAILABLE (and a token check first).
  const starting = startServer({ port, metricsPort: 0, authToken: 'secret-token', load: async () => (await gate, loadNodeScorer({ modelDir: dir, devices: 'cpu' })) });
  const client = testClient(`127.0.0.1:${port}`);
  const md = new Metadata();
  md.set('authorization', 'Bearer secret-token');
  const raw = new PairwisePreferenceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  let server: RunningServer | null = null;
  try {
    // waitForReady: the call waits for the listener startServer is binding, then meets the loading server.
    const ready = { waitForReady: true, deadline: Date.now() + 30_000 };
    await assert.rejects(new Promise((resolve, reject) => raw.getModelInfo({}, md, ready, (e, r) => (e ? reject(e) : resolve(r)))), /UNAVAILABLE: pairpref is loading its model/);
    await assert.rejects(client.modelInfo(), /UNAUTHENTICATED: missing or wrong bearer token/);
    release();
    server = await starting;
    await new Promise((resolve, reject) => raw.getModelInfo({}, md, (e, r) => (e ? reject(e) : resolve(r))));
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    assert.equal(sample(text, 'pairpref_requests_total{method="GetModelInfo",code="UNAVAILABLE"}'), 1, text);
    assert.equal(sample(text, 'pairpref_requests_total{method="GetModelInfo",code="UNAUTHENTICATED"}'), 1);
    assert.equal(sample(text, 'pairpref_requests_total{method="GetModelInfo",code="OK"}'), 1);
    assert.equal(sample(text, 'pairpref_rejected_total{reason="unauthenticated"}'), 1);
  } finally {
    release();
    client.close();
    raw.close();
    await (server ?? (await starting)).close();
  }
});
