// The scoring engine shared by the gRPC server and the CLI's in-process mode:
// bundle -> devices -> batch scheduler, plus preprocessing, swap TTA and per-row errors.
import { padBatch } from '../core/batch.ts';
import { joinSwapped, probsFromLabelTokens, probsFromSeqCls, type Probs } from '../core/postprocess.ts';
import type { Comparison, EncodedRow, PreferenceConfig } from '../core/types.ts';
import type { DeviceSpec, FeedNames, ModelRunner } from './backends/runner.ts';
import { startWorkerRunner } from './backends/worker-runner.ts';
import { loadBundle, validateGraph, type Bundle } from './bundle.ts';
import { defaultIntraOpThreads, defaultPreprocessThreads, resolveDevices } from './devices.ts';
import { inlineEncoder, type Encoded, type RowEncoder } from './encoder.ts';
import { startEncoderPool } from './encoder-pool.ts';
import { silentLogger, type Logger } from './log.ts';
import { BatchScheduler, type BatchExecutor, type BatchingOptions, type DeviceLoad } from './scheduler.ts';

/** gRPC status codes used in per-row errors. */
export const INVALID_ARGUMENT = 3;
export const INTERNAL = 13;
export const UNAVAILABLE = 14;

export interface RowError {
  readonly code: number;
  readonly field: string;
  readonly message: string;
}

export interface RowResult {
  readonly id: string;
  /** [winner_model_a, winner_model_b, winner_tie]; null when error is set. */
  readonly probs: Probs | null;
  readonly numTokens: number;
  readonly truncated: boolean;
  readonly error: RowError | null;
}

export interface ScoreOptions {
  readonly swapTta?: boolean;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxBatchTokens: 8192, maxBatchSize: 64, maxQueueDelayMs: 2 };

export interface ScorerOptions {
  readonly modelDir: string;
  /** --devices: "auto", "cpu", "cpu,cpu", "webgpu", "cuda:0,cuda:1", ... */
  readonly devices?: string;
  readonly batching?: Partial<BatchingOptions>;
  /** Threads per session; default splits the cores over CPU sessions. */
  readonly intraOpThreads?: number;
  /** Tokenizer worker threads; 0 tokenizes on the event loop. Default: 1 with CPU sessions, else cores - 1 (at most 8). */
  readonly preprocessThreads?: number;
  readonly logger?: Logger;
}

export interface DeviceInfo {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
}

export interface Scorer {
  readonly config: PreferenceConfig;
  readonly bundleDir: string;
  readonly devices: readonly DeviceInfo[];
  readonly batching: BatchingOptions;
  readonly preprocessThreads: number;
  /** One result per row, in order. Never rejects for a bad row: the row's result carries the error. */
  score(rows: readonly Comparison[], opts?: ScoreOptions): Promise<RowResult[]>;
  scoreOne(row: Comparison, opts?: ScoreOptions): Promise<RowResult>;
  /** Per-device work done so far. */
  loads(): DeviceLoad[];
  queuedRows(): number;
  close(): Promise<void>;
}

function probsFor(config: PreferenceConfig, out: { data: Float32Array; dims: readonly number[] }, lastIndex: Int32Array): Probs[] {
  return config.head.kind === 'seq-cls'
    ? probsFromSeqCls(out.data, lastIndex.length)
    : probsFromLabelTokens(out.data, out.dims, lastIndex, config.head.token_ids);
}

function executorFor(runner: ModelRunner, names: FeedNames, config: PreferenceConfig): BatchExecutor<Probs> {
  return {
    name: runner.device.name,
    async execute(rows: readonly EncodedRow[]): Promise<Probs[]> {
      const batch = padBatch(rows, config.special_tokens);
      const lastIndex = batch.lastIndex;
      const out = await runner.run(batch, names);
      const probs = probsFor(config, out, lastIndex);
      for (const p of probs) {
        if (!p.every(Number.isFinite)) throw new Error(`device ${runner.device.name}: the model produced non-finite logits`);
      }
      return probs;
    },
  };
}

function errorResult(id: string, error: RowError): RowResult {
  return { id, probs: null, numTokens: 0, truncated: false, error };
}

function encodeError(id: string, e: Extract<Encoded, { ok: false }>): RowError {
  return e.input ? { code: INVALID_ARGUMENT, field: e.field, message: e.message } : { code: INTERNAL, field: e.field, message: `row "${id}": ${e.message}` };
}

/**
 * Runs the largest batch shape once on each device before the scorer reports ready: first runs
 * grow memory arenas and pick kernels, which would otherwise land on the first real calls. WebGPU
 * gets one max-length row only, since software adapters take seconds per row.
 */
