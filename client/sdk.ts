// The pairpref SDK: connect() to one server or several replicas and score rows with deadlines,
// retries on UNAVAILABLE and a bounded streaming window. Unary calls go round robin over the
// replicas; a stream deals its rows over all of them and moves the unanswered rows of a failed
// replica to the others (client/failover.ts).
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  GetModelInfoRequest,
  type Comparison as WireComparison,
  type ModelInfo,
  type PairwisePreferenceClient,
  type ScoreRequest,
  type ScoreResponse,
} from '../proto/gen/pairpref/v1/preference.ts';
import { RowInputError } from '../core/errors.ts';
import { errorPrediction, type Prediction, type StreamPrediction } from '../core/result.ts';
import { toComparison, type Row } from '../core/rows.ts';
import { windowedScore, DEFAULT_WINDOW } from '../core/window.ts';
import { comparisonToWire, predictionFromWire } from '../protocol/wire.ts';
import { closeChannels, openChannels, type ChannelSettings, type Channels } from './channels.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, FailoverStreams, type ReplicaFailure, type StreamStats } from './failover.ts';
import { backoffMs, DEFAULT_RETRY, PairprefError, sleep, type RetryOptions } from './retry.ts';

export type { ModelInfo };
export { PairprefError, type RetryOptions };
export { resolveTarget } from './channels.ts';
export type { ReplicaFailure, ReplicaState, ReplicaStats, StreamStats } from './failover.ts';

export interface ConnectOptions extends ChannelSettings {
  /** Deadline of each Score / GetModelInfo call, retries included (default 60,000 ms). */
  readonly deadlineMs?: number;
  /** Deadline of a whole ScoreStream; default none (a stream of a big file may run for hours). */
  readonly streamDeadlineMs?: number;
  readonly retry?: RetryOptions;
  /** Default scoreStream window (default 64). */
  readonly window?: number;
  /**
   * A stream call that owes answers and receives nothing for this long is treated as failed: its
   * rows go to the other replicas (default 60,000 ms; 0 turns it off).
   */
  readonly idleTimeoutMs?: number;
  /** Called each time a replica's stream call fails (its unanswered rows are then re-sent); a throw ends the stream with that error. */
  readonly onReplicaFailure?: (f: ReplicaFailure) => void;
}

export interface CallOptions {
  /** Swap test-time augmentation (score both orders and average). */
  readonly swapTta?: boolean;
  /** Overrides the connection's deadline for this call. */
  readonly deadlineMs?: number;
}

export interface StreamOptions extends CallOptions {
  /** Most rows sent but not yet yielded, over all replicas together (default: the connection's, 64). */
  readonly window?: number;
  /** Yield predictions in input order (default false: as soon as each is ready, join by id or index). */
  readonly ordered?: boolean;
  /** Overrides the connection's idleTimeoutMs for this stream. */
  readonly idleTimeoutMs?: number;
}

/** What scoreStream returns: the predictions, and counters of how the rows travelled. */
export interface ScoreStream extends AsyncGenerator<StreamPrediction> {
  /** Rows sent, answered and re-sent, overall and per replica (zeros before the first next()). */
  stats(): StreamStats;
}

export interface PairprefClient {
  /** The grpc-js target of the unary channel, e.g. "ipv4:127.0.0.1:5001,127.0.0.1:5002". */
  readonly target: Promise<string>;
  /** One Score call: predictions[i] answers rows[i]. Bad rows get a per-row error, never a rejection. */
  score(rows: readonly Row[], opts?: CallOptions): Promise<Prediction[]>;
  /**
   * ScoreStream calls, one per replica, with at most `window` rows outstanding over all of them;
   * rows are pulled from `rows` only when the window has room. When a replica's call fails, its
   * unanswered rows are re-sent to the others (each row is still yielded exactly once); the
   * iteration fails only when every replica keeps failing (retry.maxRetries in a row each).
   */
  scoreStream(rows: AsyncIterable<Row> | Iterable<Row>, opts?: StreamOptions): ScoreStream;
  modelInfo(opts?: { deadlineMs?: number }): Promise<ModelInfo>;
  /** Resolves once a server answers GetModelInfo (connected and its model loaded); rejects after timeoutMs. */
  waitForReady(timeoutMs?: number): Promise<ModelInfo>;
  close(): void;
}

