// The one batch path of pairpref: encoded rows -> padded batch -> graph feeds -> session.run ->
// head -> finite check -> probabilities. The server's device workers, the in-process engine, the
// bench's limit and naive peer, training evaluation and the browser page all run batches through
// here; a runtime supplies only its tensor constructor and its session.run.
import { padBatch } from './batch.ts';
import { batchFeeds, inputNames, type TensorMaker } from './feeds.ts';
import type { ServedGraph } from './graph-edit.ts';
import { logitsOf, probsFromLabelTokens, probsFromSeqCls, type Probs } from './postprocess.ts';
import type { EncodedRow, PreferenceConfig } from './types.ts';

/** One output tensor as a runtime read it back. */
export interface OutputTensor {
  /** onnxruntime's tensor type name ("float32", "float16", ...). */
  readonly type: string;
  readonly data: unknown;
  readonly dims: readonly number[];
}

/** What a runtime gives the batch path: tensors of its own kind, and one session.run fetching one output. */
export interface SessionRun<T> {
  readonly tensors: TensorMaker<T>;
  run(feeds: Record<string, T>, output: string): Promise<OutputTensor>;
  /**
   * The graph the session serves (core/graph-edit.ts): its inputs, and the output to fetch when the
   * runtime edited it at load. Absent: preference.json's inputs and head.output as they are.
   */
  readonly graph?: ServedGraph;
}

/** A batch ready to feed: what is left of a run is session.run and the head. */
export interface PreparedBatch<T> {
  readonly feeds: Record<string, T>;
  /** Each row's last real token (label-token heads read there). */
  readonly lastIndex: Int32Array;
  readonly batchSize: number;
  readonly seqLen: number;
  /** The served graph the feeds were built for (absent: the graph as preference.json describes it). */
  readonly graph?: ServedGraph;
}

/**
 * Pads rows (to their longest, or to `padTo` for the fixed-padding baseline) and builds the feeds
 * (for `graph`, the session's served graph, when given).
 */
export function prepareBatch<T>(rows: readonly EncodedRow[], config: PreferenceConfig, tensors: TensorMaker<T>, padTo = 1, graph?: ServedGraph): PreparedBatch<T> {
  const b = padBatch(rows, config.special_tokens, padTo);
  const prepared = { feeds: batchFeeds(b, inputNames(config, graph), tensors), lastIndex: b.lastIndex, batchSize: b.batchSize, seqLen: b.seqLen };
  return graph ? { ...prepared, graph } : prepared;
}

/**
 * The head of the bundle applied to the output: one probability triple per row, all finite.
 * float16 logits are widened once; softmax runs in float64. `labelLogits`: the output is already the
 * [batch, 3] label logits of an edited label-token graph.
 */
export function headProbs(config: PreferenceConfig, out: OutputTensor, lastIndex: Int32Array, labelLogits = false): Probs[] {
  const logits = logitsOf(out.type, out.data, `output "${config.head.output}"`);
  const probs =
    config.head.kind === 'seq-cls' || labelLogits
      ? probsFromSeqCls(logits, lastIndex.length)
      : probsFromLabelTokens(logits, out.dims, lastIndex, config.head.token_ids);
  for (const p of probs) {
    if (!p.every(Number.isFinite)) throw new Error('the model produced non-finite logits');
  }
  return probs;
}

/** The output a prepared batch fetches: its served graph's (an edited head), else the head's in preference.json. */
export function outputOf(config: PreferenceConfig, batch: PreparedBatch<unknown>): string {
  return batch.graph?.output ?? config.head.output;
}

/** A prepared batch's fetched output -> probabilities, read as the graph it was prepared for serves them. */
export function batchProbs(config: PreferenceConfig, batch: PreparedBatch<unknown>, out: OutputTensor): Probs[] {
  return headProbs(config, out, batch.lastIndex, batch.graph?.labelLogits ?? false);
}

export async function runPrepared<T>(session: SessionRun<T>, config: PreferenceConfig, batch: PreparedBatch<T>): Promise<Probs[]> {
  return batchProbs(config, batch, await session.run(batch.feeds, outputOf(config, batch)));
}

/** One result per row, in order. */
export function runBatch<T>(session: SessionRun<T>, config: PreferenceConfig, rows: readonly EncodedRow[]): Promise<Probs[]> {
  return runPrepared(session, config, prepareBatch(rows, config, session.tensors, 1, session.graph));
}
