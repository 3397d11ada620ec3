// The bench orchestration: one run measures pairpref and every comparison side by side, since
// absolute times on a shared machine are not comparable across runs; the ratios are.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BATCHING } from '../core/batch.ts';
import type { Probs } from '../core/postprocess.ts';
import type { EncodedRow, PreferenceConfig } from '../core/types.ts';
import { comparisonToWire } from '../protocol/wire.ts';
import { defaultIntraOpThreads, loadBundle, ORT_VERSION, resolveDevices, type NodeBundle } from '../runtime/node/index.ts';
import { fixedBatches, paddedTokens, sortedBatches, type PlannedBatch } from './batches.ts';
import { createCpuSession, prepare, probsOfRows, runBatches, runPreparedLoop, warm, type GraphOptLevel, type LoopResult, type NodeSession } from './inprocess.ts';
import { DEFAULT_INPUTS, FIXED_PADDING_INPUT, readInput, type InputSet } from './inputs.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { runLoadgen, startNaive, startPairpref, type Served } from './processes.ts';
import { percentile, type LatencySummary } from './stats.ts';
import { defaultWorkerCounts, tokenizeByWorkers, tokenizeWithPool, type WorkerTokenization } from './tokenize-workers.ts';
import { describeWeights, findTorchWeights, maxAbsProbDiff, PARITY_TOLERANCE, runTorchPeer, type PeerDevice, type TorchPeerResult, type TorchWeights } from './torch-peer.ts';
import { chooseWebgpuAdapter, webgpuEnv, type WebgpuAdapter } from './vulkan.ts';

export interface BenchOptions {
  readonly model: string;
  readonly inputs?: readonly string[];
  /** Rows read from each input. */
  readonly rows?: number;
  /** Concurrent streaming clients of the saturation runs. */
  readonly clients?: number;
  /** Rows each streaming client keeps in flight. */
  readonly window?: number;
  /** Device lists for the scaling runs; the first is the headline server. */
  readonly devices?: readonly string[];
  /** Rows of the webgpu scaling run (the software adapter is slow). */
  readonly webgpuRows?: number;
  readonly naiveClients?: number;
  readonly skipPeers?: boolean;
  readonly torchCheckpoint?: string;
  /** Where the PyTorch peer runs: auto = CUDA when its torch has it, else the CPU. */
  readonly peerDevice?: PeerDevice;
  /** The fixed-padding comparison's input (default: FIXED_PADDING_INPUT, rows evenly spaced over it). */
  readonly fixedPaddingInput?: string;
  /** Tokenizer worker counts of the tokenization figure (default: 1, 2, 4, ... up to the cores). */
  readonly tokenizerWorkers?: readonly number[];
  /** Rows of the PyTorch peer and the naive peer (both slow; their rows/s does not depend on the count). */
  readonly peerRows?: number;
  /** Also run the tuning sweeps (graph optimisation level, token budget, queue delay, warm-up). */
  readonly tune?: boolean;
  readonly onPhase?: (phase: string) => void;
}

export interface ServerRun {
  readonly devices: string;
  readonly input: string;
  readonly rows_per_s: number;
  readonly tokens_per_s: number;
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly peak_rss_mib: number | null;
  /** Busy seconds / wall seconds of the run, per device. */
  readonly busy_share: Record<string, number>;
  /** Real (unpadded) tokens each device ran during the timed rows (pairpref_device_tokens). */
  readonly tokens_per_device: Record<string, number>;
  readonly mean_batch_rows: number | null;
}

export interface Target {
  readonly target: string;
  readonly value: number | null;
  /** null: not measured (or, for vs_pytorch, not a like-for-like figure). */
  readonly met: boolean | null;
  /** Why it is unmet or unmeasured, from this run's figures; null when met. */
  readonly reason: string | null;
  /** vs_limit only: the 0.90 goal beyond the 0.80 target. */
  readonly goal?: string;
  readonly goal_met?: boolean | null;
}

export type PytorchRun =
  | {
      readonly rows_per_s: number;
      readonly rows: number;
      readonly batch: number;
      readonly threads: number;
      readonly torch: string;
      /** torch's device (`cpu`, `cuda:0`) and its name. */
      readonly device: string;
      readonly device_name: string;
      readonly weights: string;
      readonly weights_source: TorchWeights['kind'];
      readonly max_abs_prob_diff_vs_onnx: number;
      readonly parity_rows: number;
      readonly parity_tolerance: number;
    }
  | { readonly skipped: string; readonly max_abs_prob_diff_vs_onnx?: number; readonly device?: string };

export interface FixedPadding {
  readonly input: string;
  readonly rows: number;
  /** How the rows were taken from the file. */
  readonly sample: string;
  readonly mean_tokens: number;
  readonly p10_tokens: number;
  readonly p50_tokens: number;
  readonly p90_tokens: number;
  readonly truncated_share: number;
  readonly dynamic_rows_per_s: number;
  readonly fixed_rows_per_s: number;
  readonly dynamic_padded_tokens: number;
  readonly fixed_padded_tokens: number;
}

