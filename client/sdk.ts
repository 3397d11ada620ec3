// The pairpref SDK: connect() to one server or several replicas (client-side round robin) and
// score rows with deadlines, retry on UNAVAILABLE and a bounded streaming window.
import { credentials as grpcCredentials, Metadata, status, type ChannelCredentials, type ChannelOptions, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { lookup } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import {
  GetModelInfoRequest,
  PairwisePreferenceClient,
  type Comparison as WireComparison,
  type ModelInfo,
  type Prediction as WirePrediction,
  type ScoreRequest,
  type ScoreResponse,
  type ScoreStreamRequest,
} from '../proto/gen/pairpref/v1/preference.ts';
import { RowInputError } from '../core/errors.ts';
import { errorPrediction, type Prediction, type StreamPrediction } from '../core/result.ts';
import { toComparison, type Row } from '../core/rows.ts';
import type { Comparison } from '../core/types.ts';
import { windowedScore, DEFAULT_WINDOW, type Transport, type TransportSink } from '../core/window.ts';
import { comparisonToWire, predictionFromWire } from '../protocol/wire.ts';

export type { ModelInfo };

export interface RetryOptions {
  /** Retries after the first attempt (default 5). */
  readonly maxRetries?: number;
  /** First backoff; doubles each retry, with jitter (default 100 ms). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export interface ConnectOptions {
  /** Deadline of each Score / GetModelInfo call, retries included (default 60,000 ms). */
  readonly deadlineMs?: number;
  /** Deadline of a whole ScoreStream; default none (a stream of a big file may run for hours). */
  readonly streamDeadlineMs?: number;
  readonly retry?: RetryOptions;
  /** Default scoreStream window (default 64). */
  readonly window?: number;
  /** Default: insecure (a sidecar on localhost or a private network). */
  readonly credentials?: ChannelCredentials;
  /** Largest message received (default 64 MiB, the server's default limit). */
  readonly maxMessageBytes?: number;
  /** Extra grpc-js channel options. */
  readonly channelOptions?: ChannelOptions;
}

export interface CallOptions {
  /** Swap test-time augmentation (score both orders and average). */
  readonly swapTta?: boolean;
  /** Overrides the connection's deadline for this call. */
  readonly deadlineMs?: number;
}

export interface StreamOptions extends CallOptions {
  /** Most rows sent but not yet yielded (default: the connection's, 64). */
  readonly window?: number;
  /** Yield predictions in input order (default false: as soon as each is ready, join by id or index). */
  readonly ordered?: boolean;
}

export interface PairprefClient {
  /** The grpc-js target the channel uses, e.g. "ipv4:127.0.0.1:5001,127.0.0.1:5002". */
  readonly target: Promise<string>;
  /** One Score call: predictions[i] answers rows[i]. Bad rows get a per-row error, never a rejection. */
  score(rows: readonly Row[], opts?: CallOptions): Promise<Prediction[]>;
  /**
   * One ScoreStream call with at most `window` rows outstanding; rows are pulled from `rows` only
   * when the window has room. Retried on UNAVAILABLE only while no prediction has come back yet
   * (the unanswered rows are re-sent); after that a failure ends the iteration with the error.
   */
  scoreStream(rows: AsyncIterable<Row> | Iterable<Row>, opts?: StreamOptions): AsyncGenerator<StreamPrediction>;
  modelInfo(opts?: { deadlineMs?: number }): Promise<ModelInfo>;
  /** Resolves once a server answers GetModelInfo (connected and its model loaded); rejects after timeoutMs. */
  waitForReady(timeoutMs?: number): Promise<ModelInfo>;
  close(): void;
}

/** A failed call: the gRPC status code and details of the last attempt. */
export class PairprefError extends Error {
  readonly code: number;
  readonly attempts: number;
  constructor(code: number, message: string, attempts: number) {
    super(message);
    this.name = 'PairprefError';
    this.code = code;
    this.attempts = attempts;
  }
}

const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

function splitHostPort(t: string): { host: string; port: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]+):(\d+)$/.exec(t);
  if (!m) throw new Error(`target "${t}" is not HOST:PORT`);
  return { host: m[1] as string, port: m[2] as string };
}

/**
 * Targets -> one grpc-js target. One target is used as given (dns:, unix:, ... or HOST:PORT). Several
 * HOST:PORT targets become one ipv4:/ipv6: address list that round_robin spreads calls over;
 * host names are resolved once, here.
 */
export async function resolveTarget(targets: readonly string[]): Promise<string> {
  if (targets.length === 0) throw new Error('connect: no target given');
  if (targets.length === 1) return targets[0] as string;
  const addrs = await Promise.all(
    targets.map(async (t) => {
      const { host, port } = splitHostPort(t.replace(/^dns:(\/\/\/)?/, ''));
      const ip = isIPv4(host) || isIPv6(host) ? host : (await lookup(host)).address;
      return { ip, port };
    }),
  );
  if (addrs.every((a) => isIPv4(a.ip))) return `ipv4:${addrs.map((a) => `${a.ip}:${a.port}`).join(',')}`;
  if (addrs.every((a) => isIPv6(a.ip))) return `ipv6:${addrs.map((a) => `[${a.ip}]:${a.port}`).join(',')}`;
  throw new Error(`connect: targets resolve to both IPv4 and IPv6 addresses (${addrs.map((a) => a.ip).join(', ')}); use one family`);
}

