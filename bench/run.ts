// The bench orchestration: one run measures pairpref and every comparison side by side, since
// absolute times on a shared machine are not comparable across runs; the ratios are.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { EncodedRow } from '../core/types.ts';
import type { Probs } from '../core/postprocess.ts';
import { probsFromSeqCls } from '../core/postprocess.ts';
import { padBatch } from '../core/batch.ts';
import { comparisonToWire } from '../client/rows.ts';
import { loadBundle, type Bundle } from '../server/bundle.ts';
import { DEFAULT_BATCHING } from '../server/scorer.ts';
import { defaultIntraOpThreads, resolveDevices } from '../server/devices.ts';
import { fixedBatches, paddedTokens, sortedBatches } from './batches.ts';
import { createCpuSession, feeds, runBatches, runPrepared, prepare, warm, type GraphOptLevel } from './inprocess.ts';
import { DEFAULT_INPUTS, readInput, type InputSet } from './inputs.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { runLoadgen, startNaive, startPairpref, type Served } from './processes.ts';
import type { LatencySummary } from './stats.ts';
import { findCheckpoint, runTorchPeer } from './torch-peer.ts';

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
  readonly mean_batch_rows: number | null;
}

export interface BenchResult {
  readonly model: { dir: string; name: string; version: string; max_length: number; truncation: string; fixture_note: string | null };
  readonly machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[]; node: string; onnxruntime: string };
  readonly settings: { rows_per_input: number; clients: number; window: number; intra_op_threads: number; batching: typeof DEFAULT_BATCHING; limit_device: string };
  readonly tokenization: { input: string; rows_per_s: number; mean_tokens: number; truncated_share: number }[];
  readonly throughput: { input: string; rows: number; pairpref: ServerRun; limit_rows_per_s: number; vs_limit: number }[];
  readonly pairpref: ServerRun;
  readonly limit: { rows_per_s: number; seconds: number; padded_tokens: number };
  readonly fixed_padding: { input: string; dynamic_rows_per_s: number; fixed_rows_per_s: number; dynamic_padded_tokens: number; fixed_padded_tokens: number };
  readonly naive: { clients: number; rows: number; pairpref_unary_rows_per_s: number; naive_rows_per_s: number; naive_latency: LatencySummary; pairpref_latency: LatencySummary } | { skipped: string };
  readonly pytorch: { rows_per_s: number; rows: number; batch: number; threads: number; torch: string; checkpoint: string; max_abs_prob_diff_vs_onnx: number } | { skipped: string };
  readonly latency: { half_peak_rate: number; half_peak: LatencySummary; p99_over_p50: number; single_row_unary: LatencySummary };
  readonly scaling: ServerRun[];
  readonly tuning: Record<string, unknown> | null;
  readonly ratios: { vs_limit: number; vs_naive: number | null; vs_fixed_padding: number; vs_pytorch: number | null };
  readonly targets: Record<string, { target: string; value: number | null; met: boolean | null }>;
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
    mean_batch_rows: batches > 0 ? round(rows / batches, 1) : null,
  };
}

function maxAbsDiff(a: readonly (readonly number[])[], b: readonly Probs[]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - (b[i]?.[j] ?? NaN))))));
  return m;
}

async function onnxProbs(session: ort.InferenceSession, bundle: Bundle, rows: readonly EncodedRow[]): Promise<Probs[]> {
  const c = bundle.config;
  const b = padBatch(rows, c.special_tokens);
  const out = (await session.run(feeds(b, c), [c.head.output]))[c.head.output]!;
  return probsFromSeqCls(out.data as Float32Array, rows.length);
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
} as const;