function asServiceError(e: unknown): ServiceError {
  return e as ServiceError;
}

/** One connection's settings and channels, shared by the calls of the client connect() returns. */
interface Connection {
  readonly options: ConnectOptions;
  readonly retry: Required<RetryOptions>;
  readonly defaultDeadlineMs: number;
  readonly defaultWindow: number;
  readonly channelsP: Promise<Channels>;
  closed: boolean;
}

/** Resolves the targets and creates the (lazily connecting) channels. */
function openConnection(targetOrTargets: string | readonly string[], options: ConnectOptions): Connection {
  const targets = typeof targetOrTargets === 'string' ? [targetOrTargets] : targetOrTargets;
  const retry: Required<RetryOptions> = { ...DEFAULT_RETRY, ...options.retry };
  const channelsP = openChannels(targets, options);
  // Keep a failed resolution from being an unhandled rejection before the first call.
  channelsP.catch(() => undefined);
  return { options, retry, defaultDeadlineMs: options.deadlineMs ?? 60_000, defaultWindow: options.window ?? DEFAULT_WINDOW, channelsP, closed: false };
}

/**
 * UNAVAILABLE, and RESOURCE_EXHAUSTED that the server marks as "not now" (overloaded, too many
 * streams) with the trailer `pairpref-retryable`; not a message that is too large.
 */
function retryableError(err: ServiceError): boolean {
  if (err.code === status.UNAVAILABLE) return true;
  return err.code === status.RESOURCE_EXHAUSTED && err.metadata?.get('pairpref-retryable')[0] === '1';
}

/** A unary call with retries on UNAVAILABLE and overload inside one overall deadline. */
async function unary<Res>(
  conn: Connection,
  name: string,
  deadlineMs: number,
  invoke: (c: PairwisePreferenceClient, deadline: number, cb: (e: ServiceError | null, r: Res) => void) => void,
): Promise<Res> {
  const client = (await conn.channelsP).unary;
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise<Res>((resolve, reject) => invoke(client, deadline, (e, r) => (e ? reject(e) : resolve(r))));
    } catch (e) {
      const err = asServiceError(e);
      const wait = backoffMs(conn.retry, attempt);
      if (!retryableError(err) || attempt > conn.retry.maxRetries || conn.closed || Date.now() + wait >= deadline) {
        throw new PairprefError(err.code ?? status.UNKNOWN, `${name} failed after ${attempt} attempt(s): ${err.details || err.message}`, attempt);
      }
      await sleep(wait);
    }
  }
}

/** PairprefClient.score: bad rows answered locally, the rest in one Score call. */
async function scoreRows(conn: Connection, rows: readonly Row[], opts: CallOptions): Promise<Prediction[]> {
  const out: Array<Prediction | null> = rows.map(() => null);
  const wire: WireComparison[] = [];
  const at: number[] = [];
  rows.forEach((row, i) => {
    try {
      wire.push(comparisonToWire(toComparison(row)));
      at.push(i);
    } catch (e) {
      if (!(e instanceof RowInputError)) throw e;
      out[i] = errorPrediction(String((row as { id?: unknown }).id ?? ''), { code: status.INVALID_ARGUMENT, field: e.field, message: e.message });
    }
  });
  if (wire.length > 0) {
    const req: ScoreRequest = { comparisons: wire, options: { swapTta: opts.swapTta ?? false } };
    const res = await unary<ScoreResponse>(conn, 'Score', opts.deadlineMs ?? conn.defaultDeadlineMs, (c, deadline, cb) => c.score(req, new Metadata(), { deadline }, cb));
    if (res.predictions.length !== wire.length) throw new PairprefError(status.INTERNAL, `Score answered ${res.predictions.length} predictions for ${wire.length} rows`, 1);
    res.predictions.forEach((p, k) => (out[at[k] as number] = predictionFromWire(p)));
  }
  return out as Prediction[];
}

