// The runnable examples of README.md and packages/client/README.md (blocks marked
// `<!-- example: NAME -->`, see test/docs/examples.ts) run against a real `pairpref serve`, so the README cannot rot: the SDK ones in a project where the
// packed @pairpref/client tarball is installed (as a user would), the shell ones with this
// repository's CLI. A marked block that fails, or a required one that is missing, fails the test.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { killChildren, spawnServe, type ServeChild } from '../helpers/serve-child.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { installSdk, PACKAGE_DIR, packSdk, REPO_ROOT } from '../package/sdk-install.ts';
import { assertPredictions, extractExamples, parsePredictionLines, runExample, type Example, type ExampleRun } from './examples.ts';

const README = join(REPO_ROOT, 'README.md');
/** Markdown files whose marked examples are run. */
const DOCS = [README, join(PACKAGE_DIR, 'README.md')];

/** A "Bring your own model" example: eval of its bundle on the six labeled sample rows. */
const byomEval = (r: ExampleRun): void => {
  assert.match(r.stdout, /^n\s+6$/m, 'eval reports the six labeled rows');
  assert.match(r.stdout, /^log loss\s+\d/m);
};

/** What each required example (FILE NAME) must print beyond exiting 0. Examples not listed here only have to exit 0. */
const CHECKS: Record<string, (r: ExampleRun) => void> = {
  'README.md byom-gemma-seq-cls.sh': byomEval,
  'README.md byom-llama-seq-cls.sh': byomEval,
  'README.md byom-label-token.sh': byomEval,
  'README.md sdk-score.mjs': (r) => {
    assert.match(r.stdout, /^model fixture test$/m, 'prints the model name and version');
    assertPredictions(parsePredictionLines(r.stdout), ['q1', 'q2'], 'sdk-score.mjs');
  },
  'README.md sdk-stream.ts': (r) => {
    const ids = Array.from({ length: 200 }, (_, i) => `sum-${i}`);
    assertPredictions(parsePredictionLines(r.stdout), ids, 'sdk-stream.ts');
    assert.match(r.stdout, /^200 answered \(0 re-sent\); \{.*\}$/m, 'prints the stream stats');
  },
  'README.md try-sample.sh': (r) => {
    const lines = readFileSync(join(r.cwd, 'scores.csv'), 'utf8').trim().split('\n');
    assert.equal(lines[0], 'id,winner_model_a,winner_model_b,winner_tie');
    const ids = ['ex-1', 'ex-2', 'ex-3', 'ex-4', 'ex-5', 'ex-6'];
    assertPredictions(new Map(lines.slice(1).map((l) => [l.split(',')[0]!, l.split(',').slice(1).map(Number)] as const)), ids, 'try-sample.sh');
    assert.match(r.stdout, /^n\s+6$/m, 'eval reports the six labeled rows');
    assert.match(r.stdout, /^log loss\s+\d/m);
  },
  'packages/client/README.md score.mjs': (r) => assertPredictions(parsePredictionLines(r.stdout), ['q1'], 'score.mjs'),
  'README.md http-curl.sh': (r) => {
    const [score, info, health] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const predictions = (score?.['predictions'] ?? []) as Array<{ id: string; winnerModelA: number; winnerModelB: number; winnerTie: number }>;
    assertPredictions(new Map(predictions.map((p) => [p.id, [p.winnerModelA, p.winnerModelB, p.winnerTie]] as const)), ['1'], 'http-curl.sh Score');
    assert.equal(info?.['name'], 'fixture', 'GetModelInfo names the model');
    assert.deepEqual(health, { status: 'SERVING' });
  },
  'README.md cli-score.sh': (r) => {
    const lines = readFileSync(join(r.cwd, 'scores.csv'), 'utf8').trim().split('\n');
    assert.equal(lines[0], 'id,winner_model_a,winner_model_b,winner_tie');
    assert.equal(r.stdout.trim(), lines.join('\n'), 'cat scores.csv prints the file');
    const got = new Map(lines.slice(1).map((l) => [l.split(',')[0]!, l.split(',').slice(1).map(Number)] as const));
    assertPredictions(got, ['q1', 'q2'], 'cli-score.sh');
  },
};

