// `pairpref serve --http-port`: PairwisePreference over Connect, gRPC-Web and JSON on the same engine
// as the gRPC port. Real servers on loopback (fixture model, CPU); clients as users have them: JSON
// through Node's fetch (what curl sends), connect-node's Connect and gRPC-Web transports, and grpc-js
// on the gRPC port for the reference. Then the gRPC port's machinery on this port: limits, the stream
// count both ports share, deadlines, the bearer token, TLS (HTTP/1.1 and HTTP/2, mutual), metrics,
// request ids, CORS, loading, health and the drain.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { credentials, Metadata } from '@grpc/grpc-js';
import { collectOrigins } from '../../cli/serve.ts';
import { loadNodeScorer, serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, type Comparison, type Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import { ComparisonSchema, PairwisePreference, type Prediction as EsPrediction } from '../../proto/gen-es/pairpref/v1/preference_pb.ts';
import type { RunningServer } from '../../server/server.ts';
import { startServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';
import { freePort, metric } from '../helpers/net.ts';
import { makePki, type Pki } from '../helpers/pki.ts';
import { readArena } from '../helpers/shared-data.ts';
import { waitUntil } from '../helpers/wait.ts';

const TOL = 1e-9;
const SERVICE = 'pairpref.v1.PairwisePreference';
const work = mkdtempSync(join(tmpdir(), 'pairpref-http-'));
const bundle = writeFixtureBundle(join(work, 'bundle'), { preference: { truncation: { max_length: 512 } } }).dir;
after(() => rmSync(work, { recursive: true, force: true }));

const dev = await readArena('alpaca-pairs-dev.csv.gz', 24);
const ROWS: Comparison[] = [
  ...dev.map((r) => wire({ id: r.id, raw: { prompt: r.prompt, responseA: r.response_a, responseB: r.response_b } })),
  wire({ id: 'multi', prompt: ['hi', 'and then?'], responseA: ['hello', 'then this'], responseB: ['hey', 'nothing'] }),
  wire({ id: 'emoji', prompt: ['😀 ok?'], responseA: ['yes 👍'], responseB: [''] }),
];
const BAD = wire({ id: 'bad-row', raw: { prompt: 'not a json list', responseA: '["a"]', responseB: '["b"]' } });

/** n rows of some tokenizing work each (for deadlines and drains). */
function synthRows(n: number, tag: string): Comparison[] {
  const words = 'the quick brown fox jumps over the lazy dog while answering a question about servers '.repeat(8);
  return Array.from({ length: n }, (_, i) => wire({ id: `${tag}-${i}`, prompt: [`question ${i}`], responseA: [words.slice(i % 40)], responseB: [words.slice(0, 200 + (i % 90))] }));
}

const probs = (p: { winnerModelA: number; winnerModelB: number; winnerTie: number }): number[] => [p.winnerModelA, p.winnerModelB, p.winnerTie];

/** Same ids, same errors, probabilities within TOL of the gRPC port's. */
function assertSame(got: ReadonlyArray<{ id: string; winnerModelA: number; winnerModelB: number; winnerTie: number; numTokens: number; error?: { code: number } | undefined }>, want: readonly Prediction[], what: string): void {
  const byId = new Map(got.map((g) => [g.id, g]));
  assert.equal(byId.size, want.length, `${what}: ${got.length} answers for ${want.length} rows`);
  let worst = 0;
  for (const w of want) {
    const g = byId.get(w.id);
    assert.ok(g, `${what}: no answer for ${w.id}`);
    assert.equal(g.error?.code, w.error?.code, `${what}: row ${w.id} error`);
    assert.equal(g.numTokens, w.numTokens, `${what}: row ${w.id} tokens`);
    for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(probs(g)[k]! - probs(w)[k]!));
  }
  assert.ok(worst <= TOL, `${what}: max |http - grpc| = ${worst} > ${TOL}`);
}

/** A comparison as the JSON mapping of the proto writes it (what curl users send). */
function json(c: Comparison): Record<string, unknown> {
  return c.raw ? { id: c.id, raw: { prompt: c.raw.prompt, response_a: c.raw.responseA, response_b: c.raw.responseB } } : { id: c.id, prompt: c.prompt, response_a: c.responseA, response_b: c.responseB };
}

async function postJson(base: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}/${SERVICE}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

type JsonPrediction = { id: string; winnerModelA?: number; winnerModelB?: number; winnerTie?: number; numTokens?: number; error?: { code: number } };
const fromJson = (p: JsonPrediction) => ({ id: p.id, winnerModelA: p.winnerModelA ?? 0, winnerModelB: p.winnerModelB ?? 0, winnerTie: p.winnerTie ?? 0, numTokens: p.numTokens ?? 0, error: p.error });

const esRows = (rows: readonly Comparison[]) => rows.map((c) => create(ComparisonSchema, { id: c.id, prompt: c.prompt, responseA: c.responseA, responseB: c.responseB, raw: c.raw }));

async function collect(it: AsyncIterable<EsPrediction>): Promise<EsPrediction[]> {
  const out: EsPrediction[] = [];
  for await (const p of it) out.push(p);
  return out;
}

async function connectCode(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error('the call succeeded');
}

function grpcBatchStream(address: string, rows: readonly Comparison[], swapTta = false, md = new Metadata()): Promise<Prediction[]> {
  const c = new PairwisePreferenceClient(address, credentials.createInsecure());
  return new Promise<Prediction[]>((resolve, reject) => {
    const out: Prediction[] = [];
    const call = c.scoreBatchStream({ comparisons: [...rows], options: { swapTta } }, md, { deadline: Date.now() + 60_000 });
    call.on('data', (p: Prediction) => out.push(p));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  }).finally(() => c.close());
}

const PAGE = 'http://page.test:5173';

describe('the HTTP port serves the gRPC port\'s service (fixture model)', () => {
  let server: RunningServer;
  let base: string;
  let reference: Prediction[];
  let referenceTta: Prediction[];
  let connect: Client<typeof PairwisePreference>;
  let grpcWeb: Client<typeof PairwisePreference>;

  before(async () => {
    // One row per batch: a row's float32 logits then do not depend on which rows it was padded with,
    // so every transport and RPC must give the very same numbers (1e-9 is a transport check).
    server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, batching: { maxBatchSize: 1 }, httpPort: 0, metricsPort: 0, maxRowsPerCall: 3000, httpCorsOrigins: [PAGE] });
    base = `http://127.0.0.1:${server.httpPort}`;
    const grpc = testClient(server.address);
    reference = await grpc.score([...ROWS, BAD]);
    referenceTta = await grpc.score(ROWS, true);
    grpc.close();
    connect = createClient(PairwisePreference, createConnectTransport({ baseUrl: base, httpVersion: '1.1', useBinaryFormat: true }));
    grpcWeb = createClient(PairwisePreference, createGrpcWebTransport({ baseUrl: base, httpVersion: '1.1' }));
  });
  after(async () => void (await server?.close()));

  test('JSON through fetch, as curl sends it: Score matches the gRPC port within 1e-9, bad rows get per-row errors, the request id comes back', async () => {
    const r = await postJson(base, 'Score', { comparisons: [...ROWS, BAD].map(json) }, { 'x-request-id': 'curl-1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertSame((r.body['predictions'] as JsonPrediction[]).map(fromJson), reference, 'JSON Score');
    assert.equal(r.headers.get('x-request-id'), 'curl-1');
    const tta = await postJson(base, 'Score', { comparisons: ROWS.map(json), options: { swap_tta: true } });
    assertSame((tta.body['predictions'] as JsonPrediction[]).map(fromJson), referenceTta, 'JSON Score, swap TTA');
    assert.match(r.headers.get('x-request-id') ?? '', /^curl-1$/);
    const made = await postJson(base, 'Score', { comparisons: [json(ROWS[0]!)] });
    assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'a request id is made when none is sent');
  });

  test('JSON GetModelInfo: the model, its labels and the limits in force', async () => {
    const r = await postJson(base, 'GetModelInfo', {});
    assert.equal(r.status, 200);
    assert.equal(r.body['name'], 'fixture');
    assert.deepEqual(r.body['labels'], ['winner_model_a', 'winner_model_b', 'winner_tie']);
    assert.equal((r.body['limits'] as Record<string, unknown>)['maxRowsPerCall'], 3000);
    assert.equal((r.body['limits'] as Record<string, unknown>)['maxMessageBytes'], String(64 * 1024 * 1024), '64-bit fields as JSON strings');
  });

  test('a Connect client: Score, ScoreBatchStream and GetModelInfo match the gRPC port within 1e-9', async () => {
    assertSame((await connect.score({ comparisons: esRows([...ROWS, BAD]) })).predictions, reference, 'Connect Score');
    assertSame(await collect(connect.scoreBatchStream({ comparisons: esRows([...ROWS, BAD]) })), reference, 'Connect ScoreBatchStream');
    assertSame(await collect(connect.scoreBatchStream({ comparisons: esRows(ROWS), options: { swapTta: true } })), referenceTta, 'Connect ScoreBatchStream, swap TTA');
    const info = await connect.getModelInfo({});
    assert.equal(info.name, 'fixture');
    assert.equal(info.limits?.maxMessageBytes, BigInt(64 * 1024 * 1024));
    const jsonClient = createClient(PairwisePreference, createConnectTransport({ baseUrl: base, httpVersion: '1.1', useBinaryFormat: false }));
    assertSame(await collect(jsonClient.scoreBatchStream({ comparisons: esRows(ROWS) })), reference.slice(0, ROWS.length), 'Connect+JSON ScoreBatchStream');
  });

  test('a gRPC-Web client: Score and ScoreBatchStream match the gRPC port within 1e-9', async () => {
    assertSame((await grpcWeb.score({ comparisons: esRows([...ROWS, BAD]) })).predictions, reference, 'gRPC-Web Score');
    assertSame(await collect(grpcWeb.scoreBatchStream({ comparisons: esRows([...ROWS, BAD]) })), reference, 'gRPC-Web ScoreBatchStream');
    assert.equal((await grpcWeb.getModelInfo({})).name, 'fixture');
  });

  test('ScoreBatchStream on the gRPC port too', async () => {
    assertSame(await grpcBatchStream(server.address, [...ROWS, BAD]), reference, 'gRPC ScoreBatchStream');
    assertSame(await grpcBatchStream(server.address, ROWS, true), referenceTta, 'gRPC ScoreBatchStream, swap TTA');
  });

  test('calls on the HTTP port are counted with the gRPC port\'s, by method and code', async () => {
    const before = await metric(server, 'pairpref_requests_total{method="Score",code="OK"}');
    const rowsBefore = await metric(server, 'pairpref_rows_total{outcome="ok"}');
    await connect.score({ comparisons: esRows(ROWS.slice(0, 3)) });
    await collect(grpcWeb.scoreBatchStream({ comparisons: esRows(ROWS.slice(0, 2)) }));
    assert.equal(await metric(server, 'pairpref_requests_total{method="Score",code="OK"}'), before + 1);
    assert.equal(await metric(server, 'pairpref_rows_total{outcome="ok"}'), rowsBefore + 5);
    assert.ok((await metric(server, 'pairpref_requests_total{method="ScoreBatchStream",code="OK"}')) >= 1);
    const bad = await postJson(base, 'Score', { comparisons: [{ id: 'x', prompt: 42 }] });
    assert.equal(bad.status, 400, 'a body that is not the message: INVALID_ARGUMENT (HTTP 400)');
    assert.ok((await metric(server, 'pairpref_requests_total{method="Score",code="INVALID_ARGUMENT"}')) >= 1, 'counted although no handler ran');
  });

  test('limits: more rows than --max-rows-per-call is INVALID_ARGUMENT for Score and ScoreBatchStream, before any work', async () => {
    const rows = Array.from({ length: 3001 }, (_, i) => ({ id: `r${i}`, prompt: ['p'], response_a: ['a'], response_b: ['b'] }));
    const r = await postJson(base, 'Score', { comparisons: rows });
    assert.equal(r.status, 400);
    assert.equal(r.body['code'], 'invalid_argument');
    assert.match(String(r.body['message']), /3001 comparisons; the limit is 3000 per Score call/);
    const e = await connectCode(collect(connect.scoreBatchStream({ comparisons: esRows(rows.map((x) => wire({ id: x.id, prompt: x.prompt, responseA: x.response_a, responseB: x.response_b }))) })));
    assert.equal(e.code, Code.InvalidArgument);
    assert.match(e.rawMessage, /3001 comparisons; the limit is 3000 per ScoreBatchStream call/);
  });

  test('a deadline: 2,000 rows with 100 ms is DEADLINE_EXCEEDED, and the queued rows leave the queues', async () => {
    // The client hangs up at its deadline, which the server may see as the deadline or as a cancel:
    // either way the rows still queued leave the queues.
    const droppedRows = (): number => server.scorer.counters().dropped.deadline + server.scorer.counters().dropped.cancelled;
    const dropped = droppedRows();
    const e = await connectCode(connect.score({ comparisons: esRows(synthRows(2000, 'dl')) }, { timeoutMs: 100 }));
    assert.equal(e.code, Code.DeadlineExceeded);
    const end = Date.now() + 30_000;
    while (droppedRows() === dropped && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(droppedRows() > dropped, 'rows were dropped');
    const s = await connectCode(collect(connect.scoreBatchStream({ comparisons: esRows(synthRows(500, 'dls')) }, { timeoutMs: 100 })));
    assert.equal(s.code, Code.DeadlineExceeded);
  });

  test('CORS: a listed origin gets the preflight and its headers; another origin does not', async () => {
    const pre = await fetch(`${base}/${SERVICE}/Score`, { method: 'OPTIONS', headers: { origin: PAGE, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,connect-protocol-version' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), PAGE);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Connect-Protocol-Version/i);
    const denied = await fetch(`${base}/${SERVICE}/Score`, { method: 'OPTIONS', headers: { origin: 'http://evil.test', 'access-control-request-method': 'POST' } });
    assert.equal(denied.status, 403);
    const r = await postJson(base, 'GetModelInfo', {}, { origin: PAGE });
    assert.equal(r.headers.get('access-control-allow-origin'), PAGE);
    assert.match(r.headers.get('access-control-expose-headers') ?? '', /x-request-id/);
    const other = await postJson(base, 'GetModelInfo', {}, { origin: 'http://evil.test' });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  test('/healthz says SERVING', async () => {
    const r = await fetch(`${base}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'SERVING' });
  });
});

describe('limits both ports share', () => {
  test('--max-streams counts ScoreStream and ScoreBatchStream on both ports; --max-message-bytes; the stream window', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0, maxStreams: 1, maxMessageBytes: 8192, maxInflightPerStream: 2 });
    const base = `http://127.0.0.1:${server.httpPort}`;
    const connect = createClient(PairwisePreference, createConnectTransport({ baseUrl: base, httpVersion: '1.1', useBinaryFormat: true }));
    const grpc = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    try {
      // A gRPC stream held open takes the one stream slot.
      const held = grpc.scoreStream(new Metadata(), { deadline: Date.now() + 60_000 });
      const heldDone = new Promise<void>((resolve) => {
        held.on('data', () => {});
        held.on('error', () => resolve());
        held.on('end', () => resolve());
      });
      held.write({ comparison: ROWS[0], options: undefined });
      await new Promise<void>((resolve) => held.once('data', () => resolve()));
      const e = await connectCode(collect(connect.scoreBatchStream({ comparisons: esRows(ROWS.slice(0, 2)) })));
      assert.equal(e.code, Code.ResourceExhausted);
      assert.match(e.rawMessage, /1 streams are open; the limit is 1 \(--max-streams\)/);
      assert.equal(e.metadata.get('pairpref-retryable'), '1', 'retryable, as on the gRPC port');
      held.end();
      await heldDone;
      // The slot is free again: 20 rows through a window of 2, all answered.
      const got = await collect(connect.scoreBatchStream({ comparisons: esRows(synthRows(20, 'w').map((c) => ({ ...c, responseA: ['a'], responseB: ['b'] }))) }));
      assert.equal(new Set(got.map((p) => p.id)).size, 20);
      const big = await connectCode(connect.score({ comparisons: esRows([wire({ id: 'big', prompt: ['x'.repeat(10_000)], responseA: ['a'], responseB: ['b'] })]) }));
      assert.equal(big.code, Code.ResourceExhausted, 'a message over --max-message-bytes');
    } finally {
      grpc.close();
      await server.close();
    }
  });
});

describe('the bearer token and TLS on the HTTP port', () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });
  after(() => rmSync(pki.dir, { recursive: true, force: true }));

  /** JSON over HTTPS/1.1 (Node's fetch takes no CA; https.request does). */
  function httpsJson(port: number, method: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: method.startsWith('/') ? method : `/${SERVICE}/${method}`, method: method.startsWith('/') ? 'GET' : 'POST', ca: pki.ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(method.startsWith('/') ? undefined : JSON.stringify(body));
    });
  }

  test('TLS and a token: UNAUTHENTICATED without it (counted), answers with it over HTTPS/1.1 and HTTP/2 (ScoreStream too), /healthz open', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, batching: { maxBatchSize: 1 }, httpPort: 0, metricsPort: 0, authToken: 's3cret', tls: { cert: pki.serverCert, key: pki.serverKey } });
    try {
      const port = server.httpPort!;
      const reference = await (async () => {
        const c = new PairwisePreferenceClient(server.address, credentials.createSsl(pki.ca));
        const md = new Metadata();
        md.set('authorization', 'Bearer s3cret');
        return new Promise<Prediction[]>((resolve, reject) => c.score({ comparisons: ROWS, options: undefined }, md, (e, r) => (e ? reject(e) : resolve(r.predictions)))).finally(() => c.close());
      })();
      const none = await httpsJson(port, 'Score', { comparisons: ROWS.map(json) });
      assert.equal(none.status, 401);
      assert.equal(none.body['code'], 'unauthenticated');
      const wrong = await httpsJson(port, 'Score', { comparisons: ROWS.map(json) }, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401);
      assert.equal(await metric(server, 'pairpref_rejected_total{reason="unauthenticated"}'), 2);
      assert.equal(await metric(server, 'pairpref_requests_total{method="Score",code="UNAUTHENTICATED"}'), 2);
      const ok = await httpsJson(port, 'Score', { comparisons: ROWS.map(json) }, { authorization: 'Bearer s3cret' });
      assert.equal(ok.status, 200);
      assertSame((ok.body['predictions'] as JsonPrediction[]).map(fromJson), reference, 'HTTPS JSON Score');
      assert.deepEqual((await httpsJson(port, '/healthz', null)).body, { status: 'SERVING' });

      const h2: Transport = createConnectTransport({ baseUrl: `https://127.0.0.1:${port}`, httpVersion: '2', useBinaryFormat: true, nodeOptions: { ca: pki.ca } });
      const client = createClient(PairwisePreference, h2);
      const denied = await connectCode(client.getModelInfo({}));
      assert.equal(denied.code, Code.Unauthenticated);
      const auth = { headers: { authorization: 'Bearer s3cret' } };
      assertSame((await client.score({ comparisons: esRows(ROWS) }, auth)).predictions, reference, 'HTTP/2 Connect Score');
      // Bidirectional ScoreStream needs HTTP/2: rows go in one message each.
      async function* requests() {
        for (const c of esRows(ROWS)) yield { comparison: c };
      }
      assertSame(await collect(client.scoreStream(requests(), auth)), reference, 'HTTP/2 Connect ScoreStream');
    } finally {
      await server.close();
    }
  });

  test('mutual TLS: a client without a certificate the CA signed cannot connect; one with it can', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca } });
    try {
      const url = `https://127.0.0.1:${server.httpPort}`;
      const anonymous = createClient(PairwisePreference, createConnectTransport({ baseUrl: url, httpVersion: '1.1', nodeOptions: { ca: pki.ca } }));
      await connectCode(anonymous.getModelInfo({}));
      const other = createClient(PairwisePreference, createConnectTransport({ baseUrl: url, httpVersion: '1.1', nodeOptions: { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey } }));
      await connectCode(other.getModelInfo({}));
      const signed = createClient(PairwisePreference, createConnectTransport({ baseUrl: url, httpVersion: '1.1', nodeOptions: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } }));
      assert.equal((await signed.getModelInfo({})).name, 'fixture');
    } finally {
      await server.close();
    }
  });
});

