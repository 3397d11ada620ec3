// Client resilience against real servers on loopback: rows spread over three replicas, one of them
// (a `pairpref serve` child process) killed mid-run; a replica stopped with SIGSTOP is given up on
// by the idle timeout or the keepalive instead of hanging the client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, PairprefError, type ReplicaFailure, type Row, type ScoreStream } from '../../client/index.ts';
import type { RunningServer } from '../../server/server.ts';
import { spawnServer, type ChildServer } from './child-server.ts';
import { fixtureBundle, startFixtureServer, tempDir } from './helpers.ts';

const tmp = tempDir();
const bundle = fixtureBundle(tmp.dir);
after(() => tmp.cleanup());

const synthetic = (i: number): Row => ({ id: `r${i}`, prompt: [`question ${i % 97}?`], response_a: [`answer ${i % 13}`], response_b: [`reply ${i % 29} ok`] });
const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => synthetic(i));
const rowsDone = (s: RunningServer): number => s.scorer.loads().reduce((n, l) => n + l.rows, 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// Quick retries keep the test short; the defaults (100 ms doubling to 5 s) would work the same.
const retry = { maxRetries: 5, initialBackoffMs: 50, maxBackoffMs: 500 };

/**
 * Stops the child, waits until the client has dealt it rows it now cannot answer, and kills it.
 * (A kill at an arbitrary instant could land just after it sent every answer it owed, and then
 * there would be nothing to re-send.) Returns the rows it held when killed.
 */
async function killWhileHolding(child: ChildServer, stream: ScoreStream): Promise<number> {
  child.signal('SIGSTOP');
  const held = (): number => stream.stats().replicas.find((r) => r.target === child.address)?.outstanding ?? 0;
  for (let i = 0; i < 500 && held() === 0; i++) await sleep(10);
  const n = held();
  child.signal('SIGKILL');
  return n;
}

/** Consumes a stream: how many times each row index came back. */
async function drain(stream: AsyncIterable<{ index: number; error?: unknown }>, n: number, onEach?: (answered: number) => void): Promise<Uint8Array> {
  const seen = new Uint8Array(n);
  let answered = 0;
  for await (const p of stream) {
    assert.equal(p.error, undefined);
    seen[p.index]!++;
    onEach?.(++answered);
  }
  return seen;
}

test('three replicas, one killed mid-run: 3,000 rows each answered exactly once, the re-sent ones counted', async (t) => {
  const local = await Promise.all([startFixtureServer(bundle), startFixtureServer(bundle)]);
  const child = await spawnServer(bundle);
  const failures: ReplicaFailure[] = [];
  const client = connect([local[0]!.address, child.address, local[1]!.address], { retry, onReplicaFailure: (f) => failures.push(f) });
  try {
    await client.waitForReady(10_000);
    const before = local.map(rowsDone);
    const N = 3000;
    const stream = client.scoreStream(rows(N), { window: 48 });
    let killed: Promise<number> | null = null;
    const seen = await drain(stream, N, (answered) => {
      if (answered === N / 3) killed = killWhileHolding(child, stream);
    });
    const heldAtKill = await (killed as Promise<number> | null);
    assert.ok(seen.every((c) => c === 1), 'every row answered exactly once');

    const st = stream.stats();
    const byTarget = new Map(st.replicas.map((r) => [r.target, r]));
    const dead = byTarget.get(child.address)!;
    t.diagnostic(`held at the kill: ${heldAtKill}; re-sent: ${st.resent}; per replica (sent/answered): ${st.replicas.map((r) => `${r.sent}/${r.answered}`).join(', ')}`);
    assert.ok(heldAtKill !== null && heldAtKill > 0, `the killed replica held ${heldAtKill} row(s)`);
    assert.ok(st.resent >= heldAtKill, `re-sent ${st.resent}, held at the kill ${heldAtKill}`);
    assert.equal(st.resent, failures.reduce((n, f) => n + f.resent, 0), 'stats and onReplicaFailure agree');
    assert.ok(failures.length > 0 && failures.every((f) => f.target === child.address), JSON.stringify(failures));
    assert.equal(dead.sent - dead.answered, st.resent, 'what the killed replica never answered is what was re-sent');
    assert.ok(st.replicas.every((r) => r.answered > 0), 'the rows were spread over all three replicas');
    assert.equal(st.answered, N);
    assert.equal(st.sent, N + st.resent);
    // The survivors' own counters: every row dealt to them was scored there once.
    local.forEach((s, i) => {
      const lane = byTarget.get(s.address)!;
      assert.equal(lane.failures, 0);
      assert.equal(lane.sent, lane.answered);
      assert.equal(rowsDone(s) - before[i]!, lane.answered, `server ${s.address} scored what the client says it answered`);
    });
  } finally {
    client.close();
    await child.dispose();
    await Promise.all(local.map((s) => s.close()));
  }
});

describe('a replica stopped with SIGSTOP', () => {
  let child: ChildServer;
  let local: RunningServer;
  before(async () => {
    [child, local] = await Promise.all([spawnServer(bundle), startFixtureServer(bundle)]);
  });
  after(async () => {
    await child.dispose();
    await local.close();
  });

  test('mid-run: the idle timeout moves its rows to the other replica; every row answered once', async () => {
    const failures: ReplicaFailure[] = [];
    const client = connect([child.address, local.address], { retry, idleTimeoutMs: 1000, onReplicaFailure: (f) => failures.push(f) });
    try {
      await client.waitForReady(10_000);
      const stream = client.scoreStream(rows(600), { window: 16 });
      const seen = await drain(stream, 600, (answered) => answered === 100 && child.signal('SIGSTOP'));
      assert.ok(seen.every((c) => c === 1), 'every row answered exactly once');
      const st = stream.stats();
      assert.ok(st.resent > 0, 'the stopped replica held rows');
      assert.equal(st.resent, failures.reduce((n, f) => n + f.resent, 0));
      assert.ok(failures.length > 0 && failures.every((f) => f.target === child.address && /idle timeout/.test(f.message)), JSON.stringify(failures));
    } finally {
      client.close();
    }
  });

  test('alone: the stream fails with UNAVAILABLE after the idle timeouts instead of hanging', async () => {
    const client = connect(child.address, { idleTimeoutMs: 300, retry: { maxRetries: 1, initialBackoffMs: 20, maxBackoffMs: 50 } });
    try {
      await assert.rejects(drain(client.scoreStream(rows(10)), 10), (e: unknown) => e instanceof PairprefError && e.code === 14 && /idle timeout/.test(e.message));
    } finally {
      client.close();
    }
  });

  test('idle timeout off: the keepalive drops the silent connection; the rows are re-sent once the server is back', { timeout: 60_000 }, async () => {
    child.signal('SIGCONT');
    const failures: ReplicaFailure[] = [];
    const client = connect(child.address, {
      idleTimeoutMs: 0,
      keepaliveTimeMs: 1000,
      keepaliveTimeoutMs: 300,
      retry,
      onReplicaFailure: (f) => {
        failures.push(f);
        // Resumed, it completes the handshake of the client's new connection and serves the rows
        // again. (grpc-js gives a handshake no timeout of its own: that is what idleTimeoutMs is for.)
        if (failures.length === 1) child.signal('SIGCONT');
      },
    });
    try {
      await client.waitForReady(10_000); // the connection is up before the server goes silent
      child.signal('SIGSTOP');
      const stream = client.scoreStream(rows(20));
      const seen = await drain(stream, 20);
      assert.ok(seen.every((c) => c === 1), 'every row answered exactly once');
      assert.equal(failures[0]?.code, 14);
      assert.doesNotMatch(failures[0]?.message ?? '', /idle timeout/);
      assert.ok(stream.stats().resent > 0);
    } finally {
      client.close();
    }
  });
});
