// A call's child spans (tokenize, queue, inference) under its gRPC server span, built from the
// engine's stage reports (engine/stages.ts) with @opentelemetry/api alone. The server span itself
// comes from @opentelemetry/instrumentation-grpc, which platform/telemetry.ts starts with the SDK;
// without an SDK the API is a no-op, no span records, and no observer is handed to the engine.
//
// A batch serves rows of many calls: each call gets its own `pairpref.inference` span for each
// batch that carried its rows (parented to that call), and the batch's number
// (`pairpref.batch.id`) ties the calls' spans of one batch together.
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapGetter } from '@opentelemetry/api';
import type { CallBatch, CallObserver } from '../engine/stages.ts';

export const TRACER_NAME = 'pairpref';

/** Span and attribute names (also the README's). */
export const SPAN = { tokenize: 'pairpref.tokenize', queue: 'pairpref.queue', inference: 'pairpref.inference' } as const;
export const ATTR = {
  requestId: 'pairpref.request_id',
  /** The HTTP port's protocol: connect, grpc-web (or grpc). */
  protocol: 'pairpref.protocol',
  rows: 'pairpref.rows',
  swapTta: 'pairpref.swap_tta',
  device: 'pairpref.device',
  batchId: 'pairpref.batch.id',
  batchAttempt: 'pairpref.batch.attempt',
  batchRows: 'pairpref.batch.rows',
  batchTokens: 'pairpref.batch.tokens',
  batchPaddedTokens: 'pairpref.batch.padded_tokens',
  batches: 'pairpref.batches',
} as const;

/** A call's server span on the HTTP port (no instrumentation makes one there); ended with the call's status. */
export interface ServerSpan {
  /** The span's context: the engine's spans of the call go under it. */
  readonly ctx: Context;
  end(code: number, message: string): void;
}

const HEADERS: TextMapGetter<Headers> = {
  keys: (h) => {
    const keys: string[] = [];
    h.forEach((_, k) => keys.push(k));
    return keys;
  },
  get: (h, k) => h.get(k) ?? undefined,
};

/**
 * The SERVER span of a call on the HTTP port (Connect, gRPC-Web, JSON), named like the RPC
 * (`pairpref.v1.PairwisePreference/Score`) and continuing the caller's W3C `traceparent` header, as
 * the grpc instrumentation's span does on the gRPC port. Non-recording (free) without an SDK.
 */
export function startServerSpan(service: string, method: string, headers: Headers, protocol: string, requestId: string): ServerSpan {
  const parent = propagation.extract(ROOT_CONTEXT, headers, HEADERS);
  const span = trace.getTracer(TRACER_NAME).startSpan(
    `${service}/${method}`,
    { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'connect_rpc', 'rpc.service': service, 'rpc.method': method, [ATTR.protocol]: protocol, [ATTR.requestId]: requestId } },
    parent,
  );
  return {
    ctx: trace.setSpan(parent, span),
    end(code, message) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message });
      span.end();
    },
  };
}

/** performance.now() milliseconds -> epoch milliseconds (what span start/end times take). */
const epoch = (t: number): number => performance.timeOrigin + t;

/** The recording span of a context, or null (no SDK, or not sampled). */
export function recordingSpan(ctx: Context = context.active()): Span | null {
  const span = trace.getSpan(ctx);
  return span?.isRecording() ? span : null;
}

export interface CallSpans {
  /** Hand it to the engine with the call (ScoreOptions.observer). */
  readonly observer: CallObserver;
  /** The call's engine work is over: the queue span is written. */
  end(): void;
}

/**
 * Child spans for one engine call (a Score call, or one ScoreStream row) under `parent` (the
 * context of the gRPC server span, captured when the call started); null when that span does not
 * record, so untraced calls cost nothing.
 */
export function callSpans(parent: Context): CallSpans | null {
  if (!recordingSpan(parent)) return null;
  const tracer = trace.getTracer(TRACER_NAME);
  const child = (name: string, start: number, end: number, attributes: Attributes, error?: Error | null): void => {
    const span = tracer.startSpan(name, { startTime: epoch(start), attributes }, parent);
    if (error) {
      span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    }
    span.end(epoch(end));
  };
  let queue: { from: number; to: number; rows: number; batches: number } | null = null;
  const observer: CallObserver = {
    tokenized: (t) => child(SPAN.tokenize, t.start, t.end, { [ATTR.rows]: t.rows }),
    batch: (b: CallBatch) => {
      child(
        SPAN.inference,
        b.start,
        b.end,
        {
          [ATTR.device]: b.device,
          [ATTR.rows]: b.callRows,
          [ATTR.batchId]: b.id,
          [ATTR.batchAttempt]: b.attempt,
          [ATTR.batchRows]: b.rows,
          [ATTR.batchTokens]: b.tokens,
          [ATTR.batchPaddedTokens]: b.paddedTokens,
        },
        b.error,
      );
      if (b.attempt > 0) return; // a retry's rows were queued (and counted) on the first attempt
      queue = queue ?? { from: b.queuedAt, to: b.start, rows: 0, batches: 0 };
      queue.from = Math.min(queue.from, b.queuedAt);
      queue.to = Math.max(queue.to, b.start);
      queue.rows += b.callRows;
      queue.batches++;
    },
  };
  return {
    observer,
    end() {
      const q = queue as { from: number; to: number; rows: number; batches: number } | null;
      if (q) child(SPAN.queue, q.from, q.to, { [ATTR.rows]: q.rows, [ATTR.batches]: q.batches });
      queue = null;
    },
  };
}
