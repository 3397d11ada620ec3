// browser/ in Node: the sidecar client (connect-web over Node's fetch, as in a page) against a real
// `serve --http-port`, and the router's choices (sidecar or page, and the fallback when the sidecar
// fails part way or is gone) with a stand-in page engine. The page itself, in Chromium, is
// test/web/sidecar.spec.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Engine, EngineInfo, ScoredRow } from '../../browser/page-engine.ts';
import { createRouter, DEFAULT_LOCAL_MAX_ROWS } from '../../browser/router.ts';
import { connectSidecar, SidecarError, wireIds, type Sidecar } from '../../browser/sidecar.ts';
import { serveModel } from '../../cli/wiring.ts';
import { errorPrediction, probsOf, scoredPrediction, type Prediction } from '../../core/result.ts';
import type { Comparison, PreferenceConfig } from '../../core/types.ts';
import type { RunningServer } from '../../server/server.ts';
import { promptSnippet } from '../../web/src/render.ts';
import { resultsCsv } from '../../web/src/results-csv.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { readArena } from '../helpers/shared-data.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-browser-'));
const bundle = writeFixtureBundle(join(work, 'bundle')).dir;
after(() => rmSync(work, { recursive: true, force: true }));

const ROWS: Comparison[] = (await readArena('alpaca-pairs-dev.csv.gz', 20)).map((r) => ({ ...r, kind: 'raw' as const }));

/** A page engine that answers 1/3 each and records what it was asked. */
function fakePage(name = 'fixture', version = 'test'): Engine & { asked: Comparison[][] } {
  const asked: Comparison[][] = [];
  const info: EngineInfo = { provider: 'wasm', fallbackReason: null, adapter: null, label: 'wasm (CPU)', modelName: name, modelVersion: version, modelBase: './model/', loadMs: 0 };
  return {
    info,
    config: {} as PreferenceConfig,
    asked,
    async scoreRows(rows) {
      asked.push([...rows]);
      return rows.map((r): ScoredRow => ({ ...scoredPrediction(r.id, [1 / 3, 1 / 3, 1 / 3], 5, false), ids: [1, 2, 3], latencyMs: 1, batchSize: rows.length, provider: 'wasm' }));
    },
  };
}

describe('the sidecar client (connect-web) against serve --http-port', () => {
  let server: RunningServer;
  let url: string;
  let reference: Prediction[];

  before(async () => {
    server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, batching: { maxBatchSize: 1 }, httpPort: 0, metricsPort: 0 });
    url = `http://127.0.0.1:${server.httpPort}`;
    reference = await server.scorer.score(ROWS);
  });
  after(async () => void (await server?.close()));

  test('model() and score(): the server\'s answers, joined back to the rows by id, in order', async () => {
    const sidecar = connectSidecar({ url });
    assert.deepEqual(await sidecar.model(), { name: 'fixture', version: 'test' });
    const seen: number[] = [];
    const got = await sidecar.score(ROWS, { onRow: (i) => seen.push(i) });
    assert.deepEqual(got.map((p) => p.id), ROWS.map((r) => r.id));
    assert.deepEqual([...seen].sort((a, b) => a - b), ROWS.map((_, i) => i));
    got.forEach((p, i) => probsOf(p).forEach((x, k) => assert.ok(Math.abs(x - probsOf(reference[i]!)[k]!) <= 1e-9)));
  });

  test('rows with duplicate or empty ids go by their positions and come back with their own ids', async () => {
    const rows: Comparison[] = [ROWS[0]!, { ...ROWS[1]!, id: ROWS[0]!.id }, { ...ROWS[2]!, id: '' }];
    assert.deepEqual(wireIds(rows), ['#0', '#1', '#2']);
    assert.deepEqual(wireIds(ROWS.slice(0, 2)), [ROWS[0]!.id, ROWS[1]!.id]);
    const got = await connectSidecar({ url }).score(rows);
    assert.deepEqual(got.map((p) => p.id), [ROWS[0]!.id, ROWS[0]!.id, '']);
    for (const p of got) assert.equal(p.error, undefined);
  });

  test('the router sends more than localMaxRows rows to the sidecar and fewer to the page; every row says where', async () => {
    const page = fakePage();
    const router = createRouter({ page, sidecar: connectSidecar({ url }) });
    assert.equal(router.localMaxRows, DEFAULT_LOCAL_MAX_ROWS);
    const before = server.scorer.loads().reduce((n, l) => n + l.rows, 0);
    const big = await router.scoreRows(ROWS);
    assert.equal(big.report.route, 'sidecar');
    assert.equal(big.report.fallback, null);
    assert.ok(big.rows.every((r) => r.scoredBy === 'sidecar' && r.provider === null));
    assert.equal(server.scorer.loads().reduce((n, l) => n + l.rows, 0) - before, ROWS.length, 'the server ran every row');
    assert.equal(router.status().state, 'reachable');
    const small = await router.scoreRows(ROWS.slice(0, DEFAULT_LOCAL_MAX_ROWS));
    assert.equal(small.report.route, 'page');
    assert.ok(small.rows.every((r) => r.scoredBy === 'page' && r.provider === 'wasm'));
    assert.equal(page.asked.length, 1);
  });

  test('a sidecar that serves another model is not used', async () => {
    const router = createRouter({ page: fakePage('other', '1'), sidecar: connectSidecar({ url }) });
    const r = await router.scoreRows(ROWS);
    assert.equal(r.report.route, 'page');
    assert.match(r.report.fallback ?? '', /serves fixture test, the page other 1: not used/);
    assert.ok(r.rows.every((x) => x.scoredBy === 'page'));
  });
});

