// The graph inputs of one padded batch, named as preference.json names them. Pure: the caller
// passes its onnxruntime's tensor constructors (onnxruntime-node on the server and in training,
// onnxruntime-web in the browser), so every runtime feeds a batch the same way.
import type { PaddedBatch } from './batch.ts';
import type { PreferenceConfig } from './types.ts';

/** What the graph is fed from a padded batch (lastIndex stays with the caller). */
export type FeedBatch = Omit<PaddedBatch, 'lastIndex'>;

export interface InputNames {
  readonly inputIds: string;
  readonly attentionMask: string | null;
  readonly features: string | null;
}

export interface TensorMaker<T> {
  int64(data: BigInt64Array, dims: readonly number[]): T;
  float32(data: Float32Array, dims: readonly number[]): T;
}

export function inputNames(config: PreferenceConfig): InputNames {
  return { inputIds: config.inputs.input_ids, attentionMask: config.inputs.attention_mask, features: config.features?.input ?? null };
}

export function batchFeeds<T>(b: FeedBatch, names: InputNames, make: TensorMaker<T>): Record<string, T> {
  const dims = [b.batchSize, b.seqLen];
  const out: Record<string, T> = { [names.inputIds]: make.int64(b.inputIds, dims) };
  if (names.attentionMask) out[names.attentionMask] = make.int64(b.attentionMask, dims);
  if (names.features) {
    if (!b.features) throw new Error(`the graph takes ${names.features} but the batch carries no features`);
    out[names.features] = make.float32(b.features, [b.batchSize, b.numFeatures]);
  }
  return out;
}
