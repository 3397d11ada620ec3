// The committed ts-proto output (proto/gen) and protoc-gen-es output (proto/gen-es, for the
// Connect/gRPC-Web port and the browser) must be exactly what `npm run gen:proto` makes from proto/:
// runs that script's own command (read from package.json, so the two cannot drift) into a
// temp dir and compares byte for byte.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** Each protoc plugin's output flag in the script (--ts_proto_out=DIR, --es_out=DIR). */
const OUT_FLAG = /--(ts_proto|es)_out=(\S+)/g;

test('proto/gen (ts-proto) and proto/gen-es (protoc-gen-es) match a fresh `npm run gen:proto`', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const script = pkg.scripts?.['gen:proto'];
  assert.ok(script, 'package.json has no "gen:proto" script');
  const outs = [...script.matchAll(OUT_FLAG)].map((m) => ({ flag: m[0], plugin: m[1]!, dir: m[2]! }));
  assert.deepEqual(outs.map((o) => o.plugin).sort(), ['es', 'ts_proto'], `gen:proto must run both ts-proto and protoc-gen-es: ${script}`);

  const tmp = mkdtempSync(join(tmpdir(), 'pairpref-gen-proto-'));
  try {
    let command = script;
    for (const o of outs) command = command.replace(o.flag, `--${o.plugin}_out=${join(tmp, o.plugin)}`);
    for (const o of outs) mkdirSync(join(tmp, o.plugin));
    const r = spawnSync('sh', ['-c', command], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, `gen:proto failed (needs Debian's protobuf-compiler and npm ci):\n${command}\n${r.error?.message ?? ''}${r.stderr}`);

    for (const o of outs) {
      const fresh = filesUnder(join(tmp, o.plugin));
      assert.ok(fresh.length > 0, `gen:proto produced no files for ${o.dir}`);
      assert.deepEqual(filesUnder(join(REPO, o.dir)), fresh, `${o.dir} holds other files than gen:proto makes: run npm run gen:proto`);
      for (const f of fresh) {
        const same = readFileSync(join(tmp, o.plugin, f)).equals(readFileSync(join(REPO, o.dir, f)));
        assert.ok(same, `${join(o.dir, f)} differs from what proto/ generates: run npm run gen:proto and commit the result`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
