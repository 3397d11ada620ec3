// test/fixtures/hf is made by the project's own training code: remaking it here (the tokenizers with
// training/hf-tokenizers.ts, the models with training/hf_fixtures.py on Debian's torch) gives every
// committed file byte for byte, so the fixtures are what the scripts say they are.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(REPO, 'test', 'fixtures', 'hf');

test('training/hf-tokenizers.ts + training/hf_fixtures.py remake test/fixtures/hf byte for byte', { timeout: 300_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'pairpref-hf-remake-'));
  try {
    const tok = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'training', 'hf-tokenizers.ts'), '--out', join(out, 'tok')], { cwd: REPO, encoding: 'utf8' });
    assert.equal(tok.status, 0, tok.stderr);
    const make = spawnSync('/usr/bin/python3', [join(REPO, 'training', 'hf_fixtures.py'), 'make', '--tokenizers', join(out, 'tok'), '--out', join(out, 'hf')], { cwd: REPO, encoding: 'utf8' });
    assert.equal(make.status, 0, make.stderr);
    const bundles = readdirSync(FIXTURES, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    assert.deepEqual(bundles, ['gemma-seq-cls', 'label-token', 'llama-seq-cls']);
    for (const b of bundles) {
      const files = readdirSync(join(FIXTURES, b)).sort();
      assert.deepEqual(readdirSync(join(out, 'hf', b)).sort(), files, `${b}: the same files`);
      for (const f of files) assert.ok(readFileSync(join(out, 'hf', b, f)).equals(readFileSync(join(FIXTURES, b, f))), `${b}/${f} differs from what the scripts make`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
