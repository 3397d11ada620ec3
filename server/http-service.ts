// PairwisePreference over Connect, gRPC-Web and JSON (connect-node): the HTTP port's side of the
// service in service-core.ts, so both ports run the same limits, engine and queue. Messages are
// protobuf-es's (proto/gen-es), decoded by connect before a handler runs.
//
// What the gRPC port does in interceptors (calls.ts, security.ts), this port does in connect's
// request gate, which runs for every call of every protocol before its body is read: the request id
// (taken or made, echoed in headers and trailers), the server span (continuing `traceparent`), the
// bearer token, and refusals while the model loads or the server drains. The gate also follows the
// call to its end (the handler context's signal aborts then, with the error if there was one), so
// every call is counted in pairpref_requests_total by method and code, including those refused
// before a handler ran (no token, a body that is not the message, a message over the size limit).
import { fromBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextKey, type ConnectRouter, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from '../core/log.ts';
import { Status } from '../core/status.ts';
import { ModelInfo as ModelInfoCodec, type Prediction as WirePrediction } from '../proto/gen/pairpref/v1/preference.ts';
import { ModelInfoSchema, PairwisePreference, type Comparison, type ScoreRequest, type ScoreStreamRequest } from '../proto/gen-es/pairpref/v1/preference_pb.ts';
import type { DecodedRow } from '../protocol/decode.ts';
import { acceptRequestId, REQUEST_ID_HEADER, statusName } from './calls.ts';
import type { Metrics } from './metrics.ts';
import { authorizationMatches, UNAUTHENTICATED_MESSAGE } from './security.ts';
import { CallError, callScope, deadlineSignal, RETRYABLE_TRAILER, type CallInfo, type DecodedCall, type DecodedStreamRow, type PreferenceCore, type RowStream, type StreamSink } from './service-core.ts';
import { startServerSpan, type ServerSpan } from './telemetry.ts';

export interface HttpServiceOptions {
  /** The service once the model is loaded; null before (calls get UNAVAILABLE, retryable). */
  readonly core: () => PreferenceCore | null;
  readonly metrics: Metrics;
  readonly authToken?: string;
  readonly logger?: Logger;
  /** True once the drain refuses new calls. */
  readonly draining: () => boolean;
}

/** What the gate learned of a call, for its handler. */
interface HttpCall {
  readonly requestId: string;
  readonly span: ServerSpan;
  /** The handler answered (or its stream ended) with OK. */
  ok: boolean;
}

const CALL = createContextKey<HttpCall | null>(null, { description: 'pairpref call' });

/** A CallError as connect sends it; a retryable one carries the `pairpref-retryable: 1` trailer (a header for unary Connect calls). */
function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (!(e instanceof CallError)) return new ConnectError(e instanceof Error ? e.message : String(e), Code.Internal);
  return new ConnectError(e.message, e.code as Code, e.retryable ? { [RETRYABLE_TRAILER]: '1' } : undefined);
}

/**
 * A client whose deadline passes hangs up, which the server sees before its own deadline timer fires
 * (the server's clock started when the request arrived, later than the client's): a hang-up this close
 * to the deadline counts as the deadline. The gRPC port tells the two apart by the clock too.
 */
const DEADLINE_SLACK_MS = 25;

function pastDeadline(ctx: HandlerContext): boolean {
  const left = ctx.timeoutMs();
  return left !== undefined && left <= DEADLINE_SLACK_MS;
}

/** How a call ended: the error it was aborted with, else OK when the handler said so, else the client went away. */
function outcome(ctx: HandlerContext, ok: boolean): { code: number; message: string } {
  const reason: unknown = ctx.signal.reason;
  if (reason instanceof ConnectError && reason.code !== Code.Aborted) return { code: reason.code, message: reason.rawMessage };
  if (ok) return { code: Status.OK, message: '' };
  // connect-node reports a client that reset the connection as ABORTED; the gRPC port says CANCELLED.
  return pastDeadline(ctx) ? { code: Status.DEADLINE_EXCEEDED, message: 'the deadline passed' } : { code: Status.CANCELLED, message: 'the client went away' };
}

