// The scoring engine shared by the gRPC server and the CLI's in-process mode: a bundle on a list of
// devices (through a runtime's ModelRunners), the batch scheduler, tokenizer workers, swap TTA and
// per-row errors. No gRPC and no onnxruntime here: the runtime is handed in (core/runtime.ts).
import { DEFAULT_BATCHING, type BatchingOptions } from '../core/batch.ts';
import { validateGraph } from '../core/graph.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { joinSwapped, type Probs } from '../core/postprocess.ts';
import { errorPrediction, scoredPrediction, type Prediction, type RowError } from '../core/result.ts';
import type { Bundle, DeviceSpec, ModelRunner, Runtime } from '../core/runtime.ts';
import { Status } from '../core/status.ts';
import type { Comparison, EncodedRow, PreferenceConfig } from '../core/types.ts';
import { inlineEncoder, type Encoded, type RowEncoder } from './encoder.ts';
import { startEncoderPool } from './encoder-pool.ts';
import { BatchScheduler, type BatchExecutor, type DeviceLoad } from './scheduler.ts';

export { DEFAULT_BATCHING };

export interface ScoreOptions {
  readonly swapTta?: boolean;
}

export interface ScorerOptions {
  readonly runtime: Runtime;
  readonly bundle: Bundle;
  /** --devices: "auto", "cpu", "cpu,cpu", "webgpu", "cuda:0,cuda:1", ... */
  readonly devices?: string;
  readonly batching?: Partial<BatchingOptions>;
  /** Threads per session; default: the runtime's (the cores split over CPU sessions). */
  readonly intraOpThreads?: number;
  /** Tokenizer worker threads; 0 tokenizes on the event loop. Default: the runtime's. */
  readonly preprocessThreads?: number;
  readonly logger?: Logger;
}

export interface DeviceInfo {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
}

export interface Scorer {
  readonly config: PreferenceConfig;
  /** Where the bundle was loaded from. */
  readonly bundleLocation: string;
  readonly devices: readonly DeviceInfo[];
  readonly batching: BatchingOptions;
  readonly preprocessThreads: number;
  /** One prediction per row, in order. Never rejects for a bad row: the row's prediction carries the error. */
  score(rows: readonly Comparison[], opts?: ScoreOptions): Promise<Prediction[]>;
  scoreOne(row: Comparison, opts?: ScoreOptions): Promise<Prediction>;
  /** Per-device work done so far. */
  loads(): DeviceLoad[];
  queuedRows(): number;
  close(): Promise<void>;
}

function executorFor(runner: ModelRunner): BatchExecutor<Probs> {
  return { name: runner.device.name, execute: (rows) => runner.run(rows) };
}

function encodeError(id: string, e: Extract<Encoded, { ok: false }>): RowError {
  return e.input
    ? { code: Status.INVALID_ARGUMENT, field: e.field, message: e.message }
    : { code: Status.INTERNAL, field: e.field, message: `row "${id}": ${e.message}` };
}

function checkBatching(batching: BatchingOptions): void {
  for (const [k, v] of Object.entries(batching)) {
    const min = k === 'maxQueueDelayMs' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new Error(`batching option ${k} must be a ${min === 0 ? 'non-negative' : 'positive'} integer (got ${v})`);
  }
}

/**
 * Runs the largest batch shape once on each device before the scorer reports ready: first runs
 * grow memory arenas and pick kernels, which would otherwise land on the first real calls. WebGPU
 * gets one max-length row only, since software adapters take seconds per row.
 */
async function warmUp(runners: readonly ModelRunner[], config: PreferenceConfig, batching: BatchingOptions): Promise<void> {
  const len = config.truncation.max_length;
  const numFeatures = config.features?.names.length ?? 0;
  const row: EncodedRow = {
    ids: new Int32Array(len).fill(config.special_tokens.pad_id),
    truncated: false,
    features: numFeatures > 0 ? new Float32Array(numFeatures) : null,
  };
  const fullBatch = Math.max(1, Math.min(batching.maxBatchSize, Math.floor(batching.maxBatchTokens / len)));
  await Promise.all(runners.map((r) => r.run(new Array<EncodedRow>(r.device.provider === 'webgpu' ? 1 : fullBatch).fill(row))));
}

