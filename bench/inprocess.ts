// In-process onnxruntime-node loops with no gRPC and no queue: the limit the server is measured
// against, the fixed-padding baseline and the graph-optimisation / token-budget sweeps. Batches go
// through core's batch path (prepareBatch, session.run, headProbs) with runtime/node's sessions.
import type { Tensor } from 'onnxruntime-node';
import { batchProbs, outputOf, prepareBatch, runPrepared, type OutputTensor, type PreparedBatch } from '../core/run-batch.ts';
import type { Probs } from '../core/postprocess.ts';
import type { EncodedRow, PreferenceConfig } from '../core/types.ts';
import { createSession, resolveDevices, type GraphOptLevel, type NodeSession } from '../runtime/node/index.ts';
import type { PlannedBatch } from './batches.ts';

export type { GraphOptLevel, NodeSession };
type Prepared = PreparedBatch<Tensor>;

/** A session with the server's options (runtime/node/session-options.ts), optimisation level open for sweeps. */
export function createCpuSession(bundle: { readonly modelPath: string; readonly config: PreferenceConfig }, threads: number, level: GraphOptLevel = 'all', device = 'cpu', allowSpinning = false): Promise<NodeSession> {
  const spec = resolveDevices(device).devices[0]!;
  return createSession(bundle, spec, threads, { graphOptimizationLevel: level, allowSpinning });
}

export interface LoopResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  readonly padded_tokens: number;
  readonly batches: number;
}

function loopResult(batches: readonly Prepared[], seconds: number): LoopResult {
  const rows = batches.reduce((s, p) => s + p.batchSize, 0);
  return { rows, seconds, rows_per_s: rows / seconds, padded_tokens: batches.reduce((s, p) => s + p.batchSize * p.seqLen, 0), batches: batches.length };
}

/** Padded batches ready to feed (padTo for the fixed-padding plan), so a timed loop measures session.run alone. */
export function prepare(session: NodeSession, batches: readonly PlannedBatch[], config: PreferenceConfig): Prepared[] {
  return batches.map((b) => prepareBatch(b.rows, config, session.tensors, b.padTo, session.graph));
}

/** Runs every batch once with padding inside the timing (as the server pads too). */
export async function runBatches(session: NodeSession, batches: readonly PlannedBatch[], config: PreferenceConfig): Promise<LoopResult> {
  const t0 = performance.now();
  const prepared: Prepared[] = [];
  for (const b of batches) {
    const p = prepareBatch(b.rows, config, session.tensors, b.padTo, session.graph);
    await runPrepared(session, config, p);
    prepared.push(p);
  }
  return loopResult(prepared, (performance.now() - t0) / 1000);
}

/**
 * The limit: session.run alone over batches prepared before the clock starts. The outputs are read
 * through the bundle's head after the clock stops, so the limit is a valid run of any head kind.
 */
export async function runPreparedLoop(session: NodeSession, batches: readonly Prepared[], config: PreferenceConfig): Promise<LoopResult> {
  const outputs: OutputTensor[] = [];
  const t0 = performance.now();
  for (const p of batches) outputs.push(await session.run(p.feeds, outputOf(config, p)));
  const seconds = (performance.now() - t0) / 1000;
  outputs.forEach((o, i) => batchProbs(config, batches[i]!, o));
  return loopResult(batches, seconds);
}

/** One untimed run of a few batches of different shapes: first-run allocations and kernel choice. */
export async function warm(session: NodeSession, batches: readonly PlannedBatch[], config: PreferenceConfig): Promise<number> {
  const pick = [...new Set([0, 1, Math.floor(batches.length / 2), batches.length - 1])].filter((i) => i >= 0 && i < batches.length);
  const t0 = performance.now();
  await runBatches(session, pick.map((i) => batches[i]!), config);
  return performance.now() - t0;
}

/** Probabilities of rows as one batch (the PyTorch peer's cross-check). */
export function probsOfRows(session: NodeSession, rows: readonly EncodedRow[], config: PreferenceConfig): Promise<Probs[]> {
  return runPrepared(session, config, prepareBatch(rows, config, session.tensors, 1, session.graph));
}