export interface BenchResult {
  readonly model: { dir: string; name: string; version: string; max_length: number; truncation: string; fixture_note: string | null };
  readonly machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[]; node: string; onnxruntime: string };
  readonly settings: {
    rows_per_input: number;
    clients: number;
    window: number;
    intra_op_threads: number;
    batching: typeof DEFAULT_BATCHING;
    /** The headline --devices list; its first device also runs the limit and the naive peer. */
    headline_devices: string;
    /** Every --devices list asked for (the scaling runs; a failed one is a note). */
    device_lists: readonly string[];
    limit_device: string;
    /** The headline runs on a GPU (CUDA, or WebGPU on a hardware adapter): the GPU targets apply. */
    gpu_host: boolean;
    peer_device: PeerDevice;
  };
  /** Per input: rows/s through the engine's pool with one worker and the server's default tokenizer. */
  readonly tokenization: { input: string; tokenizer: string; rows_per_s: number; mean_tokens: number; truncated_share: number }[];
  /** The engine's tokenizer pool (worker threads) on the first input's rows, per worker count, in-process. */
  readonly tokenization_workers: { input: string; cores: number; by_workers: WorkerTokenization[] };
  readonly throughput: { input: string; rows: number; pairpref: ServerRun; limit_rows_per_s: number; vs_limit: number }[];
  readonly pairpref: ServerRun;
  readonly limit: { device: string; rows_per_s: number; seconds: number; padded_tokens: number };
  readonly fixed_padding: FixedPadding;
  readonly naive:
    | { device: string; clients: number; rows: number; pairpref_unary_rows_per_s: number; naive_rows_per_s: number; naive_latency: LatencySummary; pairpref_latency: LatencySummary }
    | { skipped: string };
  readonly pytorch: PytorchRun;
  readonly latency: { half_peak_rate: number; half_peak: LatencySummary; p99_over_p50: number; single_row_unary: LatencySummary };
  readonly scaling: ServerRun[];
  /** The Vulkan adapter the webgpu runs got (null when no list has webgpu). */
  readonly webgpu_adapter: WebgpuAdapter | null;
  readonly tuning: Record<string, unknown> | null;
  readonly ratios: {
    vs_limit: number;
    vs_naive: number | null;
    /** On fixed_padding.input: measures that input's length spread more than pairpref. */
    vs_fixed_padding: number;
    vs_pytorch: number | null;
    /** Where the PyTorch peer ran (`cpu`, `cuda:0`); null when it did not. */
    vs_pytorch_device: string | null;
  };
  readonly targets: Record<'vs_limit' | 'vs_naive' | 'vs_pytorch' | 'half_peak_p99_over_p50', Target>;
  readonly notes: string[];
  readonly seconds: number;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

function busyDelta(before: Map<string, number>, after: Map<string, number>, seconds: number, metric: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const m = new RegExp(`^${metric}\\{device="([^"]+)"\\}$`).exec(k);
    if (m) out[m[1]!] = round((v - (before.get(k) ?? 0)) / (metric.endsWith('seconds') ? seconds : 1), 3);
  }
  return out;
}

async function serverRun(s: Served, devices: string, input: string, spec: LoadSpec, specFile: string): Promise<ServerRun> {
  // Warm-up rows go in their own call so the busy/batch deltas cover the timed rows only.
  if (spec.warmRows) await runLoadgen({ ...spec, rowsFile: spec.rowsFile, warmRows: 0, deadlineMs: spec.deadlineMs, limitRows: spec.warmRows }, specFile);
  const before = await s.metrics();
  const r: LoadResult = await runLoadgen({ ...spec, warmRows: 0 }, specFile);
  const after = await s.metrics();
  if (r.rows === 0) throw new Error(`pairpref (${devices}) answered no rows: ${r.first_error ?? 'unknown error'}`);
  const batches = Object.values(busyDelta(before, after, 1, 'pairpref_device_batches')).reduce((a, b) => a + b, 0);
  const rows = Object.values(busyDelta(before, after, 1, 'pairpref_device_rows')).reduce((a, b) => a + b, 0);
  return {
    devices,
    input,
    rows_per_s: round(r.rows_per_s),
    tokens_per_s: round(r.tokens_per_s),
    latency: r.latency,
    errors: r.errors,
    peak_rss_mib: s.peakRssMiB() === null ? null : round(s.peakRssMiB()!, 1),
    busy_share: busyDelta(before, after, r.seconds, 'pairpref_device_busy_seconds'),
    tokens_per_device: busyDelta(before, after, 1, 'pairpref_device_tokens'),
    mean_batch_rows: batches > 0 ? round(rows / batches, 1) : null,
  };
}

/** Defaults of every sizing option, shared with `pairpref bench`'s flags. */
export const BENCH_DEFAULTS = {
  rows: 400,
  clients: 8,
  window: 32,
  devices: ['cpu', 'cpu,cpu', 'webgpu'],
  webgpuRows: 16,
  naiveClients: 32,
  peerRows: 150,
  peerDevice: 'auto' as PeerDevice,
  fixedPaddingInput: FIXED_PADDING_INPUT,
} as const;

/** What every step shares: the options and their resolved sizes, the work dir, the started servers. */
interface BenchContext {
  readonly o: BenchOptions;
  readonly t0: number;
  readonly phase: (phase: string) => void;
  /** Notes for the report, in the order the steps find them. */
  readonly notes: string[];
  readonly loadStart: number[];
  readonly clients: number;
  readonly window: number;
  readonly nRows: number;
  readonly scalingDevices: readonly string[];
  readonly headline: string;
  /** The headline's first device: the limit and the naive peer run there. */
  readonly limitDevice: string;
  readonly gpuHost: boolean;
  /** Chosen once when a list has webgpu; every webgpu process gets its VK_ICD_FILENAMES. */
  readonly adapter: WebgpuAdapter | null;
  readonly cores: number;
  /** The headline server's threads per session (the limit runs with them). */
  readonly threads: number;
  readonly naiveClients: number;
  readonly peerRows: number;
  readonly work: string;
  readonly specFile: string;
  /** Every server still running: the `finally` of runBench stops what a failed step left behind. */
  readonly servers: Set<Served>;
  serve(devices: string, extra?: Partial<Parameters<typeof startPairpref>[0]>): Promise<Served>;
  stop(s: Served): Promise<void>;
}

