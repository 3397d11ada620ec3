// Admission control, per-row limits and input integrity on a real server (fixture model): what a
// client sees when it sends too much, too big, twice, or bytes that are not UTF-8. Each limit is
// set low here so it is reached with little traffic; the defaults are in README "Limits and
// failure behaviour".
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, ScoreRequest, ScoreResponse, ScoreStreamRequest, Prediction, type Comparison as WireComparison } from '../../proto/gen/pairpref/v1/preference.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';
import { waitUntil } from '../helpers/wait.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-admission-'));
const dir = writeFixtureBundle(join(work, 'bundle')).dir;
after(() => rmSync(work, { recursive: true, force: true }));

const row = (id: string, text = 'hello'): WireComparison => wire({ id, prompt: ['say something'], responseA: [text], responseB: ['hi'] });

/** Sends raw request bytes to a unary method and returns the raw answer or the status. */
function rawUnary(address: string, path: string, bytes: Buffer): Promise<{ ok: Buffer } | { err: ServiceError }> {
  const c = new Client(address, credentials.createInsecure());
  return new Promise((resolve) => {
    c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), { deadline: Date.now() + 30_000 }, (err, res) => {
      c.close();
      resolve(err ? { err } : { ok: res! });
    });
  });
}

/** Replaces the first occurrence of `marker` in the encoded bytes with bytes that are not UTF-8. */
function corrupt(bytes: Uint8Array, marker: string): Buffer {
  const buf = Buffer.from(bytes);
  const at = buf.indexOf(marker);
  assert.ok(at >= 0, `marker ${marker} in the encoded message`);
  buf[at] = 0xff; // never valid in UTF-8
  return buf;
}

