// Request ids and log lines: every call gets an x-request-id (the client's, or one the server makes),
// echoed in response headers and trailers and carried by each log line about the call; `pairpref
// serve --log-format json` writes one JSON object per stderr line, the default the plain line.
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import { createLogger } from '../../core/log.ts';
import { PairwisePreferenceClient, type Prediction, type ScoreResponse } from '../../proto/gen/pairpref/v1/preference.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';
import { killChildren, spawnServe } from '../helpers/serve-child.ts';

after(killChildren);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const row = (id: string) => wire({ id, prompt: ['q'], responseA: ['a'], responseB: ['b'] });

interface Answer {
  readonly res: ScoreResponse | null;
  readonly err: ServiceError | null;
  readonly headers: Metadata | null;
  readonly trailers: Metadata;
}

/** One Score call, whatever it ends with: its response or error, headers and trailers. */
function score(client: PairwisePreferenceClient, rows: ReturnType<typeof wire>[], requestId?: string): Promise<Answer> {
  const md = new Metadata();
  if (requestId !== undefined) md.set('x-request-id', requestId);
  return new Promise((resolve) => {
    let headers: Metadata | null = null;
    let result: { res: ScoreResponse | null; err: ServiceError | null } | null = null;
    let trailers: Metadata | null = null;
    const done = (): void => {
      if (result && trailers) resolve({ ...result, headers, trailers });
    };
    const call = client.score({ comparisons: rows, options: { swapTta: false } }, md, (err, res) => {
      result = { res: res ?? null, err };
      done();
    });
    call.on('metadata', (h: Metadata) => (headers = h));
    call.on('status', (s: { metadata: Metadata }) => {
      trailers = s.metadata;
      done();
    });
  });
}

test('request ids: taken from x-request-id or made, echoed in headers and trailers, on every log line of the call', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  const lines: string[] = [];
  const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', maxRowsPerCall: 2, logger: createLogger('debug', (l) => lines.push(l)) });
  const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
  try {
    const callLines = (id: string): string[] => lines.filter((l) => l.includes(` request_id=${id}`));

    const sent = await score(client, [row('a'), row('b')], 'req-1');
    assert.equal(sent.err, null);
    assert.deepEqual(sent.headers?.get('x-request-id'), ['req-1']);
    assert.deepEqual(sent.trailers.get('x-request-id'), ['req-1']);
    const okLines = callLines('req-1');
    assert.equal(okLines.length, 1, lines.join(''));
    assert.match(okLines[0]!, /DEBUG Score answered 2 row\(s\): 2 ok request_id=req-1 method=Score code=OK rows=2 duration_ms=[\d.]+\n$/);

    const made = await score(client, [row('c')]);
    const id = String(made.headers?.get('x-request-id')[0]);
    assert.match(id, UUID);
    assert.equal(callLines(id).length, 1);

    // Not 1-128 visible ASCII characters: replaced, not echoed.
    for (const bad of ['has space', 'x'.repeat(129)]) {
      const r = await score(client, [row('d')], bad);
      assert.match(String(r.headers?.get('x-request-id')[0]), UUID);
    }

    // Refused before any work (over --max-rows-per-call): no headers were sent; the trailers carry the id.
    const refused = await score(client, [row('e'), row('f'), row('g')], 'req-refused');
    assert.equal(refused.err?.code, 3);
    assert.deepEqual(refused.err?.metadata.get('x-request-id'), ['req-refused']);
    const refusedLines = callLines('req-refused');
    assert.equal(refusedLines.length, 1);
    assert.match(refusedLines[0]!, /DEBUG Score refused: INVALID_ARGUMENT: the call has 3 comparisons.* code=INVALID_ARGUMENT/);

    // A stream: headers carry the id; one line when it opens and one when it closes.
    const md = new Metadata();
    md.set('x-request-id', 'req-stream');
    const got = await new Promise<{ headers: Metadata | null; out: Prediction[] }>((resolve, reject) => {
      const out: Prediction[] = [];
      let headers: Metadata | null = null;
      const call = client.scoreStream(md);
      call.on('metadata', (h: Metadata) => (headers = h));
      call.on('data', (p: Prediction) => out.push(p));
      call.on('error', reject);
      call.on('end', () => resolve({ headers, out }));
      call.write({ comparison: row('s1'), options: { swapTta: false } });
      call.write({ comparison: row('s2'), options: { swapTta: false } });
      call.end();
    });
    assert.equal(got.out.length, 2);
    assert.deepEqual(got.headers?.get('x-request-id'), ['req-stream']);
    // The close line comes from the call's 'close' event, just after the client saw the end.
    for (let i = 0; i < 100 && callLines('req-stream').length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const streamLines = callLines('req-stream');
    assert.equal(streamLines.length, 2, lines.join(''));
    assert.match(streamLines[0]!, /DEBUG ScoreStream opened request_id=req-stream method=ScoreStream\n$/);
    assert.match(streamLines[1]!, /DEBUG ScoreStream closed: OK; 2 row\(s\) read, answered: 2 ok request_id=req-stream method=ScoreStream code=OK rows=2 duration_ms=[\d.]+\n$/);
    // No trace id without tracing.
    assert.ok(lines.every((l) => !l.includes('trace_id=')));
  } finally {
    client.close();
    await server.close();
  }
});

test('serve --log-format json: every stderr line is a JSON object; the default is the plain line', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  for (const format of ['json', 'pretty'] as const) {
    const child = spawnServe(['--model', dir, '--drain-grace-ms', '0', '--log-level', 'debug', ...(format === 'json' ? ['--log-format', 'json'] : [])]);
    const address = (await child.waitFor(/serving \S+ \S+ on (\S+) \(devices/))[1]!;
    const client = new PairwisePreferenceClient(address, credentials.createInsecure());
    const answer = await score(client, [row('a')], `req-${format}`);
    assert.equal(answer.err, null);
    client.close();
    child.proc.kill('SIGTERM');
    assert.equal((await child.exited).code, 0, child.log());
    const lines = child.log().split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 4, child.log());
    if (format === 'json') {
      const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const o of objects) {
        assert.ok(['debug', 'info', 'warn', 'error'].includes(String(o['level'])), JSON.stringify(o));
        assert.match(String(o['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.equal(typeof o['msg'], 'string');
        assert.equal(o['pid'], child.proc.pid);
      }
      assert.ok(objects.some((o) => o['level'] === 'info' && /^serving \S+ \S+ on /.test(String(o['msg']))));
      assert.ok(objects.some((o) => o['level'] === 'info' && /^SIGTERM: draining in-flight calls/.test(String(o['msg']))));
      const call = objects.filter((o) => o['request_id'] === 'req-json');
      assert.equal(call.length, 1, child.log());
      assert.equal(call[0]!['level'], 'debug');
      assert.equal(call[0]!['method'], 'Score');
      assert.equal(call[0]!['code'], 'OK');
      assert.equal(call[0]!['rows'], 1);
      assert.equal(typeof call[0]!['duration_ms'], 'number');
    } else {
      for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \S/);
      assert.ok(lines.some((l) => / INFO  serving \S+ \S+ on /.test(l)));
      assert.equal(lines.filter((l) => / DEBUG Score answered 1 row\(s\): 1 ok request_id=req-pretty method=Score code=OK rows=1 duration_ms=[\d.]+$/.test(l)).length, 1, child.log());
    }
  }
});