/** Resolves the sizes, creates the work dir and the serve/stop helpers (same order as before the try). */
function createContext(o: BenchOptions): BenchContext {
  const t0 = performance.now();
  const phase = o.onPhase ?? (() => {});
  const notes: string[] = [];
  const loadStart = loadavg().map((x) => round(x));
  const clients = o.clients ?? BENCH_DEFAULTS.clients;
  const window = o.window ?? BENCH_DEFAULTS.window;
  const nRows = o.rows ?? BENCH_DEFAULTS.rows;
  const scalingDevices = o.devices ?? BENCH_DEFAULTS.devices;
  const headline = scalingDevices[0]!;
  const cores = availableParallelism();
  const headlineDevices = resolveDevices(headline).devices;
  // The limit runs with the headline server's threads per session; standalone peers get every core.
  const threads = defaultIntraOpThreads(headlineDevices);
  const limitDevice = headline.split(',')[0]!.trim();
  const adapter = scalingDevices.some((l) => l.includes('webgpu')) ? chooseWebgpuAdapter() : null;
  const gpuHost = headlineDevices.some((dv) => dv.provider === 'cuda' || (dv.provider === 'webgpu' && adapter?.kind === 'hardware'));
  const naiveClients = o.naiveClients ?? BENCH_DEFAULTS.naiveClients;
  const peerRows = o.peerRows ?? BENCH_DEFAULTS.peerRows;
  const work = mkdtempSync(join(tmpdir(), 'pairpref-bench-'));
  const specFile = join(work, 'spec.json');
  const servers = new Set<Served>();
  const serve = async (devices: string, extra: Partial<Parameters<typeof startPairpref>[0]> = {}): Promise<Served> => {
    // Never SwiftShader while a hardware Vulkan adapter exists (bench/vulkan.ts).
    const env = devices.includes('webgpu') && adapter ? webgpuEnv(adapter) : {};
    const s = await startPairpref({ model: o.model, devices, env, ...extra });
    servers.add(s);
    return s;
  };
  const stop = async (s: Served): Promise<void> => {
    servers.delete(s);
    await s.stop();
  };
  return { o, t0, phase, notes, loadStart, clients, window, nRows, scalingDevices, headline, limitDevice, gpuHost, adapter, cores, threads, naiveClients, peerRows, work, specFile, servers, serve, stop };
}

/** Writes rows as the wire JSON the load generator reads. */
function writeWireRows(file: string, rows: InputSet['rows']): string {
  writeFileSync(file, JSON.stringify(rows.map(comparisonToWire)));
  return file;
}

interface Loaded {
  readonly bundle: NodeBundle;
  readonly cfg: PreferenceConfig;
  readonly isFixture: boolean;
  readonly inputs: InputSet[];
  /** One wire JSON file per input, for the load generator. */
  readonly wireFiles: string[];
  /** The fixed-padding comparison's rows and how they were sampled. */
  readonly fixedInput: InputSet;
  readonly fixedSample: string;
}

/** Step 1: the bundle, the input rows and their wire files. */
async function loadInputs(ctx: BenchContext): Promise<Loaded> {
  ctx.phase('loading the bundle and the inputs');
  const bundle = loadBundle(ctx.o.model);
  const cfg = bundle.config;
  const inputs: InputSet[] = await Promise.all((ctx.o.inputs ?? DEFAULT_INPUTS).map((p) => readInput(p, ctx.nRows)));
  const wireFiles = inputs.map((inp, i) => writeWireRows(join(ctx.work, `rows-${i}.json`), inp.rows));
  let fixedInput = inputs[0]!;
  let fixedSample = `the first ${fixedInput.rows.length} rows (the first input)`;
  const fixedPath = ctx.o.fixedPaddingInput ?? BENCH_DEFAULTS.fixedPaddingInput;
  try {
    fixedInput = await readInput(fixedPath, ctx.nRows, true);
    fixedSample = `${fixedInput.rows.length} rows evenly spaced over the file`;
  } catch (e) {
    ctx.notes.push(`fixed-padding input ${fixedPath} unreadable (${e instanceof Error ? e.message : String(e)}): vs_fixed_padding is measured on ${fixedInput.name} instead`);
  }
  return { bundle, cfg, isFixture: cfg.name === 'fixture', inputs, wireFiles, fixedInput, fixedSample };
}

/**
 * Step 2: tokenization speed per input as the server tokenizes by default next to CPU sessions (the
 * engine's pool, one worker thread, the native tokenizer): is tokenization a bottleneck? The rows it
 * encodes are the ones the later steps feed.
 */
async function measureTokenization(ctx: BenchContext, d: Loaded): Promise<{ tokenization: BenchResult['tokenization']; encoded: EncodedRow[][] }> {
  ctx.phase('tokenizing with the server\'s default tokenizer (native, one worker thread): is tokenization a bottleneck?');
  const tokenization: BenchResult['tokenization'] = [];
  const encoded: EncodedRow[][] = [];
  for (const [i, inp] of d.inputs.entries()) {
    const warmRows = (d.inputs[i + 1] ?? d.inputs[0]!).rows.slice(0, 32);
    const { run, encoded: results } = await tokenizeWithPool(d.bundle, inp.rows, warmRows, 1);
    const enc = results.map((r, j) => {
      if (!r.ok) throw new Error(`${inp.name}: row ${j + 1} (${inp.rows[j]!.id}) does not encode: ${r.message}`);
      return r.direct;
    });
    encoded.push(enc);
    tokenization.push({
      input: inp.name,
      tokenizer: run.tokenizer,
      rows_per_s: run.rows_per_s,
      mean_tokens: round(enc.reduce((a, r) => a + r.ids.length, 0) / enc.length, 1),
      truncated_share: round(enc.filter((r) => r.truncated).length / enc.length, 3),
    });
  }
  return { tokenization, encoded };
}