async function warmUp(runners: readonly ModelRunner[], executors: readonly BatchExecutor<Probs>[], config: PreferenceConfig, batching: BatchingOptions): Promise<void> {
  const len = config.truncation.max_length;
  const numFeatures = config.features?.names.length ?? 0;
  const row: EncodedRow = {
    ids: new Int32Array(len).fill(config.special_tokens.pad_id),
    truncated: false,
    features: numFeatures > 0 ? new Float32Array(numFeatures) : null,
  };
  const fullBatch = Math.max(1, Math.min(batching.maxBatchSize, Math.floor(batching.maxBatchTokens / len)));
  await Promise.all(
    executors.map((e, i) => e.execute(new Array<EncodedRow>(runners[i]!.device.provider === 'webgpu' ? 1 : fullBatch).fill(row))),
  );
}

export async function loadScorer(opts: ScorerOptions): Promise<Scorer> {
  const log = opts.logger ?? silentLogger;
  const bundle: Bundle = loadBundle(opts.modelDir);
  const { devices, autoReason } = resolveDevices(opts.devices ?? 'auto');
  if (autoReason) log.info(`devices auto: ${devices.map((d) => d.name).join(',')} (${autoReason})`);
  const threads = opts.intraOpThreads ?? defaultIntraOpThreads(devices);
  const batching: BatchingOptions = { ...DEFAULT_BATCHING, ...opts.batching };
  for (const [k, v] of Object.entries(batching)) {
    if (!Number.isInteger(v) || v < (k === 'maxQueueDelayMs' ? 0 : 1)) throw new Error(`batching option ${k} must be a ${k === 'maxQueueDelayMs' ? 'non-negative' : 'positive'} integer (got ${v})`);
  }

  const started = await Promise.allSettled(
    devices.map((device) => startWorkerRunner({ modelPath: bundle.modelPath, device, intraOpThreads: device.provider === 'cpu' ? threads : 1 })),
  );
  const runners = started.filter((s): s is PromiseFulfilledResult<ModelRunner> => s.status === 'fulfilled').map((s) => s.value);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(runners.map((r) => r.close()));
    throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
  let names: FeedNames;
  try {
    names = validateGraph(bundle.config, runners[0]!.signature);
  } catch (e) {
    await Promise.all(runners.map((r) => r.close()));
    throw e;
  }
  const executors = runners.map((r) => executorFor(r, names, bundle.config));
  try {
    await warmUp(runners, executors, bundle.config, batching);
  } catch (e) {
    await Promise.all(runners.map((r) => r.close()));
    throw new Error(`warm-up failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const scheduler = new BatchScheduler(executors, batching);
  const preThreads = opts.preprocessThreads ?? defaultPreprocessThreads(devices);
  let encoder: RowEncoder;
  try {
    encoder = preThreads > 0 ? await startEncoderPool(bundle.dir, preThreads) : inlineEncoder(bundle.preprocessor);
  } catch (e) {
    scheduler.close();
    await Promise.all(runners.map((r) => r.close()));
    throw e;
  }

  async function run(id: string, enc: Encoded): Promise<RowResult> {
    if (!enc.ok) return errorResult(id, encodeError(id, enc));
    try {
      const [p, q] = await Promise.all([scheduler.submit(enc.direct), enc.swapped ? scheduler.submit(enc.swapped) : null]);
      return {
        id,
        probs: q ? joinSwapped(p, q) : p,
        numTokens: enc.direct.ids.length,
        truncated: enc.direct.truncated || (enc.swapped?.truncated ?? false),
        error: null,
      };
    } catch (e) {
      return errorResult(id, { code: INTERNAL, field: '', message: `row "${id}": ${e instanceof Error ? e.message : String(e)}` });
    }
  }

  async function score(rows: readonly Comparison[], o: ScoreOptions = {}): Promise<RowResult[]> {
    const encoded = await encoder.encode(rows, o.swapTta ?? false);
    return Promise.all(rows.map((r, i) => run(typeof r.id === 'string' ? r.id : '', encoded[i]!)));
  }

  const scorer: Scorer = {
    config: bundle.config,
    bundleDir: bundle.dir,
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

  for (const r of runners) log.info(`device ${r.device.name}: ${r.device.provider} execution provider, ${r.intraOpThreads} intra-op thread(s)`);
  log.info(encoder.threads > 0 ? `tokenizing on ${encoder.threads} worker thread(s)` : 'tokenizing on the event loop');
  return scorer;
}
