// The whole training pipeline, one command: tokenizer -> core/ shards -> PyTorch training ->
// ONNX export -> onnxruntime parity -> dev / out-of-domain evaluation -> golden rows.
//   npm run train              full run into models/default (see models/default/MODEL_CARD.md)
//   npm run train:smoke        ~200 rows, tiny model, into training/out/smoke (what CI runs)
//   npm run train -- --resume  reuse members already trained from the same shards and arguments
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeSplits } from './encode-splits.ts';
import { checkParity, evaluateCsv, openBundle, type EvalResult, type OpenBundle, type ParityResult, type ReferenceRow } from './onnx-eval.ts';
import { canReuseMember, shardsDigest, stampPath, writeStamp } from './member-stamp.ts';
import { assertPythonTorch, runPython } from '../platform/python.ts';
import { checkTokenizerParity, EDGE_STRINGS, sampleStrings, type ParityResult as TokenizerParity } from './tokenizer-parity.ts';
import { trainTokenizer, writeCorpus } from './tokenizer-train.ts';

/** A Python step of this folder (train.py, export.py). */
const script = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

export interface PipelineOptions {
  readonly data: string;
  readonly out: string;
  readonly work: string;
  readonly vocab: number;
  readonly trainLimit?: number;
  readonly devLimit?: number;
  readonly hhLimit?: number;
  readonly epochs: number;
  readonly d: number;
  readonly layers: number;
  readonly heads: number;
  readonly ffn: number;
  readonly batch: number;
  readonly dropout: number;
  /**
   * The ensemble: each member is trained on its own shards (budget truncation at its max_length)
   * with its seed; the graph averages their probabilities. The bundle serves the longest view and
   * the graph re-truncates it for shorter members (export.py checks this gives the shards' ids).
   */
  readonly members: readonly MemberSpec[];
  /** Store weights as float16 in model.onnx (float32 compute): half the bundle; max |dp| 6.4e-5 from float32 on the shipped members. */
  readonly fp16Weights: boolean;
  /** Skip training a member whose checkpoint was made from identical shards and arguments. */
  readonly resume?: boolean;
  readonly lr: number;
  readonly devEvalRows: number;
  readonly evalsPerEpoch: number;
  readonly maxMinutes: number;
  readonly tokenizerParityRows: number;
  readonly goldenRows: number;
  readonly name: string;
  readonly version: string;
}

export interface MemberSpec {
  readonly maxLength: number;
  readonly seed: number;
}

export const SMOKE: Partial<PipelineOptions> = {
  vocab: 600, trainLimit: 200, devLimit: 48, hhLimit: 16, epochs: 1, d: 16, layers: 1, heads: 2, ffn: 32,
  batch: 16, members: [{ maxLength: 96, seed: 1234 }, { maxLength: 64, seed: 1235 }], fp16Weights: true, devEvalRows: 32, evalsPerEpoch: 1, tokenizerParityRows: 20, goldenRows: 4,
};

export const FULL: PipelineOptions = {
  data: '../shared/data',
  out: 'models/default',
  work: 'training/out/run',
  vocab: 16000,
  epochs: 1,
  d: 128,
  layers: 1,
  heads: 4,
  ffn: 256,
  batch: 32,
  dropout: 0.15,
  // The 256-token pair is the 1.0.0 bundle's; MODEL_CARD "Members and combinations" scores every subset.
  members: [{ maxLength: 512, seed: 1234 }, { maxLength: 256, seed: 1234 }, { maxLength: 256, seed: 1235 }],
  // Three members in float32 are about 29 MB, over the 25 MB bundle limit; float16 storage halves that.
  fp16Weights: true,
  lr: 1e-3,
  devEvalRows: 1000,
  evalsPerEpoch: 4,
  maxMinutes: 45,
  tokenizerParityRows: 100,
  goldenRows: 8,
  name: 'pairpref-default',
  version: '2.0.0',
};

export interface PipelineResult {
  readonly minutes: Record<string, number>;
  readonly dev: EvalResult;
  readonly hh: EvalResult | null;
  readonly parity: { rows: number; max_abs_diff: number; id_mismatches: number };
  readonly tokenizer_parity: { checked: number; mismatches: number };
  readonly latency_ms_one_row: number;
  readonly bundle_bytes: number;
  readonly params: number;
  readonly training: readonly MemberSummary[];
  /** Members taken from an earlier run by --resume; their training time is in training[m].train_minutes. */
  readonly reused_members: readonly number[];
  /** export.py's check that the graph's re-truncation for each shorter member equals core/'s shards. */
  readonly views: readonly ViewCheck[];
}