/** Step 2b: the engine's tokenizer pool with 1, 2, ... worker threads on the first input (nothing else runs). */
async function measureTokenizerWorkers(ctx: BenchContext, d: Loaded): Promise<BenchResult['tokenization_workers']> {
  const counts = ctx.o.tokenizerWorkers ?? defaultWorkerCounts(ctx.cores);
  ctx.phase(`tokenization rows/s with ${counts.join(', ')} tokenizer worker threads (the engine's pool, in-process)`);
  const rows = d.inputs[0]!.rows;
  const warmRows = (d.inputs[1] ?? d.fixedInput).rows.slice(0, 32);
  return { input: d.inputs[0]!.name, cores: ctx.cores, by_workers: await tokenizeByWorkers(d.bundle, rows, warmRows, counts) };
}

interface LimitRuns {
  readonly limitDevice: string;
  /** Kept open for the tuning sweeps and the PyTorch cross-check; released by crossCheckProbs. */
  readonly session: NodeSession;
  /** One per input. */
  readonly limits: LoopResult[];
  /** The first input's rows: the sweeps and the peers use them. */
  readonly long: EncodedRow[];
  /** The first input's sorted dynamic batches (the tuning sweeps). */
  readonly longPlan: PlannedBatch[];
  readonly fixed: FixedPadding;
}

/** Step 3: the limit (in-process session.run on prepared sorted batches) and the fixed-padding comparison. */
async function measureLimit(ctx: BenchContext, d: Loaded, encoded: EncodedRow[][]): Promise<LimitRuns> {
  const { cfg } = d;
  // The limit runs on the headline's first device (cpu here; cuda:0 on a GPU host), with its provider.
  const { limitDevice } = ctx;
  ctx.phase(`the limit: in-process session.run on sorted dynamic batches (${limitDevice}, ${ctx.threads} threads)`);
  const session = await createCpuSession(d.bundle, limitDevice === 'cpu' ? ctx.threads : 1, 'all', limitDevice);
  const limits: LoopResult[] = [];
  for (const enc of encoded) {
    const plan = sortedBatches(enc, DEFAULT_BATCHING);
    await warm(session, plan, cfg);
    // Padding happens before the clock starts: the limit is session.run alone.
    limits.push(await runPreparedLoop(session, prepare(session, plan, cfg), cfg));
  }
  ctx.phase(`fixed max_length padding vs sorted dynamic padding (${d.fixedInput.name}, in-process)`);
  const rows = d.fixedInput === d.inputs[0] ? encoded[0]! : d.fixedInput.rows.map((r) => d.bundle.preprocessor.encode(r));
  const fixedSize = Math.max(1, Math.min(DEFAULT_BATCHING.maxBatchSize, Math.floor(DEFAULT_BATCHING.maxBatchTokens / cfg.truncation.max_length)));
  const fixedPlan = fixedBatches(rows, fixedSize, cfg.truncation.max_length);
  const dynamicPlan = sortedBatches(rows, DEFAULT_BATCHING);
  await warm(session, fixedPlan, cfg);
  await warm(session, dynamicPlan, cfg);
  const fixedRun = await runPreparedLoop(session, prepare(session, fixedPlan, cfg), cfg);
  const dynamicRun = await runPreparedLoop(session, prepare(session, dynamicPlan, cfg), cfg);
  const lengths = rows.map((r) => r.ids.length).sort((a, b) => a - b);
  const fixed: FixedPadding = {
    input: d.fixedInput.name,
    rows: rows.length,
    sample: d.fixedSample,
    mean_tokens: round(lengths.reduce((a, x) => a + x, 0) / Math.max(1, lengths.length), 1),
    p10_tokens: percentile(lengths, 0.1),
    p50_tokens: percentile(lengths, 0.5),
    p90_tokens: percentile(lengths, 0.9),
    truncated_share: round(rows.filter((r) => r.truncated).length / Math.max(1, rows.length), 3),
    dynamic_rows_per_s: round(dynamicRun.rows_per_s),
    fixed_rows_per_s: round(fixedRun.rows_per_s),
    dynamic_padded_tokens: paddedTokens(dynamicPlan),
    fixed_padded_tokens: paddedTokens(fixedPlan),
  };
  const long = encoded[0]!;
  return { limitDevice, session, limits, long, longPlan: sortedBatches(long, DEFAULT_BATCHING), fixed };
}

