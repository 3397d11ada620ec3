// Deadlines, cancellation, fairness and stream backpressure on a real server: work of a call that
// is gone leaves the queues; a small call is not stuck behind a large one; a client that never
// reads cannot make the server read (and hold) its whole stream.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, type Comparison as WireComparison, type Prediction } from '../../proto/gen/pairpref/v1/preference.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';

const work = mkdtempSync(join(tmpdir(), 'pairpref-cancel-'));
const dir = writeFixtureBundle(join(work, 'bundle'), { preference: { truncation: { max_length: 512 } } }).dir;
after(() => rmSync(work, { recursive: true, force: true }));

/** n synthetic rows of varied length around `chars` characters (a small message, real tokenizing work). */
function synthRows(n: number, tag: string, chars: number): WireComparison[] {
  const words = 'the quick brown fox jumps over the lazy dog while answering a question about servers '.repeat(20);
  return Array.from({ length: n }, (_, i) => {
    const len = Math.round(chars * (0.5 + ((i * 7919) % 100) / 100));
    return wire({ id: `${tag}-${i}`, prompt: [`question ${i}`], responseA: [words.slice(0, len)], responseB: [words.slice(len % 50, len % 50 + len / 2)] });
  });
}

const deviceRows = (s: RunningServer): number => s.scorer.loads().reduce((n, l) => n + l.rows, 0);

const until = async (what: string, cond: () => boolean, ms = 60_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const idle = (s: RunningServer): boolean => {
  const b = s.scorer.backlog();
  return b.tokenizerRows + b.batchRows === 0;
};

async function metric(s: RunningServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.split(' ')[0] === name);
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('deadlines and cancellation', () => {
  test('3,000 rows with a 100 ms deadline: DEADLINE_EXCEEDED, and far fewer rows reach the device than were sent', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, maxRowsPerCall: 3000, metricsPort: 0 });
    const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    try {
      const rows = synthRows(3000, 'd', 400);
      const before = deviceRows(server);
      const err = await new Promise<ServiceError | null>((resolve) =>
        client.score({ comparisons: rows, options: undefined }, new Metadata(), { deadline: Date.now() + 100 }, (e) => resolve(e)),
      );
      assert.equal(err?.code, status.DEADLINE_EXCEEDED);
      await until('the queues to empty', () => idle(server));
      const ran = deviceRows(server) - before;
      const dropped = server.scorer.counters().dropped.deadline;
      console.log(`# 3,000 rows, 100 ms deadline: ${ran} reached the device, ${dropped} dropped`);
      assert.ok(ran < 1500, `${ran} of 3,000 rows reached the device`);
      assert.ok(dropped >= 3000 - ran - 64, `dropped ${dropped}, ran ${ran}`);
      assert.equal(await metric(server, 'pairpref_rows_dropped_total{reason="deadline"}'), dropped);
      const ok = await metric(server, 'pairpref_rows_total{outcome="ok"}');
      assert.ok(ok <= ran, `rows counted ok (${ok}) never include dropped ones (ran ${ran})`);
    } finally {
      client.close();
      await server.close();
    }
  });

  test('a stream cancelled with thousands of rows in flight: its queued rows are dropped, not computed', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, maxInflightPerStream: 4000 });
    const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    try {
      const rows = synthRows(3000, 'c', 400);
      const before = deviceRows(server);
      const call = client.scoreStream();
      let answered = 0;
      call.on('data', () => answered++);
      const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
      for (const c of rows) call.write({ comparison: c, options: undefined });
      // Cancel once the server has read most of the stream: thousands of rows are in flight.
      await until('rows in flight', () => server.scorer.backlog().tokenizerRows + server.scorer.backlog().batchRows > 1000);
      call.cancel();
      assert.equal((await ended).code, status.CANCELLED);
      await until('the queues to empty', () => idle(server));
      const ran = deviceRows(server) - before;
      const dropped = server.scorer.counters().dropped.cancelled;
      console.log(`# stream of 3,000 cancelled after ${answered} answers: ${ran} rows reached the device, ${dropped} dropped`);
      assert.ok(ran < 2000, `${ran} of 3,000 rows reached the device after the cancel`);
      assert.ok(dropped > 500, `${dropped} rows dropped of the more than 1,000 queued at the cancel`);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('fairness', () => {
  test('a 1-row call is answered while a 20,000-row call from another client runs', async () => {
    // The big call's whole backlog is admitted (the queue limit is raised to hold it): this is about order, not admission.
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, maxRowsPerCall: 20_000, maxMessageBytes: 512 * 1024 * 1024, limits: { maxQueueTokens: 100_000_000 } });
    const bigClient = new PairwisePreferenceClient(server.address, credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    const smallClient = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    try {
      const rows = synthRows(20_000, 'big', 200);
      let bigDone = false;
      const big = new Promise<Prediction[]>((resolve, reject) =>
        bigClient.score({ comparisons: rows, options: undefined }, (e, r) => (e ? reject(e) : resolve(r!.predictions))),
      ).finally(() => (bigDone = true));
      await until('the big call to be running', () => deviceRows(server) > 0);
      const small = await new Promise<Prediction[]>((resolve, reject) =>
        smallClient.score({ comparisons: [wire({ id: 'small', prompt: ['hi'], responseA: ['hello'], responseB: ['hey'] })], options: undefined }, (e, r) => (e ? reject(e) : resolve(r!.predictions))),
      );
      const ranWhenSmallDone = deviceRows(server);
      assert.equal(small[0]!.error, undefined);
      assert.equal(bigDone, false, 'the small call finished first');
      console.log(`# the 1-row call was answered when ${ranWhenSmallDone} of the 20,000 rows had run`);
      assert.ok(ranWhenSmallDone < 20_000);
      assert.equal((await big).length, 20_000);
    } finally {
      bigClient.close();
      smallClient.close();
      await server.close();
    }
  });
});

describe('stream backpressure', () => {
  test('a client that never reads: the server stops reading its stream; every row is answered once it reads', async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, maxInflightPerStream: 64 });
    const client = new PairwisePreferenceClient(server.address, credentials.createInsecure());
    try {
      const call = client.scoreStream();
      const id = (i: number): string => `${i}`.padStart(100, 'x');
      for (let i = 0; i < 6000; i++) call.write({ comparison: wire({ id: id(i), prompt: ['p'], responseA: ['a'], responseB: ['b'] }), options: undefined });
      // Nothing reads the answers: wait until the server has stopped taking rows.
      let last = -1;
      await until('the server to stop reading', () => {
        const now = deviceRows(server);
        const stable = now === last && now > 0;
        last = now;
        return stable;
      });
      await new Promise((r) => setTimeout(r, 300));
      const read = deviceRows(server);
      console.log(`# client not reading: the server ran ${read} of 6,000 rows, then stopped reading`);
      assert.ok(read < 3000, `the server took ${read} of 6,000 rows from a client that reads nothing`);
      const seen = new Set<string>();
      call.on('data', (p: Prediction) => seen.add(p.id));
      call.end();
      await new Promise<void>((resolve, reject) => {
        call.on('end', resolve);
        call.on('error', reject);
      });
      assert.equal(seen.size, 6000, 'every row answered once the client reads');
    } finally {
      client.close();
      await server.close();
    }
  });
});