describe('loading, health and the drain on the HTTP port', () => {
  test('while the model loads: calls UNAVAILABLE, /healthz 503 NOT_SERVING; then SERVING', async () => {
    let release: () => void = () => {};
    const loaded = new Promise<void>((r) => (release = r));
    const httpPort = await freePort();
    const starting = startServer({ port: 0, httpPort, load: async () => (await loaded, loadNodeScorer({ modelDir: bundle, devices: 'cpu', intraOpThreads: 1 })) });
    const base = `http://127.0.0.1:${httpPort}`;
    let health = 0;
    for (const end = Date.now() + 10_000; health === 0 && Date.now() < end; ) health = await fetch(`${base}/healthz`).then((r) => r.status, () => 0);
    assert.equal(health, 503);
    const r = await postJson(base, 'GetModelInfo', {});
    assert.equal(r.status, 503);
    assert.equal(r.body['code'], 'unavailable');
    assert.match(String(r.body['message']), /loading its model/);
    release();
    const server = await starting;
    try {
      assert.equal(server.httpPort, httpPort);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await postJson(base, 'GetModelInfo', {})).status, 200);
    } finally {
      await server.close();
    }
  });

  test('the drain: /healthz NOT_SERVING during the grace period while calls are served, then new calls refused; a running ScoreBatchStream answers what it took and ends UNAVAILABLE', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0, maxInflightPerStream: 4 });
    const base = `http://127.0.0.1:${server.httpPort}`;
    const connect = createClient(PairwisePreference, createConnectTransport({ baseUrl: base, httpVersion: '1.1', useBinaryFormat: true }));
    const answers: EsPrediction[] = [];
    const streaming = (async () => {
      for await (const p of connect.scoreBatchStream({ comparisons: esRows(synthRows(400, 'drain')) })) answers.push(p);
    })().then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    await waitUntil('the first answers of the stream', () => answers.length >= 4, 60_000, 5);
    const closing = server.close({ graceMs: 400, timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await fetch(`${base}/healthz`)).status, 503, 'NOT_SERVING during the grace period');
    assert.equal((await connect.getModelInfo({})).name, 'fixture', 'calls still served during the grace period');
    const { cancelled } = await closing;
    assert.equal(cancelled, false);
    const e = await streaming;
    assert.ok(e, 'the stream ended with an error');
    assert.equal(e.code, Code.Unavailable);
    assert.match(e.rawMessage, /shutting down/);
    assert.ok(answers.length > 0 && answers.length < 400, `${answers.length} rows answered before the drain ended the stream`);
    for (const p of answers) assert.equal(p.error, undefined);
    await assert.rejects(fetch(`${base}/healthz`), 'the listener is closed');
  });
});

