// gRPC handlers for pairpref.v1.PairwisePreference. Requests arrive as raw bytes (see
// protocol/decode.ts), are checked against the transport's limits, and go to the engine with an
// AbortSignal that fires when the client cancels or the deadline passes, so dead calls leave the
// queues instead of being computed.
import { Metadata, status, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { setMaxListeners } from 'node:events';
import { RowInputError } from '../core/errors.ts';
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
import type { Metrics } from './metrics.ts';

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

function engineFailure(e: unknown): Partial<ServiceError> {
  if (e instanceof EngineError) return retryable(e.code, e.message);
  return fail(status.INTERNAL, e instanceof Error ? e.message : String(e));
}

function unaryScore(scorer: Scorer, opts: ServiceOptions) {
  const m = opts.metrics;
  return (call: ServerUnaryCall<Buffer, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void => {
    const started = performance.now();
    let decoded;
    try {
      decoded = decodeScoreRequest(call.request);
    } catch (e) {
      m?.rejected('malformed_message');
      return callback(fail(status.INVALID_ARGUMENT, (e as MalformedMessageError).message));
    }
    if (decoded.rows.length > opts.maxRowsPerCall) {
      m?.rejected('too_many_rows', decoded.rows.length);
      return callback(fail(status.INVALID_ARGUMENT, `the call has ${decoded.rows.length} comparisons; the limit is ${opts.maxRowsPerCall} per Score call (--max-rows-per-call): split it, or use ScoreStream`));
    }
    const { signal, done } = callSignal(call);
    scoreRows(scorer, toCore(decoded.rows, m), { ...options(decoded.options), signal }).then(
      (results) => {
        done();
        for (const r of results) m?.observeRow(r, performance.now() - started);
        callback(null, { predictions: results.map(predictionToWire) });
      },
      (e: unknown) => {
        done();
        callback(engineFailure(e));
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
    if (open >= opts.maxStreams) {
      m?.rejected('too_many_streams');
      call.emit('error', retryable(status.RESOURCE_EXHAUSTED, `${open} streams are open; the limit is ${opts.maxStreams} (--max-streams)`));
      return;
    }
    open++;
    const s = new StreamState(call, scorer, opts, m);
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

  constructor(
    private readonly call: ServerDuplexStream<Buffer, WirePrediction>,
    private readonly scorer: Scorer,
    private readonly opts: ServiceOptions,
    private readonly m: Metrics | undefined,
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
    scoreRows(this.scorer, rows, { ...o, signal: this.signal, flow: this.flow })
      .then(
        (r) => r[0]!,
        (e: unknown) => {
          const f = engineFailure(e);
          return errorPrediction(idOf(rows[0]), { code: f.code ?? Status.INTERNAL, field: '', message: f.details ?? 'failed' });
        },
      )
      .then((p) => this.answer(p, started));
  }

  private answer(p: Prediction, started: number): void {
    this.m?.observeRow(p, performance.now() - started);
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
    this.cancelled = true;
    this.stopSignal();
  }

  private finishIfDone(): void {
    if (this.cancelled || this.unanswered > 0) return;
    if (this.ended) {
      this.stopSignal();
      this.call.end();
    } else if (this.draining) {
      // Rows the client wrote after this point were never read: it re-sends them elsewhere.
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