/**
 * The request gate: every call on the HTTP port, before its body is read. Throwing ends the call with
 * that error (and it is still counted, when the context's signal aborts with it).
 */
function requestGate(o: HttpServiceOptions): (ctx: HandlerContext) => void {
  return (ctx) => {
    const started = performance.now();
    const method = ctx.method.name;
    const requestId = acceptRequestId(ctx.requestHeader.get(REQUEST_ID_HEADER));
    ctx.responseHeader.set(REQUEST_ID_HEADER, requestId);
    ctx.responseTrailer.set(REQUEST_ID_HEADER, requestId);
    const span = startServerSpan(ctx.service.typeName, method, ctx.requestHeader, ctx.protocolName, requestId);
    const call: HttpCall = { requestId, span, ok: false };
    ctx.values.set(CALL, call);
    ctx.signal.addEventListener(
      'abort',
      () => {
        const { code, message } = outcome(ctx, call.ok);
        o.metrics.call({ method, code: statusName(code), seconds: (performance.now() - started) / 1000 });
        span.end(code, message);
      },
      { once: true },
    );
    if (o.authToken !== undefined && !authorizationMatches(ctx.requestHeader.get('authorization'), o.authToken)) {
      o.metrics.rejected('unauthenticated');
      throw new ConnectError(UNAUTHENTICATED_MESSAGE.replace('metadata', 'header'), Code.Unauthenticated);
    }
    if (o.draining()) throw new ConnectError('pairpref is shutting down: send this call to another replica', Code.Unavailable);
    if (o.core() === null) throw new ConnectError('pairpref is loading its model; retry shortly', Code.Unavailable);
  };
}

/** The gate's record of this call, the loaded service, and the call as service-core sees it. */
function begin(ctx: HandlerContext, o: HttpServiceOptions): { core: PreferenceCore; call: HttpCall; info: CallInfo & { done: () => void } } {
  const call = ctx.values.get(CALL);
  const core = o.core();
  if (call === null || core === null) throw new ConnectError('pairpref: the request gate did not run', Code.Internal);
  // The engine's signal: 'deadline' when connect's deadline passed, else 'cancelled'.
  const { signal, abort, done } = deadlineSignal(Infinity);
  const follow = (): void => abort((ctx.signal.reason instanceof ConnectError && ctx.signal.reason.code === Code.DeadlineExceeded) || pastDeadline(ctx) ? 'deadline' : 'cancelled');
  if (ctx.signal.aborted) follow();
  else ctx.signal.addEventListener('abort', follow, { once: true });
  return { core, call, info: { signal, scope: callScope(call.requestId, ctx.method.name, o.logger, call.span.ctx), done } };
}

/**
 * A protobuf-es comparison in the shape the gRPC port decodes to (ts-proto's). Its strings are valid
 * already: protobuf-es refuses a message with invalid UTF-8 (binary) or a lone surrogate (JSON) before
 * the service sees it, so on this port such bytes fail the call with INVALID_ARGUMENT, not one row.
 */
function row(c: Comparison): DecodedRow {
  const raw = c.raw ? { prompt: c.raw.prompt, responseA: c.raw.responseA, responseB: c.raw.responseB } : undefined;
  return { ok: true, comparison: { id: c.id, prompt: c.prompt, responseA: c.responseA, responseB: c.responseB, raw } };
}

function decodeCall(req: ScoreRequest): DecodedCall {
  return { rows: req.comparisons.map(row), options: req.options };
}

function decodeStreamRow(req: ScoreStreamRequest): DecodedStreamRow {
  return { row: req.comparison ? row(req.comparison) : null, options: req.options };
}

/** Answers buffered between the engine and connect's writer; write() says "full" at this many. */
const STREAM_BUFFER = 16;

/**
 * A stream's sink as an async iterable for a connect handler to yield from. An answer counts as
 * flushed when connect asks for the next one (it has written this one to the response).
 */
