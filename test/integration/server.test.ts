// The real server on an ephemeral loopback port, real ONNX sessions (fixture model), compared
// with an in-process session that scores each row alone.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSync } from '@grpc/proto-loader';
import { credentials, loadPackageDefinition, type Client } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { Comparison as CoreComparison } from '../../core/types.ts';
import type { Comparison, Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import { serveModel } from '../../cli/wiring.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire, type TestClient } from '../helpers/grpc-client.ts';
import { referenceFor, type Reference } from '../helpers/reference.ts';
import { readArena } from '../helpers/shared-data.ts';

const DEFAULT_MODEL = new URL('../../models/default', import.meta.url).pathname;

const dev = await readArena('alpaca-pairs-dev.csv.gz', 60);
const rawRows: Comparison[] = dev.map((r) => wire({ id: r.id, raw: { prompt: r.prompt, responseA: r.response_a, responseB: r.response_b } }));
const turnRows: Comparison[] = [
  wire({ id: 'multi', prompt: ['hi', 'and then?'], responseA: ['hello', 'then this'], responseB: ['hey', 'nothing'] }),
  wire({ id: 'emoji', prompt: ['😀 ok?'], responseA: ['yes 👍'], responseB: [''] }),
  wire({ id: 'empty', prompt: [], responseA: [], responseB: [] }),
];

function toCore(c: Comparison): CoreComparison {
  return c.raw
    ? { id: c.id, kind: 'raw', prompt: c.raw.prompt, response_a: c.raw.responseA, response_b: c.raw.responseB }
    : { id: c.id, kind: 'turns', prompt: c.prompt, response_a: c.responseA, response_b: c.responseB };
}

function swapped(c: Comparison): Comparison {
  return c.raw
    ? { ...c, raw: { prompt: c.raw.prompt, responseA: c.raw.responseB, responseB: c.raw.responseA } }
    : { ...c, responseA: c.responseB, responseB: c.responseA };
}

function assertValid(p: Prediction): void {
  assert.equal(p.error, undefined, `row ${p.id} failed: ${p.error?.message}`);
  const probs = [p.winnerModelA, p.winnerModelB, p.winnerTie];
  for (const x of probs) assert.ok(Number.isFinite(x) && x > 0 && x < 1, `row ${p.id}: probability ${x}`);
  assert.ok(Math.abs(probs[0]! + probs[1]! + probs[2]! - 1) < 1e-6, `row ${p.id} sums to ${probs[0]! + probs[1]! + probs[2]!}`);
}

function assertClose(a: readonly number[], b: readonly number[], tol: number, what: string): void {
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}: [${a.join(', ')}] vs [${b.join(', ')}] (tolerance ${tol})`);
}

const probsOf = (p: Prediction): number[] => [p.winnerModelA, p.winnerModelB, p.winnerTie];

describe('gRPC server (fixture model, --devices cpu)', () => {
  let server: RunningServer;
  let client: TestClient;
  let reference: Reference;
  let bundleDir: string;

  before(async () => {
    bundleDir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
    // A small budget forces many batches with padding, so batching must not change results.
    server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', batching: { maxBatchTokens: 2048 } });
    client = testClient(server.address);
    reference = await referenceFor(bundleDir);
  });
  after(async () => {
    client.close();
    await reference.release();
    await server.close();
  });

  test('Score: one prediction per row, in order, equal to an in-process session on each row alone (1e-6)', async () => {
    const rows = [...rawRows, ...turnRows];
    const preds = await client.score(rows);
    assert.deepEqual(preds.map((p) => p.id), rows.map((r) => r.id));
    for (const [i, p] of preds.entries()) {
      assertValid(p);
      assert.ok(p.numTokens > 0 && p.numTokens <= 256, `row ${p.id}: ${p.numTokens} tokens`);
      assertClose(probsOf(p), await reference.score(toCore(rows[i]!)), 1e-6, `row ${p.id}`);
    }
    assert.ok(preds.some((p) => p.truncated), 'long alpaca rows exceed max_length 256 and report truncation');
    assert.ok(preds.some((p) => !p.truncated));
  });

  test('ScoreStream: every id comes back exactly once with the Score result', async () => {
    const rows = [...rawRows, ...turnRows];
    const [streamed, unary] = await Promise.all([client.scoreStream(rows), client.score(rows)]);
    assert.equal(streamed.length, rows.length);
    assert.deepEqual(streamed.map((p) => p.id).sort(), rows.map((r) => r.id).sort());
    const byId = new Map(unary.map((p) => [p.id, p]));
    for (const p of streamed) {
      assertValid(p);
      assertClose(probsOf(p), probsOf(byId.get(p.id)!), 1e-6, `row ${p.id}`);
    }
  });

  test('swap TTA: score(P, A, B) equals the a/b swap of score(P, B, A) within 1e-6, and averages both orders', async () => {
    const rows = rawRows.slice(0, 20);
    const direct = await client.score(rows, true);
    const reversed = await client.score(rows.map(swapped), true);
    for (let i = 0; i < rows.length; i++) {
      const d = direct[i]!;
      const r = reversed[i]!;
      assertValid(d);
      assertClose([d.winnerModelA, d.winnerModelB, d.winnerTie], [r.winnerModelB, r.winnerModelA, r.winnerTie], 1e-6, `row ${d.id}`);
      const p = await reference.score(toCore(rows[i]!));
      const q = await reference.score(toCore(swapped(rows[i]!)));
      assertClose(probsOf(d), [(p[0] + q[1]) / 2, (p[1] + q[0]) / 2, (p[2] + q[2]) / 2], 1e-6, `TTA average of row ${d.id}`);
    }
    // The fixture model is not side-symmetric, so averaging both orders must change the answer.
    const plain = await client.score(rows, false);
    assert.ok(direct.some((d, i) => Math.abs(d.winnerModelA - plain[i]!.winnerModelA) > 1e-4), 'swap TTA changes the probabilities');
  });

  test('bad rows get INVALID_ARGUMENT naming the row id and field; the other rows of the call are scored', async () => {
    const good = rawRows.slice(0, 3);
    const bad = [
      wire({ id: 'bad-json', raw: { prompt: 'not json', responseA: '["a"]', responseB: '["b"]' } }),
      wire({ id: 'bad-list', raw: { prompt: '["ok"]', responseA: '{"a": 1}', responseB: '["b"]' } }),
      wire({ id: 'bad-number', raw: { prompt: '["ok"]', responseA: '["a"]', responseB: '[1, 2]' } }),
      wire({ id: '', prompt: ['x'], responseA: ['y'], responseB: ['z'] }),
      wire({ id: 'both-forms', prompt: ['x'], raw: { prompt: '["x"]', responseA: '["y"]', responseB: '["z"]' } }),
    ];
    const rows = [good[0]!, ...bad, ...good.slice(1)];
    for (const call of [client.score(rows), client.scoreStream(rows)]) {
      const preds = await call;
      assert.equal(preds.length, rows.length);
      const byId = new Map(preds.map((p) => [p.id, p]));
      for (const g of good) assertValid(byId.get(g.id)!);
      const expectField: Record<string, string> = { 'bad-json': 'raw.prompt', 'bad-list': 'raw.response_a', 'bad-number': 'raw.response_b', '': 'id', 'both-forms': '' };
      for (const b of bad) {
        const p = byId.get(b.id)!;
        assert.ok(p.error, `row "${b.id}" must fail`);
        assert.equal(p.error.code, 3, `row "${b.id}": INVALID_ARGUMENT`);
        assert.equal(p.error.field, expectField[b.id], `row "${b.id}": field`);
        if (b.id) assert.match(p.error.message, new RegExp(b.id), 'message names the row id');
        if (expectField[b.id]) assert.ok(p.error.message.includes(expectField[b.id]!.replace('raw.', '')), `message names the field: ${p.error.message}`);
        assert.deepEqual(probsOf(p), [0, 0, 0]);
      }
    }
  });

  test('a client that cancels its stream mid-way does not disturb other callers', async () => {
    const { PairwisePreferenceClient } = await import('../../proto/gen/pairpref/v1/preference.ts');
    const c = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    const call = c.scoreStream();
    call.on('error', () => undefined);
    for (const r of rawRows) call.write({ comparison: r, options: undefined });
    call.cancel();
    c.close();
    const preds = await client.score(rawRows.slice(0, 5));
    for (const p of preds) assertValid(p);
  });

  test('GetModelInfo describes labels, preprocessing and devices', async () => {
    const info = await client.modelInfo();
    assert.equal(info.name, 'fixture');
    assert.deepEqual(info.labels, ['winner_model_a', 'winner_model_b', 'winner_tie']);
    assert.equal(info.maxLength, 256);
    assert.equal(info.head, 'seq-cls');
    assert.equal(JSON.parse(info.truncationJson).mode, 'tail');
    assert.equal(JSON.parse(info.parserJson).kind, 'json');
    assert.equal(JSON.parse(info.templateJson).prompt_prefix, '<prompt>: ');
    assert.deepEqual(info.devices.map((d) => [d.name, d.executionProvider]), [['cpu', 'cpu']]);
    assert.equal(info.batching?.maxBatchTokens, 2048);
  });

  test('grpc.health.v1 reports SERVING and reflection lists the service', async () => {
    const pkg = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as unknown as {
      grpc: { health: { v1: { Health: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { check: Function } } } };
    };
    const health = new pkg.grpc.health.v1.Health(server.address, credentials.createInsecure());
    for (const service of ['', 'pairpref.v1.PairwisePreference']) {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        health.check({ service }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r))),
      );
      assert.equal(res.status, 'SERVING', `health of "${service}"`);
    }
    health.close();

    const reflectionProto = new URL('../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', import.meta.url).pathname;
    const rpkg = loadPackageDefinition(loadSync(reflectionProto, { keepCase: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & { ServerReflectionInfo: Function } } } };
    };
    const refl = new rpkg.grpc.reflection.v1.ServerReflection(server.address, credentials.createInsecure());
    const stream = refl.ServerReflectionInfo();
    const names = await new Promise<string[]>((resolve, reject) => {
      stream.on('data', (m: { list_services_response?: { service: { name: string }[] } }) => resolve((m.list_services_response?.service ?? []).map((s) => s.name)));
      stream.on('error', reject);
      stream.write({ list_services: '' });
    });
    stream.end();
    refl.close();
    assert.ok(names.includes('pairpref.v1.PairwisePreference'), `reflection lists ${names.join(', ')}`);
    assert.ok(names.includes('grpc.health.v1.Health'));
  });
});

describe('gRPC server with other heads', () => {
  for (const variant of [{ head: 'label-token' as const }, { numFeatures: 29 }]) {
    test(`${JSON.stringify(variant)}: server equals the in-process session within 1e-6`, async () => {
      const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-')), variant).dir;
      const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', batching: { maxBatchTokens: 1024 } });
      const client = testClient(server.address);
      const reference = await referenceFor(dir);
      try {
        const rows = [...rawRows.slice(0, 24), ...turnRows];
        const preds = await client.score(rows);
        for (const [i, p] of preds.entries()) {
          assertValid(p);
          assertClose(probsOf(p), await reference.score(toCore(rows[i]!)), 1e-6, `row ${p.id}`);
        }
      } finally {
        client.close();
        await reference.release();
        await server.close();
      }
    });
  }
});

describe('tokenizer worker threads (--preprocess-threads 2)', () => {
  test('give the same predictions and per-row errors as tokenizing on the event loop', async () => {
    const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', preprocessThreads: 2 });
    const client = testClient(server.address);
    const reference = await referenceFor(dir);
    try {
      assert.equal(server.scorer.preprocessThreads, 2);
      const bad = wire({ id: 'bad-json', raw: { prompt: '["ok"]', responseA: 'nope', responseB: '["b"]' } });
      const rows = [...rawRows, bad, ...turnRows];
      for (const preds of [await client.score(rows, true), await client.scoreStream(rows, true)]) {
        const byId = new Map(preds.map((p) => [p.id, p]));
        assert.equal(byId.size, rows.length);
        assert.equal(byId.get('bad-json')?.error?.code, 3);
        assert.equal(byId.get('bad-json')?.error?.field, 'raw.response_a');
        for (const r of [...rawRows.slice(0, 10), ...turnRows]) {
          const p = byId.get(r.id)!;
          assertValid(p);
          const d = await reference.score(toCore(r));
          const q = await reference.score(toCore(swapped(r)));
          assertClose(probsOf(p), [(d[0] + q[1]) / 2, (d[1] + q[0]) / 2, (d[2] + q[2]) / 2], 1e-6, `row ${p.id}`);
        }
      }
    } finally {
      client.close();
      await reference.release();
      await server.close();
    }
  });
});

describe('two devices (--devices cpu,cpu)', () => {
  // Devices pull batches (each holds at most one beyond the one it runs), so two equally fast
  // sessions end up with about the same tokens; test/engine/scheduler.test.ts checks the dealing
  // itself with controlled executors.
  test('1,000 arena-hard rows reach both sessions, each row exactly once; their token totals differ by at most 10%', async () => {
    // The default model, not the fixture: a batch of the fixture takes well under a millisecond, so
    // which session is free first is decided by the main thread's scheduling noise, not by the dealing.
    const server = await serveModel({ modelDir: DEFAULT_MODEL, port: 0, devices: 'cpu,cpu', batching: { maxBatchTokens: 4096 } });
    const client = testClient(server.address);
    try {
      const rows = (await readArena('arena-hard-pairs.csv.gz', 1000)).map((r) =>
        wire({ id: r.id + ':' + Math.random().toString(36).slice(2, 6), raw: { prompt: r.prompt, responseA: r.response_a, responseB: r.response_b } }),
      );
      const before = server.scorer.loads();
      const preds = await client.score(rows);
      assert.equal(preds.length, 1000);
      for (const p of preds) assertValid(p);
      const loads = server.scorer.loads().map((l, i) => ({ ...l, tokens: l.tokens - before[i]!.tokens, rows: l.rows - before[i]!.rows }));
      assert.deepEqual(loads.map((l) => l.name), ['cpu:0', 'cpu:1']);
      const [a, b] = loads as [(typeof loads)[0], (typeof loads)[0]];
      assert.ok(a.rows > 0 && b.rows > 0, `both sessions got rows: ${a.rows} / ${b.rows}`);
      const diff = Math.abs(a.tokens - b.tokens) / Math.max(a.tokens, b.tokens);
      assert.ok(diff <= 0.1, `token totals ${a.tokens} vs ${b.tokens} differ by ${(diff * 100).toFixed(1)}%`);
      const total = preds.reduce((s, p) => s + p.numTokens, 0);
      assert.equal(a.tokens + b.tokens, total, 'every row ran exactly once');
    } finally {
      client.close();
      await server.close();
    }
  });
});
