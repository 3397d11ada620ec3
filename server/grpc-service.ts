// gRPC handlers for pairpref.v1.PairwisePreference, over the generated (ts-proto) types.
import type { ServerDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { RowInputError } from '../core/errors.ts';
import { errorPrediction, type Prediction } from '../core/result.ts';
import { Status } from '../core/status.ts';
import type { Comparison } from '../core/types.ts';
import type { Scorer, ScoreOptions } from '../engine/scorer.ts';
import type {
  Comparison as WireComparison,
  GetModelInfoRequest,
  ModelInfo,
  PairwisePreferenceServer,
  Prediction as WirePrediction,
  ScoreRequest,
  ScoreResponse,
  ScoreStreamRequest,
} from '../proto/gen/pairpref/v1/preference.ts';
import { fromWire, modelInfoToWire, predictionToWire } from '../protocol/wire.ts';
import type { Metrics } from './metrics.ts';

export interface ServiceOptions {
  /** Rows a single stream may have in flight before the server stops reading from it. */
  readonly maxInflightPerStream: number;
  readonly metrics?: Metrics;
}

function options(o: { swapTta: boolean } | undefined): ScoreOptions {
  return { swapTta: o?.swapTta ?? false };
}

function rowError(id: string, field: string, message: string, code: number = Status.INVALID_ARGUMENT): Prediction {
  return errorPrediction(id, { code, field, message });
}

/** Scores wire rows in one scorer call (one tokenizer pass, one batch of queue entries). */
async function scoreWire(scorer: Scorer, rows: ReadonlyArray<WireComparison | undefined>, o: ScoreOptions): Promise<Prediction[]> {
  const out: Array<Prediction | null> = new Array(rows.length).fill(null);
  const valid: Comparison[] = [];
  const at: number[] = [];
  rows.forEach((c, i) => {
    if (!c) {
      out[i] = rowError('', 'comparison', 'stream message has no comparison');
      return;
    }
    try {
      valid.push(fromWire(c));
      at.push(i);
    } catch (e) {
      out[i] = rowError(c.id, e instanceof RowInputError ? e.field : '', (e as Error).message);
    }
  });
  const scored = await scorer.score(valid, o);
  scored.forEach((r, k) => (out[at[k]!] = r));
  return out as Prediction[];
}

export function createPreferenceService(scorer: Scorer, opts: ServiceOptions): PairwisePreferenceServer {
  const m = opts.metrics;
  const observe = (r: Prediction, startedMs: number): void => m?.observeRow(r, performance.now() - startedMs);

  return {
    score(call: ServerUnaryCall<ScoreRequest, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void {
      const started = performance.now();
      scoreWire(scorer, call.request.comparisons, options(call.request.options)).then(
        (results) => {
          for (const r of results) observe(r, started);
          callback(null, { predictions: results.map(predictionToWire) });
        },
        (e: unknown) => callback(e instanceof Error ? e : new Error(String(e))),
      );
    },

    scoreStream(call: ServerDuplexStream<ScoreStreamRequest, WirePrediction>): void {
      let inflight = 0;
      let ended = false;
      let cancelled = false;
      let paused = false;
      const finishIfDone = (): void => {
        if (ended && inflight === 0 && !cancelled) call.end();
      };
      call.on('cancelled', () => (cancelled = true));
      call.on('error', () => (cancelled = true));
      call.on('data', (msg: ScoreStreamRequest) => {
        const started = performance.now();
        inflight++;
        // Backpressure: a fast producer must not grow the server's queue without bound.
        if (inflight >= opts.maxInflightPerStream && !paused) {
          paused = true;
          call.pause();
        }
        const id = msg.comparison?.id ?? '';
        scoreWire(scorer, [msg.comparison], options(msg.options))
          .then(
            (results) => results[0]!,
            (e: unknown) => rowError(id, '', `row "${id}": ${e instanceof Error ? e.message : String(e)}`, Status.INTERNAL),
          )
          .then((r) => {
            inflight--;
            observe(r, started);
            if (!cancelled) call.write(predictionToWire(r));
            if (paused && inflight <= opts.maxInflightPerStream / 2) {
              paused = false;
              call.resume();
            }
            finishIfDone();
          });
      });
      call.on('end', () => {
        ended = true;
        finishIfDone();
      });
    },

    getModelInfo(_call: ServerUnaryCall<GetModelInfoRequest, ModelInfo>, callback: sendUnaryData<ModelInfo>): void {
      callback(null, modelInfoToWire(scorer));
    },
  };
}
