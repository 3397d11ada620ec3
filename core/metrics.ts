// Streaming evaluation metrics for 3-class preference predictions: multiclass log loss,
// accuracy, class counts and the confusion matrix, accumulated one row at a time.
import { LABELS, type LabelIndex } from './types.ts';

/**
 * Probabilities are clipped to [EPS, 1 - EPS] and each row renormalised to sum 1 before the log,
 * as sklearn.metrics.log_loss(eps=1e-15) does, so a confident miss costs ~34.5, not Infinity.
 */
export const LOG_LOSS_EPS = 1e-15;

export interface EvalReport {
  readonly log_loss: number;
  readonly accuracy: number;
  readonly n: number;
  /** True-label counts. */
  readonly class_counts: Record<(typeof LABELS)[number], number>;
  /** confusion[true][predicted], predicted = argmax (the first on ties), label order a, b, tie. */
  readonly confusion: number[][];
}

/** One row's log loss term: -log(p[label]) after clipping and renormalising. */
export function rowLogLoss(probs: readonly [number, number, number], label: LabelIndex): number {
  const clipped = probs.map((p) => Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, p)));
  const sum = clipped[0]! + clipped[1]! + clipped[2]!;
  return -Math.log(clipped[label]! / sum);
}

export function argmax3(p: readonly [number, number, number]): LabelIndex {
  return p[1] > p[0] ? (p[2] > p[1] ? 2 : 1) : p[2] > p[0] ? 2 : 0;
}

export class EvalAccumulator {
  private n = 0;
  private lossSum = 0;
  private correct = 0;
  private readonly confusion = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];

  add(probs: readonly [number, number, number], label: LabelIndex): void {
    this.n++;
    this.lossSum += rowLogLoss(probs, label);
    const pred = argmax3(probs);
    if (pred === label) this.correct++;
    this.confusion[label]![pred]!++;
  }

  report(): EvalReport {
    const counts = this.confusion.map((row) => row[0]! + row[1]! + row[2]!);
    return {
      log_loss: this.n ? this.lossSum / this.n : NaN,
      accuracy: this.n ? this.correct / this.n : NaN,
      n: this.n,
      class_counts: { winner_model_a: counts[0]!, winner_model_b: counts[1]!, winner_tie: counts[2]! },
      confusion: this.confusion.map((r) => [...r]),
    };
  }
}
