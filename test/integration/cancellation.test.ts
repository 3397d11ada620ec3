// Deadlines, cancellation, fairness and stream backpressure on a real server: work of a call that
// is gone leaves the queues; a small call is not stuck behind a large one; a client that never
// reads cannot make the server read (and hold) its whole stream.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { serveModel } from '../../cli/wiring.ts';
import { PairwisePreferenceClient, Prediction, ScoreStreamRequest, type Comparison as WireComparison } from '../../proto/gen/pairpref/v1/preference.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { wire } from '../helpers/grpc-client.ts';
import { metric } from '../helpers/net.ts';
import { waitUntil as until } from '../helpers/wait.ts';

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

const idle = (s: RunningServer): boolean => {
  const b = s.scorer.backlog();
  return b.tokenizerRows + b.batchRows === 0;
};

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
  // The client is Python grpcio (C-core) with a fixed 64 KB receive window: once its application
  // stops reading, the window fills and the server's writes stop completing. (grpc-js's client, and
  // C-core with BDP probing, keep taking answers into their own memory, which is their choice.)
  test('a client that never reads: the server stops reading its stream; every row is answered once it reads', { timeout: 180_000 }, async () => {
    const server = await serveModel({ modelDir: dir, port: 0, devices: 'cpu', intraOpThreads: 1, maxInflightPerStream: 64 });
    const reqFile = join(work, 'requests.bin');
    const resFile = join(work, 'responses.bin');
    // Ids near the 256-byte limit make each answer large, so the transport's window fills quickly.
    const id = (i: number): string => `${i}`.padStart(250, 'x');
    const frames = Array.from({ length: 6000 }, (_, i) => {
      const msg = Buffer.from(ScoreStreamRequest.encode({ comparison: wire({ id: id(i), prompt: ['p'], responseA: ['a'], responseB: ['b'] }), options: undefined }).finish());
      const len = Buffer.alloc(4);
      len.writeUInt32BE(msg.length);
      return Buffer.concat([len, msg]);
    });
    writeFileSync(reqFile, Buffer.concat(frames));
    const py = spawn('/usr/bin/python3', ['-c', NEVER_READS_CLIENT, server.address, reqFile, resFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    py.stdout.on('data', (d: Buffer) => (out += d.toString()));
    py.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until('the client to write its rows', () => out.includes('written'), 60_000, 50);
      // Nothing reads the answers: wait until the server has taken no new row for half a second.
      let last = -1;
      let still = 0;
      await until('the server to stop reading', () => {
        const now = deviceRows(server);
        still = now === last && now > 0 ? still + 1 : 0;
        last = now;
        return still >= 5;
      }, 120_000, 100);
      const read = deviceRows(server);
      console.log(`# client not reading: the server ran ${read} of 6,000 rows, then stopped reading`);
      assert.ok(read < 2000, `the server took ${read} of 6,000 rows from a client that reads nothing`);
      py.stdin.end('read\n');
      const code = await new Promise<number | null>((resolve) => py.on('exit', resolve));
      assert.equal(code, 0, out);
      const answers = readFileSync(resFile);
      const ids = new Set<string>();
      for (let at = 0; at < answers.length; ) {
        const len = answers.readUInt32BE(at);
        const p = Prediction.decode(answers.subarray(at + 4, at + 4 + len));
        assert.equal(p.error, undefined);
        ids.add(p.id);
        at += 4 + len;
      }
      assert.equal(ids.size, 6000, 'every row answered once the client reads');
    } finally {
      py.kill('SIGKILL');
      await server.close();
    }
  });
});

/** Writes every request, waits for a line on stdin without reading answers, then reads them all. */
const NEVER_READS_CLIENT = `
import sys, struct, threading, grpc
addr, req_file, res_file = sys.argv[1:4]
data = open(req_file, 'rb').read()
msgs, at = [], 0
while at < len(data):
    (n,) = struct.unpack('>I', data[at:at + 4]); msgs.append(data[at + 4:at + 4 + n]); at += 4 + n
# BDP probing off: the receive window stays at 64 KB instead of growing to hold every answer.
ch = grpc.insecure_channel(addr, options=[('grpc.http2.bdp_probe', 0)])
call = ch.stream_stream('/pairpref.v1.PairwisePreference/ScoreStream', request_serializer=lambda b: b, response_deserializer=lambda b: b)
responses = call(iter(msgs))
print('written', flush=True)
sys.stdin.readline()
with open(res_file, 'wb') as f:
    for r in responses:
        f.write(struct.pack('>I', len(r)) + r)
`;