/** PairprefClient.modelInfo: one GetModelInfo call. */
function modelInfoOf(conn: Connection, opts: { deadlineMs?: number }): Promise<ModelInfo> {
  return unary<ModelInfo>(conn, 'GetModelInfo', opts.deadlineMs ?? conn.defaultDeadlineMs, (c, deadline, cb) =>
    c.getModelInfo(GetModelInfoRequest.create(), new Metadata(), { deadline }, cb),
  );
}

/** PairprefClient.waitForReady: GetModelInfo until a server answers or timeoutMs passes. */
async function waitUntilReady(conn: Connection, timeoutMs: number): Promise<ModelInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await modelInfoOf(conn, { deadlineMs: Math.max(1, deadline - Date.now()) });
    } catch (e) {
      // UNAVAILABLE past the retry budget or a deadline: keep trying until our own deadline.
      if (!(e instanceof PairprefError) || ![status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(e.code) || Date.now() >= deadline) {
        throw e instanceof PairprefError ? new PairprefError(e.code, `no pairpref server ready at ${(await conn.channelsP).target} within ${timeoutMs} ms: ${e.message}`, e.attempts) : e;
      }
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
    }
  }
}

/** PairprefClient.scoreStream: the window over one FailoverStreams transport, with its stats. */
function scoreStreamOf(conn: Connection, rows: AsyncIterable<Row> | Iterable<Row>, opts: StreamOptions): ScoreStream {
  const deadlineMs = opts.deadlineMs ?? conn.options.streamDeadlineMs;
  const idleTimeoutMs = opts.idleTimeoutMs ?? conn.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  if (!(idleTimeoutMs >= 0)) throw new RangeError(`idleTimeoutMs must be >= 0 (got ${idleTimeoutMs})`);
  const settings = {
    deadline: deadlineMs === undefined ? Infinity : Date.now() + deadlineMs,
    swapTta: opts.swapTta ?? false,
    retry: conn.retry,
    idleTimeoutMs,
    onReplicaFailure: conn.options.onReplicaFailure,
  };
  // The window opens its transport on the first next(); stats() reads zeros until then.
  let transport: FailoverStreams | null = null;
  const gen = windowedScore(rows, { window: opts.window ?? conn.defaultWindow, ordered: opts.ordered ?? false }, (sink) => {
    transport = new FailoverStreams(
      conn.channelsP.then((c) => c.replicas),
      sink,
      settings,
    ).start();
    return transport;
  });
  const empty: StreamStats = { sent: 0, answered: 0, resent: 0, rowRetries: 0, replicaFailures: 0, replicas: [] };
  return Object.assign(gen, { stats: (): StreamStats => (transport as FailoverStreams | null)?.stats() ?? empty });
}

export function connect(targetOrTargets: string | readonly string[], options: ConnectOptions = {}): PairprefClient {
  const conn = openConnection(targetOrTargets, options);
  return {
    target: conn.channelsP.then((c) => c.target),
    score: (rows: readonly Row[], opts: CallOptions = {}) => scoreRows(conn, rows, opts),
    scoreStream: (rows: AsyncIterable<Row> | Iterable<Row>, opts: StreamOptions = {}) => scoreStreamOf(conn, rows, opts),
    modelInfo: (opts: { deadlineMs?: number } = {}) => modelInfoOf(conn, opts),
    waitForReady: (timeoutMs = 30_000) => waitUntilReady(conn, timeoutMs),
    close() {
      conn.closed = true;
      conn.channelsP.then(closeChannels, () => undefined);
    },
  };
}