interface ViewCheck {
  readonly view_max_length: number;
  readonly rows: number;
  readonly mismatches: number;
}

/** The parts of train.py's model<m>.json the pipeline reads. */
interface MemberSummary {
  readonly params: number;
  readonly train_minutes: number;
}

/** Where a run reads and writes: the data files and the shard folder of each member length. */
interface RunLayout {
  readonly trainCsv: string;
  readonly devCsv: string;
  readonly hhCsv: string;
  /** The members' distinct max lengths, ascending. */
  readonly lengths: readonly number[];
  readonly maxLength: number;
  readonly shardDir: (len: number) => string;
}

/** What exporting and checking parity produced. */
interface Exported {
  readonly views: ViewCheck[];
  readonly reference: ReferenceRow[];
  readonly bundle: OpenBundle;
  readonly parity: ParityResult;
}

/** Per-step minutes: mark(step) records the time since the previous mark and logs it. */
function stepTimer(log: (m: string) => void): { minutes: Record<string, number>; mark: (step: string) => void } {
  const minutes: Record<string, number> = {};
  let tStep = Date.now();
  const mark = (step: string): void => {
    minutes[step] = (Date.now() - tStep) / 60000;
    log(`[pipeline] ${step} done in ${(minutes[step] * 60).toFixed(1)} s`);
    tStep = Date.now();
  };
  return { minutes, mark };
}

/** Checks the inputs and creates the output and shard folders. */
function layoutRun(o: PipelineOptions): RunLayout {
  const csv = (name: string): string => join(o.data, name);
  const trainCsv = csv('alpaca-pairs-train.csv.gz');
  const devCsv = csv('alpaca-pairs-dev.csv.gz');
  const hhCsv = csv('hh-harmless-test.csv.gz');
  for (const f of [trainCsv, devCsv]) if (!existsSync(f)) throw new Error(`missing data file ${f}`);
  if (o.members.length === 0) throw new Error('no ensemble members');
  const lengths = [...new Set(o.members.map((m) => m.maxLength))].sort((a, b) => a - b);
  const maxLength = lengths[lengths.length - 1]!;
  const shardDir = (len: number): string => join(o.work, `shards-${len}`);
  mkdirSync(o.out, { recursive: true });
  for (const len of lengths) mkdirSync(shardDir(len), { recursive: true });
  return { trainCsv, devCsv, hhCsv, lengths, maxLength, shardDir };
}

/** Step 1: the tokenizer on the train split only, then JS-vs-native id parity. */
async function buildTokenizer(o: PipelineOptions, l: RunLayout, log: (m: string) => void): Promise<TokenizerParity> {
  const corpus = join(o.work, 'corpus.txt');
  const lines = await writeCorpus(l.trainCsv, corpus, o.trainLimit);
  const tokPath = join(o.out, 'tokenizer.json');
  const vocab = trainTokenizer(corpus, tokPath, o.vocab);
  rmSync(tokPath + '.raw.json', { force: true });
  rmSync(corpus, { force: true });
  const texts = [
    ...EDGE_STRINGS,
    ...(await sampleStrings(l.trainCsv, o.tokenizerParityRows)),
    ...(await sampleStrings(l.devCsv, o.tokenizerParityRows)),
  ];
  const tp = await checkTokenizerParity(readFileSync(tokPath, 'utf8'), texts);
  if (tp.mismatches.length > 0) throw new Error(`tokenizer: JS and native ids differ on ${tp.mismatches.length} strings`);
  log(`[pipeline] tokenizer: ${vocab} ids from ${lines} texts; JS == native on ${tp.checked} strings`);
  return tp;
}

/** Step 2: shards through core/, one set per member length; the bundle's preference.json is the longest. */
async function encodeShards(o: PipelineOptions, l: RunLayout, log: (m: string) => void): Promise<void> {
  // Each length is encoded by core/ itself rather than cut from the longest: shorter members train on
  // the ids core/ produces, and those are what export.py checks the graph's own cut against.
  for (const len of l.lengths) {
    await encodeSplits({
      bundleDir: o.out,
      shardDir: l.shardDir(len),
      maxLength: len,
      writePreference: len === l.maxLength,
      name: o.name,
      version: o.version,
      splits: [
        { split: 'train', csv: l.trainCsv, ...(o.trainLimit === undefined ? {} : { limit: o.trainLimit }) },
        { split: 'dev', csv: l.devCsv, ...(o.devLimit === undefined ? {} : { limit: o.devLimit }) },
      ],
      log,
    });
  }
}

