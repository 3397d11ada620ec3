// The SDK against a real server (fixture bundle, real ONNX sessions) on an ephemeral port.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { connect, PairprefError, type PairprefClient, type Row } from '../../client/index.ts';
import { turnsToRaw } from '../../core/parse.ts';
import type { RunningServer } from '../../server/server.ts';
import { freePort } from '../helpers/net.ts';
import { fixtureServerForFile, startFixtureServer } from './helpers.ts';

const fixture = fixtureServerForFile();
const { tmp, bundle } = fixture;
let client: PairprefClient;

before(async () => {
  client = connect((await fixture.started).address);
});
after(() => client.close());

function synthetic(i: number): Row {
  return { id: `r${i}`, prompt: [`question ${i % 97}?`], response_a: [`answer ${i % 13}`], response_b: [`reply ${i % 29} ok`] };
}

/** global.gc when run with --expose-gc, else the same function enabled at runtime. */
function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const sum = (p: { winner_model_a: number; winner_model_b: number; winner_tie: number }): number => p.winner_model_a + p.winner_model_b + p.winner_tie;

describe('score and modelInfo', () => {
  test('modelInfo and waitForReady answer the served model', async () => {
    const info = await client.waitForReady(5000);
    assert.equal(info.name, 'fixture');
    assert.deepEqual(info.labels, ['winner_model_a', 'winner_model_b', 'winner_tie']);
    assert.equal((await client.modelInfo()).devices[0]?.name, 'cpu');
  });

  test('score answers in order; Kaggle JSON-list strings and turn arrays give the same numbers', async () => {
    const turns = { id: 't', prompt: ['Hi', null], response_a: ['Hello', 'x'], response_b: ['Hey there', 'y'] } as const;
    const raw = { id: 'k', prompt: turnsToRaw(turns.prompt), response_a: turnsToRaw(turns.response_a), response_b: turnsToRaw(turns.response_b) };
    const preds = await client.score([turns, raw, synthetic(1), { id: 42, prompt: '["a"]', response_a: '["b"]', response_b: '["c"]' }]);
    assert.deepEqual(preds.map((p) => p.id), ['t', 'k', 'r1', '42']);
    for (const p of preds) {
      assert.equal(p.error, undefined);
      assert.ok(Math.abs(sum(p) - 1) < 1e-6);
      assert.ok(p.num_tokens > 0);
    }
    assert.equal(preds[0]?.winner_model_a, preds[1]?.winner_model_a);
    assert.equal(preds[0]?.winner_tie, preds[1]?.winner_tie);
  });

  test('bad rows get per-row errors naming the field, the call still succeeds', async () => {
    const preds = await client.score([
      synthetic(1),
      { id: 'notjson', prompt: 'hello', response_a: '["b"]', response_b: '["c"]' },
      { id: 'shape', prompt: [1, 2], response_a: ['b'], response_b: ['c'] } as unknown as Row,
    ]);
    assert.equal(preds[0]?.error, undefined);
    assert.equal(preds[1]?.error?.code, 3);
    assert.equal(preds[1]?.error?.field, 'raw.prompt');
    assert.equal(preds[2]?.error?.code, 3);
    assert.equal(preds[2]?.error?.field, 'prompt');
    assert.equal(preds[2]?.id, 'shape');
  });

  test('a deadline that is too short fails with DEADLINE_EXCEEDED', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => synthetic(i));
    await assert.rejects(client.score(rows, { deadlineMs: 1 }), (e: unknown) => e instanceof PairprefError && e.code === 4);
  });
});

