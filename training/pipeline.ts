// The whole training pipeline, one command: tokenizer -> core/ shards -> PyTorch training ->
// ONNX export -> onnxruntime parity -> dev / out-of-domain evaluation -> golden rows.
//   npm run train              full run into models/default (see models/default/MODEL_CARD.md)
//   npm run train:smoke        ~200 rows, tiny model, into training/out/smoke (what CI runs)
//   npm run train -- --resume  reuse members already trained from the same shards and arguments
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeSplits } from './encode-splits.ts';
import { checkParity, evaluateCsv, loadBundle, type EvalResult, type ReferenceRow } from './onnx-eval.ts';
import { canReuseMember, shardsDigest, stampPath, writeStamp } from './member-stamp.ts';
import { assertPythonTorch, runPython } from './python.ts';
import { checkTokenizerParity, EDGE_STRINGS, sampleStrings } from './tokenizer-parity.ts';
import { trainTokenizer, writeCorpus } from './tokenizer-train.ts';

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

export async function runPipeline(o: PipelineOptions, log: (m: string) => void = console.log): Promise<PipelineResult> {
  assertPythonTorch();
  const t0 = Date.now();
  const minutes: Record<string, number> = {};
  let tStep = Date.now();
  const mark = (step: string): void => {
    minutes[step] = (Date.now() - tStep) / 60000;
    log(`[pipeline] ${step} done in ${(minutes[step] * 60).toFixed(1)} s`);
    tStep = Date.now();
  };
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

  // 1. Tokenizer on the train split only, then JS-vs-native id parity.
  const corpus = join(o.work, 'corpus.txt');
  const lines = await writeCorpus(trainCsv, corpus, o.trainLimit);
  const tokPath = join(o.out, 'tokenizer.json');
  const vocab = trainTokenizer(corpus, tokPath, o.vocab);
  rmSync(tokPath + '.raw.json', { force: true });
  rmSync(corpus, { force: true });
  const texts = [
    ...EDGE_STRINGS,
    ...(await sampleStrings(trainCsv, o.tokenizerParityRows)),
    ...(await sampleStrings(devCsv, o.tokenizerParityRows)),
  ];
  const tp = await checkTokenizerParity(readFileSync(tokPath, 'utf8'), texts);
  if (tp.mismatches.length > 0) throw new Error(`tokenizer: JS and native ids differ on ${tp.mismatches.length} strings`);
  log(`[pipeline] tokenizer: ${vocab} ids from ${lines} texts; JS == native on ${tp.checked} strings`);
  mark('tokenizer');

  // 2. Shards through core/, one set per member length; the bundle's preference.json is the longest.
  // Each length is encoded by core/ itself rather than cut from the longest: shorter members train on
  // the ids core/ produces, and those are what export.py checks the graph's own cut against.
  for (const len of lengths) {
    await encodeSplits({
      bundleDir: o.out,
      shardDir: shardDir(len),
      maxLength: len,
      writePreference: len === maxLength,
      name: o.name,
      version: o.version,
      splits: [
        { split: 'train', csv: trainCsv, ...(o.trainLimit === undefined ? {} : { limit: o.trainLimit }) },
        { split: 'dev', csv: devCsv, ...(o.devLimit === undefined ? {} : { limit: o.devLimit }) },
      ],
      log,
    });
  }
  mark('shards');

  // 3. Train the ensemble members, each on the shards of its length.
  const digests = new Map(lengths.map((len) => [len, shardsDigest(shardDir(len))]));
  const ckpts: string[] = [];
  const training: MemberSummary[] = [];
  const reused: number[] = [];
  for (const [m, member] of o.members.entries()) {
    const ckpt = join(o.work, `model${m}.pt`);
    const args = [
      '--shards', shardDir(member.maxLength), '--out', ckpt, '--epochs', String(o.epochs), '--batch', String(o.batch), '--lr', String(o.lr),
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
      await runPython('train.py', args, (l) => log(`  [member ${m}] ${l}`));
      writeStamp(o.work, m, stamp);
    }
    ckpts.push(ckpt);
    training.push(JSON.parse(readFileSync(join(o.work, `model${m}.json`), 'utf8')) as MemberSummary);
  }
  mark('train');

  // 4. Export + 5. parity with onnxruntime-node on 256 dev rows re-encoded through core/.
  const refPath = join(o.work, 'reference.json');
  const views: ViewCheck[] = [];
  await runPython('export.py', ['--ckpt', ...ckpts, '--shards', shardDir(maxLength),
    ...lengths.filter((len) => len < maxLength).flatMap((len) => ['--view-shards', shardDir(len)]), '--onnx', join(o.out, 'model.onnx'),
    '--reference', refPath, '--rows', '256', ...(o.fp16Weights ? ['--fp16-weights'] : [])], (l) => {
    log(`  ${l}`);
    if (l.startsWith('{"view_max_length"')) views.push(JSON.parse(l) as ViewCheck);
  });
  const reference = (JSON.parse(readFileSync(refPath, 'utf8')) as { rows: ReferenceRow[] }).rows;
  const bundle = await loadBundle(o.out);
  const parity = await checkParity(bundle, devCsv, reference);
  log(`[pipeline] parity ${JSON.stringify(parity)}`);
  if (parity.id_mismatches > 0 || !(parity.max_abs_diff <= 1e-4)) throw new Error(`ONNX parity failed: ${JSON.stringify(parity)}`);
  mark('export');

  // 6. Evaluation through core/ + onnxruntime-node; latency of one max-length row.
  const dev = await evaluateCsv(bundle, devCsv, o.devLimit);
  log(`[pipeline] dev ${JSON.stringify(dev)}`);
  const hh = existsSync(hhCsv) ? await evaluateCsv(bundle, hhCsv, o.hhLimit) : null;
  log(`[pipeline] hh-harmless ${JSON.stringify(hh)}`);
  const longest = reference.reduce((a, r) => (r.ids.length > a.ids.length ? r : a));
  const row = { ids: Int32Array.from(longest.ids), truncated: false, features: longest.features && Float32Array.from(longest.features) };
  for (let i = 0; i < 3; i++) await bundle.score([row]);
  const runs = 20;
  const tl = performance.now();
  for (let i = 0; i < runs; i++) await bundle.score([row]);
  const latency = (performance.now() - tl) / runs;
  await bundle.close();
  mark('eval');

  // 7. Golden rows: PyTorch probabilities at export, checked by test/training/default-model.test.ts.
  const golden = {
    source: 'alpaca-pairs-dev.csv.gz',
    note: 'ids from core/ and probabilities from PyTorch at export; the test re-encodes these rows and checks both',
    rows: reference.slice(0, o.goldenRows).map((r) => ({ id: r.id, ids: r.ids, probs: r.probs })),
  };
  writeFileSync(join(o.out, 'golden.json'), JSON.stringify(golden) + '\n');
  const bytes = ['model.onnx', 'tokenizer.json', 'preference.json'].reduce((s, f) => s + statSync(join(o.out, f)).size, 0);
  const result: PipelineResult = {
    minutes: { ...minutes, total: (Date.now() - t0) / 60000 },
    dev,
    hh,
    parity,
    tokenizer_parity: { checked: tp.checked, mismatches: tp.mismatches.length },
    latency_ms_one_row: latency,
    bundle_bytes: bytes,
    params: training.reduce((n, t) => n + t.params, 0),
    training,
    reused_members: reused,
    views,
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
