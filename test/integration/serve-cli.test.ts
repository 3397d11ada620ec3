// `pairpref serve` as users run it: a child process that reaches SERVING and drains on SIGTERM.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cudaProviderInstalled } from '../../runtime/node/index.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { testClient, wire } from '../helpers/grpc-client.ts';
import { killChildren, spawnServe } from '../helpers/serve-child.ts';

const BIN = new URL('../../bin/pairpref.mjs', import.meta.url).pathname;
/** No child may outlive its test or hang npm test. */
const SPAWN_TIMEOUT_MS = 60_000;
const SERVING_TIMEOUT_MS = 120_000;
after(killChildren);

/** Starts `pairpref serve` (ARGS say the model and --devices) and resolves with the address once it logs SERVING. */
async function serve(args: string[]): Promise<{ address: string; stop: (signal: NodeJS.Signals) => Promise<{ code: number | null; log: string }> }> {
  const child = spawnServe(args, { devices: null });
  let m: RegExpExecArray;
  try {
    m = await child.waitFor(/serving .* on (\S+) \(devices: .*health: SERVING\)/, SERVING_TIMEOUT_MS);
  } catch (e) {
    child.proc.kill('SIGKILL');
    throw e;
  }
  return {
    address: m[1]!,
    stop: async (signal) => {
      child.proc.kill(signal);
      // A drain that never ends fails the test instead of hanging it.
      const killer = setTimeout(() => child.proc.kill('SIGKILL'), SPAWN_TIMEOUT_MS);
      const { code } = await child.exited;
      clearTimeout(killer);
      return { code, log: child.log() };
    },
  };
}

test('pairpref serve reaches SERVING, scores, and exits 0 on SIGTERM after draining', async () => {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  const server = await serve(['--model', dir, '--devices', 'cpu']);
  const client = testClient(server.address);
  const preds = await client.score([wire({ id: 'r1', prompt: ['hi'], responseA: ['hello'], responseB: ['hey'] })]);
  assert.equal(preds[0]?.id, 'r1');
  assert.ok(Math.abs(preds[0]!.winnerModelA + preds[0]!.winnerModelB + preds[0]!.winnerTie - 1) < 1e-6);
  client.close();
  const { code, log } = await server.stop('SIGTERM');
  assert.equal(code, 0, log);
  assert.match(log, /SIGTERM: draining in-flight calls/);
});

test('npm start\'s command serves the shipped models/default to SERVING and scores with it', async () => {
  const server = await serve(['--model', new URL('../../models/default', import.meta.url).pathname]);
  const client = testClient(server.address);
  const info = await client.modelInfo();
  assert.equal(info.name, 'pairpref-default');
  const [p] = await client.score([wire({ id: 'q', prompt: ['What is 2+2?'], responseA: ['2+2 is 4.'], responseB: ['I am not sure.'] })]);
  assert.equal(p?.error, undefined);
  assert.ok(Math.abs(p!.winnerModelA + p!.winnerModelB + p!.winnerTie - 1) < 1e-6);
  client.close();
  assert.equal((await server.stop('SIGINT')).code, 0);
});

test('pairpref serve with a bad bundle or device exits 1 with one clear line', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, 'serve', '--port', '0', ...args], { encoding: 'utf8', timeout: SPAWN_TIMEOUT_MS, killSignal: 'SIGKILL' });
  const missing = run(['--model', '/nonexistent/bundle']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /pairpref: model bundle \/nonexistent\/bundle does not exist/);
  assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/, 'no stack trace');
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  if (cudaProviderInstalled()) {
    // With the provider installed, cuda:0 may well work here; a GPU that does not exist fails
    // when its session is created (runtime/node/worker-runner.ts), as one line.
    const cuda = run(['--model', dir, '--devices', 'cuda:99']);
    assert.equal(cuda.status, 1, cuda.stderr);
    assert.match(cuda.stderr, /pairpref: device cuda:99: (could not create the onnxruntime session|worker)/);
    assert.doesNotMatch(cuda.stderr, /CUDA execution provider is not installed/);
    assert.doesNotMatch(cuda.stderr, /at .*\.ts:\d+/, 'no stack trace');
  } else {
    const cuda = run(['--model', dir, '--devices', 'cuda:0']);
    assert.equal(cuda.status, 1);
    assert.match(cuda.stderr, /CUDA execution provider is not installed.*npm run install:cuda/s);
  }
  // Checked before the provider is looked for, so the same with or without it.
  const twice = run(['--model', dir, '--devices', 'cuda:0,cuda:0']);
  assert.equal(twice.status, 1, twice.stderr);
  assert.match(twice.stderr, /pairpref: --devices: cuda:0 is listed twice \(one session per GPU\)/);
  const badFlag = run(['--model', dir, '--max-batch-tokens', 'lots']);
  assert.notEqual(badFlag.status, 0);
  assert.match(badFlag.stderr, /--max-batch-tokens must be an integer >= 1 \(got "lots"\)/);
});

test('startup errors are one line: a truncated model.onnx, a graph that does not match, a huge max_length', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, 'serve', '--port', '0', '--devices', 'cpu', ...args], { encoding: 'utf8', timeout: SPAWN_TIMEOUT_MS, killSignal: 'SIGKILL' });
  /** The error line: the one stderr line that is not a log line. */
  const errorLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l !== '' && !/^\d{4}-\d\d-\d\dT.* (INFO|WARN) /.test(l));
  const truncated = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
  writeFileSync(join(truncated, 'model.onnx'), readFileSync(join(truncated, 'model.onnx')).subarray(0, 200));
  const a = run(['--model', truncated]);
  assert.equal(a.status, 1, a.stderr);
  assert.equal(errorLines(a.stderr).length, 1, a.stderr);
  assert.match(a.stderr, /pairpref: device cpu: could not create the onnxruntime session: .*model\.onnx/);
  assert.doesNotMatch(a.stderr, /\.(cc|cpp|h):\d+/, 'no onnxruntime source paths');
  // The graph has no "features" input but preference.json declares one: a list of problems, on one line.
  const mismatch = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-')), { preference: { inputs: { input_ids: 'ids', attention_mask: 'mask' } } }).dir;
  const b = run(['--model', mismatch]);
  assert.equal(b.status, 1, b.stderr);
  assert.deepEqual(errorLines(b.stderr).length, 1, b.stderr);
  assert.match(b.stderr, /pairpref: model\.onnx does not match preference\.json: inputs\.input_ids "ids" is not a graph input .*; graph input "input_ids" .* is not declared/);
  const huge = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-')), { preference: { truncation: { max_length: 10_000_000 } } }).dir;
  const c = run(['--model', huge]);
  assert.equal(c.status, 1, c.stderr);
  assert.match(c.stderr, /truncation\.max_length must be at most 131072 \(got 10000000\)/);
});

test('a port in use: exit 1 with one line that says so, without grpc-js\'s own log line; --version prints the version', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
    const r = spawnSync(process.execPath, [BIN, 'serve', '--port', String(port), '--model', dir, '--devices', 'cpu'], { encoding: 'utf8', timeout: SPAWN_TIMEOUT_MS, killSignal: 'SIGKILL' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`pairpref: cannot listen on 127\\.0\\.0\\.1:${port}: it is in use \\(pick another with --port, or 0 for a free one\\)`));
    assert.doesNotMatch(r.stderr, /No address added/);
  } finally {
    blocker.close();
  }
  const v = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8', timeout: SPAWN_TIMEOUT_MS, killSignal: 'SIGKILL' });
  assert.equal(v.status, 0);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(v.stdout.trim(), pkg.version);
});
