// The graph inputs of one padded batch, named as preference.json names them. Pure: the caller
// passes its onnxruntime's tensor constructors (onnxruntime-node on the server and in training,
// onnxruntime-web in the browser), so every runtime feeds a batch the same way.
import type { PaddedBatch } from './batch.ts';
import type { ServedGraph } from './graph-edit.ts';
import type { PreferenceConfig } from './types.ts';

/** What the graph is fed from a padded batch (lastIndex only feeds an edited label-token graph). */
export type FeedBatch = Omit<PaddedBatch, 'lastIndex'> & { readonly lastIndex?: Int32Array };

export interface InputNames {
  readonly inputIds: string;
  readonly attentionMask: string | null;
  readonly features: string | null;
  /** 0..n-1 over each row's real tokens, computed from the mask (null: not fed). */
  readonly positionIds?: string | null;
  /** Zeros (null: not fed). */
  readonly tokenTypeIds?: string | null;
  /** row * seqLen + the row's last real position, int64 [batch] (an edited label-token graph). */
  readonly labelPositions?: string | null;
}

export interface TensorMaker<T> {
  int64(data: BigInt64Array, dims: readonly number[]): T;
  float32(data: Float32Array, dims: readonly number[]): T;
}

/**
 * The inputs to feed. position_ids and token_type_ids are fed only when declared and the served
 * graph has them; without a served graph (a session that does not say), they are not fed.
 */
export function inputNames(config: PreferenceConfig, graph?: ServedGraph): InputNames {
  const has = (name: string | undefined): string | null => (name !== undefined && graph?.inputs.includes(name) ? name : null);
  return {
    inputIds: config.inputs.input_ids,
    attentionMask: config.inputs.attention_mask,
    features: config.features?.input ?? null,
    positionIds: has(config.inputs.position_ids),
    tokenTypeIds: has(config.inputs.token_type_ids),
    labelPositions: graph?.labelPositions ?? null,
  };
}

/**
 * Position ids from the mask, as Hugging Face computes them for padded batches
 * (cumsum(mask) - 1, pads set to 1): each row's real tokens count 0, 1, ... from its first real
 * token, with right padding and with left padding alike.
 */
export function positionIds(mask: BigInt64Array, batchSize: number, seqLen: number): BigInt64Array {
  const out = new BigInt64Array(batchSize * seqLen);
  for (let i = 0; i < batchSize; i++) {
    let n = 0n;
    for (let j = 0; j < seqLen; j++) {
      const k = i * seqLen + j;
      out[k] = mask[k] === 0n ? 1n : n++;
    }
  }
  return out;
}

export function batchFeeds<T>(b: FeedBatch, names: InputNames, make: TensorMaker<T>): Record<string, T> {
  const dims = [b.batchSize, b.seqLen];
  const out: Record<string, T> = { [names.inputIds]: make.int64(b.inputIds, dims) };
  if (names.attentionMask) out[names.attentionMask] = make.int64(b.attentionMask, dims);
  if (names.positionIds) out[names.positionIds] = make.int64(positionIds(b.attentionMask, b.batchSize, b.seqLen), dims);
  if (names.tokenTypeIds) out[names.tokenTypeIds] = make.int64(new BigInt64Array(b.batchSize * b.seqLen), dims);
  if (names.labelPositions) {
    if (!b.lastIndex) throw new Error(`the graph takes ${names.labelPositions} but the batch carries no last positions`);
    const flat = new BigInt64Array(b.batchSize);
    for (let i = 0; i < b.batchSize; i++) flat[i] = BigInt(i * b.seqLen + b.lastIndex[i]!);
    out[names.labelPositions] = make.int64(flat, [b.batchSize]);
  }
  if (names.features) {
    if (!b.features) throw new Error(`the graph takes ${names.features} but the batch carries no features`);
    out[names.features] = make.float32(b.features, [b.batchSize, b.numFeatures]);
  }
  return out;
}
