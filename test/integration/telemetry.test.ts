// `pairpref serve --otlp-endpoint`: a real child process exports its spans over OTLP/HTTP to a
// receiver this test starts on loopback. The gRPC server span must come from
// @opentelemetry/instrumentation-grpc (proof that its ESM loader hook took effect under tsx), continue
// the client's W3C traceparent, and hold the engine's tokenize / queue / inference spans.
import { credentials, Metadata } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { PairwisePreferenceClient, type Prediction, type ScoreResponse } from '../../proto/gen/pairpref/v1/preference.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';
import { killChildren, spawnServe } from '../helpers/serve-child.ts';

after(killChildren);

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  status?: { code?: number };
}
interface OtlpExport {
  resourceSpans: Array<{
    resource?: { attributes?: Array<{ key: string; value: OtlpValue }> };
    scopeSpans: Array<{ scope?: { name?: string }; spans: OtlpSpan[] }>;
  }>;
}

interface Span extends OtlpSpan {
  scope: string;
  attr: Record<string, string | number | boolean>;
  start: bigint;
  end: bigint;
}

const value = (v: OtlpValue): string | number | boolean => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? NaN));

/** A plain OTLP/HTTP receiver: POST /v1/traces, JSON (what exporter-trace-otlp-http sends), gzip or not. */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; contentTypes: Set<string>; services: Set<string>; close(): void }> {
  const spans: Span[] = [];
  const contentTypes = new Set<string>();
  const services = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const type = String(req.headers['content-type']);
      contentTypes.add(type);
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (!type.startsWith('application/json')) return void res.writeHead(415).end(); // asserted below
      const data = JSON.parse(body.toString('utf8')) as OtlpExport;
      for (const rs of data.resourceSpans) {
        for (const a of rs.resource?.attributes ?? []) if (a.key === 'service.name') services.add(String(value(a.value)));
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            const attr = Object.fromEntries((s.attributes ?? []).map((a) => [a.key, value(a.value)]));
            spans.push({ ...s, scope: ss.scope?.name ?? '', attr, start: BigInt(s.startTimeUnixNano), end: BigInt(s.endTimeUnixNano) });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, contentTypes, services, close: () => server.close() };
}

/** A Score call with metadata; resolves with the response and the response headers. */
function scoreWith(client: PairwisePreferenceClient, md: Metadata, rows: ReturnType<typeof wire>[], swapTta: boolean): Promise<{ res: ScoreResponse; headers: Metadata }> {
  return new Promise((resolve, reject) => {
    let headers = new Metadata();
    const call = client.score({ comparisons: rows, options: { swapTta } }, md, (err, res) => (err ? reject(err) : resolve({ res, headers })));
    call.on('metadata', (h: Metadata) => (headers = h));
  });
}

function streamWith(client: PairwisePreferenceClient, md: Metadata, rows: ReturnType<typeof wire>[]): Promise<Prediction[]> {
  return new Promise((resolve, reject) => {
    const out: Prediction[] = [];
    const call = client.scoreStream(md);
    call.on('data', (p: Prediction) => out.push(p));
    call.on('error', reject);
    call.on('end', () => resolve(out));
    for (const c of rows) call.write({ comparison: c, options: { swapTta: false } });
    call.end();
  });
}

const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
const ms = (ns: bigint): number => Number(ns) / 1e6;