function backoffMs(retry: Required<RetryOptions>, attempt: number): number {
  const base = Math.min(retry.maxBackoffMs, retry.initialBackoffMs * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function asServiceError(e: unknown): ServiceError {
  return e as ServiceError;
}

/** One connection's settings and channel, shared by the calls of the client connect() returns. */
interface Connection {
  readonly options: ConnectOptions;
  readonly retry: Required<RetryOptions>;
  readonly defaultDeadlineMs: number;
  readonly defaultWindow: number;
  readonly target: Promise<string>;
  readonly clientP: Promise<PairwisePreferenceClient>;
  closed: boolean;
}

/** Resolves the targets and creates the (lazily connecting) round-robin channel. */
function openConnection(targetOrTargets: string | readonly string[], options: ConnectOptions): Connection {
  const targets = typeof targetOrTargets === 'string' ? [targetOrTargets] : targetOrTargets;
  const retry: Required<RetryOptions> = { maxRetries: 5, initialBackoffMs: 100, maxBackoffMs: 5000, ...options.retry };
  const defaultDeadlineMs = options.deadlineMs ?? 60_000;
  const defaultWindow = options.window ?? DEFAULT_WINDOW;
  const target = resolveTarget(targets);
  const clientP = target.then(
    (t) =>
      new PairwisePreferenceClient(t, options.credentials ?? grpcCredentials.createInsecure(), {
        'grpc.service_config': ROUND_ROBIN,
        'grpc.service_config_disable_resolution': 1,
        'grpc.max_receive_message_length': options.maxMessageBytes ?? 64 * 1024 * 1024,
        ...options.channelOptions,
      }),
  );
  // Keep a failed resolution from being an unhandled rejection before the first call.
  clientP.catch(() => undefined);
  return { options, retry, defaultDeadlineMs, defaultWindow, target, clientP, closed: false };
}

/** A unary call with retries on UNAVAILABLE inside one overall deadline. */
async function unary<Res>(
  conn: Connection,
  name: string,
  deadlineMs: number,
  invoke: (c: PairwisePreferenceClient, deadline: number, cb: (e: ServiceError | null, r: Res) => void) => void,
): Promise<Res> {
  const client = await conn.clientP;
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise<Res>((resolve, reject) => invoke(client, deadline, (e, r) => (e ? reject(e) : resolve(r))));
    } catch (e) {
      const err = asServiceError(e);
      const wait = backoffMs(conn.retry, attempt);
      if (err.code !== status.UNAVAILABLE || attempt > conn.retry.maxRetries || conn.closed || Date.now() + wait >= deadline) {
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
        throw e instanceof PairprefError ? new PairprefError(e.code, `no pairpref server ready at ${await conn.target} within ${timeoutMs} ms: ${e.message}`, e.attempts) : e;
      }
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
    }
  }
}

/** PairprefClient.scoreStream: one windowed ScoreStream call. */
function scoreStreamOf(conn: Connection, rows: AsyncIterable<Row> | Iterable<Row>, opts: StreamOptions): AsyncGenerator<StreamPrediction> {
  const deadlineMs = opts.deadlineMs ?? conn.options.streamDeadlineMs;
  const deadline = deadlineMs === undefined ? Infinity : Date.now() + deadlineMs;
  const swapTta = opts.swapTta ?? false;
  const retry = conn.retry;
  return windowedScore(rows, { window: opts.window ?? conn.defaultWindow, ordered: opts.ordered ?? false }, (sink) =>
    streamTransport(conn.clientP, sink, { deadline, swapTta, retry }),
  );
}

export function connect(targetOrTargets: string | readonly string[], options: ConnectOptions = {}): PairprefClient {
  const conn = openConnection(targetOrTargets, options);
  return {
    target: conn.target,
    score: (rows: readonly Row[], opts: CallOptions = {}) => scoreRows(conn, rows, opts),
    scoreStream: (rows: AsyncIterable<Row> | Iterable<Row>, opts: StreamOptions = {}) => scoreStreamOf(conn, rows, opts),
    modelInfo: (opts: { deadlineMs?: number } = {}) => modelInfoOf(conn, opts),
    waitForReady: (timeoutMs = 30_000) => waitUntilReady(conn, timeoutMs),
    close() {
      conn.closed = true;
      conn.clientP.then((c) => c.close(), () => undefined);
    },
  };
}

interface StreamSettings {
  readonly deadline: number;
  readonly swapTta: boolean;
  readonly retry: Required<RetryOptions>;
}

/**
 * One ScoreStream call as a window transport. Unanswered rows are kept (at most the window) so
 * the stream can be reopened and the rows re-sent when it fails with UNAVAILABLE before any
 * prediction came back (the server has then certainly not scored anything for us to lose).
 */
