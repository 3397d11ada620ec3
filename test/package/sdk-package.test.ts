// @pairpref/client as a user gets it: `npm pack` in packages/client (prepack builds dist/ and checks
// it), the tarball installed with `npm install <tarball>` into an empty ESM project outside the
// repository (no .npmrc of ours), then the README's SDK example run there with plain `node` against
// a real `pairpref serve`, and its TypeScript type-checked against the installed declarations.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ts from 'typescript';
import { killChildren, spawnServe, type ServeChild } from '../helpers/serve-child.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';
import { assertPredictions, extractExamples, parsePredictionLines, runExample, typeCheck } from '../docs/examples.ts';
import { describeRun, installedPackages, installSdk, lockedVersion, packSdk, PACKAGE_DIR, PACKAGE_NAME, plainNodeEnv, REPO_ROOT, run, type Packed } from './sdk-install.ts';

/** Packages of the server that an SDK user must never receive. */
const SERVER_ONLY = ['onnxruntime-node', 'onnxruntime-common', 'onnxruntime-web', 'tsx', '@huggingface/tokenizers', 'pino', 'prom-client', 'commander', 'csv-parse', 'grpc-health-check', '@grpc/reflection'];

function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + sizeOf(join(path, name)), 0);
}

describe('@pairpref/client package', { timeout: 600_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'pairpref-sdk-package-'));
  const projectDir = join(tmp, 'project');
  const installed = join(projectDir, 'node_modules', '@pairpref', 'client');
  const manifest = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    private?: boolean;
    type: string;
    exports: Record<string, { types: string; import: string }>;
    dependencies: Record<string, string>;
    files: string[];
  };
  let packed: Packed;
  let server: ServeChild;
  let target = '';

  before(async () => {
    server = spawnServe(['--model', writeFixtureBundle(mkdtempSync(join(tmp, 'bundle-'))).dir, '--intra-op-threads', '1']);
    packed = await packSdk(join(tmp, 'pack'));
    await installSdk(packed.tarball, projectDir);
    target = (await server.waitFor(/serving .* on (\S+) \(devices: /))[1]!;
  });
  after(() => {
    killChildren();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('package.json: public ESM package with exports and types, the root version, Node >= 20', () => {
    const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; license: string };
    assert.equal(manifest.name, PACKAGE_NAME);
    assert.equal(manifest.version, root.version);
    assert.notEqual(manifest.private, true);
    assert.equal(manifest.type, 'module');
    assert.deepEqual(Object.keys(manifest.exports['.']!), ['types', 'import'], 'types first, so TypeScript picks them');
    assert.deepEqual(manifest.files.sort(), ['README.md', 'dist']);
  });

  test('npm pack ran prepack (build and checks) and packed only dist/, the README and package.json', () => {
    assert.match(packed.log, /@pairpref\/client: built dist\/ .* plain node imports it/, 'prepack output');
    const outside = packed.files.filter((f) => !f.startsWith('dist/') && f !== 'README.md' && f !== 'package.json');
    assert.deepEqual(outside, []);
    for (const f of [manifest.exports['.']!.types, manifest.exports['.']!.import]) assert.ok(packed.files.includes(f.replace(/^\.\//, '')), `${f} is packed`);
    const sources = packed.files.filter((f) => /\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f));
    assert.deepEqual(sources, [], 'no TypeScript sources (plain node could not run them)');
    assert.ok(packed.size < 100_000, `tarball ${packed.size} bytes`);
  });

  test('dependencies are exactly what dist/ imports at run time, pinned to the versions of the root package-lock', () => {
    const bare = new Set<string>();
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.js')) {
          for (const { fileName: spec } of ts.preProcessFile(readFileSync(p, 'utf8'), true, true).importedFiles) {
            if (spec.startsWith('.') || spec.startsWith('node:')) continue;
            bare.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
          }
        }
      }
    };
    walk(join(installed, 'dist'));
    assert.deepEqual([...bare].sort(), Object.keys(manifest.dependencies).sort());
    for (const [dep, version] of Object.entries(manifest.dependencies)) assert.equal(version, lockedVersion(dep), `${dep} pinned as the root package-lock installs it`);
  });

  test('installing it pulls in no onnxruntime, tsx or other server package', async (t) => {
    const all = await installedPackages(projectDir);
    for (const name of SERVER_ONLY) {
      assert.ok(!all.has(name), `${name} is installed`);
      assert.ok(!existsSync(join(projectDir, 'node_modules', name)), `node_modules/${name} exists`);
    }
    for (const [dep, version] of Object.entries(manifest.dependencies)) assert.ok(all.get(dep)?.has(version), `${dep}@${version} installed`);
    const bytes = sizeOf(join(projectDir, 'node_modules'));
    t.diagnostic(`tarball ${packed.size} bytes (${packed.files.length} files, ${packed.unpackedSize} unpacked); node_modules: ${all.size} packages, ${(bytes / 1e6).toFixed(1)} MB`);
    t.diagnostic(`installed: ${[...all].map(([n, v]) => `${n}@${[...v].join('|')}`).sort().join(' ')}`);
    assert.ok(bytes < 40e6, `node_modules is ${bytes} bytes`);
  });

  test("plain node imports it by name, and the README's SDK example runs there against pairpref serve", async () => {
    const r = await run(process.execPath, ['--input-type=module', '-e', `const m = await import('${PACKAGE_NAME}'); console.log(typeof m.connect, typeof m.PairprefError, m.LABELS.join(','));`], {
      cwd: projectDir,
      env: plainNodeEnv(),
    });
    assert.equal(r.code, 0, describeRun('node -e import', r));
    assert.equal(r.stdout.trim(), 'function function winner_model_a,winner_model_b,winner_tie');

    const example = extractExamples(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')).find((e) => e.name === 'sdk-score.mjs');
    assert.ok(example, 'README.md has the <!-- example: sdk-score.mjs --> block');
    const ran = await runExample(example, { projectDir, target });
    assert.equal(ran.code, 0, describeRun('node sdk-score.mjs', ran));
    assertPredictions(parsePredictionLines(ran.stdout), ['q1', 'q2'], 'sdk-score.mjs');
  });

  test('its declarations type-check a strict TypeScript user (and reject what strict TypeScript must)', async () => {
    const good = [
      "import { connect, PairprefError, Status, type Prediction, type Row, type ConnectOptions } from '@pairpref/client';",
      "const options: ConnectOptions = { deadlineMs: 5_000, retry: { maxRetries: 2 } };",
      "const client = connect(process.env.PAIRPREF_TARGET ?? '127.0.0.1:50051', options);",
      "const rows: Row[] = [{ id: 1, prompt: ['a'], response_a: ['b'], response_b: ['c'] }];",
      'try {',
      '  const out: Prediction[] = await client.score(rows);',
      '  const first = out[0];',
      '  if (first) console.log(first.id, first.winner_model_a + first.winner_model_b + first.winner_tie);',
      '} catch (e) {',
      '  if (e instanceof PairprefError && e.code === Status.UNAVAILABLE) console.error(e.message);',
      '} finally {',
      '  client.close();',
      '}',
    ].join('\n');
    writeFileSync(join(projectDir, 'user-good.ts'), good + '\n');
    const ok = await typeCheck(projectDir, ['user-good.ts']);
    assert.equal(ok.code, 0, describeRun('tsc user-good.ts', ok));

    // Without the declarations' types these would pass: a missing check on an index, a wrong field, a wrong option.
    writeFileSync(join(projectDir, 'user-bad.ts'), [
      "import { connect } from '@pairpref/client';",
      "const client = connect('127.0.0.1:50051', { deadlineMs: '5s' });",
      "const [p] = await client.score([{ id: 'x', prompt: ['a'], response_a: ['b'], response_b: ['c'] }]);",
      'console.log(p.winner_model_a, p.winner_c);',
    ].join('\n') + '\n');
    const bad = await typeCheck(projectDir, ['user-bad.ts']);
    assert.notEqual(bad.code, 0);
    for (const code of ['TS2322', 'TS18048', 'TS2339']) assert.match(bad.stdout, new RegExp(code), `tsc reports ${code}:\n${bad.stdout}`);
  });
});
