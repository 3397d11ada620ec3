// Proto compatibility check: the live API (proto/pairpref/v1/preference.proto) must not
// break what the last release shipped (proto/released/<newest version>/), by buf's FILE
// rules (buf.yaml says why FILE and not WIRE/WIRE_JSON). Deleting or renumbering a field,
// changing its type, renaming a message or an RPC, moving a file: all fail here, in
// `npm test`, instead of in a client that was built against the release.
//
// The second case proves the check bites: a copy of the repo's buf setup whose live proto
// has one field deleted must fail, and buf must name that field.
//
// buf runs offline for local directory inputs (no deps in buf.yaml, no buf.lock); its cache
// goes to a temp dir so nothing is written to $HOME or the repo.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BUF = join(REPO, 'node_modules', '.bin', process.platform === 'win32' ? 'buf.cmd' : 'buf');
const API_FILE = 'pairpref/v1/preference.proto';

const scratch = mkdtempSync(join(tmpdir(), 'pairpref-proto-compat-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The newest folder under proto/released/, by semver (0.10.0 after 0.9.0). */
function newestRelease(): string {
  const versions = readdirSync(join(REPO, 'proto', 'released'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^\d+\.\d+\.\d+$/.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => {
      const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
      return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]!;
    });
  assert.ok(versions.length > 0, 'no release under proto/released/');
  return versions.at(-1)!;
}

/**
 * `buf breaking` of the workspace in `cwd` (its buf.yaml: module proto/, released and gen
 * excluded) against proto/released/<release>/ there. The release folder lies inside that
 * workspace, which buf refuses as an --against input, so --against-config hands it a
 * config of its own in which that folder is the only module.
 */
function bufBreaking(cwd: string, release: string): { status: number | null; output: string } {
  const r = spawnSync(
    BUF,
    [
      'breaking',
      'proto',
      '--against',
      '.',
      '--against-config',
      JSON.stringify({ version: 'v2', modules: [{ path: `proto/released/${release}` }] }),
    ],
    {
      cwd,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, BUF_CACHE_DIR: join(scratch, 'buf-cache') },
    },
  );
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

test('the live proto does not break the last release (buf breaking, FILE rules)', () => {
  const release = newestRelease();
  const { status, output } = bufBreaking(REPO, release);
  assert.equal(
    status,
    0,
    `proto/ breaks the ${release} release (proto/released/${release}/), buf breaking says:\n${output}\n` +
      'Keep the change additive (new fields, messages and RPCs with new numbers and names; mark an old field ' +
      '`[deprecated = true]` rather than deleting it: FILE rules reject a deletion even with `reserved`), ' +
      'or add a new package (pairpref.v2) next to v1.',
  );
});

test('buf breaking reports a deleted field', () => {
  const release = newestRelease();
  const released = readFileSync(join(REPO, 'proto', 'released', release, API_FILE), 'utf8');
  // The first field declaration ("  double winner_tie = 4;"): type, name, number.
  const field = /^[ \t]+(?:repeated[ \t]+|optional[ \t]+)?[\w.]+[ \t]+(\w+)[ \t]*=[ \t]*(\d+)[^\n]*;[^\n]*\n/m.exec(released);
  assert.ok(field, `no field declaration found in proto/released/${release}/${API_FILE}`);
  const mutated = released.slice(0, field.index) + released.slice(field.index + field[0].length);

  // A copy of the repo's buf setup: buf.yaml, the release, and the mutated proto as live.
  const tree = join(scratch, 'tree');
  mkdirSync(join(tree, 'proto', 'pairpref', 'v1'), { recursive: true });
  copyFileSync(join(REPO, 'buf.yaml'), join(tree, 'buf.yaml'));
  cpSync(join(REPO, 'proto', 'released', release), join(tree, 'proto', 'released', release), { recursive: true });
  writeFileSync(join(tree, 'proto', API_FILE), mutated);

  const { status, output } = bufBreaking(tree, release);
  assert.notEqual(status, 0, `buf breaking passed a deleted field "${field[1]}":\n${output}`);
  assert.match(output, new RegExp(`field "${field[2]}" with name "${field[1]}" .* was deleted`), output);
});
