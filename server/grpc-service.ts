// gRPC handlers for pairpref.v1.PairwisePreference. Requests arrive as raw bytes (see
// protocol/decode.ts), are checked against the transport's limits, and go to the engine with an
// AbortSignal that fires when the client cancels or the deadline passes, so dead calls leave the
// queues instead of being computed. Each call logs with its request id (calls.ts) and, when traced,
// hands the engine an observer that writes its tokenize / queue / inference spans (telemetry.ts).
import { context, type Context } from '@opentelemetry/api';
import { Metadata, status, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { setMaxListeners } from 'node:events';
import { RowInputError } from '../core/errors.ts';
import { silentLogger, withFields, type Logger } from '../core/log.ts';
import { echoId, errorPrediction, type Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { Comparison } from '../core/types.ts';
import { EngineError, MAX_ID_BYTES } from '../engine/admission.ts';
import { createFlow, type Flow, type Scorer } from '../engine/scorer.ts';
import {
  PairwisePreferenceService,
  type GetModelInfoRequest,
  type ModelInfo,
  type Prediction as WirePrediction,
  type ScoreOptions as WireScoreOptions,
  type ScoreResponse,
} from '../proto/gen/pairpref/v1/preference.ts';
import { decodeScoreRequest, decodeStreamRequest, MalformedMessageError, type DecodedRow } from '../protocol/decode.ts';
import { fromWire, modelInfoToWire, predictionToWire } from '../protocol/wire.ts';
import { requestIdOf } from './calls.ts';
import type { Metrics } from './metrics.ts';
import { ATTR, callSpans, recordingSpan } from './telemetry.ts';

/** The service with passthrough request deserializers: handlers decode the bytes themselves. */
export const RawPairwisePreferenceService = {
  ...PairwisePreferenceService,
  score: { ...PairwisePreferenceService.score, requestDeserialize: (b: Buffer): Buffer => b },
  scoreStream: { ...PairwisePreferenceService.scoreStream, requestDeserialize: (b: Buffer): Buffer => b },
} as const;

export interface RawPreferenceServer {
  score(call: ServerUnaryCall<Buffer, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void;
  scoreStream(call: ServerDuplexStream<Buffer, WirePrediction>): void;
  getModelInfo(call: ServerUnaryCall<GetModelInfoRequest, ModelInfo>, callback: sendUnaryData<ModelInfo>): void;
}

export interface ServiceOptions {
  /** Rows a single stream may have unanswered (read but not yet flushed) before the server stops reading it. */
  readonly maxInflightPerStream: number;
  /** Comparisons in one Score call; more is INVALID_ARGUMENT before any work. */
  readonly maxRowsPerCall: number;
  /** Open ScoreStream calls; one more is RESOURCE_EXHAUSTED. */
  readonly maxStreams: number;
  /** Largest message (reported by GetModelInfo; grpc-js enforces it). */
  readonly maxMessageBytes: number;
  readonly metrics?: Metrics;
  /** Per-call lines (debug; failures of the server's own at warn/error) carry request_id, method and, when traced, trace_id. */
  readonly logger?: Logger;
  /** True once the server drains: streams stop reading new rows. */
  readonly draining: () => boolean;
  /** Called with the open streams' stop functions when draining starts. */
  readonly onDrain: (stop: () => void) => () => void;
}

function fail(code: number, details: string): Partial<ServiceError> {
  return { code, details };
}

/**
 * A refusal that says "not now" (overloaded, no device up, too many streams): the trailer
 * `pairpref-retryable: 1` tells clients to retry with backoff. grpc-js's own RESOURCE_EXHAUSTED for
 * an oversized message has no such trailer, and retrying it would fail the same way.
 */
function retryable(code: number, details: string): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set('pairpref-retryable', '1');
  return { code, details, metadata };
}

/** An AbortSignal for a call: 'cancelled' when the client goes away, 'deadline' when its deadline passes. */
function callSignal(call: { getDeadline(): Date | number; on(e: 'cancelled', f: () => void): unknown }): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  // A stream's rows each listen on it while they are queued: many listeners are expected here.
  setMaxListeners(0, ac.signal);
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  // grpc-js reports a passed deadline as 'cancelled' too: the clock tells the two apart.
  call.on('cancelled', () => ac.abort(Number.isFinite(at) && Date.now() >= at - 1 ? 'deadline' : 'cancelled'));
  const ms = Number.isFinite(at) ? at - Date.now() : Infinity;
  const timer = Number.isFinite(ms) ? setTimeout(() => ac.abort('deadline'), Math.max(0, ms)) : null;
  timer?.unref();
  return { signal: ac.signal, done: () => timer && clearTimeout(timer) };
}

function options(o: WireScoreOptions | undefined): { swapTta: boolean } {
  return { swapTta: o?.swapTta ?? false };
}

/** Decoded rows -> core comparisons, or a per-row error prediction. */
function toCore(rows: readonly DecodedRow[], m: Metrics | undefined): Array<Comparison | Prediction> {
  return rows.map((d) => {
    if (!d.ok) {
      m?.rejected('invalid_utf8');
      return errorPrediction(echoId(d.id), { code: Status.INVALID_ARGUMENT, field: d.field, message: d.message });
    }
    try {
      return fromWire(d.comparison);
    } catch (e) {
      return errorPrediction(echoId(d.comparison.id), { code: Status.INVALID_ARGUMENT, field: e instanceof RowInputError ? e.field : '', message: (e as Error).message });
    }
  });
}

/** Scores the valid rows in one engine call; refused rows keep their error. */
async function scoreRows(scorer: Scorer, rows: ReadonlyArray<Comparison | Prediction>, o: Parameters<Scorer['score']>[1]): Promise<Prediction[]> {
  const isRow = (r: Comparison | Prediction): r is Comparison => 'kind' in r;
  const valid = rows.filter(isRow);
  const scored = valid.length > 0 ? await scorer.score(valid, o) : [];
  let k = 0;
  return rows.map((r) => (isRow(r) ? scored[k++]! : r));
}

/** Who a call is, for its log lines and spans. */
interface CallScope {
  /** The context the handler ran in: the gRPC server span's when traced (the engine's spans go under it). */
  readonly ctx: Context;
  readonly span: ReturnType<typeof recordingSpan>;
  readonly log: Logger;
}

function callScope(metadata: Metadata, method: string, logger: Logger | undefined): CallScope {
  const ctx = context.active();
  const span = recordingSpan(ctx);
  const requestId = requestIdOf(metadata);
  span?.setAttribute(ATTR.requestId, requestId);
  const log = withFields(logger ?? silentLogger, { request_id: requestId, method, ...(span ? { trace_id: span.spanContext().traceId } : {}) });
  return { ctx, span, log };
}

/** "5 ok, 1 INVALID_ARGUMENT" */
function outcomes(results: readonly Prediction[]): string {
  const n = new Map<string, number>();
  for (const r of results) {
    const k = r.error ? (status[r.error.code] ?? String(r.error.code)) : 'ok';
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].map(([k, v]) => `${v} ${k}`).join(', ');
}

/** Rows that failed on the server's side (INTERNAL): worth a warning, with the first message. */
function logInternal(log: Logger, results: readonly Prediction[]): void {
  const internal = results.filter((r) => r.error?.code === Status.INTERNAL);
  if (internal.length > 0) log.warn(`${internal.length} row(s) failed inside the server: ${internal[0]!.error!.message}`, { rows: internal.length });
}

const ms = (since: number): number => Math.round((performance.now() - since) * 10) / 10;

function engineFailure(e: unknown): Partial<ServiceError> {
  if (e instanceof EngineError) return retryable(e.code, e.message);
  return fail(status.INTERNAL, e instanceof Error ? e.message : String(e));
}

function unaryScore(scorer: Scorer, opts: ServiceOptions) {
  const m = opts.metrics;
  return (call: ServerUnaryCall<Buffer, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void => {
    const started = performance.now();
    const scope = callScope(call.metadata, 'Score', opts.logger);
    const refuse = (f: Partial<ServiceError>): void => {
      const level = f.code === status.INTERNAL ? 'error' : 'debug';
      scope.log[level](`Score refused: ${status[f.code ?? status.UNKNOWN]}: ${f.details ?? ''}`, { code: status[f.code ?? status.UNKNOWN] ?? 'UNKNOWN', duration_ms: ms(started) });
      callback(f);
    };
    let decoded;
    try {
      decoded = decodeScoreRequest(call.request);
    } catch (e) {
      m?.rejected('malformed_message');
      return refuse(fail(status.INVALID_ARGUMENT, (e as MalformedMessageError).message));
    }
    const o = options(decoded.options);
    scope.span?.setAttributes({ [ATTR.rows]: decoded.rows.length, [ATTR.swapTta]: o.swapTta });
    if (decoded.rows.length > opts.maxRowsPerCall) {
      m?.rejected('too_many_rows', decoded.rows.length);
      return refuse(fail(status.INVALID_ARGUMENT, `the call has ${decoded.rows.length} comparisons; the limit is ${opts.maxRowsPerCall} per Score call (--max-rows-per-call): split it, or use ScoreStream`));
    }
    const { signal, done } = callSignal(call);
    const spans = callSpans(scope.ctx);
    scoreRows(scorer, toCore(decoded.rows, m), { ...o, signal, observer: spans?.observer }).then(
      (results) => {
        done();
        spans?.end();
        for (const r of results) m?.observeRow(r, performance.now() - started);
        logInternal(scope.log, results);
        scope.log.debug(`Score answered ${results.length} row(s): ${outcomes(results)}`, { code: 'OK', rows: results.length, duration_ms: ms(started) });
        callback(null, { predictions: results.map(predictionToWire) });
      },
      (e: unknown) => {
        done();
        spans?.end();
        refuse(engineFailure(e));
      },
    );
  };
}

/**
 * One ScoreStream: each row goes to the engine on its own (answers stream back as they finish),
 * in the stream's flow (its in-flight ids must be unique). A row counts against the stream's
 * window until its answer is flushed to the transport, and reading also pauses while write()
 * reports a full buffer, so a client that never reads cannot grow the server's memory.
 */
function streamScore(scorer: Scorer, opts: ServiceOptions) {
  const m = opts.metrics;
  let open = 0;
  return (call: ServerDuplexStream<Buffer, WirePrediction>): void => {
    const scope = callScope(call.metadata, 'ScoreStream', opts.logger);
    if (open >= opts.maxStreams) {
      m?.rejected('too_many_streams');
      scope.log.debug(`ScoreStream refused: RESOURCE_EXHAUSTED: ${open} streams are open`, { code: 'RESOURCE_EXHAUSTED' });
      call.emit('error', retryable(status.RESOURCE_EXHAUSTED, `${open} streams are open; the limit is ${opts.maxStreams} (--max-streams)`));
      return;
    }
    open++;
    scope.log.debug('ScoreStream opened');
    const s = new StreamState(call, scorer, opts, m, scope);
    const unregister = opts.onDrain(() => s.drain());
    call.once('close', () => {
      open--;
      unregister();
      s.closed();
    });
    call.on('data', (buf: Buffer) => s.row(buf));
    call.on('end', () => s.end());
    if (opts.draining()) s.drain();
  };
}

class StreamState {
  private unanswered = 0;
  private ended = false;
  private draining = false;
  private cancelled = false;
  private waitingDrain = false;
  private paused = false;
  private readonly flow: Flow = createFlow();
  private readonly signal: AbortSignal;
  private readonly stopSignal: () => void;
  private readonly started = performance.now();
  /** Rows answered, by outcome (ok or a status name), for the closing log line. */
  private readonly answered = new Map<string, number>();
  private rowsRead = 0;
  private internal = 0;
  /** How the stream ended, as the log line says it. */
  private endCode = 'CANCELLED';

  constructor(
    private readonly call: ServerDuplexStream<Buffer, WirePrediction>,
    private readonly scorer: Scorer,
    private readonly opts: ServiceOptions,
    private readonly m: Metrics | undefined,
    private readonly scope: CallScope,
  ) {
    const { signal, done } = callSignal(call);
    this.signal = signal;
    this.stopSignal = done;
    signal.addEventListener('abort', () => (this.cancelled = true), { once: true });
    call.on('error', () => (this.cancelled = true));
    call.on('drain', () => {
      this.waitingDrain = false;
      this.updateReading();
    });
  }

  row(buf: Buffer): void {
    const started = performance.now();
    this.rowsRead++;
    this.scope.span?.setAttribute(ATTR.rows, this.rowsRead);
    this.unanswered++;
    this.updateReading();
    let rows: Array<Comparison | Prediction>;
    let o: { swapTta: boolean } = { swapTta: false };
    try {
      const d = decodeStreamRequest(buf);
      o = options(d.options);
      rows = d.row ? toCore([d.row], this.m) : [errorPrediction('', { code: Status.INVALID_ARGUMENT, field: 'comparison', message: 'stream message has no comparison' })];
    } catch (e) {
      this.m?.rejected('malformed_message');
      rows = [errorPrediction('', { code: Status.INVALID_ARGUMENT, field: 'comparison', message: (e as Error).message })];
    }
    // Each row is its own engine call: its tokenize / queue / inference spans go under the stream's span.
    const spans = callSpans(this.scope.ctx);
    scoreRows(this.scorer, rows, { ...o, signal: this.signal, flow: this.flow, observer: spans?.observer })
      .then(
        (r) => r[0]!,
        (e: unknown) => {
          const f = engineFailure(e);
          return errorPrediction(idOf(rows[0]), { code: f.code ?? Status.INTERNAL, field: '', message: f.details ?? 'failed' });
        },
      )
      .then((p) => {
        spans?.end();
        this.answer(p, started);
      });
  }

  private answer(p: Prediction, started: number): void {
    this.m?.observeRow(p, performance.now() - started);
    const k = p.error ? (status[p.error.code] ?? String(p.error.code)) : 'ok';
    this.answered.set(k, (this.answered.get(k) ?? 0) + 1);
    // The first row that fails inside the server is logged at once; the count at the stream's end.
    if (p.error?.code === Status.INTERNAL && this.internal++ === 0) logInternal(this.scope.log, [p]);
    if (this.cancelled) {
      this.unanswered--;
      return;
    }
    // Counted until flushed: the write callback fires once the message left the buffer.
    const more = this.call.write(predictionToWire(p), () => {
      this.unanswered--;
      this.updateReading();
      this.finishIfDone();
    });
    if (!more) this.waitingDrain = true;
  }

  /** Pauses or resumes reading from the window, the transport buffer and the drain state. */
  private updateReading(): void {
    const full = this.unanswered >= this.opts.maxInflightPerStream;
    const low = this.unanswered <= this.opts.maxInflightPerStream / 2;
    if (!this.paused && (full || this.waitingDrain || this.draining)) {
      this.paused = true;
      this.call.pause();
    } else if (this.paused && low && !this.waitingDrain && !this.draining) {
      this.paused = false;
      this.call.resume();
    }
  }

  end(): void {
    this.ended = true;
    this.finishIfDone();
  }

  /** The server drains: read no new rows; answer those read, then end. */
  drain(): void {
    this.draining = true;
    this.updateReading();
    this.finishIfDone();
  }

  closed(): void {
    if (this.endCode === 'CANCELLED' && this.signal.aborted && this.signal.reason === 'deadline') this.endCode = 'DEADLINE_EXCEEDED';
    this.cancelled = true;
    this.stopSignal();
    const n = [...this.answered.values()].reduce((a, b) => a + b, 0);
    const summary = [...this.answered].map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
    if (this.internal > 1) this.scope.log.warn(`${this.internal} row(s) of this stream failed inside the server`, { rows: this.internal });
    this.scope.log.debug(`ScoreStream closed: ${this.endCode}; ${this.rowsRead} row(s) read, answered: ${summary}`, { code: this.endCode, rows: n, duration_ms: ms(this.started) });
  }

  private finishIfDone(): void {
    if (this.cancelled || this.unanswered > 0) return;
    if (this.ended) {
      this.endCode = 'OK';
      this.stopSignal();
      this.call.end();
    } else if (this.draining) {
      // Rows the client wrote after this point were never read: it re-sends them elsewhere.
      this.endCode = 'UNAVAILABLE';
      this.stopSignal();
      this.call.emit('error', fail(status.UNAVAILABLE, 'pairpref is shutting down: this stream takes no more rows; re-send unanswered rows to another replica'));
    }
  }
}

function idOf(r: Comparison | Prediction | undefined): string {
  return echoId(r?.id);
}

export function createPreferenceService(scorer: Scorer, opts: ServiceOptions): RawPreferenceServer {
  return {
    score: unaryScore(scorer, opts),
    scoreStream: streamScore(scorer, opts),
    getModelInfo(_call, callback) {
      const h = scorer.health();
      callback(
        null,
        modelInfoToWire({
          config: scorer.config,
          batching: scorer.batching,
          devices: h.devices,
          tokenizers: h.tokenizers,
          limits: {
            maxRowsPerCall: opts.maxRowsPerCall,
            maxRowChars: scorer.limits.maxRowChars,
            maxIdBytes: MAX_ID_BYTES,
            maxQueueTokens: scorer.limits.maxQueueTokens,
            maxStreams: opts.maxStreams,
            maxInflightPerStream: opts.maxInflightPerStream,
            maxMessageBytes: opts.maxMessageBytes,
          },
        }),
      );
    },
  };
}

