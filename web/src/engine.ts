// Runs a model bundle in the browser: core/ preprocessing (the server's code, not a copy),
// onnxruntime-web on WebGPU with a wasm fallback, small padded batches.
import * as ort from 'onnxruntime-web/webgpu';
import { padBatch } from '../../core/batch.ts';
import { batchFeeds, inputNames, type TensorMaker } from '../../core/feeds.ts';
import { resolvePreferenceConfig } from '../../core/config.ts';
import { RowInputError } from '../../core/errors.ts';
import { probsFromLabelTokens, probsFromSeqCls, type Probs } from '../../core/postprocess.ts';
import { createPreprocessor, type Preprocessor } from '../../core/preprocess.ts';
import { createTokenizer } from '../../core/tokenizer.ts';
import type { Comparison, EncodedRow, PreferenceConfig } from '../../core/types.ts';

export type Provider = 'webgpu' | 'wasm';

export interface EngineInfo {
  /** The execution provider every session.run of this page uses. */
  readonly provider: Provider;
  /** Why WebGPU is not used (null when it is). */
  readonly fallbackReason: string | null;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly modelBase: string;
  readonly loadMs: number;
}

export interface ScoredRow {
  readonly id: string;
  /** Token ids the model read (special tokens included); null when the row was rejected. */
  readonly ids: number[] | null;
  /** [winner_model_a, winner_model_b, winner_tie]; null when error is set. */
  readonly probs: Probs | null;
  readonly numTokens: number;
  readonly truncated: boolean;
  /** Wall time of the batch this row ran in: preprocessing, inference and softmax. */
  readonly latencyMs: number;
  readonly batchSize: number;
  readonly provider: Provider;
  readonly error: string | null;
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
  /** 'wasm' skips WebGPU (for comparisons); default 'webgpu'. */
  readonly prefer?: Provider;
  readonly onStatus?: (text: string) => void;
}

export const DEFAULT_MAX_BATCH = 8;

async function fetchOk(url: string, what: string, optional = false): Promise<Response | null> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${what} from ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Static servers with an SPA fallback answer a missing file with index.html.
  const html = (res.headers.get('content-type') ?? '').includes('text/html');
  if (optional && (res.status === 404 || (res.ok && html))) return null;
  if (res.ok) return res;
  throw new Error(`cannot fetch ${what} from ${url}: HTTP ${res.status}`);
}