/** Step 4 (only with o.tune): in-process sweeps of optimisation level, token budget, threads, and warm-up cost. */
async function tuneInProcess(ctx: BenchContext, d: Loaded, l: LimitRuns): Promise<Record<string, unknown>> {
  const { cfg } = d;
  const { session, longPlan: dynamicPlan } = l;
  ctx.phase('tuning: graph optimisation levels and token budgets (in-process)');
  const levels: Record<string, number> = {};
  for (const level of ['disabled', 'basic', 'extended', 'all'] as GraphOptLevel[]) {
    const s = await createCpuSession(d.bundle, ctx.threads, level);
    await warm(s, dynamicPlan, cfg);
    levels[level] = round((await runBatches(s, dynamicPlan, cfg)).rows_per_s);
    await s.release();
  }
  const budgets: Record<string, number> = {};
  for (const tokens of [2048, 4096, 8192, 16384, 32768]) {
    const plan = sortedBatches(l.long, { maxBatchTokens: tokens, maxBatchSize: 256 });
    await warm(session, plan, cfg);
    budgets[String(tokens)] = round((await runBatches(session, plan, cfg)).rows_per_s);
  }
  const threadSweep: Record<string, number> = {};
  for (const t of [1, 2, 4].filter((x) => x <= 2 * ctx.cores)) {
    for (const spin of [false, true]) {
      const s = await createCpuSession(d.bundle, t, 'all', 'cpu', spin);
      await warm(s, dynamicPlan, cfg);
      threadSweep[spin ? `${t} spinning` : String(t)] = round((await runBatches(s, dynamicPlan, cfg)).rows_per_s);
      await s.release();
    }
  }
  const cold = await createCpuSession(d.bundle, ctx.threads);
  const c0 = await runBatches(cold, dynamicPlan.slice(0, 4), cfg);
  const c1 = await runBatches(cold, dynamicPlan.slice(0, 4), cfg);
  await cold.release();
  return {
    graph_optimization_level_rows_per_s: levels,
    max_batch_tokens_rows_per_s: budgets,
    intra_op_threads_rows_per_s: threadSweep,
    warmup_first_4_batches: { cold_ms: round(c0.seconds * 1000), warm_ms: round(c1.seconds * 1000) },
  };
}

/** Step 5: ONNX probabilities of 8 rows for the PyTorch peer's cross-check; releases the limit session. */
async function crossCheckProbs(d: Loaded, l: LimitRuns): Promise<Probs[]> {
  const onnxCheck = await probsOfRows(l.session, l.long.slice(0, 8), d.cfg);
  await l.session.release();
  return onnxCheck;
}

/** Step 6: starts the headline server and saturates it with streaming clients, one run per input. */
async function measureSaturation(ctx: BenchContext, d: Loaded, limits: readonly LoopResult[]): Promise<{ main: Served; throughput: BenchResult['throughput'] }> {
  const { clients, window, headline, specFile } = ctx;
  ctx.phase(`pairpref --devices ${headline}: ${clients} streaming clients per input`);
  const main = await ctx.serve(headline);
  const throughput = [];
  for (let i = 0; i < d.inputs.length; i++) {
    const spec: LoadSpec = { address: main.address, mode: 'stream', clients, window, rowsFile: d.wireFiles[i]!, warmRows: Math.min(d.inputs[i]!.rows.length, 2 * clients * 4), deadlineMs: 300_000 };
    const run = await serverRun(main, headline, d.inputs[i]!.name, spec, specFile);
    throughput.push({ input: d.inputs[i]!.name, rows: d.inputs[i]!.rows.length, pairpref: run, limit_rows_per_s: round(limits[i]!.rows_per_s), vs_limit: round(run.rows_per_s / limits[i]!.rows_per_s, 3) });
  }
  return { main, throughput };
}

interface LatencyRuns {
  readonly halfRate: number;
  /** The open-loop rows, reused by the queue-delay sweep. */
  readonly openFile: string;
  readonly open: LoadResult;
  readonly single: LoadResult;
}

/** Step 7: latency on the headline server: open loop at half of peak, then single-row unary calls. */
async function measureLatency(ctx: BenchContext, d: Loaded, main: Served, peak: ServerRun): Promise<LatencyRuns> {
  ctx.phase(`latency: open loop at half of peak (${round(peak.rows_per_s / 2)} rows/s), single-row unary`);
  const first = d.inputs[0]!.rows;
  const halfRate = peak.rows_per_s / 2;
  const openRows = Math.max(20, Math.min(first.length, Math.round(halfRate * 20)));
  const openFile = writeWireRows(join(ctx.work, 'open.json'), first.slice(0, openRows));
  const open = await runLoadgen({ address: main.address, mode: 'open', clients: 4, rate: halfRate, rowsFile: openFile, deadlineMs: 300_000 }, ctx.specFile);
  const singleFile = writeWireRows(join(ctx.work, 'single.json'), first.slice(0, Math.min(60, first.length)));
  const single = await runLoadgen({ address: main.address, mode: 'unary', clients: 1, rowsFile: singleFile, warmRows: 5, deadlineMs: 300_000 }, ctx.specFile);
  return { halfRate, openFile, open, single };
}

/** Step 8 (unless o.skipPeers): pairpref under the naive peer's load (unary, one row per call), for vs_naive. */
async function measurePairprefUnary(ctx: BenchContext, d: Loaded, main: Served): Promise<LoadResult> {
  ctx.phase(`pairpref: ${ctx.naiveClients} unary clients, one row per call (the naive peer's load)`);
  return runLoadgen({ address: main.address, mode: 'unary', clients: ctx.naiveClients, rowsFile: d.wireFiles[0]!, warmRows: ctx.naiveClients, deadlineMs: 300_000 }, ctx.specFile);
}

