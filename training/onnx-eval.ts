// Loads a bundle directory (model.onnx + tokenizer.json + preference.json) through core/ and
// onnxruntime-node, the same path the server takes, and scores / evaluates / parity-checks it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  createPreprocessor,
  createTokenizer,
  resolvePreferenceConfig,
  swapComparison,
  type Comparison,
  type EncodedRow,
  type PreferenceConfig,
  type Preprocessor,
} from '../core/index.ts';
import { padBatch } from '../core/batch.ts';
import { probsFromSeqCls, type Probs } from '../core/postprocess.ts';
import { readArenaCsv, type LabelIndex } from './arena-csv.ts';
import { argmax3, rowLogLoss } from '../client/metrics.ts';
import { inputNames, ortFeeds } from '../server/backends/ort-feeds.ts';
import { sessionOptions } from '../server/backends/session-options.ts';

export interface LoadedBundle {
  readonly config: PreferenceConfig;
  readonly preprocessor: Preprocessor;
  readonly session: ort.InferenceSession;
  /** Scores rows as one padded batch. */
  score(rows: readonly EncodedRow[]): Promise<Probs[]>;
  close(): Promise<void>;
}

export async function loadBundle(dir: string, opts: { threads?: number } = {}): Promise<LoadedBundle> {
  const config = resolvePreferenceConfig(JSON.parse(readFileSync(join(dir, 'preference.json'), 'utf8')));
  const tokenizer = createTokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')));
  const preprocessor = createPreprocessor(config, tokenizer);
  const cpu = { name: 'cpu', provider: 'cpu', deviceId: 0 } as const;
  const session = await ort.InferenceSession.create(
    join(dir, 'model.onnx'),
    sessionOptions(cpu, opts.threads ?? 2) as ort.InferenceSession.SessionOptions,
  );
  if (config.head.kind !== 'seq-cls') throw new Error('training bundles use a seq-cls head');
  const output = config.head.output;
  return {
    config,
    preprocessor,
    session,
    async score(rows) {
      const b = padBatch(rows, config.special_tokens);
      const out = await session.run(ortFeeds(b, inputNames(config)));
      const logits = out[output];
      if (!logits) throw new Error(`model has no output ${output}`);
      return probsFromSeqCls(logits.data as Float32Array, b.batchSize);
    },
    close: () => session.release(),
  };
}

/** Scores rows in length-sorted batches (as the server does); results come back in input order. */
export async function scoreAll(bundle: LoadedBundle, rows: readonly EncodedRow[], batchSize = 16): Promise<Probs[]> {
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
export async function evaluateCsv(bundle: LoadedBundle, csv: string, limit = Infinity): Promise<EvalResult> {
  const t0 = Date.now();
  const fwd: EncodedRow[] = [];
  const swp: EncodedRow[] = [];
  const labels: LabelIndex[] = [];
  for await (const row of readArenaCsv(csv, limit)) {
    if (row.label === null) throw new Error(`${csv}: unlabeled row ${row.comparison.id}`);
    fwd.push(bundle.preprocessor.encode(row.comparison));
    swp.push(bundle.preprocessor.encode(swapComparison(row.comparison) as Comparison));
    labels.push(row.label);
  }
  const p = await scoreAll(bundle, fwd);
  const q = await scoreAll(bundle, swp);
  let nll = 0;
  let correct = 0;
  let sym = 0;
  labels.forEach((y, i) => {
    const pi = p[i]!;
    nll += rowLogLoss(pi, y); // the same clipping as pairpref eval
    if (argmax3(pi) === y) correct++;
    sym += Math.abs(pi[0] - q[i]![1]);
  });
  const n = labels.length;
  return {
    rows: n,
    log_loss: nll / n,
    accuracy: correct / n,
    symmetry: sym / n,
    truncated_fraction: fwd.filter((r) => r.truncated).length / n,
    seconds: (Date.now() - t0) / 1000,
  };
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
export async function checkParity(bundle: LoadedBundle, csv: string, reference: readonly ReferenceRow[]): Promise<ParityResult> {
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
