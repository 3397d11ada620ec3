// A Python client (Debian's python3-grpcio, stubs generated from proto/ with protoc and
// grpc_python_plugin) scores rows through Score and ScoreStream against the real server; its
// answers must equal the server's own scorer on the same rows.
import { protoPath as healthProtoPath } from 'grpc-health-check';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LABELS, type Comparison } from '../../core/types.ts';
import { serveModel } from '../../cli/wiring.ts';
import { probsOf } from '../../core/result.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { readArena } from '../helpers/shared-data.ts';

const PYTHON = '/usr/bin/python3';
const INSTALL_HINT = 'run: apt-get install python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc';
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT = fileURLToPath(new URL('./python_client.py', import.meta.url));
const TOL = 1e-6;

/** A row as python_client.py reads it. */
type PyRow =
  | { id: string; prompt: string[]; response_a: string[]; response_b: string[] }
  | { id: string; raw: { prompt: string; response_a: string; response_b: string } };

interface PyPrediction {
  id: string;
  winner_model_a: number;
  winner_model_b: number;
  winner_tie: number;
  num_tokens: number;
  truncated: boolean;
  error: { code: number; field: string; message: string } | null;
}

interface PyOutput {
  grpc_version: string;
  health: Record<string, string>;
  model_info: { name: string; labels: string[]; max_length: number; devices: { name: string; execution_provider: string }[] };
  score: PyPrediction[];
  stream: PyPrediction[];
}

function toCore(r: PyRow): Comparison {
  return 'raw' in r ? { id: r.id, kind: 'raw', ...r.raw } : { id: r.id, kind: 'turns', prompt: r.prompt, response_a: r.response_a, response_b: r.response_b };
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.error?.message ?? ''}${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Python stubs for pairpref.v1 and grpc.health.v1 into outDir, from the .proto sources. */
function generateStubs(outDir: string): void {
  const healthInclude = dirname(dirname(dirname(healthProtoPath))); // .../proto (health/v1/health.proto)
  const sources: [include: string, file: string][] = [
    [join(REPO, 'proto'), 'pairpref/v1/preference.proto'],
    [healthInclude, 'health/v1/health.proto'],
  ];
  mkdirSync(outDir, { recursive: true });
  const hasGrpcTools = run(PYTHON, ['-c', 'import grpc_tools.protoc']).ok;
  for (const [include, file] of sources) {
    const r = hasGrpcTools
      ? run(PYTHON, ['-m', 'grpc_tools.protoc', `-I${include}`, `--python_out=${outDir}`, `--grpc_python_out=${outDir}`, file])
      : run('protoc', [
          `-I${include}`,
          `--python_out=${outDir}`,
          `--grpc_python_out=${outDir}`,
          '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin',
          join(include, file),
        ]);
    assert.ok(r.ok, `generating Python stubs for ${file} failed (${INSTALL_HINT}):\n${r.out}`);
  }
}

/** First n rows of the dev split, as raw JSON-list fields exactly as they stand in the CSV. */
async function devRows(n: number): Promise<PyRow[]> {
  return (await readArena('alpaca-pairs-dev.csv.gz', n)).map((r) => ({ id: `dev-${r.id}`, raw: { prompt: r.prompt, response_a: r.response_a, response_b: r.response_b } }));
}

const BAD_ID = 'bad-raw-prompt';
const SCORE_ROWS: PyRow[] = [
  { id: 'turns-1', prompt: ['What is 2+2?'], response_a: ['4'], response_b: ['Four, of course.'] },
  { id: 'turns-multi', prompt: ['Hi', 'Tell me a joke'], response_a: ['Hello!', 'No.'], response_b: ['Hey', 'Why did the 🐔 cross the road?'] },
  { id: 'turns-empty', prompt: [''], response_a: [''], response_b: ['something'] },
  { id: 'raw-1', raw: { prompt: '["Name a colour"]', response_a: '["Blue"]', response_b: '["Red, or maybe \\"green\\""]' } },
  { id: 'raw-null-turn', raw: { prompt: '["a", "b"]', response_a: '["x", null]', response_b: '[null, "y"]' } },
  { id: BAD_ID, raw: { prompt: 'not json', response_a: '["a"]', response_b: '["b"]' } },
  { id: 'turns-after-bad', prompt: ['still scored?'], response_a: ['yes'], response_b: ['no'] },
];
const STREAM_BAD_ID = 'bad-stream-response-b';

let server: RunningServer;
let workDir: string;

before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'pairpref-interop-'));
  writeFixtureBundle(join(workDir, 'bundle'));
  server = await serveModel({ modelDir: join(workDir, 'bundle'), host: '127.0.0.1', port: 0, devices: 'cpu' });
});

