// The Hugging Face-shaped fixtures (test/fixtures/hf: a Gemma-2-style and a Llama-3-style
// text-classification export with float16 weights in external data, and a text-generation causal LM
// with position_ids and a 32,000-token vocabulary) served by a real `pairpref serve` with their
// presets, with right and with left padding, against PyTorch (training/hf_fixtures.py reference) on
// the same ids within 1e-4. Also: `pairpref eval --model` on the dev split from another working
// directory, GetModelInfo's bundle size, and a missing external data file named at load.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Comparison } from '../../core/types.ts';
import { comparisonToWire, predictionFromWire } from '../../protocol/wire.ts';
import { BundleError, loadBundle } from '../../runtime/node/index.ts';
import { testClient } from '../helpers/grpc-client.ts';
import { killChildren, spawnServe } from '../helpers/serve-child.ts';
import { readArena, SHARED_DATA } from '../helpers/shared-data.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(REPO, 'test', 'fixtures', 'hf');
const NAMES = ['gemma-seq-cls', 'llama-seq-cls', 'label-token'] as const;
const SIDES = ['right', 'left'] as const;
const TOL = 1e-4;
const work = mkdtempSync(join(tmpdir(), 'pairpref-hf-'));

type Probs = readonly [number, number, number];
interface TorchAnswer {
  right: Probs[];
  left: Probs[];
  alone: Probs[];
}

/** Rows of many lengths (the dev rows are cut at 512 tokens, the others are short), so batches are padded. */
async function rows(): Promise<Comparison[]> {
  const dev = await readArena('alpaca-pairs-dev.csv.gz', 6);
  const short: Comparison[] = [
    { id: 'tiny', kind: 'turns', prompt: ['hi'], response_a: ['a'], response_b: ['b'] },
    { id: 'bytes', kind: 'turns', prompt: ['Translate: 猫が好きです 😀'], response_a: ['I like cats 😺'], response_b: ['ich mag Katzen — ünïcödé'] },
    { id: 'turns', kind: 'turns', prompt: ['What is 2+2?', 'And 3+3?'], response_a: ['4', '6'], response_b: ['5', 'seven'] },
    { id: 'mid', kind: 'turns', prompt: ['Write a haiku about the sea.'], response_a: ['Waves fold into foam\nsalt wind carries gull voices\nthe tide keeps its time'], response_b: ['The sea is big and blue.'] },
  ];
  return [...dev, ...short];
}

/** Runs training/hf_fixtures.py reference on each bundle's ids. */
function torchReference(request: { fixtures: Array<{ dir: string; rows: number[][] }> }): Promise<Record<string, TorchAnswer>> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', [join(REPO, 'training', 'hf_fixtures.py'), 'reference'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    p.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, TorchAnswer>) : reject(new Error(`hf_fixtures.py reference exited ${code}: ${err}`))));
    p.stdin.end(JSON.stringify(request));
  });
}

/** A copy of a fixture bundle with preference.json's padding side set. */
function bundleWith(name: string, side: 'right' | 'left'): string {
  const dir = join(work, `${name}-${side}`);
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  const pref = JSON.parse(readFileSync(join(dir, 'preference.json'), 'utf8')) as { special_tokens: Record<string, unknown> };
  pref.special_tokens['padding_side'] = side;
  writeFileSync(join(dir, 'preference.json'), JSON.stringify(pref));
  return dir;
}

function maxDiff(a: readonly Probs[], b: readonly Probs[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.flatMap((p, i) => p.map((x, k) => Math.abs(x - b[i]![k]!))));
}

let input: Comparison[];
let torch: Record<string, TorchAnswer>;

before(async () => {
  input = await rows();
  const request = {
    fixtures: NAMES.map((name) => {
      const b = loadBundle(join(FIXTURES, name));
      return { dir: join(FIXTURES, name), rows: input.map((r) => [...b.preprocessor.encode(r).ids]) };
    }),
  };
  // The rows really are of many lengths, the long ones cut at max_length.
  for (const f of request.fixtures) assert.ok(new Set(f.rows.map((r) => r.length)).size >= 4, `${f.dir}: lengths ${f.rows.map((r) => r.length)}`);
  torch = await torchReference(request);
});

after(() => {
  killChildren();
  rmSync(work, { recursive: true, force: true });
});

