// --max-connection-age-ms: the server ends each connection (GOAWAY) once it is that old, so a client
// behind a headless Service re-resolves and reaches replicas added since it connected. Observed from
// a real client: its channel leaves READY without the client doing anything, and the next call
// opens a new connection and is answered.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { connectivityState, credentials, Metadata, type ChannelInterface } from '@grpc/grpc-js';
import { connect } from '../../client/index.ts';
import { serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, type Prediction, type ScoreResponse } from '../../proto/gen/pairpref/v1/preference.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';

const ROWS = [wire({ id: 'r1', prompt: ['hi'], responseA: ['hello'], responseB: ['hey'] })];

function score(c: PairwisePreferenceClient): Promise<Prediction[]> {
  return new Promise((resolve, reject) =>
    c.score({ comparisons: ROWS, options: undefined }, new Metadata(), { deadline: Date.now() + 30_000 }, (err: Error | null, res?: ScoreResponse) =>
      err ? reject(err) : resolve(res?.predictions ?? []),
    ),
  );
}

/** Resolves true once the channel leaves READY, false if it is still READY after `ms`. */
function leavesReady(ch: ChannelInterface, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const state = ch.getConnectivityState(false);
    if (state !== connectivityState.READY) return resolve(true);
    ch.watchConnectivityState(state, Date.now() + ms, (err) => resolve(!err && ch.getConnectivityState(false) !== connectivityState.READY));
  });
}

async function withServer(ageMs: number | undefined, fn: (c: PairwisePreferenceClient) => Promise<void>, bundleDir: string): Promise<void> {
  const server: RunningServer = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', maxConnectionAgeMs: ageMs, maxConnectionAgeGraceMs: 200 });
  const c = new PairwisePreferenceClient(server.address, credentials.createInsecure());
  try {
    await fn(c);
  } finally {
    c.close();
    await server.close({ graceMs: 0, timeoutMs: 1000 });
  }
}

describe('--max-connection-age-ms', () => {
  let bundleDir = '';
  before(() => {
    bundleDir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-age-'))).dir;
  });

  test('an idle connection is closed at its age and the next call reconnects', async () => {
    await withServer(300, async (c) => {
      assert.equal((await score(c)).length, 1);
      assert.equal(c.getChannel().getConnectivityState(false), connectivityState.READY);
      assert.equal(await leavesReady(c.getChannel(), 5_000), true, 'the server never ended the connection');
      const again = await score(c);
      assert.equal(again[0]?.id, 'r1');
    }, bundleDir);
  });

  test('without the flag the connection stays open', async () => {
    await withServer(undefined, async (c) => {
      await score(c);
      assert.equal(await leavesReady(c.getChannel(), 1_500), false);
    }, bundleDir);
  });

  test('an SDK stream that outlives several connection ages gets every row once', async () => {
    const server = await serveModel({ modelDir: bundleDir, port: 0, devices: 'cpu', maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 50 });
    const client = connect([server.address]);
    try {
      const n = 3000;
      async function* rows(): AsyncGenerator<{ id: string; prompt: string[]; response_a: string[]; response_b: string[] }> {
        for (let i = 0; i < n; i++) {
          // A slow producer keeps the stream open across many GOAWAYs.
          if (i % 100 === 0) await new Promise((r) => setTimeout(r, 20));
          yield { id: `row-${i}`, prompt: [`question ${i}`], response_a: ['yes'], response_b: ['no'] };
        }
      }
      const seen = new Map<string, number>();
      const started = Date.now();
      const stream = client.scoreStream(rows(), { window: 16 });
      for await (const p of stream) {
        assert.equal(p.error, undefined, `${p.id}: ${p.error?.message}`);
        seen.set(p.id, (seen.get(p.id) ?? 0) + 1);
      }
      assert.ok(Date.now() - started > 600, 'the stream did not outlive a few connection ages; the test proves nothing');
      assert.equal(seen.size, n);
      assert.ok([...seen.values()].every((c) => c === 1), 'a row was answered twice');
      assert.ok(stream.stats().replicaFailures > 0, `no stream was cut by the connection age: ${JSON.stringify(stream.stats())}`);
    } finally {
      client.close();
      await server.close({ graceMs: 0, timeoutMs: 1000 });
    }
  });
});
