// The batch scheduler on its own, with executors that record the batches they are given.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EncodedRow } from '../../core/types.ts';
import { BatchScheduler, type BatchExecutor } from '../../engine/scheduler.ts';

const row = (len: number, tag = len): EncodedRow => ({ ids: new Int32Array(len).fill(tag), truncated: false, features: null });

/** Executes after `delayMs`, answering each row with its first id so results can be checked. */
function recorder(name: string, delayMs = 1): BatchExecutor<number> & { batches: number[][] } {
  const batches: number[][] = [];
  return {
    name,
    batches,
    execute: (rows) =>
      new Promise((resolve) => {
        batches.push(rows.map((r) => r.ids.length));
        setTimeout(() => resolve(rows.map((r) => r.ids[0]!)), delayMs);
      }),
  };
}

test('rows submitted together are cut longest first under the padded-token budget', async () => {
  const ex = recorder('d0');
  const s = new BatchScheduler([ex], { maxBatchTokens: 100, maxBatchSize: 64, maxQueueDelayMs: 0 });
  const lens = [5, 40, 10, 30, 20, 25, 50, 5, 120];
  const results = await Promise.all(lens.map((l, i) => s.submit(row(l, i + 1))));
  assert.deepEqual(results, lens.map((_, i) => i + 1), 'each row gets its own result');
  // 120 > budget runs alone; then 50,40 (2 x 50 = 100); 30,25,20 (3 x 30); 10,5,5.
  assert.deepEqual(ex.batches, [[120], [50, 40], [30, 25, 20], [10, 5, 5]]);
  for (const b of ex.batches) if (b.length > 1) assert.ok(b[0]! * b.length <= 100);
});

test('maxBatchSize caps rows per batch', async () => {
  const ex = recorder('d0');
  const s = new BatchScheduler([ex], { maxBatchTokens: 10_000, maxBatchSize: 3, maxQueueDelayMs: 0 });
  await Promise.all(Array.from({ length: 7 }, () => s.submit(row(4))));
  assert.deepEqual(ex.batches.map((b) => b.length), [3, 3, 1]);
});

test('full batches are dealt to the device with the fewest outstanding tokens', async () => {
  const a = recorder('a', 5);
  const b = recorder('b', 5);
  const s = new BatchScheduler([a, b], { maxBatchTokens: 64, maxBatchSize: 64, maxQueueDelayMs: 0 });
  await Promise.all(Array.from({ length: 64 }, (_, i) => s.submit(row(8 + (i % 8)))));
  const tokens = (ex: { batches: number[][] }) => ex.batches.reduce((t, bt) => t + bt[0]! * bt.length, 0);
  const [ta, tb] = [tokens(a), tokens(b)];
  assert.ok(a.batches.length > 0 && b.batches.length > 0);
  // Dealt at once, greedily to the least outstanding: the totals differ by at most one batch.
  assert.ok(Math.abs(ta - tb) <= 64, `padded tokens ${ta} vs ${tb}`);
  await new Promise((r) => setImmediate(r)); // load counters update just after the results resolve
  assert.equal(s.loads().reduce((n, l) => n + l.rows, 0), 64);
});

test('a partial batch waits up to maxQueueDelayMs for more rows', async () => {
  const ex = recorder('d0');
  const s = new BatchScheduler([ex], { maxBatchTokens: 1000, maxBatchSize: 64, maxQueueDelayMs: 30 });
  const first = s.submit(row(10));
  await new Promise((r) => setTimeout(r, 10));
  const second = s.submit(row(10));
  await Promise.all([first, second]);
  assert.deepEqual(ex.batches, [[10, 10]], 'the second row joined the first one\'s batch');
});

test('a short row is not starved by a steady stream of long rows', async () => {
  const ex = recorder('d0', 2);
  const s = new BatchScheduler([ex], { maxBatchTokens: 100, maxBatchSize: 64, maxQueueDelayMs: 1 });
  let shortDone = false;
  const short = s.submit(row(3)).then(() => (shortDone = true));
  const long: Promise<number>[] = [];
  const started = performance.now();
  while (!shortDone && performance.now() - started < 2000) {
    for (let i = 0; i < 4; i++) long.push(s.submit(row(50)));
    await new Promise((r) => setTimeout(r, 1));
  }
  // The loop only stops early if the short row finished while long rows were still arriving.
  assert.ok(shortDone, 'the short row finished while long rows kept arriving');
  await short;
  await Promise.all(long);
});

test('a failing batch rejects only its own rows; close rejects what is still queued', async () => {
  let calls = 0;
  const flaky: BatchExecutor<number> = {
    name: 'flaky',
    execute: (rows) => (++calls === 1 ? Promise.reject(new Error('device lost')) : Promise.resolve(rows.map(() => 1))),
  };
  const s = new BatchScheduler([flaky], { maxBatchTokens: 20, maxBatchSize: 64, maxQueueDelayMs: 0 });
  const results = await Promise.allSettled([s.submit(row(10)), s.submit(row(10)), s.submit(row(5))]);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'fulfilled']);
  assert.match(String((results[0] as PromiseRejectedResult).reason), /device lost/);

  const slow = recorder('slow', 50);
  const t = new BatchScheduler([slow], { maxBatchTokens: 10, maxBatchSize: 1, maxQueueDelayMs: 0 });
  const running = t.submit(row(5));
  await new Promise((r) => setTimeout(r, 5));
  const queued = t.submit(row(5));
  t.close();
  await assert.rejects(queued, /shutting down/);
  assert.equal(await running, 5, 'the running batch finishes');
  await assert.rejects(t.submit(row(1)), /closed/);
});

test('aborting a call drops all its waiting rows at once; other calls and the running batch are untouched', async () => {
  const slow = recorder('slow', 30);
  const s = new BatchScheduler([slow], { maxBatchTokens: 40, maxBatchSize: 64, maxQueueDelayMs: 0 });
  const ac = new AbortController();
  const running = s.submit(row(10, 1), { signal: ac.signal });
  await new Promise((r) => setTimeout(r, 5)); // the first batch is on the device now
  const mine = Array.from({ length: 2000 }, () => s.submit(row(10, 2), { signal: ac.signal }));
  const other = s.submit(row(10, 3));
  ac.abort('deadline');
  const settled = await Promise.allSettled(mine);
  assert.ok(settled.every((r) => r.status === 'rejected' && /deadline passed/.test(String(r.reason))), 'every waiting row of the call was dropped');
  assert.equal(await running, 1, 'the running row finished');
  assert.equal(await other, 3, 'the other call was served');
  assert.equal(s.queuedTokens, 0);
  assert.equal(s.queuedRows, 0);
});