export async function runBench(o: BenchOptions): Promise<BenchResult> {
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
  // The limit runs with the headline server's threads per session; standalone peers get every core.
  const threads = defaultIntraOpThreads(resolveDevices(headline).devices);
  const naiveClients = o.naiveClients ?? BENCH_DEFAULTS.naiveClients;
  const peerRows = o.peerRows ?? BENCH_DEFAULTS.peerRows;
  const work = mkdtempSync(join(tmpdir(), 'pairpref-bench-'));
  const specFile = join(work, 'spec.json');
  const servers = new Set<Served>();
  const serve = async (devices: string, extra: Partial<Parameters<typeof startPairpref>[0]> = {}): Promise<Served> => {
    const env = devices.includes('webgpu') ? { VK_ICD_FILENAMES: process.env['VK_ICD_FILENAMES'] ?? '/usr/lib/chromium/vk_swiftshader_icd.json' } : {};
    const s = await startPairpref({ model: o.model, devices, env, ...extra });
    servers.add(s);
    return s;
  };
  const stop = async (s: Served): Promise<void> => {
    servers.delete(s);
    await s.stop();
  };

  try {
    phase('loading the bundle and the inputs');
    const bundle = loadBundle(o.model);
    const cfg = bundle.config;
    const isFixture = cfg.name === 'fixture';
    const inputs: InputSet[] = await Promise.all((o.inputs ?? DEFAULT_INPUTS).map((p) => readInput(p, nRows)));
    const wireFiles = inputs.map((inp, i) => {
      const f = join(work, `rows-${i}.json`);
      writeFileSync(f, JSON.stringify(inp.rows.map(comparisonToWire)));
      return f;
    });

    phase('tokenizing on one thread (is tokenization a bottleneck?)');
    const encoded: EncodedRow[][] = [];
    const tokenization = inputs.map((inp) => {
      const e0 = performance.now();
      const enc = inp.rows.map((r) => bundle.preprocessor.encode(r));
      const s = (performance.now() - e0) / 1000;
      encoded.push(enc);
      return {
        input: inp.name,
        rows_per_s: round(enc.length / s),
        mean_tokens: round(enc.reduce((a, r) => a + r.ids.length, 0) / enc.length, 1),
        truncated_share: round(enc.filter((r) => r.truncated).length / enc.length, 3),
      };
    });

    // The limit runs on the headline's first device (cpu here; cuda:0 on a GPU host).
    const limitDevice = headline.split(',')[0]!.trim();
    phase(`the limit: in-process session.run on sorted dynamic batches (${limitDevice}, ${threads} threads)`);
    const session = await createCpuSession(bundle.modelPath, limitDevice === 'cpu' ? threads : 1, 'all', limitDevice);
    const limits = [];
    for (const enc of encoded) {
      const plan = sortedBatches(enc, DEFAULT_BATCHING);
      await warm(session, plan, cfg);
      // Padding happens before the clock starts: the limit is session.run alone.
      limits.push(await runPrepared(session, prepare(plan, cfg), cfg));
    }
    phase('fixed max_length padding vs sorted dynamic padding (in-process)');
    const long = encoded[0]!;
    const fixedSize = Math.max(1, Math.min(DEFAULT_BATCHING.maxBatchSize, Math.floor(DEFAULT_BATCHING.maxBatchTokens / cfg.truncation.max_length)));
    const fixedPlan = fixedBatches(long, fixedSize, cfg.truncation.max_length);
    await warm(session, fixedPlan, cfg);
    const fixed = await runPrepared(session, prepare(fixedPlan, cfg), cfg);
    const dynamicPlan = sortedBatches(long, DEFAULT_BATCHING);
    const dynamic = await runPrepared(session, prepare(dynamicPlan, cfg), cfg);

    let tuning: Record<string, unknown> | null = null;
    if (o.tune) {
      phase('tuning: graph optimisation levels and token budgets (in-process)');
      const levels: Record<string, number> = {};
      for (const level of ['disabled', 'basic', 'extended', 'all'] as GraphOptLevel[]) {
        const s = await createCpuSession(bundle.modelPath, threads, level);
        await warm(s, dynamicPlan, cfg);
        levels[level] = round((await runBatches(s, dynamicPlan, cfg)).rows_per_s);
        await s.release();
      }
      const budgets: Record<string, number> = {};
      for (const tokens of [2048, 4096, 8192, 16384, 32768]) {
        const plan = sortedBatches(long, { maxBatchTokens: tokens, maxBatchSize: 256 });
        await warm(session, plan, cfg);
        budgets[String(tokens)] = round((await runBatches(session, plan, cfg)).rows_per_s);
      }
      const threadSweep: Record<string, number> = {};
      for (const t of [1, 2, 4].filter((x) => x <= 2 * cores)) {
        for (const spin of [false, true]) {
          const s = await createCpuSession(bundle.modelPath, t, 'all', 'cpu', spin);
          await warm(s, dynamicPlan, cfg);
          threadSweep[spin ? `${t} spinning` : String(t)] = round((await runBatches(s, dynamicPlan, cfg)).rows_per_s);
          await s.release();
        }
      }
      const cold = await createCpuSession(bundle.modelPath, threads);
      const c0 = await runBatches(cold, dynamicPlan.slice(0, 4), cfg);
      const c1 = await runBatches(cold, dynamicPlan.slice(0, 4), cfg);
      await cold.release();
      tuning = {
        graph_optimization_level_rows_per_s: levels,
        max_batch_tokens_rows_per_s: budgets,
        intra_op_threads_rows_per_s: threadSweep,
        warmup_first_4_batches: { cold_ms: round(c0.seconds * 1000), warm_ms: round(c1.seconds * 1000) },
      };
    }
    const checkRows = long.slice(0, 8);
    const onnxCheck = await onnxProbs(session, bundle, checkRows);
    await session.release();

    phase(`pairpref --devices ${headline}: ${clients} streaming clients per input`);
    const main = await serve(headline);
    const throughput = [];
    for (let i = 0; i < inputs.length; i++) {
      const spec: LoadSpec = { address: main.address, mode: 'stream', clients, window, rowsFile: wireFiles[i]!, warmRows: Math.min(inputs[i]!.rows.length, 2 * clients * 4), deadlineMs: 300_000 };
      const run = await serverRun(main, headline, inputs[i]!.name, spec, specFile);
      throughput.push({ input: inputs[i]!.name, rows: inputs[i]!.rows.length, pairpref: run, limit_rows_per_s: round(limits[i]!.rows_per_s), vs_limit: round(run.rows_per_s / limits[i]!.rows_per_s, 3) });
    }
    const peak = throughput[0]!.pairpref;

    phase(`latency: open loop at half of peak (${round(peak.rows_per_s / 2)} rows/s), single-row unary`);
    const halfRate = peak.rows_per_s / 2;
    const openRows = Math.max(20, Math.min(inputs[0]!.rows.length, Math.round(halfRate * 20)));
    const openFile = join(work, 'open.json');
    writeFileSync(openFile, JSON.stringify(inputs[0]!.rows.slice(0, openRows).map(comparisonToWire)));
    const open = await runLoadgen({ address: main.address, mode: 'open', clients: 4, rate: halfRate, rowsFile: openFile, deadlineMs: 300_000 }, specFile);
    const singleFile = join(work, 'single.json');
    writeFileSync(singleFile, JSON.stringify(inputs[0]!.rows.slice(0, Math.min(60, inputs[0]!.rows.length)).map(comparisonToWire)));
    const single = await runLoadgen({ address: main.address, mode: 'unary', clients: 1, rowsFile: singleFile, warmRows: 5, deadlineMs: 300_000 }, specFile);

    let pairprefUnary: LoadResult | null = null;
    if (!o.skipPeers) {
      phase(`pairpref: ${naiveClients} unary clients, one row per call (the naive peer's load)`);
      pairprefUnary = await runLoadgen({ address: main.address, mode: 'unary', clients: naiveClients, rowsFile: wireFiles[0]!, warmRows: naiveClients, deadlineMs: 300_000 }, specFile);
    }
    let queueDelay: Record<string, unknown> | null = null;
    if (o.tune) {
      phase('tuning: queue delay at half of peak');
      queueDelay = {};
      for (const ms of [0, 2, 10]) {
        const s = await serve(headline, { maxQueueDelayMs: ms });
        const r = await runLoadgen({ address: s.address, mode: 'open', clients: 4, rate: halfRate, rowsFile: openFile, deadlineMs: 300_000 }, specFile);
        const sat = await serverRun(s, headline, inputs[0]!.name, { address: s.address, mode: 'stream', clients, window, rowsFile: wireFiles[0]!, deadlineMs: 300_000 }, specFile);
        queueDelay[String(ms)] = { half_peak_p50_ms: r.latency.p50_ms, half_peak_p99_ms: r.latency.p99_ms, saturated_rows_per_s: sat.rows_per_s };
        await stop(s);
      }
      tuning = { ...tuning, max_queue_delay_ms: queueDelay };
    }
    const mainRss = main.peakRssMiB();
    await stop(main);
    const headlineRun: ServerRun = { ...peak, peak_rss_mib: mainRss === null ? null : round(mainRss, 1) };

    const scaling: ServerRun[] = [headlineRun];
    for (const devices of scalingDevices.slice(1)) {
      phase(`scaling: pairpref --devices ${devices}`);
      try {
        const s = await serve(devices);
        const isGpuSoft = devices.includes('webgpu');
        const rowsFile = isGpuSoft ? join(work, 'webgpu.json') : wireFiles[0]!;
        if (isGpuSoft) writeFileSync(rowsFile, JSON.stringify(inputs[0]!.rows.slice(0, o.webgpuRows ?? BENCH_DEFAULTS.webgpuRows).map(comparisonToWire)));
        const spec: LoadSpec = isGpuSoft
          ? { address: s.address, mode: 'stream', clients: 2, window: 8, rowsFile, warmRows: 2, deadlineMs: 240_000 }
          : { address: s.address, mode: 'stream', clients, window, rowsFile, warmRows: clients, deadlineMs: 300_000 };
        const run = await serverRun(s, devices, inputs[0]!.name, spec, specFile);
        await stop(s);
        scaling.push(run);
      } catch (e) {
        notes.push(`scaling --devices ${devices} failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      }
    }

    let naive: BenchResult['naive'] = { skipped: '--skip-peers' };
    let pytorch: BenchResult['pytorch'] = { skipped: '--skip-peers' };
    if (!o.skipPeers) {
      phase(`naive peer: one session.run per request, ${naiveClients} unary clients`);
      const n = await startNaive(o.model, cores);
      servers.add(n);
      const peerFile = join(work, 'peer.json');
      writeFileSync(peerFile, JSON.stringify(inputs[0]!.rows.slice(0, peerRows).map(comparisonToWire)));
      const nr = await runLoadgen({ address: n.address, mode: 'unary', clients: naiveClients, rowsFile: peerFile, warmRows: naiveClients, deadlineMs: 600_000 }, specFile);
      await stop(n);
      naive = { clients: naiveClients, rows: nr.rows, pairpref_unary_rows_per_s: round(pairprefUnary!.rows_per_s), naive_rows_per_s: round(nr.rows_per_s), naive_latency: nr.latency, pairpref_latency: pairprefUnary!.latency };

      phase('PyTorch eager peer (same weights, sorted batches of 8)');
      const ck = findCheckpoint(o.model, o.torchCheckpoint);
      if (!ck.path) pytorch = { skipped: ck.why };
      else {
        try {
          const t = await runTorchPeer(ck.path, long.slice(0, peerRows), cfg.special_tokens.pad_id, cores, join(work, 'torch-rows.json'));
          const diff = maxAbsDiff(t.check_probs, onnxCheck);
          if (ck.guessed && !(diff < 1e-3)) throw new Error(`${ck.path} is not the checkpoint of ${bundle.modelPath} (max |dp| ${diff.toExponential(1)} on ${onnxCheck.length} rows); pass --torch-checkpoint`);
          pytorch = { rows_per_s: round(t.rows_per_s), rows: t.rows, batch: t.batch, threads: t.threads, torch: t.torch, checkpoint: ck.path, max_abs_prob_diff_vs_onnx: diff };
          if (!(diff < 1e-3)) notes.push(`the PyTorch checkpoint does not match model.onnx (max |dp| ${diff}): vs_pytorch compares different weights`);
        } catch (e) {
          pytorch = { skipped: e instanceof Error ? e.message : String(e) };
        }
      }
    }

    const ratio = (a: number, b: number | undefined): number | null => (b && b > 0 ? round(a / b, 3) : null);
    const vsLimit = Math.min(...throughput.map((t) => t.vs_limit));
    const ratios = {
      vs_limit: vsLimit,
      vs_naive: 'naive_rows_per_s' in naive ? ratio(naive.pairpref_unary_rows_per_s, naive.naive_rows_per_s) : null,
      vs_fixed_padding: round(dynamic.rows_per_s / fixed.rows_per_s, 3),
      vs_pytorch: 'rows_per_s' in pytorch ? ratio(peak.rows_per_s, pytorch.rows_per_s) : null,
    };
    const p99OverP50 = round(open.latency.p99_ms / open.latency.p50_ms, 2);
    const target = (t: string, value: number | null, ok: (v: number) => boolean) => ({ target: t, value, met: value === null ? null : ok(value) });
    if (isFixture) notes.push('fixture model (tiny random weights): the figures measure serving overheads more than model compute');
    if ('skipped' in pytorch) notes.push(`PyTorch peer not run: ${pytorch.skipped}`);
    const loadEnd = loadavg().map((x) => round(x));
    if (Math.max(...loadStart.slice(0, 1), ...loadEnd.slice(0, 1)) > cores * 0.5) {
      notes.push(`other work was loading the machine (load average ${loadStart[0]} at start, ${loadEnd[0]} at end on ${cores} cores): absolute figures are low, ratios from this run are what count`);
    }
    return {
      model: {
        dir: bundle.dir,
        name: cfg.name,
        version: cfg.version,
        max_length: cfg.truncation.max_length,
        truncation: cfg.truncation.mode,
        fixture_note: isFixture ? 'fixture model: measures overheads more than model compute' : null,
      },
      machine: { cpus: cores, loadavg_start: loadStart, loadavg_end: loadEnd, node: process.version, onnxruntime: ort.env.versions.common },
      settings: { rows_per_input: nRows, clients, window, intra_op_threads: threads, batching: DEFAULT_BATCHING, limit_device: limitDevice },
      tokenization,
      throughput,
      pairpref: headlineRun,
      limit: { rows_per_s: round(limits[0]!.rows_per_s), seconds: round(limits[0]!.seconds, 3), padded_tokens: limits[0]!.padded_tokens },
      fixed_padding: {
        input: inputs[0]!.name,
        dynamic_rows_per_s: round(dynamic.rows_per_s),
        fixed_rows_per_s: round(fixed.rows_per_s),
        dynamic_padded_tokens: paddedTokens(dynamicPlan),
        fixed_padded_tokens: paddedTokens(fixedPlan),
      },
      naive,
      pytorch,
      latency: { half_peak_rate: round(halfRate), half_peak: open.latency, p99_over_p50: p99OverP50, single_row_unary: single.latency },
      scaling,
      tuning,
      ratios,
      targets: {
        vs_limit: target('>= 0.90', ratios.vs_limit, (v) => v >= 0.9),
        vs_naive: target('>= 3', ratios.vs_naive, (v) => v >= 3),
        vs_fixed_padding: target('>= 1.38', ratios.vs_fixed_padding, (v) => v >= 1.38),
        vs_pytorch: target('>= 1.5', ratios.vs_pytorch, (v) => v >= 1.5),
        half_peak_p99_over_p50: target('<= 2', p99OverP50, (v) => v <= 2),
      },
      notes,
      seconds: round((performance.now() - t0) / 1000, 1),
    };
  } finally {
    for (const s of servers) await s.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