function bridge(signal: AbortSignal, writable: () => void): { sink: StreamSink; out: () => AsyncGenerator<WirePrediction> } {
  const queue: Array<{ p: WirePrediction; flushed: () => void }> = [];
  let ended = false;
  let failed: CallError | null = null;
  let full = false;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  signal.addEventListener('abort', poke, { once: true });
  const sink: StreamSink = {
    write(p, flushed) {
      queue.push({ p, flushed });
      poke();
      full = queue.length >= STREAM_BUFFER;
      return !full;
    },
    end() {
      ended = true;
      poke();
    },
    fail(e) {
      failed = e;
      poke();
    },
  };
  async function* out(): AsyncGenerator<WirePrediction> {
    for (;;) {
      const item = queue.shift();
      if (item) {
        yield item.p;
        item.flushed();
        if (full && queue.length < STREAM_BUFFER / 2) {
          full = false;
          writable();
        }
        continue;
      }
      if (failed) throw toConnectError(failed);
      if (ended) return;
      if (signal.aborted) throw new ConnectError(signal.reason === 'deadline' ? 'the deadline passed' : 'the call was cancelled', signal.reason === 'deadline' ? Code.DeadlineExceeded : Code.Canceled);
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  return { sink, out };
}

/** The connect service: each method hands its call to service-core and reports OK to the gate's record. */
function service(o: HttpServiceOptions): ServiceImpl<typeof PairwisePreference> {
  return {
    async score(req, ctx) {
      const { core, call, info } = begin(ctx, o);
      try {
        const predictions = await core.score(() => decodeCall(req), info);
        call.ok = true;
        return { predictions };
      } catch (e) {
        throw toConnectError(e);
      } finally {
        info.done();
      }
    },

    async *scoreBatchStream(req, ctx) {
      const { core, call, info } = begin(ctx, o);
      let stream: RowStream | null = null;
      const b = bridge(info.signal, () => stream?.writable());
      try {
        try {
          stream = core.openBatchStream(() => decodeCall(req), info, b.sink);
        } catch (e) {
          throw toConnectError(e);
        }
        yield* b.out();
        call.ok = true;
      } finally {
        info.done();
        stream?.cancel();
        stream?.closed();
      }
    },

    async *scoreStream(reqs, ctx) {
      const { core, call, info } = begin(ctx, o);
      let stream: RowStream | null = null;
      let paused = false;
      let over = false;
      let resume: (() => void) | null = null;
      const wakeReader = (): void => {
        const r = resume;
        resume = null;
        r?.();
      };
      const b = bridge(info.signal, () => stream?.writable());
      try {
        try {
          stream = core.openStream(info, { pause: () => (paused = true), resume: () => ((paused = false), wakeReader()) }, b.sink);
        } catch (e) {
          throw toConnectError(e);
        }
        const s = stream;
        info.signal.addEventListener('abort', wakeReader, { once: true });
        // Reads rows while the stream lets it (its window, the buffer, the drain).
        void (async () => {
          try {
            for await (const r of reqs) {
              s.row(() => decodeStreamRow(r));
              while (paused && !over && !info.signal.aborted) await new Promise<void>((res) => (resume = res));
              if (over || info.signal.aborted) return;
            }
            s.end();
          } catch {
            s.cancel();
          }
        })();
        yield* b.out();
        call.ok = true;
      } finally {
        over = true;
        wakeReader();
        info.done();
        stream?.cancel();
        stream?.closed();
      }
    },

    getModelInfo(_req, ctx) {
      const { core, call, info } = begin(ctx, o);
      info.done();
      // The one description (protocol/wire.ts, ts-proto's types) through its wire bytes, which are
      // the contract: protobuf-es reads its 64-bit fields as bigint where ts-proto has numbers.
      const answer = fromBinary(ModelInfoSchema, ModelInfoCodec.encode(core.modelInfo()).finish());
      call.ok = true;
      return answer;
    },
  };
}

export interface HttpRoutes {
  /** Registers the service on a connect router. */
  routes(router: ConnectRouter): void;
  readonly requestGate: (ctx: HandlerContext) => void;
}

export function createHttpService(o: HttpServiceOptions): HttpRoutes {
  return { routes: (router) => void router.service(PairwisePreference, service(o)), requestGate: requestGate(o) };
}