describe('the router when the sidecar fails', () => {
  test('a sidecar that is gone: the batch is scored in the page, with the reason', async () => {
    const server = await serveModel({ modelDir: bundle, port: 0, devices: 'cpu', intraOpThreads: 1, httpPort: 0 });
    const url = `http://127.0.0.1:${server.httpPort}`;
    const page = fakePage();
    const router = createRouter({ page, sidecar: connectSidecar({ url }) });
    assert.equal(await router.check(), true);
    await server.close();
    const r = await router.scoreRows(ROWS);
    assert.equal(r.report.fallbackRows, ROWS.length);
    assert.match(r.report.fallback ?? '', /cannot reach http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(r.rows.every((x) => x.scoredBy === 'page'));
    assert.equal(router.status().state, 'unreachable');
    await assert.rejects(connectSidecar({ url }).model(), (e: unknown) => e instanceof SidecarError && e.code === null);
  });

  test('a sidecar that fails part way: its answers are kept, the rest and its retryable row errors are scored in the page', async () => {
    const sidecar: Sidecar = {
      url: 'http://fake',
      model: async () => ({ name: 'fixture', version: 'test' }),
      async score(rows, o) {
        rows.slice(0, 5).forEach((r, i) => {
          const p = i === 4 ? errorPrediction(r.id, { code: 8, field: '', message: 'queue full' }) : scoredPrediction(r.id, [0.7, 0.2, 0.1], 9, false);
          o?.onRow?.(i, p);
        });
        throw new SidecarError('http://fake answered UNAVAILABLE: pairpref is shutting down', 14);
      },
    };
    const page = fakePage();
    const r = await createRouter({ page, sidecar }).scoreRows(ROWS);
    assert.deepEqual(r.rows.map((x) => x.scoredBy), [...Array(4).fill('sidecar'), ...Array(ROWS.length - 4).fill('page')]);
    assert.deepEqual(r.rows.map((x) => x.id), ROWS.map((x) => x.id));
    assert.equal(r.report.fallbackRows, ROWS.length - 4);
    assert.match(r.report.fallback ?? '', /shutting down/);
    assert.deepEqual(page.asked[0]!.map((x) => x.id), ROWS.slice(4).map((x) => x.id));
  });

  test('no sidecar: everything in the page', async () => {
    const r = await createRouter({ page: fakePage() }).scoreRows(ROWS);
    assert.equal(r.report.route, 'page');
    assert.equal(r.report.fallback, null);
  });
});

describe('the page\'s results', () => {
  test('the CSV download: a header, one line per row in order, quoted where needed', () => {
    const rows = [
      { ...scoredPrediction('a,1', [0.5, 0.25, 0.25], 7, true), scoredBy: 'sidecar' as const, provider: null, ids: null, latencyMs: 3, batchSize: 2 },
      { ...errorPrediction('b', { code: 3, field: 'raw.prompt', message: 'row "b": raw.prompt is not a JSON list' }), scoredBy: 'page' as const, provider: 'wasm' as const, ids: null, latencyMs: 3, batchSize: 2 },
    ];
    assert.equal(
      resultsCsv(rows),
      'id,winner_model_a,winner_model_b,winner_tie,num_tokens,truncated,scored_by,provider,error\n"a,1",0.5,0.25,0.25,7,true,sidecar,,\nb,0,0,0,0,false,page,wasm,"row ""b"": raw.prompt is not a JSON list"\n',
    );
  });

  test('the prompt snippet: the first turn, of turn lists or of a raw JSON list, cut with an ellipsis', () => {
    assert.equal(promptSnippet({ id: '1', kind: 'turns', prompt: ['  What   is\n2+2? ', 'more'], response_a: [], response_b: [] }), 'What is 2+2?');
    assert.equal(promptSnippet({ id: '1', kind: 'raw', prompt: '["first", "second"]', response_a: '', response_b: '' }), 'first');
    assert.equal(promptSnippet({ id: '1', kind: 'raw', prompt: 'not json', response_a: '', response_b: '' }), 'not json');
    assert.equal(promptSnippet({ id: '1', kind: 'turns', prompt: ['x'.repeat(300)], response_a: [], response_b: [] }, 10), `${'x'.repeat(9)}…`);
  });
});