/** Step 9 (only with o.tune): a fresh server per max queue delay; latency at half of peak and saturated rows/s. */
async function tuneQueueDelay(ctx: BenchContext, d: Loaded, lat: LatencyRuns): Promise<Record<string, unknown>> {
  const { headline, clients, window, specFile } = ctx;
  ctx.phase('tuning: queue delay at half of peak');
  const queueDelay: Record<string, unknown> = {};
  for (const ms of [0, 2, 10]) {
    const s = await ctx.serve(headline, { maxQueueDelayMs: ms });
    const r = await runLoadgen({ address: s.address, mode: 'open', clients: 4, rate: lat.halfRate, rowsFile: lat.openFile, deadlineMs: 300_000 }, specFile);
    const sat = await serverRun(s, headline, d.inputs[0]!.name, { address: s.address, mode: 'stream', clients, window, rowsFile: d.wireFiles[0]!, deadlineMs: 300_000 }, specFile);
    queueDelay[String(ms)] = { half_peak_p50_ms: r.latency.p50_ms, half_peak_p99_ms: r.latency.p99_ms, saturated_rows_per_s: sat.rows_per_s };
    await ctx.stop(s);
  }
  return queueDelay;
}

/** Step 10: saturation runs of the other device lists; a failing one becomes a note, not a failed bench. */
async function measureScaling(ctx: BenchContext, d: Loaded, headlineRun: ServerRun): Promise<ServerRun[]> {
  const scaling: ServerRun[] = [headlineRun];
  for (const devices of ctx.scalingDevices.slice(1)) {
    ctx.phase(`scaling: pairpref --devices ${devices}`);
    try {
      const s = await ctx.serve(devices);
      // WebGPU gets its own (small) row count: a software adapter is slower than the CPU by 300x.
      const isWebgpu = devices.includes('webgpu');
      const rowsFile = isWebgpu ? join(ctx.work, 'webgpu.json') : d.wireFiles[0]!;
      if (isWebgpu) writeWireRows(rowsFile, d.inputs[0]!.rows.slice(0, ctx.o.webgpuRows ?? BENCH_DEFAULTS.webgpuRows));
      const spec: LoadSpec = isWebgpu
        ? { address: s.address, mode: 'stream', clients: 2, window: 8, rowsFile, warmRows: 2, deadlineMs: 240_000 }
        : { address: s.address, mode: 'stream', clients: ctx.clients, window: ctx.window, rowsFile, warmRows: ctx.clients, deadlineMs: 300_000 };
      const run = await serverRun(s, devices, d.inputs[0]!.name, spec, ctx.specFile);
      await ctx.stop(s);
      scaling.push(run);
    } catch (e) {
      ctx.notes.push(`scaling --devices ${devices} failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }
  return scaling;
}

/** Step 11 (unless o.skipPeers): the naive peer (one session.run per request) under the same unary load. */
async function runNaivePeer(ctx: BenchContext, d: Loaded, pairprefUnary: LoadResult): Promise<BenchResult['naive']> {
  const { naiveClients } = ctx;
  const device = ctx.limitDevice;
  ctx.phase(`naive peer: one session.run per request on ${device}, ${naiveClients} unary clients`);
  const n = await startNaive(ctx.o.model, ctx.cores, device, device.includes('webgpu') && ctx.adapter ? webgpuEnv(ctx.adapter) : {});
  ctx.servers.add(n);
  const peerFile = writeWireRows(join(ctx.work, 'peer.json'), d.inputs[0]!.rows.slice(0, ctx.peerRows));
  const nr = await runLoadgen({ address: n.address, mode: 'unary', clients: naiveClients, rowsFile: peerFile, warmRows: naiveClients, deadlineMs: 600_000 }, ctx.specFile);
  await ctx.stop(n);
  return { device, clients: naiveClients, rows: nr.rows, pairpref_unary_rows_per_s: round(pairprefUnary.rows_per_s), naive_rows_per_s: round(nr.rows_per_s), naive_latency: nr.latency, pairpref_latency: pairprefUnary.latency };
}

/**
 * The PyTorch peer's result as reported: refused (no ratio) when its probabilities on the check rows
 * are not onnxruntime's within PARITY_TOLERANCE, since then it ran other weights.
 */
export function judgeTorchPeer(t: TorchPeerResult, onnxCheck: readonly Probs[], weights: TorchWeights): PytorchRun {
  const diff = maxAbsProbDiff(t.check_probs, onnxCheck);
  if (!(diff <= PARITY_TOLERANCE)) {
    return {
      skipped: `parity check failed: max |dp| ${diff.toExponential(2)} against onnxruntime on ${onnxCheck.length} rows (tolerance ${PARITY_TOLERANCE}): ${describeWeights(weights)} are not model.onnx's weights, so no ratio is reported`,
      max_abs_prob_diff_vs_onnx: diff,
      device: t.device,
    };
  }
  return {
    rows_per_s: round(t.rows_per_s),
    rows: t.rows,
    batch: t.batch,
    threads: t.threads,
    torch: t.torch,
    device: t.device,
    device_name: t.device_name,
    weights: describeWeights(weights),
    weights_source: weights.kind,
    max_abs_prob_diff_vs_onnx: diff,
    parity_rows: onnxCheck.length,
    parity_tolerance: PARITY_TOLERANCE,
  };
}

/** Step 12 (unless o.skipPeers): the PyTorch eager peer, cross-checked against the ONNX probabilities. */
async function runPytorchPeer(ctx: BenchContext, d: Loaded, long: readonly EncodedRow[], onnxCheck: readonly Probs[]): Promise<PytorchRun> {
  const peerDevice = ctx.o.peerDevice ?? BENCH_DEFAULTS.peerDevice;
  ctx.phase(`PyTorch eager peer (same weights, sorted batches of 8, --peer-device ${peerDevice})`);
  const w = findTorchWeights(ctx.o.model, ctx.o.torchCheckpoint);
  if (!w.weights) return { skipped: w.why };
  try {
    // Its first rows are the check rows: the same ones onnxruntime scored, however few --peer-rows.
    const rows = long.slice(0, Math.max(ctx.peerRows, onnxCheck.length));
    const t = await runTorchPeer({ weights: w.weights, rows, padId: d.cfg.special_tokens.pad_id, threads: ctx.cores, rowsFile: join(ctx.work, 'torch-rows.json'), device: peerDevice, checkRows: onnxCheck.length });
    return judgeTorchPeer(t, onnxCheck, w.weights);
  } catch (e) {
    return { skipped: e instanceof Error ? e.message : String(e) };
  }
}

/** Everything the report is assembled from. */
interface Measurements {
  readonly tokenization: BenchResult['tokenization'];
  readonly tokenizationWorkers: BenchResult['tokenization_workers'];
  readonly limit: LimitRuns;
  readonly throughput: BenchResult['throughput'];
  readonly peak: ServerRun;
  readonly headlineRun: ServerRun;
  readonly latency: LatencyRuns;
  readonly scaling: ServerRun[];
  readonly tuning: Record<string, unknown> | null;
  readonly naive: BenchResult['naive'];
  readonly pytorch: BenchResult['pytorch'];
}

const f1 = (x: number): string => x.toFixed(1);

/** The targets of issue 12, each with this run's reason when it is not met. */
function targetsOf(ctx: BenchContext, m: Measurements, ratios: BenchResult['ratios'], p99OverP50: number): BenchResult['targets'] {
  const { naive, pytorch } = m;
  const target = (t: string, value: number | null, ok: (v: number) => boolean, why: () => string): Target => {
    const met = value === null ? null : ok(value);
    return { target: t, value, met, reason: met ? null : why() };
  };
  const worst = m.throughput.reduce((a, t) => (t.vs_limit < a.vs_limit ? t : a), m.throughput[0]!);
  const tok = m.tokenization.find((t) => t.input === worst.input);
  const vsLimit = target('>= 0.80', ratios.vs_limit, (v) => v >= 0.8, () => {
    const cores = tok ? ` Tokenizing (${tok.tokenizer}, one worker thread, the server's default) runs at ${f1(tok.rows_per_s)} rows/s, so pairpref's ${f1(worst.pairpref.rows_per_s)} rows/s take ${(worst.pairpref.rows_per_s / tok.rows_per_s).toFixed(2)} of a core to tokenize, which the limit does not pay.` : '';
    return `${worst.input}: pairpref ${f1(worst.pairpref.rows_per_s)} rows/s, the limit (session.run alone on prepared batches, ${ctx.limitDevice}) ${f1(worst.limit_rows_per_s)} rows/s; busy share ${JSON.stringify(worst.pairpref.busy_share)}.${cores}`;
  });
  const gpu = ctx.gpuHost;
  const vsNaive = target(gpu ? '>= 3 (GPU host)' : '>= 1.5 (CPU)', ratios.vs_naive, (v) => v >= (gpu ? 3 : 1.5), () =>
    'naive_rows_per_s' in naive
      ? `${naive.clients} one-row unary clients on ${naive.device}: pairpref ${f1(naive.pairpref_unary_rows_per_s)} rows/s (p50 ${f1(naive.pairpref_latency.p50_ms)} ms), naive ${f1(naive.naive_rows_per_s)} rows/s (p50 ${f1(naive.naive_latency.p50_ms)} ms)`
      : `naive peer not run: ${naive.skipped}`,
  );
  const likeForLike = !(gpu && 'device' in pytorch && pytorch.device === 'cpu');
  const vsPytorchRaw = target('>= 1.5', ratios.vs_pytorch, (v) => v >= 1.5, () =>
    'rows_per_s' in pytorch
      ? `pairpref ${f1(m.peak.rows_per_s)} rows/s on ${ctx.headline}, PyTorch ${pytorch.torch} eager ${f1(pytorch.rows_per_s)} rows/s on ${pytorch.device} (batches of ${pytorch.batch}, ${pytorch.threads} threads)`
      : `PyTorch peer not run: ${pytorch.skipped}`,
  );
  const vsPytorch: Target = likeForLike
    ? vsPytorchRaw
    : { ...vsPytorchRaw, met: null, reason: `the PyTorch peer ran on the CPU (its torch has no CUDA) while pairpref ran on ${ctx.headline}: ${ratios.vs_pytorch} is not a GPU figure` };
  const { open } = m.latency;
  const tail = target('<= 2.5', p99OverP50, (v) => v <= 2.5, () => `open loop at ${f1(m.latency.halfRate)} rows/s (half of peak), one-row unary calls: p50 ${f1(open.latency.p50_ms)} ms, p95 ${f1(open.latency.p95_ms)} ms, p99 ${f1(open.latency.p99_ms)} ms on ${ctx.cores} cores shared with the load generator`);
  return {
    vs_limit: { ...vsLimit, goal: '>= 0.90', goal_met: ratios.vs_limit >= 0.9 },
    vs_naive: vsNaive,
    vs_pytorch: vsPytorch,
    half_peak_p99_over_p50: tail,
  };
}

/** Step 13: ratios, targets, the closing notes and the result object. */
function assembleReport(ctx: BenchContext, d: Loaded, m: Measurements): BenchResult {
  const { cfg, isFixture } = d;
  const { limits, fixed } = m.limit;
  const { naive, pytorch } = m;
  const { notes, cores, loadStart } = ctx;
  const ratio = (a: number, b: number | undefined): number | null => (b && b > 0 ? round(a / b, 3) : null);
  const ratios: BenchResult['ratios'] = {
    vs_limit: Math.min(...m.throughput.map((t) => t.vs_limit)),
    vs_naive: 'naive_rows_per_s' in naive ? ratio(naive.pairpref_unary_rows_per_s, naive.naive_rows_per_s) : null,
    vs_fixed_padding: round(fixed.dynamic_rows_per_s / fixed.fixed_rows_per_s, 3),
    vs_pytorch: 'rows_per_s' in pytorch ? ratio(m.peak.rows_per_s, pytorch.rows_per_s) : null,
    vs_pytorch_device: 'rows_per_s' in pytorch ? pytorch.device : null,
  };
  const { open, single, halfRate } = m.latency;
  const p99OverP50 = round(open.latency.p99_ms / open.latency.p50_ms, 2);
  if (isFixture) notes.push('fixture model (tiny random weights): the figures measure serving overheads more than model compute');
  if ('skipped' in pytorch) notes.push(`PyTorch peer not run or not reported: ${pytorch.skipped}`);
  if (ctx.gpuHost && 'rows_per_s' in pytorch && pytorch.device === 'cpu') {
    notes.push(`the PyTorch peer ran on the CPU (torch ${pytorch.torch} has no CUDA here) while pairpref ran on ${ctx.headline}: vs_pytorch (vs_pytorch_device "cpu") is not a GPU figure`);
  }
  if (ctx.adapter) notes.push(`webgpu ran on a ${ctx.adapter.kind} adapter: ${ctx.adapter.why}`);
  notes.push(`vs_fixed_padding is measured on ${fixed.input} (${fixed.sample}; ${fixed.p10_tokens} / ${fixed.p50_tokens} / ${fixed.p90_tokens} tokens at p10 / p50 / p90): it measures that input's length spread more than pairpref`);
  const loadEnd = loadavg().map((x) => round(x));
  if (Math.max(...loadStart.slice(0, 1), ...loadEnd.slice(0, 1)) > cores * 0.5) {
    notes.push(`other work was loading the machine (load average ${loadStart[0]} at start, ${loadEnd[0]} at end on ${cores} cores): absolute figures are low, ratios from this run are what count`);
  }
  return {
    model: {
      dir: d.bundle.dir,
      name: cfg.name,
      version: cfg.version,
      max_length: cfg.truncation.max_length,
      truncation: cfg.truncation.mode,
      fixture_note: isFixture ? 'fixture model: measures overheads more than model compute' : null,
    },
    machine: { cpus: cores, loadavg_start: loadStart, loadavg_end: loadEnd, node: process.version, onnxruntime: ORT_VERSION },
    settings: {
      rows_per_input: ctx.nRows,
      clients: ctx.clients,
      window: ctx.window,
      intra_op_threads: ctx.threads,
      batching: DEFAULT_BATCHING,
      headline_devices: ctx.headline,
      device_lists: ctx.scalingDevices,
      limit_device: m.limit.limitDevice,
      gpu_host: ctx.gpuHost,
      peer_device: ctx.o.peerDevice ?? BENCH_DEFAULTS.peerDevice,
    },
    tokenization: m.tokenization,
    tokenization_workers: m.tokenizationWorkers,
    throughput: m.throughput,
    pairpref: m.headlineRun,
    limit: { device: m.limit.limitDevice, rows_per_s: round(limits[0]!.rows_per_s), seconds: round(limits[0]!.seconds, 3), padded_tokens: limits[0]!.padded_tokens },
    fixed_padding: fixed,
    naive,
    pytorch,
    latency: { half_peak_rate: round(halfRate), half_peak: open.latency, p99_over_p50: p99OverP50, single_row_unary: single.latency },
    scaling: m.scaling,
    webgpu_adapter: ctx.adapter,
    tuning: m.tuning,
    ratios,
    targets: targetsOf(ctx, m, ratios, p99OverP50),
    notes,
    seconds: round((performance.now() - ctx.t0) / 1000, 1),
  };
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const ctx = createContext(o);
  try {
    const d = await loadInputs(ctx);
    const { tokenization, encoded } = await measureTokenization(ctx, d);
    const tokenizationWorkers = await measureTokenizerWorkers(ctx, d);
    const limit = await measureLimit(ctx, d, encoded);
    let tuning: Record<string, unknown> | null = o.tune ? await tuneInProcess(ctx, d, limit) : null;
    const onnxCheck = await crossCheckProbs(d, limit);

    const { main, throughput } = await measureSaturation(ctx, d, limit.limits);
    const peak = throughput[0]!.pairpref;
    const latency = await measureLatency(ctx, d, main, peak);
    const pairprefUnary = o.skipPeers ? null : await measurePairprefUnary(ctx, d, main);
    if (o.tune) tuning = { ...tuning, max_queue_delay_ms: await tuneQueueDelay(ctx, d, latency) };
    const mainRss = main.peakRssMiB();
    await ctx.stop(main);
    const headlineRun: ServerRun = { ...peak, peak_rss_mib: mainRss === null ? null : round(mainRss, 1) };

    const scaling = await measureScaling(ctx, d, headlineRun);
    const naive = o.skipPeers ? { skipped: '--skip-peers' } : await runNaivePeer(ctx, d, pairprefUnary!);
    const pytorch = o.skipPeers ? { skipped: '--skip-peers' } : await runPytorchPeer(ctx, d, limit.long, onnxCheck);
    return assembleReport(ctx, d, { tokenization, tokenizationWorkers, limit, throughput, peak, headlineRun, latency, scaling, tuning, naive, pytorch });
  } finally {
    for (const s of ctx.servers) await s.stop();
    rmSync(ctx.work, { recursive: true, force: true });
  }
}