describe('per-row limits and input integrity', () => {
  let server: RunningServer;
  before(async () => {
    server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', limits: { maxRowChars: 1000 }, maxRowsPerCall: 50 });
  });
  after(async () => void (await server.close()));

  test('more rows than --max-rows-per-call: INVALID_ARGUMENT before any work', async () => {
    const client = testClient(server.address);
    const before = server.scorer.loads()[0]!.rows;
    await assert.rejects(client.score(Array.from({ length: 51 }, (_, i) => row(`r${i}`))), (e: ServiceError) => {
      assert.equal(e.code, status.INVALID_ARGUMENT);
      assert.match(e.details, /51 comparisons; the limit is 50 per Score call/);
      return true;
    });
    assert.equal(server.scorer.loads()[0]!.rows, before, 'nothing reached the device');
    assert.equal((await client.score([row('ok')]))[0]!.error, undefined, 'the next call is served');
    client.close();
  });

  test('a field over --max-row-chars and an id over 256 bytes fail their own row only, echoed short', async () => {
    const client = testClient(server.address);
    const longId = 'x'.repeat(1_000_000);
    const refusedBefore = server.scorer.counters().rejected;
    const preds = await client.score([row('long', 'y'.repeat(1001)), row(longId), row('fine'), row('é'.repeat(129))]);
    assert.equal(preds[0]!.error?.code, status.INVALID_ARGUMENT);
    assert.equal(preds[0]!.error?.field, 'response_a');
    assert.match(preds[0]!.error!.message, /response_a has 1001 characters; the limit is 1000/);
    assert.equal(preds[1]!.error?.field, 'id');
    assert.match(preds[1]!.error!.message, /row id is 1000000 bytes; ids may have at most 256 bytes/);
    assert.ok(preds[1]!.id.length <= 65, `the 1 MB id is not echoed whole (${preds[1]!.id.length} characters)`);
    assert.equal(preds[2]!.error, undefined);
    assert.equal(preds[3]!.error?.field, 'id', '129 two-byte characters are 258 bytes');
    const refused = server.scorer.counters().rejected;
    assert.equal((refused['row_too_long'] ?? 0) - (refusedBefore['row_too_long'] ?? 0), 1);
    assert.equal((refused['id_too_long'] ?? 0) - (refusedBefore['id_too_long'] ?? 0), 2);
    client.close();
  });

  test('40 rows with 1 MB ids make a small response, and the valid row of the call is scored', async () => {
    const bad = Array.from({ length: 40 }, (_, i) => row(`${i}`.padEnd(1_000_000, 'z')));
    const bytes = Buffer.from(ScoreRequest.encode({ comparisons: [...bad, row('valid')], options: undefined }).finish());
    const res = await rawUnary(server.address, '/pairpref.v1.PairwisePreference/Score', bytes);
    assert.ok('ok' in res, `call failed: ${'err' in res ? res.err.details : ''}`);
    assert.ok(res.ok.length < 64 * 1024, `response is ${res.ok.length} bytes`);
    const preds = ScoreResponse.decode(res.ok).predictions;
    assert.equal(preds.length, 41);
    assert.equal(preds[40]!.error, undefined);
  });

  test('duplicate ids in one Score call: the first is scored, the others are INVALID_ARGUMENT', async () => {
    const client = testClient(server.address);
    const preds = await client.score([row('same', 'a'), row('other'), row('same', 'b')]);
    assert.equal(preds[0]!.error, undefined);
    assert.equal(preds[1]!.error, undefined);
    assert.equal(preds[2]!.error?.code, status.INVALID_ARGUMENT);
    assert.equal(preds[2]!.error?.field, 'id');
    assert.match(preds[2]!.error!.message, /already in flight/);
    client.close();
  });

  test('invalid UTF-8 in a field or an id is a per-row INVALID_ARGUMENT naming it; the rest is scored', async () => {
    const request = ScoreRequest.encode({ comparisons: [row('good-1'), row('bad-a', 'MARKER-A'), row('ID-BAD'), row('good-2')], options: undefined }).finish();
    const bytes = corrupt(corrupt(request, 'MARKER-A'), 'ID-BAD');
    const res = await rawUnary(server.address, '/pairpref.v1.PairwisePreference/Score', bytes);
    assert.ok('ok' in res, `call failed: ${'err' in res ? res.err.details : ''}`);
    const preds = ScoreResponse.decode(res.ok).predictions;
    assert.deepEqual(preds.map((p) => p.error?.code ?? 0), [0, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT, 0]);
    assert.equal(preds[1]!.error!.field, 'response_a');
    assert.match(preds[1]!.error!.message, /response_a is not valid UTF-8/);
    assert.equal(preds[2]!.error!.field, 'id');
    assert.deepEqual([preds[0]!.id, preds[3]!.id], ['good-1', 'good-2'], 'valid ids come back byte for byte');
  });

  test('bytes that are not a ScoreRequest at all: call-level INVALID_ARGUMENT, never INTERNAL', async () => {
    for (const bytes of [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x0b]), Buffer.from('garbage that is not protobuf')]) {
      const res = await rawUnary(server.address, '/pairpref.v1.PairwisePreference/Score', bytes);
      assert.ok('err' in res, 'refused');
      assert.equal(res.err.code, status.INVALID_ARGUMENT, res.err.details);
    }
    const client = testClient(server.address);
    assert.equal((await client.score([row('after-garbage')]))[0]!.error, undefined, 'still serving');
    client.close();
  });

  test('a stream: invalid UTF-8 and an id already in flight fail their own rows; the stream goes on', async () => {
    const c = new Client(server.address, credentials.createInsecure());
    const call = c.makeBidiStreamRequest('/pairpref.v1.PairwisePreference/ScoreStream', (b: Buffer) => b, (b: Buffer) => Prediction.decode(b));
    const got: Prediction[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (p: Prediction) => got.push(p));
      call.on('error', reject);
      call.on('end', resolve);
    });
    const msg = (c: WireComparison): Buffer => Buffer.from(ScoreStreamRequest.encode({ comparison: c, options: undefined }).finish());
    call.write(msg(row('s1')));
    call.write(corrupt(ScoreStreamRequest.encode({ comparison: row('s2', 'MARKER-B'), options: undefined }).finish(), 'MARKER-B'));
    // Two rows with one id written back to back: the second arrives while the first is in flight.
    call.write(msg(row('dup', 'first')));
    call.write(msg(row('dup', 'second')));
    call.write(msg(row('s3')));
    call.end();
    await done;
    c.close();
    const byId = (id: string) => got.filter((p) => p.id === id);
    assert.equal(got.length, 5);
    assert.equal(byId('s1')[0]!.error, undefined);
    assert.equal(byId('s2')[0]!.error?.field, 'response_a');
    assert.equal(byId('s3')[0]!.error, undefined);
    const dups = byId('dup');
    assert.equal(dups.length, 2);
    assert.equal(dups.filter((p) => p.error === undefined).length, 1, 'one of the two is scored');
    assert.match(dups.find((p) => p.error)!.error!.message, /already in flight/);
  });
});

