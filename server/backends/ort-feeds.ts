// The input tensors of one padded batch, named as the bundle's graph names them. One place for the
// server's device worker, the in-process bench and training's evaluation, so they feed alike.
import * as ort from 'onnxruntime-node';
import type { PreferenceConfig } from '../../core/index.ts';
import type { PaddedBatch } from '../../core/batch.ts';
import type { FeedNames } from './runner.ts';

/** What the graph is fed from a padded batch (lastIndex stays on the main thread). */
export type FeedBatch = Omit<PaddedBatch, 'lastIndex'>;

export type InputNames = Pick<FeedNames, 'inputIds' | 'attentionMask' | 'features'>;

export function inputNames(config: PreferenceConfig): InputNames {
  return { inputIds: config.inputs.input_ids, attentionMask: config.inputs.attention_mask, features: config.features?.input ?? null };
}

export function ortFeeds(b: FeedBatch, names: InputNames): Record<string, ort.Tensor> {
  const dims = [b.batchSize, b.seqLen];
  const out: Record<string, ort.Tensor> = { [names.inputIds]: new ort.Tensor('int64', b.inputIds, dims) };
  if (names.attentionMask) out[names.attentionMask] = new ort.Tensor('int64', b.attentionMask, dims);
  if (names.features) {
    if (!b.features) throw new Error(`the graph takes ${names.features} but the batch carries no features`);
    out[names.features] = new ort.Tensor('float32', b.features, [b.batchSize, b.numFeatures]);
  }
  return out;
}
