// client/failover.ts against fake replicas (no network): how rows are dealt, what happens to the
// rows of a failed call and to answers that straggle in from it, when the iteration gives up.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { connectivityState, status } from '@grpc/grpc-js';
import type { Replica } from '../../client/channels.ts';
import { FailoverStreams, type FailoverSettings, type ReplicaFailure } from '../../client/failover.ts';
import { PairprefError } from '../../client/retry.ts';
import type { StreamPrediction } from '../../core/result.ts';
import type { Row } from '../../core/rows.ts';
import { windowedScore } from '../../core/window.ts';
import type { Comparison as WireComparison, PairwisePreferenceClient, Prediction as WirePrediction } from '../../proto/gen/pairpref/v1/preference.ts';

type Mode = 'answer' | 'hold';

/** One ScoreStream call of a fake replica: answers each row on the next tick, or holds it. */
class FakeCall extends EventEmitter {
  readonly held: WireComparison[] = [];
  cancelled = false;
  ended = false;
  constructor(private readonly mode: Mode) {
    super();
  }
  write(msg: { comparison: WireComparison }): boolean {
    if (this.mode === 'hold') this.held.push(msg.comparison);
    else setImmediate(() => this.cancelled || this.answer(msg.comparison.id));
    return true;
  }
  answer(id: string): void {
    const p: WirePrediction = { id, winnerModelA: 0.5, winnerModelB: 0.25, winnerTie: 0.25, numTokens: 3, truncated: false, error: undefined };
    this.emit('data', p);
  }
  /** The server answers what it held: after the call failed, a straggler the client must drop. */
  answerHeld(): void {
    for (const c of this.held.splice(0)) this.answer(c.id);
  }
  fail(code: number): void {
    this.emit('error', Object.assign(new Error(`fake ${code}`), { code, details: `fake failure ${code}` }));
    this.emit('status', { code });
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
  }
}

/** A fake replica: every call it opens is recorded; `modes` decides how each successive call behaves. */
class FakeReplica {
  readonly calls: FakeCall[] = [];
  constructor(
    readonly target: string,
    private readonly modes: Mode[],
  ) {}
  get replica(): Replica {
    const client = {
      scoreStream: () => {
        const call = new FakeCall(this.modes[Math.min(this.calls.length, this.modes.length - 1)] as Mode);
        this.calls.push(call);
        return call;
      },
      getChannel: () => ({ getConnectivityState: () => connectivityState.READY }),
    };
    return { target: this.target, client: client as unknown as PairwisePreferenceClient };
  }
  get last(): FakeCall {
    return this.calls[this.calls.length - 1] as FakeCall;
  }
}

const settings = (over: Partial<FailoverSettings> = {}): FailoverSettings => ({
  deadline: Infinity,
  swapTta: false,
  retry: { maxRetries: 2, initialBackoffMs: 5, maxBackoffMs: 20 },
  idleTimeoutMs: 0,
  ...over,
});

const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ id: `r${i}`, prompt: ['p'], response_a: ['a'], response_b: ['b'] }));

