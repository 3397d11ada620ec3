// The committed ts-proto output must be exactly what `npm run gen:proto` makes from proto/:
// runs that script's own command (read from package.json, so the two cannot drift) into a
// temp dir and compares byte for byte.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

test('proto/gen matches a fresh `npm run gen:proto`', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const script = pkg.scripts?.['gen:proto'];
  assert.ok(script, 'package.json has no "gen:proto" script');
  const outFlag = /--ts_proto_out=(\S+)/.exec(script);
  assert.ok(outFlag, `cannot find --ts_proto_out=DIR in the gen:proto script: ${script}`);
  const committedDir = join(REPO, outFlag[1]!);

  const tmp = mkdtempSync(join(tmpdir(), 'pairpref-gen-proto-'));
  try {
    const command = script.replace(outFlag[0], `--ts_proto_out=${tmp}`);
    const r = spawnSync('sh', ['-c', command], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, `gen:proto failed (needs Debian's protobuf-compiler and npm ci):\n${command}\n${r.error?.message ?? ''}${r.stderr}`);

    const fresh = filesUnder(tmp);
    assert.ok(fresh.length > 0, 'gen:proto produced no files');
    assert.deepEqual(filesUnder(committedDir), fresh, `${outFlag[1]} holds other files than gen:proto makes: run npm run gen:proto`);
    for (const f of fresh) {
      const same = readFileSync(join(tmp, f)).equals(readFileSync(join(committedDir, f)));
      assert.ok(same, `${join(outFlag[1]!, f)} differs from what proto/ generates: run npm run gen:proto and commit the result`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
