// --metrics-port: Prometheus text with row outcomes, latency and per-device work.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';

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
