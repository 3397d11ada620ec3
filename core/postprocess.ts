// From model logits to label probabilities: softmax in float64, label-token picking, and the
// swap test-time augmentation's join. Pure.

export type Probs = readonly [number, number, number];

/** Softmax over 3 logits, in float64 so each row sums to 1 well within 1e-6. */
export function softmax3(l0: number, l1: number, l2: number): Probs {
  const m = Math.max(l0, l1, l2);
  const e0 = Math.exp(l0 - m);
  const e1 = Math.exp(l1 - m);
  const e2 = Math.exp(l2 - m);
  const s = e0 + e1 + e2;
  return [e0 / s, e1 / s, e2 / s];
}

/** One IEEE 754 half (its 16 bits) as a number. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/**
 * An output tensor's values as numbers, whatever onnxruntime returned them as: float32 as is,
 * float16 (bits in a Uint16Array, or a Float16Array where the platform has one) widened once,
 * exactly. Anything else is an error naming the type.
 */
export function logitsOf(type: string, data: unknown, what: string): ArrayLike<number> {
  if (type === 'float32' && data instanceof Float32Array) return data;
  if (type === 'float16') {
    if (data instanceof Uint16Array) {
      const out = new Float64Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = halfToNumber(data[i]!);
      return out;
    }
    // A Float16Array (ES2025) reads as numbers already.
    if (ArrayBuffer.isView(data) && !(data instanceof DataView) && (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT === 2) {
      return Float64Array.from(data as unknown as ArrayLike<number>);
    }
  }
  throw new Error(`${what} is ${type}, expected float32 or float16`);
}

/** seq-cls head: logits [batch, 3]. */
export function probsFromSeqCls(logits: ArrayLike<number>, batchSize: number): Probs[] {
  if (logits.length !== batchSize * 3) {
    throw new Error(`seq-cls head: expected ${batchSize * 3} logits ([batch, 3]), got ${logits.length}`);
  }
  const out: Probs[] = new Array(batchSize);
  for (let i = 0; i < batchSize; i++) out[i] = softmax3(logits[3 * i]!, logits[3 * i + 1]!, logits[3 * i + 2]!);
  return out;
}

/**
 * label-token head: LM logits [batch, vocab] (already at the answer position) or
 * [batch, seq, vocab] (read at each row's last real token), softmax over the 3 label tokens.
 */
export function probsFromLabelTokens(
  logits: ArrayLike<number>,
  dims: readonly number[],
  lastIndex: Int32Array,
  tokenIds: readonly [number, number, number],
): Probs[] {
  const batchSize = lastIndex.length;
  const vocab = dims[dims.length - 1]!;
  const seq = dims.length === 3 ? dims[1]! : 1;
  if (dims[0] !== batchSize || (dims.length !== 2 && dims.length !== 3)) {
    throw new Error(`label-token head: expected logits [batch, vocab] or [batch, seq, vocab], got [${dims.join(', ')}]`);
  }
  const out: Probs[] = new Array(batchSize);
  for (let i = 0; i < batchSize; i++) {
    const pos = dims.length === 3 ? lastIndex[i]! : 0;
    const base = (i * seq + pos) * vocab;
    out[i] = softmax3(logits[base + tokenIds[0]]!, logits[base + tokenIds[1]]!, logits[base + tokenIds[2]]!);
  }
  return out;
}

/**
 * Swap TTA: `swapped` scored (P, B, A), so its a/b are read back exchanged; probabilities
 * (not logits) are averaged, as the reference pipelines found better.
 */
export function joinSwapped(direct: Probs, swapped: Probs): Probs {
  return [(direct[0] + swapped[1]) / 2, (direct[1] + swapped[0]) / 2, (direct[2] + swapped[2]) / 2];
}