/** Starts one runner per device, checks the graph against the bundle and warms every device up. */
async function startRunners(opts: ScorerOptions, batching: BatchingOptions, log: Logger): Promise<ModelRunner[]> {
  const { runtime, bundle } = opts;
  const { devices, autoReason } = runtime.resolveDevices(opts.devices ?? 'auto');
  if (autoReason) log.info(`devices auto: ${devices.map((d) => d.name).join(',')} (${autoReason})`);
  const threads = opts.intraOpThreads ?? runtime.defaultIntraOpThreads(devices);
  const started = await Promise.allSettled(devices.map((d) => runtime.startRunner(bundle, d, d.provider === 'cpu' ? threads : 1)));
  const runners = started.filter((s): s is PromiseFulfilledResult<ModelRunner> => s.status === 'fulfilled').map((s) => s.value);
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    validateGraph(bundle.config, runners[0]!.signature);
    await warmUp(runners, bundle.config, batching).catch((e: unknown) => {
      throw new Error(`warm-up failed: ${e instanceof Error ? e.message : String(e)}`);
    });
  } catch (e) {
    await Promise.all(runners.map((r) => r.close()));
    throw e;
  }
  return runners;
}

/** The rows of one call: tokenize together, then each row (and its swapped twin) through the scheduler. */
function scoreWith(encoder: RowEncoder, scheduler: BatchScheduler<Probs>) {
  async function run(id: string, enc: Encoded): Promise<Prediction> {
    if (!enc.ok) return errorPrediction(id, encodeError(id, enc));
    try {
      const [p, q] = await Promise.all([scheduler.submit(enc.direct), enc.swapped ? scheduler.submit(enc.swapped) : null]);
      return scoredPrediction(id, q ? joinSwapped(p, q) : p, enc.direct.ids.length, enc.direct.truncated || (enc.swapped?.truncated ?? false));
    } catch (e) {
      return errorPrediction(id, { code: Status.INTERNAL, field: '', message: `row "${id}": ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  return async (rows: readonly Comparison[], o: ScoreOptions = {}): Promise<Prediction[]> => {
    const encoded = await encoder.encode(rows, o.swapTta ?? false);
    return Promise.all(rows.map((r, i) => run(typeof r.id === 'string' ? r.id : '', encoded[i]!)));
  };
}

export async function loadScorer(opts: ScorerOptions): Promise<Scorer> {
  const log = opts.logger ?? silentLogger;
  const { bundle, runtime } = opts;
  const batching: BatchingOptions = { ...DEFAULT_BATCHING, ...opts.batching };
  checkBatching(batching);
  const runners = await startRunners(opts, batching, log);
  const scheduler = new BatchScheduler(runners.map(executorFor), batching);
  const preThreads = opts.preprocessThreads ?? runtime.defaultPreprocessThreads(runners.map((r) => r.device));
  let encoder: RowEncoder;
  try {
    encoder = preThreads > 0 ? await startEncoderPool(bundle, preThreads) : inlineEncoder(bundle.preprocessor);
  } catch (e) {
    scheduler.close();
    await Promise.all(runners.map((r) => r.close()));
    throw e;
  }
  const score = scoreWith(encoder, scheduler);
  for (const r of runners) log.info(`device ${r.device.name}: ${r.device.provider} execution provider, ${r.intraOpThreads} intra-op thread(s)`);
  log.info(encoder.threads > 0 ? `tokenizing on ${encoder.threads} worker thread(s)` : 'tokenizing on the event loop');
  return {
    config: bundle.config,
    bundleLocation: bundle.location,
    devices: runners.map((r) => ({ device: r.device, intraOpThreads: r.intraOpThreads })),
    batching,
    preprocessThreads: encoder.threads,
    score,
    scoreOne: async (row, o) => (await score([row], o))[0]!,
    loads: () => scheduler.loads(),
    queuedRows: () => scheduler.queuedRows,
    async close() {
      scheduler.close();
      await Promise.all([encoder.close(), ...runners.map((r) => r.close())]);
    },
  };
}
