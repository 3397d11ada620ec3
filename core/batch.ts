// Pads encoded rows into the flat typed arrays of one model batch. Pure: the server wraps the
// arrays in onnxruntime-node tensors, the browser in onnxruntime-web ones.
import type { EncodedRow, SpecialTokensConfig } from './types.ts';

export interface PaddedBatch {
  readonly batchSize: number;
  /** Longest row of the batch: every row is padded to it. */
  readonly seqLen: number;
  /** [batchSize, seqLen], row-major. */
  readonly inputIds: BigInt64Array;
  readonly attentionMask: BigInt64Array;
  /** Index of each row's last real token in its padded row (label-token heads read there). */
  readonly lastIndex: Int32Array;
  /** [batchSize, numFeatures] or null when the rows carry none. */
  readonly features: Float32Array | null;
  readonly numFeatures: number;
}

/**
 * `padTo` widens the batch to at least that many tokens (the fixed max_length baseline of the
 * bench); by default a batch is as long as its longest row, and never 0 (a zero-length axis
 * breaks most graphs; an all-pad row of 1 is harmless, mask 0).
 */
export function padBatch(rows: readonly EncodedRow[], special: SpecialTokensConfig, padTo = 1): PaddedBatch {
  if (rows.length === 0) throw new Error('padBatch: empty batch');
  let seqLen = Math.max(1, padTo);
  for (const r of rows) if (r.ids.length > seqLen) seqLen = r.ids.length;
  const n = rows.length;
  const inputIds = new BigInt64Array(n * seqLen).fill(BigInt(special.pad_id));
  const attentionMask = new BigInt64Array(n * seqLen);
  const lastIndex = new Int32Array(n);
  const numFeatures = rows[0]?.features?.length ?? 0;
  const features = numFeatures > 0 ? new Float32Array(n * numFeatures) : null;
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    const len = row.ids.length;
    const start = special.padding_side === 'right' ? 0 : seqLen - len;
    const base = i * seqLen + start;
    for (let j = 0; j < len; j++) {
      inputIds[base + j] = BigInt(row.ids[j]!);
      attentionMask[base + j] = 1n;
    }
    lastIndex[i] = special.padding_side === 'right' ? Math.max(len - 1, 0) : seqLen - 1;
    if (features) {
      if (row.features?.length !== numFeatures) throw new Error('padBatch: rows disagree on the number of features');
      features.set(row.features, i * numFeatures);
    }
  }
  return { batchSize: n, seqLen, inputIds, attentionMask, lastIndex, features, numFeatures };
}

/** How rows are grouped into batches (the engine's scheduler, the bench's planned batches). */
export interface BatchingOptions {
  /** Padded tokens per batch (rows x longest row). A single longer row still runs alone. */
  readonly maxBatchTokens: number;
  readonly maxBatchSize: number;
  /** How long a row may wait for a fuller batch while a device is free. */
  readonly maxQueueDelayMs: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxBatchTokens: 8192, maxBatchSize: 64, maxQueueDelayMs: 2 };
