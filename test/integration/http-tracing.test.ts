// Tracing on the HTTP port: with an SDK registered (here in-process, spans kept in memory), a call on
// --http-port gets a SERVER span named like the RPC that continues the caller's W3C traceparent
// header and holds the engine's tokenize / queue / inference spans, as the grpc instrumentation's span
// does on the gRPC port (test/integration/telemetry.test.ts, over OTLP from a child process).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { serveModel } from '../../cli/wiring.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-http-trace-'));
after(() => rmSync(work, { recursive: true, force: true }));

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

test('a call on the HTTP port: a SERVER span continuing traceparent, with the request id, protocol and status, and the engine spans under it', async () => {
  const server = await serveModel({ modelDir: writeFixtureBundle(join(work, 'bundle')).dir, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0 });
  try {
    const base = `http://127.0.0.1:${server.httpPort}/pairpref.v1.PairwisePreference`;
    const traceId = randomBytes(16).toString('hex');
    const parent = randomBytes(8).toString('hex');
    const rows = [
      { id: 'a', prompt: ['hi'], response_a: ['hello'], response_b: ['hey'] },
      { id: 'b', prompt: ['2+2?'], response_a: ['4'], response_b: ['5'] },
    ];
    const res = await fetch(`${base}/Score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parent}-01`, 'x-request-id': 'traced-1' },
      body: JSON.stringify({ comparisons: rows }),
    });
    assert.equal(res.status, 200);
    const denied = await fetch(`${base}/Score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"comparisons": 7}' });
    assert.equal(denied.status, 400);

    const spans = exporter.getFinishedSpans();
    const serverSpan = spans.find((s) => s.name === 'pairpref.v1.PairwisePreference/Score' && s.spanContext().traceId === traceId);
    assert.ok(serverSpan, `no server span in the caller's trace: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(serverSpan.kind, SpanKind.SERVER);
    assert.equal(serverSpan.parentSpanContext?.spanId, parent, 'the traceparent span is its parent');
    assert.equal(serverSpan.attributes['pairpref.request_id'], 'traced-1');
    assert.equal(serverSpan.attributes['pairpref.protocol'], 'connect');
    assert.equal(serverSpan.attributes['rpc.method'], 'Score');
    assert.equal(serverSpan.attributes['rpc.grpc.status_code'], 0);
    const children = spans.filter((s) => s.parentSpanContext?.spanId === serverSpan.spanContext().spanId).map((s) => s.name);
    for (const name of ['pairpref.tokenize', 'pairpref.queue', 'pairpref.inference']) assert.ok(children.includes(name), `no ${name} under the server span: ${children.join(', ')}`);

    const failed = spans.find((s) => s.name === 'pairpref.v1.PairwisePreference/Score' && s.attributes['rpc.grpc.status_code'] === 3);
    assert.ok(failed, 'a call refused before its handler has a span too');
    assert.equal(failed.status.code, SpanStatusCode.ERROR);
  } finally {
    await server.close();
  }
});
