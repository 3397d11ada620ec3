// Float16-compute graph vs the float32 one, through core/ preprocessing and onnxruntime-node on the
// CPU provider: max and mean |dp| over rows and labels, and the dev log loss of both.
//   npx tsx training/fp16-parity.ts [--bundle models/default] [--fp16 models/default/model.fp16.onnx]
//        [--also OTHER.onnx ...] [--rows N] [--threads 2] [--dump-optimized DIR]
// --rows N scores N rows spread evenly over the file (the split is ordered, hardest rows first);
// without it, every row. --also compares more graphs (e.g. fp16_compute.py --emulate's) the same way.
// The CPU provider has few float16 kernels: it runs most ops of the float16 graph in float32 between
// casts it inserts, and drops those casts between consecutive float32-run ops, so this measures
// float16 weights plus float16 activations only where the graph itself casts or a kernel exists;
// the --emulate graph rounds every activation (see training/fp16_compute.py). --dump-optimized writes
// onnxruntime's optimized graphs (what actually ran) for inspection.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { argmax3 } from '../core/metrics.ts';
import type { Probs } from '../core/postprocess.ts';
import { runBatch } from '../core/run-batch.ts';
import type { EncodedRow, PreferenceConfig } from '../core/types.ts';
import { CPU, loadBundle, openSession, sessionOptions } from '../runtime/node/index.ts';
import { evenlySpaced } from '../datasets/arena-file.ts';
import { readArenaCsv, type LabelIndex } from './arena-csv.ts';
import { lossAccuracy, scoreAll } from './onnx-eval.ts';

export const DEV = '../shared/data/alpaca-pairs-dev.csv.gz';

export interface GraphScore {
  readonly model: string;
  readonly log_loss: number;
  readonly accuracy: number;
  /** Against the float32 graph: max and mean |p - p32| over rows and the 3 labels. */
  readonly max_abs_dp: number;
  readonly mean_abs_dp: number;
  /** Rows whose argmax differs from the float32 graph's. */
  readonly argmax_changes: number;
  readonly seconds: number;
}

export interface ParityReport {
  readonly csv: string;
  readonly rows: number;
  /** "all" or "N of M, every k-th" */
  readonly subset: string;
  readonly float32: Omit<GraphScore, 'max_abs_dp' | 'mean_abs_dp' | 'argmax_changes'>;
  readonly others: GraphScore[];
}

export interface ParityOptions {
  readonly bundle?: string;
  /** Graphs to compare with the bundle's model.onnx. */
  readonly models: readonly string[];
  readonly csv?: string;
  /** Spread subset of this many rows; all rows when absent. */
  readonly rows?: number;
  readonly threads?: number;
  readonly batchSize?: number;
  readonly dumpOptimized?: string;
  readonly onProgress?: (line: string) => void;
}

/** Encoded dev rows and labels: all of them, or `n` spread evenly over the file. */
export async function loadRows(bundleDir: string, csv: string, n?: number): Promise<{ rows: EncodedRow[]; labels: LabelIndex[]; subset: string }> {
  const { preprocessor } = loadBundle(bundleDir);
  const all: { comparison: Parameters<typeof preprocessor.encode>[0]; label: LabelIndex }[] = [];
  for await (const r of readArenaCsv(csv)) {
    if (r.label === null) throw new Error(`${csv}: unlabeled row ${r.comparison.id}`);
    all.push({ comparison: r.comparison, label: r.label });
  }
  const picked = n ? evenlySpaced(all, n) : all;
  return {
    rows: picked.map((r) => preprocessor.encode(r.comparison)),
    labels: picked.map((r) => r.label),
    subset: picked.length === all.length ? 'all' : `${picked.length} of ${all.length}, evenly spread`,
  };
}

async function score(path: string, config: PreferenceConfig, rows: readonly EncodedRow[], o: ParityOptions, dumpName: string): Promise<{ probs: Probs[]; seconds: number }> {
  const options: Record<string, unknown> = sessionOptions(CPU, o.threads ?? 2);
  if (o.dumpOptimized) options.optimizedModelFilePath = join(o.dumpOptimized, dumpName);
  const session = await openSession(path, options);
  try {
    const t0 = Date.now();
    const probs = await scoreAll({ score: (batch) => runBatch(session, config, batch) }, rows, o.batchSize ?? 16);
    return { probs, seconds: (Date.now() - t0) / 1000 };
  } finally {
    await session.release();
  }
}

/** Scores rows with the bundle's float32 graph and with each of `models`, and compares. */
export async function compareGraphs(o: ParityOptions, data?: { rows: EncodedRow[]; labels: LabelIndex[]; subset: string }): Promise<ParityReport> {
  const bundle = o.bundle ?? 'models/default';
  const csv = o.csv ?? DEV;
  const { config, modelPath } = loadBundle(bundle);
  const { rows, labels, subset } = data ?? (await loadRows(bundle, csv, o.rows));
  o.onProgress?.(`${modelPath}: scoring ${rows.length} rows (${subset})`);
  const ref = await score(modelPath, config, rows, o, 'float32.onnx');
  const others: GraphScore[] = [];
  for (const [k, path] of o.models.entries()) {
    o.onProgress?.(`${path}: scoring ${rows.length} rows`);
    const got = await score(path, config, rows, o, `other${k}.onnx`);
    let max = 0;
    let sum = 0;
    let flips = 0;
    got.probs.forEach((p, i) => {
      const q = ref.probs[i]!;
      for (let j = 0; j < 3; j++) {
        const d = Math.abs(p[j]! - q[j]!);
        if (!(d <= max)) max = d; // NaN propagates
        sum += d;
      }
      if (argmax3(p) !== argmax3(q)) flips++;
    });
    others.push({ model: path, ...lossAccuracy(got.probs, labels), max_abs_dp: max, mean_abs_dp: sum / (3 * rows.length), argmax_changes: flips, seconds: got.seconds });
  }
  return { csv, rows: rows.length, subset, float32: { model: modelPath, ...lossAccuracy(ref.probs, labels), seconds: ref.seconds }, others };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      bundle: { type: 'string', default: 'models/default' },
      fp16: { type: 'string' },
      also: { type: 'string', multiple: true, default: [] },
      csv: { type: 'string', default: DEV },
      rows: { type: 'string' },
      threads: { type: 'string', default: '2' },
      'dump-optimized': { type: 'string' },
    },
  });
  const fp16 = values.fp16 ?? join(values.bundle, 'model.fp16.onnx');
  const report = await compareGraphs({
    bundle: values.bundle,
    models: [fp16, ...values.also],
    csv: values.csv,
    rows: values.rows ? Number(values.rows) : undefined,
    threads: Number(values.threads),
    dumpOptimized: values['dump-optimized'],
    onProgress: (line) => console.error(line),
  });
  console.log(JSON.stringify(report, null, 2));
}