after(async () => {
  await server?.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function assertMatches(p: PyPrediction, expected: Awaited<ReturnType<RunningServer['scorer']['score']>>[number]): void {
  assert.equal(p.id, expected.id);
  if (expected.error) {
    assert.ok(p.error, `row ${p.id}: expected an error`);
    assert.equal(p.error.code, expected.error.code);
    assert.equal(p.error.field, expected.error.field);
    return;
  }
  assert.equal(p.error, null, `row ${p.id}: unexpected error ${JSON.stringify(p.error)}`);
  const got = [p.winner_model_a, p.winner_model_b, p.winner_tie];
  assert.ok(got.every(Number.isFinite), `row ${p.id}: non-finite ${got}`);
  assert.ok(Math.abs(got[0]! + got[1]! + got[2]! - 1) <= TOL, `row ${p.id}: probabilities sum to ${got[0]! + got[1]! + got[2]!}`);
  for (let k = 0; k < 3; k++) {
    assert.ok(Math.abs(got[k]! - probsOf(expected)[k]!) <= TOL, `row ${p.id} ${LABELS[k]}: python ${got[k]} vs in-process ${probsOf(expected)[k]}`);
  }
  assert.equal(p.num_tokens, expected.num_tokens, `row ${p.id}: num_tokens`);
  assert.equal(p.truncated, expected.truncated, `row ${p.id}: truncated`);
}

test('a Python grpcio client scores rows through Score and ScoreStream', { timeout: 180_000 }, async () => {
  const probe = run(PYTHON, ['-c', 'import grpc, google.protobuf']);
  assert.ok(probe.ok, `${PYTHON} cannot import grpc/protobuf (${INSTALL_HINT}):\n${probe.out}`);
  const stubs = join(workDir, 'stubs');
  generateStubs(stubs);

  const streamRows: PyRow[] = [
    ...(await devRows(49)),
    { id: STREAM_BAD_ID, raw: { prompt: '["ok"]', response_a: '["ok"]', response_b: '{"not": "a list"}' } },
  ];
  const rowsFile = join(workDir, 'rows.json');
  writeFileSync(rowsFile, JSON.stringify({ score: SCORE_ROWS, stream: streamRows }));

  // Async: the server runs in this process, so a blocking spawnSync would starve it.
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(PYTHON, [CLIENT, '--address', server.address, '--stubs', stubs, '--rows', rowsFile], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 150_000,
    }));
  } catch (e) {
    const err = e as { message: string; stderr?: string };
    assert.fail(`python client failed: ${err.message}\n${err.stderr ?? ''}`);
  }
  const out = JSON.parse(stdout) as PyOutput;

  assert.deepEqual(out.health, { '(server)': 'SERVING', 'pairpref.v1.PairwisePreference': 'SERVING' });
  assert.deepEqual(out.model_info.labels, [...LABELS]);
  assert.equal(out.model_info.name, 'fixture');
  assert.deepEqual(out.model_info.devices, [{ name: 'cpu', execution_provider: 'cpu' }]);

  // Score answers in request order; ScoreStream in completion order, every id exactly once.
  assert.deepEqual(out.score.map((p) => p.id), SCORE_ROWS.map((r) => r.id));
  assert.deepEqual(out.stream.map((p) => p.id).sort(), streamRows.map((r) => r.id).sort());
  assert.equal(new Set(out.stream.map((p) => p.id)).size, streamRows.length);

  const bad = out.score.find((p) => p.id === BAD_ID)!;
  assert.ok(bad.error, 'the bad row must carry an error');
  assert.equal(bad.error.code, 3);
  assert.equal(bad.error.field, 'raw.prompt');
  assert.match(bad.error.message, /raw\.prompt/);
  assert.ok(bad.error.message.includes(BAD_ID), `error message names the row id: ${bad.error.message}`);
  assert.deepEqual([bad.winner_model_a, bad.winner_model_b, bad.winner_tie], [0, 0, 0]);
  assert.equal(out.score.filter((p) => p.error).length, 1, 'only the bad row fails');

  const streamBad = out.stream.find((p) => p.id === STREAM_BAD_ID)!;
  assert.equal(streamBad.error?.code, 3);
  assert.equal(streamBad.error?.field, 'raw.response_b');
  assert.ok(streamBad.error?.message.includes(STREAM_BAD_ID));
  assert.equal(out.stream.filter((p) => p.error).length, 1, 'only the bad stream row fails');

  const expectedScore = await server.scorer.score(SCORE_ROWS.map(toCore));
  out.score.forEach((p, i) => assertMatches(p, expectedScore[i]!));
  const expectedStream = new Map((await server.scorer.score(streamRows.map(toCore))).map((r) => [r.id, r]));
  for (const p of out.stream) assertMatches(p, expectedStream.get(p.id)!);
});