describe('the drain timeout on the HTTP port', () => {
  test('a call still running at the timeout is cancelled, and close() says so', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0, maxRowsPerCall: 3000 });
    const connect = createClient(PairwisePreference, createConnectTransport({ baseUrl: `http://127.0.0.1:${server.httpPort}`, httpVersion: '1.1', useBinaryFormat: true }));
    const call = connectCode(connect.score({ comparisons: esRows(synthRows(3000, 'slow')) }));
    await waitUntil('the call to reach the engine', () => server.scorer.backlog().tokenizerRows + server.scorer.backlog().batchRows > 0, 60_000, 5);
    const { cancelled } = await server.close({ graceMs: 0, timeoutMs: 100 });
    assert.equal(cancelled, true);
    await call;
  });
});

describe('--http-cors-origin', () => {
  test('origins comma-separated or repeated, or *; a URL with a path or a non-URL is a usage error', () => {
    assert.deepEqual(collectOrigins('http://localhost:5173, https://app.example', []), ['http://localhost:5173', 'https://app.example']);
    assert.deepEqual(collectOrigins('*', ['http://a.test']), ['http://a.test', '*']);
    assert.throws(() => collectOrigins('http://localhost:5173/page', []), /not an origin \(write it as http:\/\/localhost:5173/);
    assert.throws(() => collectOrigins('localhost:5173x', []), /not an origin/);
  });
});