describe('admission: --max-queue-tokens and --max-streams', () => {
  test('a call arriving while the backlog is over the limit gets RESOURCE_EXHAUSTED; later ones are served', async () => {
    // One token of backlog is enough to refuse: the first call's rows are that backlog.
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', limits: { maxQueueTokens: 1 }, maxRowsPerCall: 2000, metricsPort: 0 });
    const client = testClient(server.address);
    try {
      const big = client.score(Array.from({ length: 1500 }, (_, i) => row(`big-${i}`)));
      // Once the big call is admitted, its rows are the backlog.
      await waitUntil('the big call to be admitted', () => server.scorer.backlog().tokenizerRows + server.scorer.backlog().batchRows > 0, 60_000, 2);
      const during = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      const backlogRows = [...during.matchAll(/^pairpref_backlog_rows\{stage="(tokenizer|batch)"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0);
      assert.ok(backlogRows > 0, 'the backlog gauges show the admitted call');
      const small = await client.score([row('small')]).then(
        () => null,
        (e: ServiceError) => e,
      );
      assert.ok(small, 'the small call was refused');
      assert.equal(small.code, status.RESOURCE_EXHAUSTED);
      assert.match(small.details, /overloaded: \d+ tokens are waiting \(limit 1, --max-queue-tokens\)/);
      assert.equal((await big).length, 1500, 'the admitted call completes');
      assert.equal((await client.score([row('later')]))[0]!.error, undefined, 'served once the backlog is gone');
      assert.ok((server.scorer.counters().rejected['queue_full'] ?? 0) >= 1);
      const after = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      assert.match(after, /^pairpref_rejected_total\{reason="queue_full"\} [1-9]\d*$/m);
      assert.match(after, /^pairpref_backlog_tokens\{stage="batch"\} 0$/m, 'the backlog is empty again');
    } finally {
      client.close();
      await server.close();
    }
  });

  test('one stream more than --max-streams is RESOURCE_EXHAUSTED; closing one makes room', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', maxStreams: 2 });
    const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    /** A stream whose events are recorded as they come. */
    const watched = () => {
      const s = client.scoreStream();
      const ev = { data: [] as Prediction[], error: null as ServiceError | null, ended: false };
      s.on('data', (p: Prediction) => ev.data.push(p));
      s.on('error', (e: ServiceError) => (ev.error = e));
      s.on('end', () => (ev.ended = true));
      return { s, ev };
    };
    const until = (cond: () => boolean): Promise<void> => waitUntil(String(cond), cond, 60_000, 5);
    try {
      const open = [watched(), watched()];
      open.forEach((o, i) => o.s.write({ comparison: row(`open-${i}`), options: undefined }));
      // A stream is counted once the server has seen it: an answer on each makes sure.
      await until(() => open.every((o) => o.ev.data.length === 1));
      const third = watched();
      third.s.write({ comparison: row('third'), options: undefined });
      await until(() => third.ev.error !== null);
      assert.equal(third.ev.error!.code, status.RESOURCE_EXHAUSTED);
      assert.match(third.ev.error!.details, /2 streams are open; the limit is 2 \(--max-streams\)/);
      open[0]!.s.end();
      await until(() => open[0]!.ev.ended);
      const fourth = watched();
      fourth.s.write({ comparison: row('fourth'), options: undefined });
      await until(() => fourth.ev.data.length === 1 || fourth.ev.error !== null);
      assert.equal(fourth.ev.error, null, 'room again after a stream closed');
      assert.equal(fourth.ev.data[0]!.error, undefined);
      fourth.s.end();
      open[1]!.s.end();
      await until(() => fourth.ev.ended && open[1]!.ev.ended);
    } finally {
      client.close();
      await server.close();
    }
  });
});