/** Runs a stream over the fakes; `transport` is set once the window opens it. */
function run(fakes: FakeReplica[], n: number, window: number, s: FailoverSettings) {
  const out: { transport: FailoverStreams | null; gen: AsyncGenerator<StreamPrediction> } = { transport: null, gen: null as never };
  out.gen = windowedScore(rows(n), { window }, (sink) => (out.transport = new FailoverStreams(Promise.resolve(fakes.map((f) => f.replica)), sink, s).start()));
  return out;
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

test('rows are dealt to the replica with the fewest rows outstanding', async () => {
  const fakes = ['a', 'b', 'c'].map((t) => new FakeReplica(t, ['hold']));
  const r = run(fakes, 9, 9, settings());
  const first = r.gen.next();
  await until(() => fakes.every((f) => f.calls.length === 1 && f.last.held.length === 3), 'three rows held by each replica');
  assert.deepEqual(r.transport?.stats().replicas.map((x) => x.outstanding), [3, 3, 3]);
  for (const f of fakes) f.last.answerHeld();
  assert.ok(!(await first).done);
  let n = 1;
  for await (const _ of r.gen) n++;
  assert.equal(n, 9);
  assert.ok(fakes.every((f) => f.last.ended), 'calls half-closed once every row was answered');
});

test("a failed call's rows go to the other replica once; a late answer from the failed call is dropped", async () => {
  const a = new FakeReplica('a', ['hold', 'answer']);
  const b = new FakeReplica('b', ['answer']);
  const failures: ReplicaFailure[] = [];
  const r = run([a, b], 200, 16, settings({ onReplicaFailure: (f) => failures.push(f) }));
  const seen = new Map<number, number>();
  const consume = (async () => {
    for await (const p of r.gen) seen.set(p.index, (seen.get(p.index) ?? 0) + 1);
  })();
  await until(() => a.calls[0] !== undefined && a.calls[0].held.length >= 4, 'replica a holding rows');
  const dead = a.calls[0] as FakeCall;
  const held = dead.held.length;
  dead.fail(status.UNAVAILABLE);
  dead.answerHeld(); // the server's answers arrive after the client gave up on the call
  await consume;
  assert.equal(seen.size, 200);
  assert.ok([...seen.values()].every((c) => c === 1), 'every row exactly once');
  const st = r.transport?.stats();
  assert.equal(st?.resent, held);
  assert.deepEqual(failures.map((f) => [f.target, f.code, f.resent, f.consecutive]), [['a', status.UNAVAILABLE, held, 1]]);
  assert.equal(st?.answered, 200);
  assert.equal(st?.sent, 200 + held);
  assert.ok(dead.cancelled, 'the failed call is cancelled');
});

test('every replica failing more than maxRetries times in a row ends the iteration with UNAVAILABLE', async () => {
  const fakes = ['a', 'b'].map((t) => new FakeReplica(t, ['hold']));
  const r = run(fakes, 20, 4, settings());
  const failing = setInterval(() => {
    for (const f of fakes) if (f.calls.length > 0 && !f.last.cancelled) f.last.fail(status.UNAVAILABLE);
  }, 2);
  try {
    await assert.rejects(
      (async () => {
        for await (const _ of r.gen);
      })(),
      (e: unknown) => e instanceof PairprefError && e.code === status.UNAVAILABLE && /every replica, 3 time\(s\) in a row/.test(e.message),
    );
  } finally {
    clearInterval(failing);
  }
  assert.ok(fakes.every((f) => f.calls.length >= 3), `calls per replica: ${fakes.map((f) => f.calls.length)}`);
});

test('an error no replica would answer differently (UNAUTHENTICATED) ends the iteration at once', async () => {
  const fakes = ['a', 'b'].map((t) => new FakeReplica(t, ['hold']));
  const r = run(fakes, 20, 4, settings());
  const next = r.gen.next();
  await until(() => fakes[0]?.calls.length === 1 && fakes[0].last.held.length > 0, 'a row on replica a');
  fakes[0]?.last.fail(status.UNAUTHENTICATED);
  await assert.rejects(next, (e: unknown) => e instanceof PairprefError && e.code === status.UNAUTHENTICATED);
  assert.ok(fakes.every((f) => f.calls.length === 1 && f.last.cancelled), 'no retry; every call cancelled');
});

test('idle timeout: a call that owes rows and hears nothing is given up; its rows are answered elsewhere', async () => {
  const a = new FakeReplica('a', ['hold', 'hold']);
  const b = new FakeReplica('b', ['answer']);
  const failures: ReplicaFailure[] = [];
  const r = run([a, b], 100, 8, settings({ idleTimeoutMs: 60, onReplicaFailure: (f) => failures.push(f) }));
  const ids = new Set<string>();
  for await (const p of r.gen) {
    assert.ok(!ids.has(p.id));
    ids.add(p.id);
  }
  assert.equal(ids.size, 100);
  assert.ok(failures.length >= 1 && failures.every((f) => f.target === 'a' && /idle timeout/.test(f.message)), JSON.stringify(failures));
  assert.equal(r.transport?.stats().resent, failures.reduce((n, f) => n + f.resent, 0));
});