describe('scoreStream', () => {
  test('ordered mode yields input order; the source is pulled only while the window has room', async () => {
    const window = 8;
    let pulled = 0;
    let consumed = 0;
    let maxAhead = 0;
    function* rows(): Generator<Row> {
      for (let i = 0; i < 300; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        yield synthetic(i);
      }
    }
    const ids: string[] = [];
    for await (const p of client.scoreStream(rows(), { window, ordered: true })) {
      assert.equal(p.index, ids.length);
      ids.push(p.id);
      consumed++;
    }
    assert.deepEqual(ids, Array.from({ length: 300 }, (_, i) => `r${i}`));
    // The row being pulled is counted before the window check frees it, hence + 1.
    assert.ok(maxAhead <= window + 1, `pulled ran ${maxAhead} rows ahead of the consumer (window ${window})`);
  });

  test('duplicate ids in one stream each get their own prediction', async () => {
    const a = { id: 'dup', prompt: ['p'], response_a: ['short'], response_b: ['a much longer answer here'] };
    const b = { id: 'dup', prompt: ['p'], response_a: ['a much longer answer here'], response_b: ['short'] };
    const out = [];
    for await (const p of client.scoreStream([a, b, a], { window: 4 })) out.push(p);
    out.sort((x, y) => x.index - y.index);
    const [single] = await client.score([b]);
    assert.equal(out[1]?.winner_model_a, single?.winner_model_a);
    assert.equal(out[0]?.winner_model_a, out[2]?.winner_model_a);
  });

  test('20,000 synthetic rows with window 64: every id once, peak heap growth (after gc) under 8 MB', async (t) => {
    const N = 20_000;
    // Heap after a full gc measures what the run retains, not garbage waiting for collection.
    const gc = exposeGc();
    gc();
    const base = process.memoryUsage().heapUsed;
    let peak = base;
    async function* rows(): AsyncGenerator<Row> {
      for (let i = 0; i < N; i++) yield synthetic(i);
    }
    const seen = new Uint8Array(N);
    let count = 0;
    try {
      for await (const p of client.scoreStream(rows(), { window: 64 })) {
        assert.equal(p.error, undefined);
        const i = Number(p.id.slice(1));
        assert.equal(p.index, i);
        seen[i]!++;
        if (++count % 500 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed);
        }
      }
    } finally {
      gc();
    }
    assert.equal(count, N);
    assert.ok(seen.every((s) => s === 1), 'every id exactly once');
    const growthMb = (peak - base) / 2 ** 20;
    t.diagnostic(`peak heap growth after gc: ${growthMb.toFixed(2)} MB`);
    assert.ok(growthMb < 8, `peak heap growth ${growthMb.toFixed(1)} MB`);
  });

  test('breaking out of the loop cancels the stream cleanly', async () => {
    let n = 0;
    for await (const _ of client.scoreStream(Array.from({ length: 500 }, (_, i) => synthetic(i)), { window: 16 })) {
      if (++n === 10) break;
    }
    assert.equal(n, 10);
    // The connection still serves calls afterwards.
    assert.equal((await client.score([synthetic(0)])).length, 1);
  });
});

describe('retry on UNAVAILABLE', () => {
  test('Score and a stream started before the server is up are retried until it serves', async () => {
    const port = await freePort();
    const late = connect(`127.0.0.1:${port}`, {
      retry: { maxRetries: 12, initialBackoffMs: 100, maxBackoffMs: 800 },
      channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 300 },
    });
    let lateServer: RunningServer | null = null;
    const starting = new Promise<void>((r) => setTimeout(r, 400)).then(async () => {
      lateServer = await startFixtureServer(bundle, port);
    });
    try {
      const [scored, streamed] = await Promise.all([
        late.score([synthetic(1), synthetic(2)]),
        (async () => {
          const out = [];
          for await (const p of late.scoreStream([synthetic(3), synthetic(4), synthetic(5)])) out.push(p.id);
          return out.sort();
        })(),
      ]);
      assert.deepEqual(scored.map((p) => p.id), ['r1', 'r2']);
      assert.deepEqual(streamed, ['r3', 'r4', 'r5']);
    } finally {
      await starting;
      late.close();
      await (lateServer as RunningServer | null)?.close();
    }
  });

  test('no server at all: fails with UNAVAILABLE after the retries', async () => {
    const port = await freePort();
    const none = connect(`127.0.0.1:${port}`, { retry: { maxRetries: 2, initialBackoffMs: 20 } });
    try {
      await assert.rejects(none.modelInfo(), (e: unknown) => e instanceof PairprefError && e.code === 14 && e.attempts === 3);
    } finally {
      none.close();
    }
  });
});
