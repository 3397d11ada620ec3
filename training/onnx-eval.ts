// Opens a bundle directory through runtime/node (the server's bundle loader and session options)
// and core's batch path, and scores / evaluates / parity-checks it.
import { argmax3, rowLogLoss } from '../core/metrics.ts';
import type { Probs } from '../core/postprocess.ts';
import { swapComparison, type Preprocessor } from '../core/preprocess.ts';
import { runBatch } from '../core/run-batch.ts';
import type { EncodedRow, PreferenceConfig } from '../core/types.ts';
import { CPU, createSession, loadBundle, type NodeSession } from '../runtime/node/index.ts';
import { readArenaCsv, type LabelIndex } from './arena-csv.ts';

export interface OpenBundle {
  readonly config: PreferenceConfig;
  readonly preprocessor: Preprocessor;
  readonly session: NodeSession;
  /** Scores rows as one padded batch, with the bundle's head (seq-cls or label-token). */
  score(rows: readonly EncodedRow[]): Promise<Probs[]>;
  close(): Promise<void>;
}

export async function openBundle(dir: string, opts: { threads?: number } = {}): Promise<OpenBundle> {
  const bundle = loadBundle(dir);
  const { config, preprocessor } = bundle;
  const session = await createSession(bundle, CPU, opts.threads ?? 2);
  return {
    config,
    preprocessor,
    session,
    score: (rows) => runBatch(session, config, rows),
    close: () => session.release(),
  };
}

/** Scores rows in length-sorted batches (as the server does); results come back in input order. */
export async function scoreAll(bundle: Pick<OpenBundle, 'score'>, rows: readonly EncodedRow[], batchSize = 16): Promise<Probs[]> {
  const order = rows.map((_, i) => i).sort((x, y) => rows[y]!.ids.length - rows[x]!.ids.length);
  const out: Probs[] = new Array(rows.length);
  for (let s = 0; s < order.length; s += batchSize) {
    const part = order.slice(s, s + batchSize);
    const probs = await bundle.score(part.map((i) => rows[i]!));
    part.forEach((i, j) => (out[i] = probs[j]!));
  }
  return out;
}

export interface EvalResult {
  readonly rows: number;
  readonly log_loss: number;
  readonly accuracy: number;
  /** mean |p_a(P,A,B) - p_b(P,B,A)|, no TTA. */
  readonly symmetry: number;
  readonly truncated_fraction: number;
  readonly seconds: number;
}

/** Log loss, accuracy and side symmetry of a bundle on a labeled CSV split. */
export async function evaluateCsv(bundle: OpenBundle, csv: string, limit = Infinity): Promise<EvalResult> {
  const t0 = Date.now();
  const fwd: EncodedRow[] = [];
  const swp: EncodedRow[] = [];
  const labels: LabelIndex[] = [];
  for await (const row of readArenaCsv(csv, limit)) {
    if (row.label === null) throw new Error(`${csv}: unlabeled row ${row.comparison.id}`);
    fwd.push(bundle.preprocessor.encode(row.comparison));
    swp.push(bundle.preprocessor.encode(swapComparison(row.comparison)));
    labels.push(row.label);
  }
  const p = await scoreAll(bundle, fwd);
  const q = await scoreAll(bundle, swp);
  let sym = 0;
  p.forEach((pi, i) => (sym += Math.abs(pi[0] - q[i]![1])));
  const n = labels.length;
  return {
    rows: n,
    ...lossAccuracy(p, labels),
    symmetry: sym / n,
    truncated_fraction: fwd.filter((r) => r.truncated).length / n,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Mean log loss (the same clipping as pairpref eval) and accuracy of probabilities against labels. */
export function lossAccuracy(probs: readonly Probs[], labels: readonly LabelIndex[]): { log_loss: number; accuracy: number } {
  let nll = 0;
  let correct = 0;
  labels.forEach((y, i) => {
    nll += rowLogLoss(probs[i]!, y);
    if (argmax3(probs[i]!) === y) correct++;
  });
  return { log_loss: nll / labels.length, accuracy: correct / labels.length };
}

export interface ReferenceRow {
  readonly id: string;
  readonly ids: number[];
  readonly features: number[] | null;
  readonly probs: [number, number, number];
}

export interface ParityResult {
  readonly rows: number;
  /** max |p_onnx - p_torch| over rows and labels. */
  readonly max_abs_diff: number;
  /** Rows whose core/ re-encoding differs from the ids PyTorch saw (must be 0). */
  readonly id_mismatches: number;
}

/** Re-encodes the reference rows from the CSV through core/ and compares onnxruntime with PyTorch. */
export async function checkParity(bundle: OpenBundle, csv: string, reference: readonly ReferenceRow[]): Promise<ParityResult> {
  const byId = new Map(reference.map((r) => [r.id, r] as const));
  const encoded = new Map<string, EncodedRow>();
  for await (const row of readArenaCsv(csv)) {
    if (byId.has(row.comparison.id)) encoded.set(row.comparison.id, bundle.preprocessor.encode(row.comparison));
    if (encoded.size === byId.size) break;
  }
  let idMismatches = 0;
  const rows = reference.map((r) => {
    const e = encoded.get(r.id);
    if (!e || e.ids.length !== r.ids.length || e.ids.some((v, i) => v !== r.ids[i])) idMismatches++;
    return e ?? { ids: Int32Array.from(r.ids), truncated: false, features: r.features && Float32Array.from(r.features) };
  });
  const probs = await scoreAll(bundle, rows);
  let maxDiff = 0;
  reference.forEach((r, i) => {
    for (let k = 0; k < 3; k++) maxDiff = Math.max(maxDiff, Math.abs(probs[i]![k]! - (r.probs[k] ?? Number.NaN)));
  });
  return { rows: reference.length, max_abs_diff: maxDiff, id_mismatches: idMismatches };
}
