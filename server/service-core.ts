// PairwisePreference without a transport: what both ports (gRPC on grpc-js, grpc-service.ts; Connect,
// gRPC-Web and JSON on connect-node, http-service.ts) do the same way. The transport's limits (rows
// per call, open streams, the stream window), rows decoded to core comparisons, the engine call with
// the call's AbortSignal, per-row metrics, the call's log lines and its tokenize / queue / inference
// spans. An adapter brings the call's signal ('deadline' or 'cancelled' as its reason), its request
// id and trace context, and for streams a source it can pause and a sink it writes to; failures come
// back as CallError, which each adapter turns into its own status.
import { context, type Context } from '@opentelemetry/api';
import { setMaxListeners } from 'node:events';
import { RowInputError } from '../core/errors.ts';
import { silentLogger, withFields, type Logger } from '../core/log.ts';
import { echoId, errorPrediction, type Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { Comparison } from '../core/types.ts';
import { EngineError, MAX_ID_BYTES } from '../engine/admission.ts';
import { createFlow, type Flow, type Scorer } from '../engine/scorer.ts';
import type { ModelInfo, Prediction as WirePrediction, ScoreOptions as WireScoreOptions } from '../proto/gen/pairpref/v1/preference.ts';
import { MalformedMessageError, type DecodedRow } from '../protocol/decode.ts';
import { fromWire, modelInfoToWire, predictionToWire } from '../protocol/wire.ts';
import { statusName } from './calls.ts';
import type { Metrics } from './metrics.ts';
import { ATTR, callSpans, recordingSpan } from './telemetry.ts';

export interface ServiceOptions {
  /** Rows a single stream may have unanswered (read but not yet flushed) before the server stops reading it. */
  readonly maxInflightPerStream: number;
  /** Comparisons in one Score (or ScoreBatchStream) call; more is INVALID_ARGUMENT before any work. */
  readonly maxRowsPerCall: number;
  /** Open ScoreStream and ScoreBatchStream calls, both ports together; one more is RESOURCE_EXHAUSTED. */
  readonly maxStreams: number;
  /** Largest message (reported by GetModelInfo; each transport enforces it). */
  readonly maxMessageBytes: number;
  readonly metrics?: Metrics;
  /** Per-call lines (debug; failures of the server's own at warn/error) carry request_id, method and, when traced, trace_id. */
  readonly logger?: Logger;
  /** True once the server drains: streams stop reading new rows. */
  readonly draining: () => boolean;
  /** Called with the open streams' stop functions when draining starts. */
  readonly onDrain: (stop: () => void) => () => void;
}

/** A call that fails as a whole, with a gRPC status code; `retryable` adds the `pairpref-retryable: 1` trailer. */
export class CallError extends Error {
  override name = 'CallError';
  constructor(
    readonly code: number,
    message: string,
    /**
     * A refusal that says "not now" (overloaded, no device up, too many streams): clients retry it
     * with backoff. An oversized message or a bad request would fail the same way again.
     */
    readonly retryable = false,
  ) {
    super(message);
  }
}

/** The trailer (gRPC metadata, HTTP header) that marks a retryable refusal. */
export const RETRYABLE_TRAILER = 'pairpref-retryable';

/** Who a call is, for its log lines and spans. */
export interface CallScope {
  /** The call's trace context: its server span's when traced (the engine's spans go under it). */
  readonly ctx: Context;
  readonly span: ReturnType<typeof recordingSpan>;
  readonly log: Logger;
}

export function callScope(requestId: string, method: string, logger: Logger | undefined, ctx: Context = context.active()): CallScope {
  const span = recordingSpan(ctx);
  span?.setAttribute(ATTR.requestId, requestId);
  const log = withFields(logger ?? silentLogger, { request_id: requestId, method, ...(span ? { trace_id: span.spanContext().traceId } : {}) });
  return { ctx, span, log };
}

/** What a handler knows of its call, whatever the transport. */
export interface CallInfo {
  /** Aborts when the client goes away ('cancelled') or the deadline passes ('deadline'). */
  readonly signal: AbortSignal;
  readonly scope: CallScope;
}

/**
 * An AbortSignal that aborts with 'deadline' at `deadlineMs` (epoch ms; none when not finite) or
 * with whatever `cancel` is called with. A stream's rows each listen on it while they are queued.
 */
export function deadlineSignal(deadlineMs: number): { signal: AbortSignal; abort: (reason: 'cancelled' | 'deadline') => void; done: () => void } {
  const ac = new AbortController();
  setMaxListeners(0, ac.signal);
  const ms = Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : Infinity;
  const timer = Number.isFinite(ms) ? setTimeout(() => ac.abort('deadline'), Math.max(0, ms)) : null;
  timer?.unref();
  return { signal: ac.signal, abort: (reason) => ac.abort(reason), done: () => timer && clearTimeout(timer) };
}

export interface DecodedCall {
  readonly rows: DecodedRow[];
  readonly options: WireScoreOptions | undefined;
}

export interface DecodedStreamRow {
  /** Null when the stream message has no comparison. */
  readonly row: DecodedRow | null;
  readonly options: WireScoreOptions | undefined;
}

/** Where a stream's answers go. */
export interface StreamSink {
  /** Writes an answer; `flushed` runs once it left the transport's buffer. False: the buffer is full until the adapter calls RowStream.writable(). */
  write(p: WirePrediction, flushed: () => void): boolean;
  /** Every row answered and the input ended: status OK. */
  end(): void;
  fail(e: CallError): void;
}

/** Where a stream's rows come from: paused while the window is full, the sink's buffer is full, or the server drains. */
export interface StreamSource {
  pause(): void;
  resume(): void;
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

/** Counts a row's outcome (ok or a status name) for a call's log line. */
function countOutcome(n: Map<string, number>, r: Prediction): void {
  const k = r.error ? statusName(r.error.code) : 'ok';
  n.set(k, (n.get(k) ?? 0) + 1);
}

/** "5 ok, 1 INVALID_ARGUMENT" */
function outcomes(n: ReadonlyMap<string, number>): string {
  return [...n].map(([k, v]) => `${v} ${k}`).join(', ');
}

/** Rows that failed on the server's side (INTERNAL): worth a warning, with the first message. */
function logInternal(log: Logger, results: readonly Prediction[]): void {
  const internal = results.filter((r) => r.error?.code === Status.INTERNAL);
  if (internal.length > 0) log.warn(`${internal.length} row(s) failed inside the server: ${internal[0]!.error!.message}`, { rows: internal.length });
}

const ms = (since: number): number => Math.round((performance.now() - since) * 10) / 10;

function engineFailure(e: unknown): CallError {
  if (e instanceof CallError) return e;
  if (e instanceof EngineError) return new CallError(e.code, e.message, true);
  return new CallError(Status.INTERNAL, e instanceof Error ? e.message : String(e));
}

/** The whole call was cancelled or ran past its deadline: its status says which. */
function abortedCall(signal: AbortSignal): CallError {
  return signal.reason === 'deadline'
    ? new CallError(Status.DEADLINE_EXCEEDED, 'the deadline passed before the call was answered')
    : new CallError(Status.CANCELLED, 'the call was cancelled');
}

function decodeOrRefuse<T>(decode: () => T, m: Metrics | undefined): T {
  try {
    return decode();
  } catch (e) {
    if (!(e instanceof MalformedMessageError)) throw e;
    m?.rejected('malformed_message');
    throw new CallError(Status.INVALID_ARGUMENT, e.message);
  }
}

function tooManyRows(n: number, max: number, method: string, m: Metrics | undefined): CallError {
  m?.rejected('too_many_rows', n);
  const hint = method === 'Score' ? 'split it, or use ScoreStream (or ScoreBatchStream, in smaller requests)' : 'split it into smaller requests';
  return new CallError(Status.INVALID_ARGUMENT, `the call has ${n} comparisons; the limit is ${max} per ${method} call (--max-rows-per-call): ${hint}`);
}

export interface PreferenceCore {
  /** One Score call: the predictions in request order, or a CallError. `decode` may throw MalformedMessageError. */
  score(decode: () => DecodedCall, call: CallInfo): Promise<WirePrediction[]>;
  /**
   * One ScoreStream: rows come in through `row`, answers go out through the sink as each is ready.
   * A CallError when too many streams are open.
   */
  openStream(call: CallInfo, source: StreamSource, sink: StreamSink): RowStream;
  /**
   * One ScoreBatchStream: the request's rows fed to the engine as the stream window allows, answers
   * out through the sink as each is ready. A CallError (too many rows, streams, a malformed request).
   */
  openBatchStream(decode: () => DecodedCall, call: CallInfo, sink: StreamSink): RowStream;
  modelInfo(): ModelInfo;
}

export function createPreferenceCore(scorer: Scorer, opts: ServiceOptions): PreferenceCore {
  const m = opts.metrics;
  let open = 0;

  /** Counts a stream against --max-streams (both ports together), or refuses it. */
  function admitStream(call: CallInfo, method: string): () => void {
    if (open >= opts.maxStreams) {
      m?.rejected('too_many_streams');
      call.scope.log.debug(`${method} refused: RESOURCE_EXHAUSTED: ${open} streams are open`, { code: 'RESOURCE_EXHAUSTED' });
      throw new CallError(Status.RESOURCE_EXHAUSTED, `${open} streams are open; the limit is ${opts.maxStreams} (--max-streams)`, true);
    }
    open++;
    let closed = false;
    return () => {
      if (!closed) open--;
      closed = true;
    };
  }

  function startStream(call: CallInfo, method: string, source: StreamSource, sink: StreamSink): RowStream {
    const release = admitStream(call, method);
    call.scope.log.debug(`${method} opened`);
    const s = new RowStream(method, scorer, opts, call, source, sink, () => {
      release();
      unregister();
    });
    const unregister = opts.onDrain(() => s.drain());
    if (opts.draining()) s.drain();
    return s;
  }

  return {
    async score(decode, call) {
      const started = performance.now();
      const { scope, signal } = call;
      try {
        const decoded = decodeOrRefuse(decode, m);
        const o = options(decoded.options);
        scope.span?.setAttributes({ [ATTR.rows]: decoded.rows.length, [ATTR.swapTta]: o.swapTta });
        if (decoded.rows.length > opts.maxRowsPerCall) throw tooManyRows(decoded.rows.length, opts.maxRowsPerCall, 'Score', m);
        const spans = callSpans(scope.ctx);
        let results: Prediction[];
        try {
          results = await scoreRows(scorer, toCore(decoded.rows, m), { ...o, signal, observer: spans?.observer });
        } finally {
          spans?.end();
        }
        m?.observeRows(results, performance.now() - started);
        logInternal(scope.log, results);
        if (signal.aborted) throw abortedCall(signal);
        const n = new Map<string, number>();
        for (const r of results) countOutcome(n, r);
        scope.log.debug(`Score answered ${results.length} row(s): ${outcomes(n)}`, { code: 'OK', rows: results.length, duration_ms: ms(started) });
        return results.map(predictionToWire);
      } catch (e) {
        const f = engineFailure(e);
        const code = statusName(f.code);
        scope.log[f.code === Status.INTERNAL ? 'error' : 'debug'](`Score refused: ${code}: ${f.message}`, { code, duration_ms: ms(started) });
        throw f;
      }
    },

    openStream(call, source, sink) {
      return startStream(call, 'ScoreStream', source, sink);
    },

    openBatchStream(decode, call, sink) {
      let decoded: DecodedCall;
      try {
        decoded = decodeOrRefuse(decode, m);
        if (decoded.rows.length > opts.maxRowsPerCall) throw tooManyRows(decoded.rows.length, opts.maxRowsPerCall, 'ScoreBatchStream', m);
      } catch (e) {
        const f = engineFailure(e);
        call.scope.log.debug(`ScoreBatchStream refused: ${statusName(f.code)}: ${f.message}`, { code: statusName(f.code) });
        throw f;
      }
      call.scope.span?.setAttributes({ [ATTR.swapTta]: options(decoded.options).swapTta });
      // The request's rows are the stream's input: fed while the window (and the sink) allow.
      let next = 0;
      let paused = false;
      let pumping = false;
      const pump = (): void => {
        if (pumping) return;
        pumping = true;
        while (!paused && next < decoded.rows.length) {
          const row = decoded.rows[next++]!;
          s.row(() => ({ row, options: decoded.options }));
        }
        pumping = false;
        if (next === decoded.rows.length) {
          next++; // past the end: end() once
          s.end();
        }
      };
      const s = startStream(call, 'ScoreBatchStream', { pause: () => (paused = true), resume: () => ((paused = false), pump()) }, sink);
      queueMicrotask(pump);
      return s;
    },

    modelInfo() {
      const h = scorer.health();
      return modelInfoToWire({
        config: scorer.config,
        batching: scorer.batching,
        devices: h.devices,
        tokenizers: h.tokenizers,
        bundleBytes: scorer.bundleBytes,
        limits: {
          maxRowsPerCall: opts.maxRowsPerCall,
          maxRowChars: scorer.limits.maxRowChars,
          maxIdBytes: MAX_ID_BYTES,
          maxQueueTokens: scorer.limits.maxQueueTokens,
          maxStreams: opts.maxStreams,
          maxInflightPerStream: opts.maxInflightPerStream,
          maxMessageBytes: opts.maxMessageBytes,
        },
      });
    },
  };
}

/**
 * One stream: each row goes to the engine on its own (answers go out as they finish), in the
 * stream's flow (its in-flight ids must be unique). A row counts against the stream's window until
 * its answer is flushed to the transport, and reading also pauses while the sink reports a full
 * buffer, so a client that never reads cannot grow the server's memory. On a drain the stream reads
 * no more rows, answers those it read, and ends with UNAVAILABLE (unless its input had ended).
 */
export class RowStream {
  private unanswered = 0;
  private ended = false;
  private draining = false;
  private cancelled = false;
  private waitingDrain = false;
  private paused = false;
  private finished = false;
  private readonly flow: Flow = createFlow();
  private readonly started = performance.now();
  /** Rows answered, by outcome (ok or a status name), for the closing log line. */
  private readonly answered = new Map<string, number>();
  private rowsRead = 0;
  private internal = 0;
  /** How the stream ended, as the log line says it. */
  private endCode = 'CANCELLED';

  constructor(
    private readonly method: string,
    private readonly scorer: Scorer,
    private readonly opts: ServiceOptions,
    private readonly call: CallInfo,
    private readonly source: StreamSource,
    private readonly sink: StreamSink,
    private readonly release: () => void,
  ) {
    call.signal.addEventListener('abort', () => (this.cancelled = true), { once: true });
  }

  /** One row read from the stream; `decode` may throw (a malformed message fails that row only). */
  row(decode: () => DecodedStreamRow): void {
    const started = performance.now();
    const m = this.opts.metrics;
    this.rowsRead++;
    this.call.scope.span?.setAttribute(ATTR.rows, this.rowsRead);
    this.unanswered++;
    this.updateReading();
    let rows: Array<Comparison | Prediction>;
    let o: { swapTta: boolean } = { swapTta: false };
    try {
      const d = decode();
      o = options(d.options);
      rows = d.row ? toCore([d.row], m) : [errorPrediction('', { code: Status.INVALID_ARGUMENT, field: 'comparison', message: 'stream message has no comparison' })];
    } catch (e) {
      m?.rejected('malformed_message');
      rows = [errorPrediction('', { code: Status.INVALID_ARGUMENT, field: 'comparison', message: (e as Error).message })];
    }
    // Each row is its own engine call: its tokenize / queue / inference spans go under the stream's span.
    const spans = callSpans(this.call.scope.ctx);
    scoreRows(this.scorer, rows, { ...o, signal: this.call.signal, flow: this.flow, observer: spans?.observer })
      .then(
        (r) => r[0]!,
        (e: unknown) => {
          const f = engineFailure(e);
          return errorPrediction(echoId(rows[0]?.id), { code: f.code, field: '', message: f.message });
        },
      )
      .then((p) => {
        spans?.end();
        this.answer(p, started);
      });
  }

  private answer(p: Prediction, started: number): void {
    this.opts.metrics?.observeRows([p], performance.now() - started);
    countOutcome(this.answered, p);
    // The first row that fails inside the server is logged at once; the count at the stream's end.
    if (p.error?.code === Status.INTERNAL && this.internal++ === 0) logInternal(this.call.scope.log, [p]);
    if (this.cancelled) {
      this.unanswered--;
      return;
    }
    // Counted until flushed: the callback fires once the message left the buffer.
    const more = this.sink.write(predictionToWire(p), () => {
      this.unanswered--;
      this.updateReading();
      this.finishIfDone();
    });
    if (!more) this.waitingDrain = true;
  }

  /** The sink's buffer has room again. */
  writable(): void {
    this.waitingDrain = false;
    this.updateReading();
  }

  /** Pauses or resumes reading from the window, the transport buffer and the drain state. */
  private updateReading(): void {
    const full = this.unanswered >= this.opts.maxInflightPerStream;
    const low = this.unanswered <= this.opts.maxInflightPerStream / 2;
    if (!this.paused && (full || this.waitingDrain || this.draining)) {
      this.paused = true;
      this.source.pause();
    } else if (this.paused && low && !this.waitingDrain && !this.draining) {
      this.paused = false;
      this.source.resume();
    }
  }

  /** The input ended (the client half-closed, or a batch request's rows were all read). */
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

  /** The transport failed or the client went away: nothing more is written. */
  cancel(): void {
    this.cancelled = true;
  }

  /** The call is over, however it ended: the closing log line, and the stream leaves --max-streams. */
  closed(): void {
    if (this.finished) return;
    this.finished = true;
    const { signal } = this.call;
    if (this.endCode === 'CANCELLED' && signal.aborted && signal.reason === 'deadline') this.endCode = 'DEADLINE_EXCEEDED';
    this.cancelled = true;
    this.release();
    const n = [...this.answered.values()].reduce((a, b) => a + b, 0);
    const summary = outcomes(this.answered) || 'none';
    const log = this.call.scope.log;
    if (this.internal > 1) log.warn(`${this.internal} row(s) of this stream failed inside the server`, { rows: this.internal });
    log.debug(`${this.method} closed: ${this.endCode}; ${this.rowsRead} row(s) read, answered: ${summary}`, { code: this.endCode, rows: n, duration_ms: ms(this.started) });
  }

  private finishIfDone(): void {
    if (this.cancelled || this.unanswered > 0) return;
    if (this.ended) {
      this.endCode = 'OK';
      this.cancelled = true;
      this.sink.end();
    } else if (this.draining) {
      // Rows the client wrote after this point were never read: it re-sends them elsewhere.
      this.endCode = 'UNAVAILABLE';
      this.cancelled = true;
      this.sink.fail(new CallError(Status.UNAVAILABLE, 'pairpref is shutting down: this stream takes no more rows; re-send unanswered rows to another replica'));
    }
  }
}