/** Step 3: train the ensemble members, each on the shards of its length (or reuse them under --resume). */
async function trainMembers(o: PipelineOptions, l: RunLayout, log: (m: string) => void): Promise<{ ckpts: string[]; training: MemberSummary[]; reused: number[] }> {
  const digests = new Map(l.lengths.map((len) => [len, shardsDigest(l.shardDir(len))]));
  const ckpts: string[] = [];
  const training: MemberSummary[] = [];
  const reused: number[] = [];
  for (const [m, member] of o.members.entries()) {
    const ckpt = join(o.work, `model${m}.pt`);
    const args = [
      '--shards', l.shardDir(member.maxLength), '--out', ckpt, '--epochs', String(o.epochs), '--batch', String(o.batch), '--lr', String(o.lr),
      '--dropout', String(o.dropout), '--d', String(o.d), '--layers', String(o.layers), '--heads', String(o.heads),
      '--ffn', String(o.ffn), '--dev-eval-rows', String(o.devEvalRows), '--evals-per-epoch', String(o.evalsPerEpoch),
      '--max-minutes', String(o.maxMinutes), '--seed', String(member.seed),
    ];
    const stamp = { trainArgs: args, shards: digests.get(member.maxLength)! };
    if (o.resume && canReuseMember(o.work, m, stamp)) {
      log(`[pipeline] member ${m}: reusing ${ckpt} (same shards and arguments)`);
      reused.push(m);
    } else {
      rmSync(stampPath(o.work, m), { force: true }); // an interrupted retrain must not look finished
      await runPython(script('train.py'), args, (line) => log(`  [member ${m}] ${line}`));
      writeStamp(o.work, m, stamp);
    }
    ckpts.push(ckpt);
    training.push(JSON.parse(readFileSync(join(o.work, `model${m}.json`), 'utf8')) as MemberSummary);
  }
  return { ckpts, training, reused };
}

/** Step 4: export + 5: parity with onnxruntime-node on 256 dev rows re-encoded through core/. */
async function exportAndCheck(o: PipelineOptions, l: RunLayout, ckpts: readonly string[], log: (m: string) => void): Promise<Exported> {
  const refPath = join(o.work, 'reference.json');
  const views: ViewCheck[] = [];
  await runPython(script('export.py'), ['--ckpt', ...ckpts, '--shards', l.shardDir(l.maxLength),
    ...l.lengths.filter((len) => len < l.maxLength).flatMap((len) => ['--view-shards', l.shardDir(len)]), '--onnx', join(o.out, 'model.onnx'),
    '--reference', refPath, '--rows', '256', ...(o.fp16Weights ? ['--fp16-weights'] : [])], (line) => {
    log(`  ${line}`);
    if (line.startsWith('{"view_max_length"')) views.push(JSON.parse(line) as ViewCheck);
  });
  const reference = (JSON.parse(readFileSync(refPath, 'utf8')) as { rows: ReferenceRow[] }).rows;
  const bundle = await openBundle(o.out);
  const parity = await checkParity(bundle, l.devCsv, reference);
  log(`[pipeline] parity ${JSON.stringify(parity)}`);
  if (parity.id_mismatches > 0 || !(parity.max_abs_diff <= 1e-4)) throw new Error(`ONNX parity failed: ${JSON.stringify(parity)}`);
  return { views, reference, bundle, parity };
}

/** Step 6: evaluation through core/ + onnxruntime-node; latency of one max-length row. Closes the bundle. */
async function evaluate(o: PipelineOptions, l: RunLayout, e: Exported, log: (m: string) => void): Promise<{ dev: EvalResult; hh: EvalResult | null; latency: number }> {
  const { bundle, reference } = e;
  const dev = await evaluateCsv(bundle, l.devCsv, o.devLimit);
  log(`[pipeline] dev ${JSON.stringify(dev)}`);
  const hh = existsSync(l.hhCsv) ? await evaluateCsv(bundle, l.hhCsv, o.hhLimit) : null;
  log(`[pipeline] hh-harmless ${JSON.stringify(hh)}`);
  const longest = reference.reduce((a, r) => (r.ids.length > a.ids.length ? r : a));
  const row = { ids: Int32Array.from(longest.ids), truncated: false, features: longest.features && Float32Array.from(longest.features) };
  for (let i = 0; i < 3; i++) await bundle.score([row]);
  const runs = 20;
  const tl = performance.now();
  for (let i = 0; i < runs; i++) await bundle.score([row]);
  const latency = (performance.now() - tl) / runs;
  await bundle.close();
  return { dev, hh, latency };
}

