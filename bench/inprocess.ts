// In-process onnxruntime-node loops with no gRPC and no queue: the limit the server is measured
// against, the fixed-padding baseline and the graph-optimisation / token-budget sweeps.
import * as ort from 'onnxruntime-node';
import { padBatch, type PaddedBatch } from '../core/batch.ts';
import type { PreferenceConfig } from '../core/types.ts';
import type { PlannedBatch } from './batches.ts';
import { sessionOptions, type GraphOptLevel } from '../server/backends/session-options.ts';
import { inputNames, ortFeeds } from '../server/backends/ort-feeds.ts';
import { resolveDevices } from '../server/devices.ts';

export type { GraphOptLevel };

/** A session with the server's options (server/backends/session-options.ts), optimisation level open for sweeps. */
export function createCpuSession(modelPath: string, threads: number, level: GraphOptLevel = 'all', device = 'cpu', allowSpinning = false): Promise<ort.InferenceSession> {
  const spec = resolveDevices(device).devices[0]!;
  return ort.InferenceSession.create(modelPath, sessionOptions(spec, threads, { graphOptimizationLevel: level, allowSpinning }) as ort.InferenceSession.SessionOptions);
}

/** padBatch, then widened to padTo tokens when the plan pads to a fixed length. */
function materialize(b: PlannedBatch, config: PreferenceConfig): PaddedBatch {
  const p = padBatch(b.rows, config.special_tokens);
  if (!b.padTo || b.padTo <= p.seqLen) return p;
  const n = p.batchSize;
  const t = b.padTo;
  const inputIds = new BigInt64Array(n * t).fill(BigInt(config.special_tokens.pad_id));
  const attentionMask = new BigInt64Array(n * t);
  const shift = config.special_tokens.padding_side === 'right' ? 0 : t - p.seqLen;
  for (let i = 0; i < n; i++) {
    inputIds.set(p.inputIds.subarray(i * p.seqLen, (i + 1) * p.seqLen), i * t + shift);
    attentionMask.set(p.attentionMask.subarray(i * p.seqLen, (i + 1) * p.seqLen), i * t + shift);
  }
  const lastIndex = p.lastIndex.map((x) => x + shift);
  return { ...p, seqLen: t, inputIds, attentionMask, lastIndex };
}

export function feeds(p: PaddedBatch, config: PreferenceConfig): Record<string, ort.Tensor> {
  return ortFeeds(p, inputNames(config));
}

export interface LoopResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly padded_tokens: number;
  readonly batches: number;
}

/** Runs every batch once (padding included in the timing, as the server pads too). */
export async function runBatches(session: ort.InferenceSession, batches: readonly PlannedBatch[], config: PreferenceConfig): Promise<LoopResult> {
  const out = [config.head.output];
  let rows = 0;
  let padded = 0;
  const t0 = performance.now();
  for (const b of batches) {
    const p = materialize(b, config);
    await session.run(feeds(p, config), out);
    rows += p.batchSize;
    padded += p.batchSize * p.seqLen;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { rows, seconds, rows_per_s: rows / seconds, padded_tokens: padded, batches: batches.length };
}

/** One untimed run of a few batches of different shapes: first-run allocations and kernel choice. */
export async function warm(session: ort.InferenceSession, batches: readonly PlannedBatch[], config: PreferenceConfig): Promise<number> {
  const pick = [...new Set([0, 1, Math.floor(batches.length / 2), batches.length - 1])].filter((i) => i >= 0 && i < batches.length);
  const t0 = performance.now();
  await runBatches(session, pick.map((i) => batches[i]!), config);
  return performance.now() - t0;
}

/** Padded batches ready to feed, so a timed loop measures session.run alone. */
export function prepare(batches: readonly PlannedBatch[], config: PreferenceConfig): PaddedBatch[] {
  return batches.map((b) => materialize(b, config));
}

export async function runPrepared(session: ort.InferenceSession, batches: readonly PaddedBatch[], config: PreferenceConfig): Promise<LoopResult> {
  const out = [config.head.output];
  const all = batches.map((p) => feeds(p, config));
  const t0 = performance.now();
  for (const f of all) await session.run(f, out);
  const seconds = (performance.now() - t0) / 1000;
  const rows = batches.reduce((s, p) => s + p.batchSize, 0);
  return { rows, seconds, rows_per_s: rows / seconds, padded_tokens: batches.reduce((s, p) => s + p.batchSize * p.seqLen, 0), batches: batches.length };
}
