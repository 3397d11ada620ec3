// One scoreStream spread over every replica: a window transport (core/window.ts) that keeps one
// ScoreStream call open per replica and deals each row to the replica with the fewest rows
// outstanding. Each call remembers the rows it still owes an answer for, so when a call fails
// (the server died, the connection was reset or missed its keepalive, or nothing came back for
// idleTimeoutMs) exactly those rows are dealt again to the other replicas and the replica is
// reopened after a backoff. The failed call is forgotten before its rows move: an answer that
// straggles in from it later is dropped, so no row is ever answered twice. The iteration fails only
// when every replica has failed more than retry.maxRetries times in a row, or on an error that no
// other replica would answer differently (the stream's deadline, authentication, ...).
import { connectivityState, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { Comparison as WireComparison, Prediction as WirePrediction, ScoreStreamRequest } from '../proto/gen/pairpref/v1/preference.ts';
import type { Comparison } from '../core/types.ts';
import { Signal, type Transport, type TransportSink } from '../core/window.ts';
import { comparisonToWire, predictionFromWire } from '../protocol/wire.ts';
import type { Replica } from './channels.ts';
import { backoffMs, PairprefError, type RetryOptions } from './retry.ts';

export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** open: a call is up (or connecting); backoff: waiting to reopen after a failure; closed: the stream is over. */
export type ReplicaState = 'open' | 'backoff' | 'closed';

export interface ReplicaStats {
  readonly target: string;
  readonly state: ReplicaState;
  /** Rows written to this replica, re-sent ones included. */
  readonly sent: number;
  readonly answered: number;
  /** Rows written to its current call and not answered yet. */
  readonly outstanding: number;
  /** Calls to it that failed. */
  readonly failures: number;
}

export interface StreamStats {
  /** Rows written to any replica, re-sends included (rows rejected locally are not sent). */
  readonly sent: number;
  readonly answered: number;
  /** Rows taken back from a failed replica call to be sent again. */
  readonly resent: number;
  /** Rows sent again after a per-row RESOURCE_EXHAUSTED or UNAVAILABLE (an overloaded replica). */
  readonly rowRetries: number;
  readonly replicaFailures: number;
  readonly replicas: readonly ReplicaStats[];
}

/** What onReplicaFailure hears: one replica call failed and its unanswered rows moved on. */
export interface ReplicaFailure {
  readonly target: string;
  /** gRPC status code (UNAVAILABLE for an idle timeout). */
  readonly code: number;
  readonly message: string;
  /** Unanswered rows taken back from it (re-sent to the other replicas, or to it once reopened). */
  readonly resent: number;
  /** Failures of this replica in a row, this one included (reset by an answer). */
  readonly consecutive: number;
  /** When it will be reopened. */
  readonly retryInMs: number;
}

export interface FailoverSettings {
  /** Epoch ms the whole stream must finish by, or Infinity. */
  readonly deadline: number;
  readonly swapTta: boolean;
  readonly retry: Required<RetryOptions>;
  /** A call with rows outstanding that hears nothing for this long has failed; 0: never. */
  readonly idleTimeoutMs: number;
  readonly onReplicaFailure?: (f: ReplicaFailure) => void;
}

type Call = ClientDuplexStream<ScoreStreamRequest, WirePrediction>;

/**
 * Codes after which the same rows may well succeed on another replica: the replica, or the path to
 * it, failed or is full (RESOURCE_EXHAUSTED: a server at its --max-streams limit; a row that is too
 * big everywhere is still bounded by the retry budget). Anything else (DEADLINE_EXCEEDED of the whole
 * stream, UNAUTHENTICATED, UNIMPLEMENTED, ...) would fail the same way everywhere and ends the iteration.
 */
const REPLICA_FAULTS: ReadonlySet<number> = new Set([status.UNAVAILABLE, status.CANCELLED, status.INTERNAL, status.UNKNOWN, status.ABORTED, status.RESOURCE_EXHAUSTED]);

/**
 * Row errors that say "not now" rather than "bad row": the server's backlog is over
 * --max-queue-tokens, or no device is up. The row is sent again after a backoff (any replica), at
 * most retry.maxRetries times; then its error is passed on.
 */
const ROW_RETRY: ReadonlySet<number> = new Set([status.RESOURCE_EXHAUSTED, status.UNAVAILABLE]);

/** One replica within one stream: its current call and the rows that call owes an answer for. */
class Lane {
  readonly replica: Replica;
  call: Call | null = null;
  state: ReplicaState = 'backoff';
  readonly rows = new Map<number, WireComparison>();
  readonly indexById = new Map<string, number>();
  sent = 0;
  answered = 0;
  failures = 0;
  /** Failures since the last answer: what retry.maxRetries bounds. */
  streak = 0;
  /** When the call last answered, or got its first outstanding row: the idle clock. */
  lastHeard = 0;
  lastError = '';
  retryTimer: NodeJS.Timeout | null = null;
  private readonly drained = new Signal();

  constructor(replica: Replica) {
    this.replica = replica;
  }

  /** Connected: preferred over a replica whose connection is still being made (or failing). */
  ready(): boolean {
    return this.replica.client.getChannel().getConnectivityState(false) === connectivityState.READY;
  }

  waitForDrain(): Promise<void> {
    return this.drained.wait();
  }

  /** Releases every send() waiting for this call to drain (it drained, or it is gone). */
  wake(): void {
    this.drained.notify();
  }

  /** Forgets the current call (cancelling it) and hands back the rows it had not answered. */
  detach(): Array<[number, WireComparison]> {
    const call = this.call;
    this.call = null;
    call?.cancel();
    const rows = [...this.rows];
    this.rows.clear();
    this.indexById.clear();
    this.wake();
    return rows;
  }

  stats(): ReplicaStats {
    return { target: this.replica.target, state: this.state, sent: this.sent, answered: this.answered, outstanding: this.rows.size, failures: this.failures };
  }
}

/** The window transport over every replica; `stats()` is what the SDK's iterator exposes. */
export class FailoverStreams implements Transport {
  private readonly replicasP: Promise<readonly Replica[]>;
  private readonly sink: TransportSink;
  private readonly s: FailoverSettings;
  private readonly options: { swapTta: boolean };
  private lanes: Lane[] = [];
  /** Rows no replica can take right now (every one is backing off); dealt when one reopens. */
  private readonly pending: Array<[number, WireComparison]> = [];
  private ended = false;
  /** Finished, cancelled or failed: every event after this is ignored. */
  private stopped = false;
  private resent = 0;
  /** Retries of rows answered RESOURCE_EXHAUSTED / UNAVAILABLE, per row index. */
  private readonly rowRetries = new Map<number, number>();
  /** Rows waiting out a backoff before they are sent again. */
  private readonly backingOff = new Set<NodeJS.Timeout>();
  private retriedRows = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(replicasP: Promise<readonly Replica[]>, sink: TransportSink, s: FailoverSettings) {
    this.replicasP = replicasP;
    this.sink = sink;
    this.s = s;
    this.options = { swapTta: s.swapTta };
  }

  /** Opens a call to every replica once the channels exist; rows sent before then wait in `pending`. */
  start(): this {
    this.replicasP.then(
      (replicas) => {
        if (this.stopped) return;
        this.lanes = replicas.map((r) => new Lane(r));
        for (const lane of this.lanes) this.open(lane);
        if (this.s.idleTimeoutMs > 0) {
          // Checked a few times per timeout: a stall is noticed within 1.25 x idleTimeoutMs.
          this.idleTimer = setInterval(() => this.checkIdle(), Math.max(10, Math.min(1000, this.s.idleTimeoutMs / 4)));
        }
      },
      (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e))),
    );
    return this;
  }

  /** Transport.send: resolves when the chosen call can take the next row (gRPC write backpressure). */
  send(index: number, row: Comparison): Promise<void> {
    return this.deal(index, comparisonToWire(row));
  }

  /** Transport.end: the calls are half-closed once every row is answered (a failure may still need them). */
  end(): void {
    this.ended = true;
    this.finishIfDone();
  }

  /** Transport.cancel: the consumer stopped early. */
  cancel(): void {
    this.stop();
  }

  stats(): StreamStats {
    const replicas = this.lanes.map((l) => l.stats());
    const sum = (k: 'sent' | 'answered' | 'failures'): number => replicas.reduce((n, r) => n + r[k], 0);
    return { sent: sum('sent'), answered: sum('answered'), resent: this.resent, rowRetries: this.retriedRows, replicaFailures: sum('failures'), replicas };
  }

  /**
   * Gives the row to the open replica with the fewest rows outstanding, connected ones first. A
   * replica that failed and has not answered since is on probation: while a healthy replica is open
   * it gets one row at a time, so a replica that keeps stalling (its connection still up) costs one
   * re-sent row per retry, not a share of the window.
   */
  private deal(index: number, w: WireComparison): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const healthy = this.lanes.some((l) => l.state === 'open' && l.streak === 0);
    let best: Lane | undefined;
    let bestReady = false;
    for (const lane of this.lanes) {
      if (lane.state !== 'open' || (healthy && lane.streak > 0 && lane.rows.size > 0)) continue;
      const ready = lane.ready();
      if (!best || (ready && !bestReady) || (ready === bestReady && lane.rows.size < best.rows.size)) [best, bestReady] = [lane, ready];
    }
    if (!best) {
      this.pending.push([index, w]);
      return Promise.resolve();
    }
    return this.write(best, index, w);
  }

  private write(lane: Lane, index: number, w: WireComparison): Promise<void> {
    if (lane.rows.size === 0) lane.lastHeard = Date.now(); // the idle clock runs only while rows are owed
    lane.rows.set(index, w);
    lane.indexById.set(w.id, index);
    lane.sent++;
    return (lane.call as Call).write({ comparison: w, options: this.options }) ? Promise.resolve() : lane.waitForDrain();
  }

  /** Opens a call to the replica and deals it any rows that were waiting for one. */
  private open(lane: Lane): void {
    lane.retryTimer = null;
    if (this.stopped) return;
    if (Date.now() >= this.s.deadline) return this.fail(new PairprefError(status.DEADLINE_EXCEEDED, 'ScoreStream deadline exceeded while waiting for a replica', this.attempts()));
    let call: Call;
    try {
      const client = lane.replica.client;
      call = this.s.deadline === Infinity ? client.scoreStream() : client.scoreStream({ deadline: this.s.deadline });
    } catch (e) {
      // grpc-js throws here once the client was closed; this runs from a timer, so no one else would catch it.
      return this.fail(new PairprefError(status.UNAVAILABLE, `ScoreStream to ${lane.replica.target}: ${e instanceof Error ? e.message : String(e)}`, this.attempts()));
    }
    lane.call = call;
    lane.state = 'open';
    call.on('data', (p: WirePrediction) => this.onData(lane, call, p));
    call.on('drain', () => call === lane.call && lane.wake());
    call.on('error', (e: ServiceError) => this.onCallEnd(lane, call, e.code ?? status.UNKNOWN, e.details || e.message));
    // An OK status while rows are owed: the server ended the stream early; those rows go elsewhere.
    call.on('status', (st: { code: number }) => st.code === status.OK && this.onCallEnd(lane, call, status.OK, 'the server ended the stream'));
    for (const [index, w] of this.pending.splice(0)) void this.deal(index, w);
  }

  /** One answer: handed to the window, unless its call was already given up on. */
  private onData(lane: Lane, call: Call, p: WirePrediction): void {
    if (call !== lane.call || this.stopped) return; // a straggler from a failed call: its rows were re-sent
    const index = lane.indexById.get(p.id);
    if (index === undefined) {
      return this.fail(new PairprefError(status.INTERNAL, `${lane.replica.target} answered id ${JSON.stringify(p.id)}, which has no row in flight there`, this.attempts()));
    }
    const w = lane.rows.get(index)!;
    lane.indexById.delete(p.id);
    lane.rows.delete(index);
    lane.answered++;
    lane.streak = 0;
    lane.lastHeard = Date.now();
    if (p.error && ROW_RETRY.has(p.error.code) && this.retryRow(index, w)) return;
    this.sink.result(index, predictionFromWire(p));
    this.finishIfDone();
  }

  /** Sends a row again after a backoff; false when its retries are used up (or the deadline is near). */
  private retryRow(index: number, w: WireComparison): boolean {
    const tries = (this.rowRetries.get(index) ?? 0) + 1;
    const wait = backoffMs(this.s.retry, tries);
    if (tries > this.s.retry.maxRetries || Date.now() + wait >= this.s.deadline) return false;
    this.rowRetries.set(index, tries);
    this.retriedRows++;
    const t = setTimeout(() => {
      this.backingOff.delete(t);
      void this.deal(index, w);
    }, wait);
    this.backingOff.add(t);
    return true;
  }

  /** A call ended by itself: a replica fault moves its rows on; any other error ends the iteration. */
  private onCallEnd(lane: Lane, call: Call, code: number, message: string): void {
    if (call !== lane.call || this.stopped) return;
    if (code !== status.OK && !REPLICA_FAULTS.has(code)) {
      return this.fail(new PairprefError(code, `ScoreStream to ${lane.replica.target} failed: ${message}`, this.attempts() + 1));
    }
    this.laneFailed(lane, code === status.OK ? status.UNAVAILABLE : code, message);
  }

  /** Takes the lane's unanswered rows back, deals them again and schedules the lane's reopening. */
  private laneFailed(lane: Lane, code: number, message: string): void {
    const moved = lane.detach();
    lane.failures++;
    lane.streak++;
    lane.state = 'backoff';
    lane.lastError = message;
    this.resent += moved.length;
    const wait = backoffMs(this.s.retry, Math.min(lane.streak, 32));
    try {
      this.s.onReplicaFailure?.({ target: lane.replica.target, code, message, resent: moved.length, consecutive: lane.streak, retryInMs: Math.round(wait) });
    } catch (e) {
      // Thrown inside a gRPC event handler it would be uncaught: end the iteration with it instead.
      return this.fail(e instanceof Error ? e : new Error(String(e)));
    }
    if (this.lanes.every((l) => l.state !== 'open' && l.streak > this.s.retry.maxRetries)) {
      const why = this.lanes.map((l) => `${l.replica.target}: ${l.lastError}`).join('; ');
      return this.fail(new PairprefError(code, `ScoreStream failed on every replica, ${this.s.retry.maxRetries + 1} time(s) in a row each (${why})`, this.attempts()));
    }
    // Past maxRetries a replica is still retried (at the backoff cap) while another one serves.
    lane.retryTimer = setTimeout(() => this.open(lane), wait);
    for (const [index, w] of moved) void this.deal(index, w);
  }

  /** Fails every call that owes rows but has heard nothing for idleTimeoutMs (a stopped or wedged server). */
  private checkIdle(): void {
    const now = Date.now();
    for (const lane of this.lanes) {
      if (this.stopped) return;
      if (lane.call && lane.rows.size > 0 && now - lane.lastHeard >= this.s.idleTimeoutMs) {
        this.laneFailed(lane, status.UNAVAILABLE, `no answer for ${this.s.idleTimeoutMs} ms with ${lane.rows.size} row(s) outstanding (idle timeout)`);
      }
    }
  }

  /** Every row sent and answered: half-close the calls (the servers then end them with OK). */
  private finishIfDone(): void {
    if (!this.ended || this.stopped || this.pending.length > 0 || this.backingOff.size > 0 || this.lanes.some((l) => l.rows.size > 0)) return;
    this.stopped = true;
    this.clearTimers();
    for (const lane of this.lanes) {
      lane.call?.end();
      lane.call = null;
      lane.state = 'closed';
    }
  }

  private attempts(): number {
    return this.lanes.reduce((n, l) => n + l.failures, 0);
  }

  private clearTimers(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    for (const t of this.backingOff) clearTimeout(t);
    this.backingOff.clear();
    for (const lane of this.lanes) {
      if (lane.retryTimer) clearTimeout(lane.retryTimer);
      lane.retryTimer = null;
    }
  }

  /** Cancels every call and timer; the window hears nothing more. */
  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    for (const lane of this.lanes) {
      lane.detach();
      lane.state = 'closed';
    }
  }

  private fail(e: Error): void {
    if (this.stopped) return;
    this.stop();
    this.sink.fail(e);
  }
}