/** Step 7: golden rows: PyTorch probabilities at export, checked by test/training/default-model.test.ts. */
function writeGolden(o: PipelineOptions, reference: readonly ReferenceRow[]): void {
  const golden = {
    source: 'alpaca-pairs-dev.csv.gz',
    note: 'ids from core/ and probabilities from PyTorch at export; the test re-encodes these rows and checks both',
    rows: reference.slice(0, o.goldenRows).map((r) => ({ id: r.id, ids: r.ids, probs: r.probs })),
  };
  writeFileSync(join(o.out, 'golden.json'), JSON.stringify(golden) + '\n');
}

export async function runPipeline(o: PipelineOptions, log: (m: string) => void = console.log): Promise<PipelineResult> {
  assertPythonTorch();
  const t0 = Date.now();
  const { minutes, mark } = stepTimer(log);
  const l = layoutRun(o);
  const tp = await buildTokenizer(o, l, log);
  mark('tokenizer');
  await encodeShards(o, l, log);
  mark('shards');
  const { ckpts, training, reused } = await trainMembers(o, l, log);
  mark('train');
  const exported = await exportAndCheck(o, l, ckpts, log);
  mark('export');
  const { dev, hh, latency } = await evaluate(o, l, exported, log);
  mark('eval');

  writeGolden(o, exported.reference);
  const bytes = ['model.onnx', 'tokenizer.json', 'preference.json'].reduce((s, f) => s + statSync(join(o.out, f)).size, 0);
  const result: PipelineResult = {
    minutes: { ...minutes, total: (Date.now() - t0) / 60000 },
    dev,
    hh,
    parity: exported.parity,
    tokenizer_parity: { checked: tp.checked, mismatches: tp.mismatches.length },
    latency_ms_one_row: latency,
    bundle_bytes: bytes,
    params: training.reduce((n, t) => n + t.params, 0),
    training,
    reused_members: reused,
    views: exported.views,
  };
  writeFileSync(join(o.work, 'metrics.json'), JSON.stringify({ options: o, ...result }, null, 2) + '\n');
  copyFileSync(join(o.work, 'metrics.json'), join(o.out, 'metrics.json'));
  log(`[pipeline] done in ${result.minutes.total!.toFixed(1)} min: ${JSON.stringify({ dev, latency_ms: latency, bytes })}`);
  return result;
}

function cli(): PipelineOptions {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      work: { type: 'string' },
      data: { type: 'string' },
      epochs: { type: 'string' },
      'max-minutes': { type: 'string' },
      'train-limit': { type: 'string' },
      'max-length': { type: 'string' },
      d: { type: 'string' },
      layers: { type: 'string' },
      members: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'fp16-weights': { type: 'boolean', default: false },
      'fp32-weights': { type: 'boolean', default: false },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const base: PipelineOptions = values.smoke ? { ...FULL, ...SMOKE, out: 'training/out/smoke', work: 'training/out/smoke-work' } : FULL;
  // --members N keeps the first N members; --max-length L trains every member at L tokens.
  const maxLength = num(values['max-length']);
  const members = base.members
    .slice(0, num(values.members) ?? base.members.length)
    .map((m) => (maxLength === undefined ? m : { ...m, maxLength }));
  const pick = <K extends keyof PipelineOptions>(k: K, v: PipelineOptions[K] | undefined): Partial<PipelineOptions> =>
    v === undefined ? {} : { [k]: v };
  return {
    ...base,
    ...pick('out', values.out),
    ...pick('work', values.work),
    ...pick('data', values.data),
    ...pick('epochs', num(values.epochs)),
    ...pick('maxMinutes', num(values['max-minutes'])),
    ...pick('trainLimit', num(values['train-limit'])),
    ...pick('d', num(values.d)),
    ...pick('layers', num(values.layers)),
    members,
    ...(values.resume ? { resume: true } : {}),
    ...(values['fp16-weights'] ? { fp16Weights: true } : {}),
    ...(values['fp32-weights'] ? { fp16Weights: false } : {}),
  };
}

if (resolve(process.argv[1] ?? '') === resolve(new URL(import.meta.url).pathname)) {
  await runPipeline(cli());
}
