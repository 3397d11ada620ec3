// Peak memory of a label-token batch with and without the gather pairpref adds to the graph at load
// (core/graph-edit.ts), on the label-token fixture (test/fixtures/hf/label-token, vocab 32,000) or any
// label-token bundle. Each way runs in its own process (peak RSS is a per-process high-water mark):
//   full:   the graph as shipped; onnxruntime returns [batch, seq, vocab] float32 logits, which
//           onnxruntime-node copies into a JavaScript array; the head reads 3 numbers per row of it;
//   edited: the served graph; [batch, 3] comes back, and the LM head reads 3 of its vocab columns.
// Both compute the same probabilities (checked). Prints one JSON line.
//
//   tsx training/label-token-rss.ts [--bundle DIR] [--rows 8] [--seq 512] [--threads 1]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signatureOfModel } from '../core/graph-edit.ts';
import { readOnnxModel } from '../core/onnx-proto.ts';
import { runBatch } from '../core/run-batch.ts';
import type { EncodedRow } from '../core/types.ts';
import { fileByteSource } from '../runtime/node/model-file.ts';
import { CPU, loadBundle, openSession, sessionOptions } from '../runtime/node/index.ts';

const DEFAULT_BUNDLE = fileURLToPath(new URL('../test/fixtures/hf/label-token', import.meta.url));

export interface RssRun {
  readonly mode: 'full' | 'edited';
  /** Peak RSS (MiB) once the session is open and has run one short batch. */
  readonly loadedMiB: number;
  /** Peak RSS (MiB) after the measured batch. */
  readonly peakMiB: number;
  readonly edits: readonly string[];
  readonly probs: number[][];
}

export interface RssReport {
  readonly bundle: string;
  readonly rows: number;
  readonly seq: number;
  readonly vocab: number;
  /** Size of the full float32 logits tensor, MiB. */
  readonly logitsMiB: number;
  readonly full: Omit<RssRun, 'probs'>;
  readonly edited: Omit<RssRun, 'probs'>;
  /** full.peak - edited.peak (MiB). */
  readonly savedMiB: number;
  readonly maxProbDiff: number;
}

const mib = (kb: number): number => Math.round((kb / 1024) * 10) / 10;

/** Rows of exactly `seq` tokens (ids from a fixed generator below the tokenizer's vocabulary). */
function rows(n: number, seq: number, vocab: number, bos: number | null): EncodedRow[] {
  let s = 12345;
  return Array.from({ length: n }, () => {
    const ids = new Int32Array(seq);
    for (let j = 0; j < seq; j++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      ids[j] = j === 0 && bos !== null ? bos : s % vocab;
    }
    return { ids, truncated: false, features: null };
  });
}

async function child(mode: 'full' | 'edited', dir: string, n: number, seq: number, threads: number): Promise<RssRun> {
  const bundle = loadBundle(dir);
  const session = await openSession(bundle.modelPath, sessionOptions(CPU, threads), mode === 'edited' ? bundle.config : undefined);
  const tokVocab = 1 + Math.max(...Object.values((bundle.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab));
  await runBatch(session, bundle.config, rows(1, 8, tokVocab, bundle.config.special_tokens.bos_id));
  const loaded = process.resourceUsage().maxRSS;
  const probs = await runBatch(session, bundle.config, rows(n, seq, tokVocab, bundle.config.special_tokens.bos_id));
  const peak = process.resourceUsage().maxRSS;
  await session.release();
  return { mode, loadedMiB: mib(loaded), peakMiB: mib(peak), edits: session.edits, probs: probs.map((p) => [...p]) };
}

function runChild(mode: 'full' | 'edited', dir: string, n: number, seq: number, threads: number): RssRun {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', mode, '--bundle', dir, '--rows', String(n), '--seq', String(seq), '--threads', String(threads)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`${mode} run failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as RssRun;
}

export function measureLabelTokenRss(opts: { bundle?: string; rows?: number; seq?: number; threads?: number } = {}): RssReport {
  const dir = opts.bundle ?? DEFAULT_BUNDLE;
  const n = opts.rows ?? 8;
  const seq = opts.seq ?? 512;
  const threads = opts.threads ?? 1;
  const bundle = loadBundle(dir);
  if (bundle.config.head.kind !== 'label-token') throw new Error(`${dir} is not a label-token bundle`);
  const full = runChild('full', dir, n, seq, threads);
  const edited = runChild('edited', dir, n, seq, threads);
  const vocab = vocabOf(bundle.modelPath, bundle.config.head.output);
  const maxProbDiff = Math.max(...full.probs.flatMap((p, i) => p.map((x, k) => Math.abs(x - edited.probs[i]![k]!))));
  const strip = ({ probs: _p, ...rest }: RssRun): Omit<RssRun, 'probs'> => rest;
  return {
    bundle: dir,
    rows: n,
    seq,
    vocab,
    logitsMiB: Math.round(((n * seq * vocab * 4) / 2 ** 20) * 10) / 10,
    full: strip(full),
    edited: strip(edited),
    savedMiB: Math.round((full.peakMiB - edited.peakMiB) * 10) / 10,
    maxProbDiff,
  };
}

/** The vocabulary of the bundle's LM logits (the last dim of head.output, as the graph declares it). */
function vocabOf(modelPath: string, output: string): number {
  const src = fileByteSource(modelPath);
  try {
    const out = signatureOfModel(readOnnxModel(src)).outputs.find((o) => o.name === output);
    const v = out?.shape[out.shape.length - 1];
    if (typeof v !== 'number') throw new Error(`${modelPath}: "${output}" has no static vocabulary dimension`);
    return v;
  } finally {
    src.close();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const n = Number(opt('--rows') ?? 8);
  const seq = Number(opt('--seq') ?? 512);
  const threads = Number(opt('--threads') ?? 1);
  const dir = opt('--bundle') ?? DEFAULT_BUNDLE;
  const mode = opt('--child');
  if (mode === 'full' || mode === 'edited') {
    console.log(JSON.stringify(await child(mode, dir, n, seq, threads)));
    return;
  }
  console.log(JSON.stringify(measureLabelTokenRss({ bundle: dir, rows: n, seq, threads })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