async function fetchJson(url: string, what: string, optional = false): Promise<unknown> {
  const res = await fetchOk(url, what, optional);
  if (res === null) return undefined;
  try {
    return (await res.json()) as unknown;
  } catch (e) {
    throw new Error(`${what} at ${url} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

interface GpuNavigator {
  readonly gpu?: { requestAdapter(): Promise<unknown> };
}

/** Null when a WebGPU adapter exists, else why not (shown on the page). */
async function webgpuMissingReason(): Promise<string | null> {
  const gpu = (navigator as Navigator & GpuNavigator).gpu;
  if (gpu === undefined) return 'this browser does not expose WebGPU (navigator.gpu is undefined)';
  try {
    if ((await gpu.requestAdapter()) === null) return 'navigator.gpu.requestAdapter() found no GPU adapter';
  } catch (e) {
    return `navigator.gpu.requestAdapter() failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  return null;
}

function checkGraph(cfg: PreferenceConfig, session: ort.InferenceSession): void {
  const want = [cfg.inputs.input_ids, cfg.inputs.attention_mask, cfg.features?.input].filter((n): n is string => !!n);
  const missing = want.filter((n) => !session.inputNames.includes(n));
  const undeclared = session.inputNames.filter((n) => !want.includes(n));
  const problems = [
    ...missing.map((n) => `preference.json feeds "${n}", which is not a graph input`),
    ...undeclared.map((n) => `graph input "${n}" is not declared in preference.json`),
  ];
  if (!session.outputNames.includes(cfg.head.output)) problems.push(`head.output "${cfg.head.output}" is not a graph output`);
  if (problems.length > 0) throw new Error(`model.onnx does not match preference.json: ${problems.join('; ')}`);
}

async function createSession(model: Uint8Array, prefer: Provider): Promise<{ session: ort.InferenceSession; provider: Provider; fallbackReason: string | null }> {
  let fallbackReason = prefer === 'wasm' ? 'wasm was requested (?ep=wasm)' : await webgpuMissingReason();
  if (fallbackReason === null) {
    try {
      // webgpu only: a session that silently fell back would misreport the provider.
      const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
      return { session, provider: 'webgpu', fallbackReason: null };
    } catch (e) {
      fallbackReason = `the WebGPU session failed to start: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  return { session, provider: 'wasm', fallbackReason };
}

const WEB_TENSORS: TensorMaker<ort.Tensor> = {
  int64: (data: BigInt64Array, dims: readonly number[]) => new ort.Tensor('int64', data, dims),
  float32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
};

export async function loadEngine(opts: EngineOptions): Promise<Engine> {
  const t0 = performance.now();
  const status = opts.onStatus ?? ((): void => {});
  ort.env.wasm.wasmPaths = opts.ortBase;
  ort.env.logLevel = 'error';

  status('Loading the model bundle…');
  const base = opts.modelBase;
  const [prefJson, tokJson, tokConfig, modelRes] = await Promise.all([
    fetchJson(`${base}preference.json`, 'preference.json'),
    fetchJson(`${base}tokenizer.json`, 'tokenizer.json'),
    fetchJson(`${base}tokenizer_config.json`, 'tokenizer_config.json', true),
    fetchOk(`${base}model.onnx`, 'model.onnx'),
  ]);
  const config = resolvePreferenceConfig(prefJson);
  const pre: Preprocessor = createPreprocessor(config, createTokenizer(tokJson, tokConfig));
  const model = new Uint8Array(await modelRes!.arrayBuffer());

  status('Starting onnxruntime-web…');
  const { session, provider, fallbackReason } = await createSession(model, opts.prefer ?? 'webgpu');
  checkGraph(config, session);
  const info: EngineInfo = {
    provider,
    fallbackReason,
    modelName: config.name,
    modelVersion: config.version,
    modelBase: base,
    loadMs: performance.now() - t0,
  };

  const names = inputNames(config);
  async function runBatch(rows: readonly EncodedRow[]): Promise<Probs[]> {
    const b = padBatch(rows, config.special_tokens);
    const out = (await session.run(batchFeeds(b, names, WEB_TENSORS), [config.head.output]))[config.head.output];
    if (!out) throw new Error(`the model returned no "${config.head.output}" output`);
    const data = out.data as Float32Array;
    const probs = config.head.kind === 'seq-cls' ? probsFromSeqCls(data, b.batchSize) : probsFromLabelTokens(data, out.dims, b.lastIndex, config.head.token_ids);
    out.dispose();
    if (!probs.every((p) => p.every(Number.isFinite))) throw new Error('the model produced non-finite logits');
    return probs;
  }

  async function scoreChunk(chunk: readonly Comparison[]): Promise<ScoredRow[]> {
    const t = performance.now();
    const encoded: Array<EncodedRow | string> = chunk.map((row) => {
      try {
        return pre.encode(row);
      } catch (e) {
        if (e instanceof RowInputError) return e.message;
        throw e;
      }
    });
    const good = encoded.filter((e): e is EncodedRow => typeof e !== 'string');
    const probs = good.length > 0 ? await runBatch(good) : [];
    const latencyMs = performance.now() - t;
    let k = 0;
    return chunk.map((row, i): ScoredRow => {
      const enc = encoded[i]!;
      const id = typeof row.id === 'string' ? row.id : '';
      if (typeof enc === 'string') {
        return { id, ids: null, probs: null, numTokens: 0, truncated: false, latencyMs, batchSize: good.length, provider, error: enc };
      }
      return { id, ids: Array.from(enc.ids), probs: probs[k++]!, numTokens: enc.ids.length, truncated: enc.truncated, latencyMs, batchSize: good.length, provider, error: null };
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