test('serve --otlp-endpoint: a grpc-instrumentation server span per call, continuing traceparent, with tokenize, queue and inference children', async () => {
  const receiver = await otlpReceiver();
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  // Default batching delay (5 s) is kept: the spans must still arrive, flushed on the SIGTERM exit.
  const child = spawnServe(['--model', dir, '--otlp-endpoint', receiver.url, '--drain-grace-ms', '0', '--log-level', 'debug', '--log-format', 'json']);
  try {
    const address = (await child.waitFor(/serving \S+ \S+ on (\S+) \(devices/))[1]!;
    await child.waitFor(/tracing: OTLP\/HTTP to http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
    const client = new PairwisePreferenceClient(address, credentials.createInsecure());
    const traceId = hex(32);
    const clientSpanId = hex(16);
    const md = new Metadata();
    md.set('traceparent', `00-${traceId}-${clientSpanId}-01`);
    md.set('x-request-id', 'req-telemetry-1');
    const rows = [0, 1, 2].map((i) => wire({ id: `t${i}`, prompt: ['q'], responseA: ['a'.repeat(5 + 7 * i)], responseB: ['b'] }));
    const first = await scoreWith(client, md, rows, true);
    assert.equal(first.res.predictions.length, 3);
    assert.ok(first.res.predictions.every((p) => !p.error), JSON.stringify(first.res.predictions));
    assert.deepEqual(first.headers.get('x-request-id'), ['req-telemetry-1']);
    // No traceparent and no request id: a new trace, and an id the server made.
    const second = await scoreWith(client, new Metadata(), [wire({ id: 'solo', prompt: ['q'], responseA: ['a'], responseB: ['b'] })], false);
    const generated = String(second.headers.get('x-request-id')[0]);
    assert.match(generated, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const streamMd = new Metadata();
    streamMd.set('x-request-id', 'req-stream-1');
    assert.equal((await streamWith(client, streamMd, [wire({ id: 's0', prompt: ['q'], responseA: ['a'], responseB: ['b'] }), wire({ id: 's1', prompt: ['q'], responseA: ['aa'], responseB: ['b'] })])).length, 2);
    client.close();

    child.proc.kill('SIGTERM');
    const { code } = await child.exited;
    assert.equal(code, 0, child.log());
    assert.deepEqual([...receiver.contentTypes], ['application/json'], 'exporter-trace-otlp-http sends OTLP/JSON');
    assert.deepEqual([...receiver.services], ['pairpref']);
    const spans = receiver.spans;
    const names = spans.map((s) => s.name).sort().join(', ');

    // The server span of the first call: from the grpc instrumentation, in the client's trace.
    const server = spans.find((s) => s.name === 'grpc.pairpref.v1.PairwisePreference/Score' && s.traceId === traceId);
    assert.ok(server, `no server span in the client's trace; spans: ${names}`);
    assert.equal(server.scope, '@opentelemetry/instrumentation-grpc');
    assert.equal(server.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(server.parentSpanId, clientSpanId, 'the client span of traceparent is its parent');
    assert.equal(server.attr['rpc.method'], 'Score');
    assert.equal(server.attr['pairpref.request_id'], 'req-telemetry-1');
    assert.equal(server.attr['pairpref.rows'], 3);
    assert.equal(server.attr['pairpref.swap_tta'], true);

    const children = spans.filter((s) => s.parentSpanId === server.spanId);
    for (const c of children) {
      assert.equal(c.traceId, traceId);
      assert.equal(c.scope, 'pairpref');
      assert.ok(c.start >= server.start - 1_000_000n && c.end <= server.end + 1_000_000n, `${c.name} lies within the call (1 ms slack)`);
      assert.ok(c.end >= c.start);
    }
    const tokenize = children.filter((s) => s.name === 'pairpref.tokenize');
    const queue = children.filter((s) => s.name === 'pairpref.queue');
    const inference = children.filter((s) => s.name === 'pairpref.inference');
    assert.equal(tokenize.length, 1, names);
    assert.equal(queue.length, 1, names);
    assert.ok(inference.length >= 1, names);
    assert.equal(tokenize[0]!.attr['pairpref.rows'], 3);
    // Swap TTA: every row runs twice, and the call's inference spans account for all of them.
    assert.equal(queue[0]!.attr['pairpref.rows'], 6);
    assert.equal(queue[0]!.attr['pairpref.batches'], inference.length);
    assert.equal(inference.reduce((n, s) => n + Number(s.attr['pairpref.rows']), 0), 6);
    for (const s of inference) {
      assert.equal(s.attr['pairpref.device'], 'cpu');
      assert.equal(s.attr['pairpref.batch.attempt'], 0);
      assert.ok(Number(s.attr['pairpref.batch.rows']) >= Number(s.attr['pairpref.rows']));
      assert.ok(Number(s.attr['pairpref.batch.tokens']) > 0);
      assert.ok(Number(s.attr['pairpref.batch.padded_tokens']) >= Number(s.attr['pairpref.batch.tokens']));
      assert.equal(typeof s.attr['pairpref.batch.id'], 'number');
      assert.notEqual(s.status?.code, 2, 'not an error');
    }
    // The stages follow each other: tokenized, then queued, then run (1 ms slack for clock rounding).
    assert.ok(ms(queue[0]!.start) >= ms(tokenize[0]!.end) - 1, 'queueing starts after tokenizing');
    for (const s of inference) assert.ok(ms(s.start) >= ms(queue[0]!.start) - 1, 'batches start after queueing starts');
    assert.ok(ms(queue[0]!.end) <= Math.max(...inference.map((s) => ms(s.start))) + 1, 'queueing ends when the last batch starts');

    // The second call: its own trace (no traceparent), with the generated request id.
    const solo = spans.find((s) => s.name === 'grpc.pairpref.v1.PairwisePreference/Score' && s.attr['pairpref.request_id'] === generated);
    assert.ok(solo, names);
    assert.notEqual(solo.traceId, traceId);
    assert.ok(!solo.parentSpanId, 'a root span');
    assert.equal(spans.filter((s) => s.parentSpanId === solo.spanId && s.name === 'pairpref.inference').reduce((n, s) => n + Number(s.attr['pairpref.rows']), 0), 1);

    // A stream: one server span; each row's tokenize span under it.
    const stream = spans.find((s) => s.name === 'grpc.pairpref.v1.PairwisePreference/ScoreStream');
    assert.ok(stream, names);
    assert.equal(stream.attr['pairpref.request_id'], 'req-stream-1');
    assert.equal(stream.attr['pairpref.rows'], 2);
    assert.equal(spans.filter((s) => s.parentSpanId === stream.spanId && s.name === 'pairpref.tokenize').length, 2);
    assert.equal(spans.filter((s) => s.parentSpanId === stream.spanId && s.name === 'pairpref.inference').reduce((n, s) => n + Number(s.attr['pairpref.rows']), 0), 2);

    // Logs and traces meet: the call's JSON log lines carry its request id and trace id.
    const lines = child.log().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    const about = lines.filter((l) => l['request_id'] === 'req-telemetry-1');
    assert.ok(about.length >= 1, child.log());
    for (const l of about) assert.equal(l['trace_id'], traceId);
  } finally {
    receiver.close();
  }
});

test('serve --otlp-endpoint refuses a URL it cannot use, in one line', async () => {
  const child = spawnServe(['--model', '/nonexistent', '--otlp-endpoint', 'collector:4318']);
  const { code } = await child.exited;
  assert.equal(code, 1);
  assert.equal(child.log(), 'pairpref: --otlp-endpoint: "collector:4318" must be an http:// or https:// URL (OTLP/HTTP)\n');
});

test('a collector that cannot be reached is a warning in the log, and serving goes on', async () => {
  // A port nothing listens on; spans are exported every 100 ms (the child inherits the variable).
  const closed = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  process.env['OTEL_BSP_SCHEDULE_DELAY'] = '100';
  let child;
  try {
    child = spawnServe(['--model', dir, '--otlp-endpoint', `http://127.0.0.1:${closed}`, '--drain-grace-ms', '0']);
  } finally {
    delete process.env['OTEL_BSP_SCHEDULE_DELAY'];
  }
  const address = (await child.waitFor(/serving \S+ \S+ on (\S+) \(devices/))[1]!;
  const client = new PairwisePreferenceClient(address, credentials.createInsecure());
  const first = await scoreWith(client, new Metadata(), [wire({ id: 'a', prompt: ['q'], responseA: ['a'], responseB: ['b'] })], false);
  assert.equal(first.res.predictions.length, 1);
  await child.waitFor(/ WARN  tracing: .*ECONNREFUSED/, 30_000);
  const again = await scoreWith(client, new Metadata(), [wire({ id: 'b', prompt: ['q'], responseA: ['a'], responseB: ['b'] })], false);
  assert.ok(!again.res.predictions[0]!.error);
  client.close();
  child.proc.kill('SIGTERM');
  assert.equal((await child.exited).code, 0, child.log());
});
