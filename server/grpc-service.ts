// gRPC handlers for pairpref.v1.PairwisePreference, over the generated (ts-proto) types.
import type { ServerDuplexStream, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { RowInputError } from '../core/errors.ts';
import type { Comparison } from '../core/types.ts';
import { LABELS } from '../core/types.ts';
import type {
  Comparison as WireComparison,
  GetModelInfoRequest,
  ModelInfo,
  PairwisePreferenceServer,
  Prediction,
  ScoreRequest,
  ScoreResponse,
  ScoreStreamRequest,
} from '../proto/gen/pairpref/v1/preference.ts';
import type { Metrics } from './metrics.ts';
import { INTERNAL, INVALID_ARGUMENT, type RowResult, type Scorer, type ScoreOptions } from './scorer.ts';

export interface ServiceOptions {
  /** Rows a single stream may have in flight before the server stops reading from it. */
  readonly maxInflightPerStream: number;
  readonly metrics?: Metrics;
}

/** Wire comparison -> core comparison; a RowInputError when it mixes the two input forms. */
export function fromWire(c: WireComparison): Comparison {
  if (c.raw) {
    if (c.prompt.length + c.responseA.length + c.responseB.length > 0) {
      throw new RowInputError('', `row "${c.id}": set either the turn lists (prompt, response_a, response_b) or raw, not both`);
    }
    return { id: c.id, kind: 'raw', prompt: c.raw.prompt, response_a: c.raw.responseA, response_b: c.raw.responseB };
  }
  return { id: c.id, kind: 'turns', prompt: c.prompt, response_a: c.responseA, response_b: c.responseB };
}

export function toWire(r: RowResult): Prediction {
  return {
    id: r.id,
    winnerModelA: r.probs?.[0] ?? 0,
    winnerModelB: r.probs?.[1] ?? 0,
    winnerTie: r.probs?.[2] ?? 0,
    numTokens: r.numTokens,
    truncated: r.truncated,
    error: r.error ? { code: r.error.code, field: r.error.field, message: r.error.message } : undefined,
  };
}

function options(o: { swapTta: boolean } | undefined): ScoreOptions {
  return { swapTta: o?.swapTta ?? false };
}

function rowError(id: string, field: string, message: string, code = INVALID_ARGUMENT): RowResult {
  return { id, probs: null, numTokens: 0, truncated: false, error: { code, field, message } };
}

/** Scores wire rows in one scorer call (one tokenizer pass, one batch of queue entries). */
async function scoreWire(scorer: Scorer, rows: ReadonlyArray<WireComparison | undefined>, o: ScoreOptions): Promise<RowResult[]> {
  const out: Array<RowResult | null> = new Array(rows.length).fill(null);
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
  return out as RowResult[];
}

export function modelInfo(scorer: Scorer): ModelInfo {
  const c = scorer.config;
  return {
    name: c.name,
    version: c.version,
    labels: [...LABELS],
    maxLength: c.truncation.max_length,
    parserJson: JSON.stringify(c.parser),
    templateJson: JSON.stringify(c.template),
    truncationJson: JSON.stringify(c.truncation),
    devices: scorer.devices.map((d) => ({ name: d.device.name, executionProvider: d.device.provider, intraOpThreads: d.intraOpThreads })),
    head: c.head.kind,
    features: [...(c.features?.names ?? [])],
    batching: { ...scorer.batching },
  };
}

export function createPreferenceService(scorer: Scorer, opts: ServiceOptions): PairwisePreferenceServer {
  const m = opts.metrics;
  const observe = (r: RowResult, startedMs: number): void => m?.observeRow(r, performance.now() - startedMs);

  return {
    score(call: ServerUnaryCall<ScoreRequest, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void {
      const started = performance.now();
      scoreWire(scorer, call.request.comparisons, options(call.request.options)).then(
        (results) => {
          for (const r of results) observe(r, started);
          callback(null, { predictions: results.map(toWire) });
        },
        (e: unknown) => callback(e instanceof Error ? e : new Error(String(e))),
      );
    },

    scoreStream(call: ServerDuplexStream<ScoreStreamRequest, Prediction>): void {
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
            (e: unknown) => rowError(id, '', `row "${id}": ${e instanceof Error ? e.message : String(e)}`, INTERNAL),
          )
          .then((r) => {
            inflight--;
            observe(r, started);
            if (!cancelled) call.write(toWire(r));
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
      callback(null, modelInfo(scorer));
    },
  };
}
