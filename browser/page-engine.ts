// Runs a model bundle in the page: runtime/web (onnxruntime-web on WebGPU with a wasm fallback),
// core/ preprocessing and core's batch path (the server's code, not copies), small padded batches.
// The router (router.ts) sends small batches here, and large ones when the sidecar cannot take them.
import { validateGraph } from '../core/graph.ts';
import { RowInputError } from '../core/errors.ts';
import { errorPrediction, scoredPrediction, type Prediction } from '../core/result.ts';
import { runBatch } from '../core/run-batch.ts';
import { Status } from '../core/status.ts';
import type { Comparison, EncodedRow, PreferenceConfig } from '../core/types.ts';
import { configureWasm, createSession, fetchBundle, providerLabel, type AdapterInfo, type Provider, type ProviderPreference } from '../runtime/web/index.ts';

export type { AdapterInfo, Provider, ProviderPreference };

export interface EngineInfo {
  /** The execution provider every session.run of this page uses. */
  readonly provider: Provider;
  /** Why WebGPU is not used (null when it is). */
  readonly fallbackReason: string | null;
  /** The browser's WebGPU adapter (null when it has none, or wasm was asked for). */
  readonly adapter: AdapterInfo | null;
  /** "WebGPU", "WebGPU (software)" or "wasm (CPU)". */
  readonly label: string;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly modelBase: string;
  readonly loadMs: number;
}

/** core's Prediction, plus what the page shows about how the row ran. */
export interface ScoredRow extends Prediction {
  /** Token ids the model read (special tokens included); null when the row was rejected. */
  readonly ids: number[] | null;
  /** Wall time of the batch this row ran in: preprocessing, inference and softmax. */
  readonly latencyMs: number;
  readonly batchSize: number;
  readonly provider: Provider;
}

export interface ScoreOptions {
  /** Rows per session.run (default 8). */
  readonly maxBatch?: number;
  /** Called after each batch, e.g. to render progressively. */
  readonly onBatch?: (done: readonly ScoredRow[], total: number) => void;
}

export interface Engine {
  readonly info: EngineInfo;
  readonly config: PreferenceConfig;
  /** One result per row, in order; a bad row carries its error instead of failing the call. */
  scoreRows(rows: readonly Comparison[], opts?: ScoreOptions): Promise<ScoredRow[]>;
}

export interface EngineOptions {
  /** Base URL of the bundle (model.onnx, tokenizer.json, preference.json), ending in '/'. */
  readonly modelBase: string;
  /** Base URL of the onnxruntime-web wasm files, ending in '/'. */
  readonly ortBase: string;
  /** 'auto' (default): WebGPU on a hardware adapter, else wasm; 'webgpu' also on a software adapter; 'wasm' skips WebGPU. */
  readonly prefer?: ProviderPreference;
  readonly onStatus?: (text: string) => void;
}

const DEFAULT_MAX_BATCH = 8;

export async function loadEngine(opts: EngineOptions): Promise<Engine> {
  const t0 = performance.now();
  const status = opts.onStatus ?? ((): void => {});
  configureWasm(opts.ortBase);

  status('Loading the model bundle…');
  const bundle = await fetchBundle(opts.modelBase);
  const { config, preprocessor: pre } = bundle;

  status('Starting onnxruntime-web…');
  const session = await createSession(bundle.model, opts.prefer ?? 'auto', bundle);
  validateGraph(config, session.signature);
  const { provider, fallbackReason, adapter } = session;
  const info: EngineInfo = {
    provider,
    fallbackReason,
    adapter,
    label: providerLabel(provider, adapter),
    modelName: config.name,
    modelVersion: config.version,
    modelBase: opts.modelBase,
    loadMs: performance.now() - t0,
  };

  async function scoreChunk(chunk: readonly Comparison[]): Promise<ScoredRow[]> {
    const t = performance.now();
    const encoded: Array<EncodedRow | RowInputError> = chunk.map((row) => {
      try {
        return pre.encode(row);
      } catch (e) {
        if (e instanceof RowInputError) return e;
        throw e;
      }
    });
    const good = encoded.filter((e): e is EncodedRow => !(e instanceof RowInputError));
    const probs = good.length > 0 ? await runBatch(session, config, good) : [];
    const how = { latencyMs: performance.now() - t, batchSize: good.length, provider };
    let k = 0;
    return chunk.map((row, i): ScoredRow => {
      const enc = encoded[i]!;
      const id = typeof row.id === 'string' ? row.id : '';
      if (enc instanceof RowInputError) return { ...errorPrediction(id, { code: Status.INVALID_ARGUMENT, field: enc.field, message: enc.message }), ids: null, ...how };
      return { ...scoredPrediction(id, probs[k++]!, enc.ids.length, enc.truncated), ids: Array.from(enc.ids), ...how };
    });
  }

  // session.run calls must not overlap: every scoreRows call queues behind the previous one.
  let queue: Promise<unknown> = Promise.resolve();
  async function scoreRows(rows: readonly Comparison[], o: ScoreOptions = {}): Promise<ScoredRow[]> {
    const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`maxBatch must be a positive integer (got ${maxBatch})`);
    const job = queue.then(async () => {
      const done: ScoredRow[] = [];
      for (let i = 0; i < rows.length; i += maxBatch) {
        done.push(...(await scoreChunk(rows.slice(i, i + maxBatch))));
        o.onBatch?.(done, rows.length);
      }
      return done;
    });
    queue = job.catch(() => undefined);
    return job;
  }

  return { info, config, scoreRows };
}