describe('Hugging Face-shaped fixtures through pairpref serve, against PyTorch', { timeout: 600_000 }, () => {
  test('the fixtures are not trivially uniform, and PyTorch gives each row the same probabilities padded or alone', () => {
    for (const name of NAMES) {
      const t = torch[join(FIXTURES, name)]!;
      const pa = t.right.map((p) => p[0]);
      assert.ok(Math.max(...pa) - Math.min(...pa) > 0.05, `${name}: p(a) spans ${Math.min(...pa)}..${Math.max(...pa)}`);
      for (const side of SIDES) assert.ok(maxDiff(t[side], t.alone) <= 1e-5, `${name}: ${side}-padded vs alone ${maxDiff(t[side], t.alone)}`);
    }
  });

  for (const name of NAMES) {
    for (const side of SIDES) {
      test(`${name}, ${side} padding: served probabilities equal PyTorch's within ${TOL}`, async (t) => {
        const dir = bundleWith(name, side);
        const server = spawnServe(['--model', dir, '--intra-op-threads', '1']);
        const target = (await server.waitFor(/serving .* on (\S+) \(devices: /))[1]!;
        const client = testClient(target);
        try {
          const got = (await client.score(input.map(comparisonToWire))).map((p) => {
            const pred = predictionFromWire(p);
            assert.equal(pred.error, undefined, `${pred.id}: ${JSON.stringify(pred.error)}`);
            return [pred.winner_model_a, pred.winner_model_b, pred.winner_tie] as const;
          });
          const want = torch[join(FIXTURES, name)]![side];
          const diff = maxDiff(got, want);
          assert.ok(diff <= TOL, `${name} ${side}: max |served - PyTorch| = ${diff}`);
          t.diagnostic(`${name} ${side}: max |served - PyTorch| = ${diff.toExponential(2)} over ${input.length} rows`);
          const info = await client.modelInfo();
          const files = readdirSync(dir).filter((f) => f !== 'fixture.json');
          assert.equal(info.bundleBytes, files.reduce((n, f) => n + statSync(join(dir, f)).size, 0), 'GetModelInfo counts every file of the bundle, external weights included');
          assert.equal(info.head, name === 'label-token' ? 'label-token' : 'seq-cls');
        } finally {
          client.close();
          server.proc.kill('SIGTERM');
          await server.exited;
        }
      });
    }
  }
});

describe('Hugging Face-shaped fixtures: eval and loading', () => {
  test('pairpref eval --model <fixture> on the dev split, from another working directory (relative path, external data)', async () => {
    const cwd = mkdtempSync(join(work, 'cwd-'));
    const dev = new URL('alpaca-pairs-dev.csv.gz', SHARED_DATA).pathname;
    for (const name of NAMES) {
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(REPO, 'bin', 'pairpref.mjs'), 'eval', '--model', relative(cwd, join(FIXTURES, name)), '--input', dev, '--limit', '24', '--devices', 'cpu'], { cwd });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
        p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout, /^n\s+24$/m, name);
      assert.match(r.stdout, /^log loss\s+\d+\.\d{6}/m, name);
    }
  });

  test('a missing or truncated external data file is named at load', () => {
    const one = join(work, 'missing-one');
    cpSync(join(FIXTURES, 'gemma-seq-cls'), one, { recursive: true });
    unlinkSync(join(one, 'model.onnx_data'));
    assert.throws(() => loadBundle(one), (e: unknown) => e instanceof BundleError && /external data file "model\.onnx_data", which is missing from /.test(e.message));
    const per = join(work, 'missing-per-tensor');
    cpSync(join(FIXTURES, 'llama-seq-cls'), per, { recursive: true });
    unlinkSync(join(per, 'model.layers.1.up.weight_fp16'));
    assert.throws(() => loadBundle(per), /1 tensor\(s\) in the external data file "model\.layers\.1\.up\.weight_fp16", which is missing/);
    const short = join(work, 'short');
    cpSync(join(FIXTURES, 'label-token'), short, { recursive: true });
    writeFileSync(join(short, 'model.onnx_data'), readFileSync(join(short, 'model.onnx_data')).subarray(0, 1000));
    assert.throws(() => loadBundle(short), /model\.onnx_data has 1000 bytes; model\.onnx reads up to byte \d+ of it/);
  });
});
