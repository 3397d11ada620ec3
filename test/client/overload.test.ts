// The SDK against an overloaded server (--max-queue-tokens reached): Score calls refused with a
// retryable RESOURCE_EXHAUSTED are retried with backoff, and stream rows answered
// RESOURCE_EXHAUSTED are sent again, so every row ends up scored; a message that is simply too large
// is not retried.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { connect, PairprefError } from '../../client/index.ts';
import { serveModel } from '../../cli/wiring.ts';
import type { RunningServer } from '../../server/server.ts';
import { fixtureBundle, tempDir } from './helpers.ts';

const tmp = tempDir();
let server: RunningServer;
const row = (id: string) => ({ id, prompt: ['say something'], response_a: ['hello '.repeat(20)], response_b: ['hi'] });

before(async () => {
  // One token of backlog refuses new work: nearly every concurrent call or row meets the limit once.
  server = await serveModel({ modelDir: fixtureBundle(tmp.dir), port: 0, devices: 'cpu', intraOpThreads: 1, limits: { maxQueueTokens: 1 }, maxMessageBytes: 64 * 1024 });
});
after(async () => {
  await server.close();
  tmp.cleanup();
});

describe('SDK under overload', () => {
  test('concurrent Score calls: the refused ones are retried until all are scored', async () => {
    const client = connect(server.address, { retry: { maxRetries: 50, initialBackoffMs: 5, maxBackoffMs: 50 } });
    try {
      const refusedBefore = server.scorer.counters().rejected['queue_full'] ?? 0;
      const calls = await Promise.all(Array.from({ length: 12 }, (_, c) => client.score(Array.from({ length: 20 }, (_, i) => row(`c${c}-${i}`)))));
      for (const preds of calls) for (const p of preds) assert.equal(p.error, undefined, `${p.id}: ${p.error?.message}`);
      const refused = (server.scorer.counters().rejected['queue_full'] ?? 0) - refusedBefore;
      assert.ok(refused > 0, 'some calls were refused, and retried');
    } finally {
      client.close();
    }
  });

  test('a stream: rows answered RESOURCE_EXHAUSTED are sent again; every row is scored once', async () => {
    const client = connect(server.address, { retry: { maxRetries: 50, initialBackoffMs: 5, maxBackoffMs: 50 } });
    try {
      const stream = client.scoreStream(Array.from({ length: 300 }, (_, i) => row(`s${i}`)), { window: 32 });
      const seen = new Map<string, number>();
      for await (const p of stream) {
        assert.equal(p.error, undefined, `${p.id}: ${p.error?.message}`);
        seen.set(p.id, (seen.get(p.id) ?? 0) + 1);
      }
      assert.equal(seen.size, 300);
      assert.ok([...seen.values()].every((n) => n === 1));
      assert.ok(stream.stats().rowRetries > 0, `rows retried: ${stream.stats().rowRetries}`);
    } finally {
      client.close();
    }
  });

  test('a request over --max-message-bytes is not retried: RESOURCE_EXHAUSTED after one attempt', async () => {
    const client = connect(server.address, { retry: { maxRetries: 5, initialBackoffMs: 5, maxBackoffMs: 50 } });
    try {
      await assert.rejects(client.score([{ ...row('huge'), response_a: ['x'.repeat(100_000)] }]), (e: PairprefError) => {
        assert.equal(e.code, status.RESOURCE_EXHAUSTED);
        assert.equal(e.attempts, 1);
        return true;
      });
    } finally {
      client.close();
    }
  });
});