function streamTransport(clientP: Promise<PairwisePreferenceClient>, sink: TransportSink, s: StreamSettings): Transport {
  const t = new StreamCall(clientP, sink, s);
  t.start();
  return {
    send: (index, row) => t.send(index, row),
    end: () => t.end(),
    cancel: () => t.cancel(),
  };
}

/** The state of one streamTransport, shared by the stream's event handlers and the window's calls. */
class StreamCall {
  private readonly clientP: Promise<PairwisePreferenceClient>;
  private readonly sink: TransportSink;
  private readonly s: StreamSettings;
  private readonly unanswered = new Map<number, WireComparison>();
  private readonly indexById = new Map<string, number>();
  private call: ClientDuplexStream<ScoreStreamRequest, WirePrediction> | null = null;
  private opening: Promise<void> | null = null;
  private gotAny = false;
  private ended = false;
  private cancelled = false;
  private failed = false;
  private attempt = 0;
  private writeWaiters: Array<() => void> = [];
  private readonly options: { swapTta: boolean };

  constructor(clientP: Promise<PairwisePreferenceClient>, sink: TransportSink, s: StreamSettings) {
    this.clientP = clientP;
    this.sink = sink;
    this.s = s;
    this.options = { swapTta: s.swapTta };
  }

  /** Opens the first stream. */
  start(): void {
    this.opening = this.open().catch((e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e))));
  }

  /** Releases every send() waiting for the stream to drain (or to end). */
  private wakeWriters(): void {
    const w = this.writeWaiters;
    this.writeWaiters = [];
    for (const f of w) f();
  }

  /** Fails the transport once (not after a cancel) and tells the window. */
  private fail(e: Error): void {
    if (this.failed || this.cancelled) return;
    this.failed = true;
    this.wakeWriters();
    this.sink.fail(e);
  }

  /** Opens (or reopens) the stream, wires its events and writes the unanswered rows. */
  private async open(): Promise<void> {
    const client = await this.clientP;
    if (this.cancelled || this.failed) return;
    this.attempt++;
    const c = this.s.deadline === Infinity ? client.scoreStream() : client.scoreStream({ deadline: this.s.deadline });
    this.call = c;
    c.on('data', (p: WirePrediction) => this.onData(p));
    c.on('drain', () => this.wakeWriters());
    c.on('error', (e: ServiceError) => this.onError(c, e));
    c.on('status', (st: { code: number }) => {
      if (st.code === status.OK && c === this.call && this.unanswered.size > 0) {
        this.fail(new PairprefError(status.INTERNAL, `ScoreStream ended with ${this.unanswered.size} row(s) unanswered`, this.attempt));
      }
    });
    // A reopened stream re-sends every unanswered row first.
    for (const w of this.unanswered.values()) c.write({ comparison: w, options: this.options });
    if (this.ended) c.end();
    this.wakeWriters();
  }

  /** One prediction back: hands it to the window by its row's index. */
  private onData(p: WirePrediction): void {
    this.gotAny = true;
    const index = this.indexById.get(p.id);
    if (index === undefined) return this.fail(new PairprefError(status.INTERNAL, `ScoreStream answered id ${JSON.stringify(p.id)}, which has no row in flight`, this.attempt));
    this.indexById.delete(p.id);
    this.unanswered.delete(index);
    this.sink.result(index, predictionFromWire(p));
  }

  /** Stream `c` failed: reopen after a backoff while that loses nothing, else fail. */
  private onError(c: ClientDuplexStream<ScoreStreamRequest, WirePrediction>, e: ServiceError): void {
    if (c !== this.call || this.cancelled) return;
    this.call = null;
    const wait = backoffMs(this.s.retry, this.attempt);
    if (e.code === status.UNAVAILABLE && !this.gotAny && this.attempt <= this.s.retry.maxRetries && Date.now() + wait < this.s.deadline) {
      this.opening = sleep(wait)
        .then(() => this.open())
        .catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
      return;
    }
    this.fail(new PairprefError(e.code, `ScoreStream failed after ${this.attempt} attempt(s): ${e.details || e.message}`, this.attempt));
  }

  /** Transport.send: writes the row now, or leaves it to the (re)open in progress. */
  async send(index: number, row: Comparison): Promise<void> {
    const w = comparisonToWire(row);
    this.unanswered.set(index, w);
    this.indexById.set(w.id, index);
    for (;;) {
      if (this.failed || this.cancelled) return;
      const c = this.call;
      if (c) {
        if (!c.write({ comparison: w, options: this.options })) await new Promise<void>((r) => this.writeWaiters.push(r));
        return;
      }
      // Opening or reopening: the open writes this row with the rest of the unanswered ones.
      await this.opening;
      if (this.call) return;
    }
  }

  /** Transport.end. */
  end(): void {
    this.ended = true;
    this.call?.end();
  }

  /** Transport.cancel. */
  cancel(): void {
    this.cancelled = true;
    this.wakeWriters();
    this.call?.cancel();
  }
}