describe('README examples: extraction', () => {
  test('finds marked blocks with their language, and only those', () => {
    const md = ['# t', '```js', 'not marked', '```', '<!-- example: a.mjs -->', '```js', 'one', '  two', '```', 'text', '<!-- example: b.sh -->', '```sh', 'echo hi', '```'].join('\n');
    assert.deepEqual(
      extractExamples(md).map((e) => [e.name, e.lang, e.code, e.line]),
      [
        ['a.mjs', 'js', 'one\n  two\n', 5],
        ['b.sh', 'sh', 'echo hi\n', 11],
      ],
    );
  });
  test('a marker without a fence, an unclosed fence, a duplicate, a wrong language or extension are errors', () => {
    assert.throws(() => extractExamples('<!-- example: a.mjs -->\ntext\n'), /not followed by a fenced code block/);
    assert.throws(() => extractExamples('<!-- example: a.mjs -->\n```js\nx\n'), /never closed/);
    assert.throws(() => extractExamples('<!-- example: a.mjs -->\n```js\n```\n<!-- example: a.mjs -->\n```js\n```\n'), /second example named a\.mjs/);
    assert.throws(() => extractExamples('<!-- example: a.ts -->\n```js\n```\n'), /fenced as "js"/);
    assert.throws(() => extractExamples('<!-- example: a.py -->\n```py\n```\n'), /must be a plain file name ending in/);
  });
  test('the READMEs have every required example', () => {
    const names = DOCS.flatMap((doc) => extractExamples(readFileSync(doc, 'utf8')).map((e) => `${relative(REPO_ROOT, doc)} ${e.name}`));
    for (const required of Object.keys(CHECKS)) assert.ok(names.includes(required), `no block marked <!-- example: ${required.split(' ')[1]} --> in ${required.split(' ')[0]}`);
  });
});

describe('README examples: run against pairpref serve', { timeout: 600_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'pairpref-readme-'));
  let server: ServeChild;
  let target = '';
  let http = '';
  let projectDir = '';
  const examples: Array<Example & { doc: string }> = DOCS.flatMap((doc) => extractExamples(readFileSync(doc, 'utf8')).map((e) => ({ ...e, doc: relative(REPO_ROOT, doc) })));

  before(async () => {
    server = spawnServe(['--model', writeFixtureBundle(mkdtempSync(join(tmp, 'bundle-'))).dir, '--intra-op-threads', '1', '--http-port', '0']);
    const packed = await packSdk(join(tmp, 'pack'));
    projectDir = join(tmp, 'project');
    await installSdk(packed.tarball, projectDir);
    target = (await server.waitFor(/serving .* on (\S+) \(devices: /))[1]!;
    http = (await server.waitFor(/HTTP \(Connect, gRPC-Web, JSON\) on http:\/\/(\S+)/))[1]!;
  });
  after(() => {
    killChildren();
    rmSync(tmp, { recursive: true, force: true });
  });

  for (const ex of examples) {
    test(`${ex.name} (${ex.doc} line ${ex.line})`, async () => {
      const r = await runExample(ex, { projectDir, target, http });
      assert.equal(r.code, 0, `${ex.doc} ${ex.name} failed (exit ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      CHECKS[`${ex.doc} ${ex.name}`]?.(r);
    });
  }

  test('a broken example fails: a strict type error, a failing command, output that is not predictions', async () => {
    const bad = await runExample({ name: 'bad.ts', lang: 'ts', line: 0, code: "import { connect } from '@pairpref/client';\nconst [p] = await connect('x').score([]);\nconsole.log(p.id);\n" }, { projectDir, target });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /TS18048/, 'noUncheckedIndexedAccess applies to the README TypeScript');
    const failing = await runExample({ name: 'bad.sh', lang: 'sh', line: 0, code: 'false | cat\necho unreachable\n' }, { projectDir, target });
    assert.notEqual(failing.code, 0, 'pipefail and errexit apply to shell examples');
    assert.doesNotMatch(failing.stdout, /unreachable/);
    const wrong = await runExample({ name: 'wrong.mjs', lang: 'js', line: 0, code: "console.log('q1 0.5 0.5 0.5');\n" }, { projectDir, target });
    assert.equal(wrong.code, 0);
    assert.throws(() => CHECKS['README.md sdk-score.mjs']!(wrong));
  });
});
