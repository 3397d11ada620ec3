// The images copy source folders one by one (an allowlist: no tests, training or web/ in them), so a
// new folder the CLI imports breaks the image until someone adds it to both Dockerfiles and
// .dockerignore. deploy/container-test.sh catches that when it builds, but only in CI's last step:
// this check finds it in seconds, by following every import from bin/pairpref.mjs with
// dependency-cruiser and asking whether each of our modules is inside what the image copies.
//
// Not followed (dependency-cruiser cannot see them): worker entries named by
// `new URL('./x.ts', import.meta.url)`; they sit in folders copied whole.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DOCKERFILES = ['Dockerfile', 'Dockerfile.cuda'] as const;

/** Repository paths the final stage copies from the build context (COPY without --from). */
function copiedPaths(dockerfile: string): string[] {
  const paths: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^COPY\s+(?!--from)(.+)$/.exec(line.trim());
    if (!m) continue;
    const parts = m[1]!.split(/\s+/).filter((p) => !p.startsWith('--'));
    paths.push(...parts.slice(0, -1).map((p) => p.replace(/^\.\//, '').replace(/\/$/, '')));
  }
  return paths;
}

/** The `!path` entries of the allowlist-style .dockerignore. */
function allowed(dockerignore: string): string[] {
  return dockerignore.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
}

const inside = (file: string, roots: readonly string[]): boolean => roots.some((r) => file === r || file.startsWith(`${r}/`));

/** Our modules (not packages, not node builtins) that the CLI imports, directly or not. */
async function cliModules(): Promise<string[]> {
  const tsConfig = extractTSConfig(`${REPO}tsconfig.json`);
  const { output } = await cruise(['bin/pairpref.mjs'], { baseDir: REPO, outputType: 'json', doNotFollow: { path: 'node_modules' }, tsPreCompilationDeps: true }, {}, { tsConfig });
  const result = (typeof output === 'string' ? JSON.parse(output) : output) as ICruiseResult;
  return result.modules.filter((m) => !m.coreModule && !m.source.startsWith('node_modules/') && !m.couldNotResolve).map((m) => m.source);
}

/** The modules the image would lack: imported by the CLI, outside every COPY'd path. */
export function missingFromImage(modules: readonly string[], copied: readonly string[]): string[] {
  return modules.filter((m) => !inside(m, copied));
}

describe('the images hold every module the CLI imports', () => {
  let modules: string[] = [];
  before(async () => {
    modules = await cliModules();
  });

  test('dependency-cruiser follows the CLI into every layer it needs', () => {
    for (const f of ['cli/main.ts', 'cli/serve.ts', 'server/server.ts', 'engine/scorer.ts', 'core/run-batch.ts', 'runtime/node/session.ts']) {
      assert.ok(modules.includes(f), `${f} not reached from bin/pairpref.mjs: the check would prove nothing`);
    }
  });

  for (const name of DOCKERFILES) {
    test(`${name} copies them all, and .dockerignore lets each copied path into the context`, () => {
      const copied = copiedPaths(readFileSync(`${REPO}${name}`, 'utf8'));
      assert.deepEqual(missingFromImage(modules, copied), [], `add these folders to ${name} (and .dockerignore)`);
      const allow = allowed(readFileSync(`${REPO}.dockerignore`, 'utf8'));
      assert.deepEqual(copied.filter((c) => !inside(c, allow)), [], '.dockerignore keeps these COPY sources out of the build context');
    });
  }

  test('a folder missing from the COPY list is reported', () => {
    const copied = copiedPaths(readFileSync(`${REPO}Dockerfile`, 'utf8')).filter((c) => c !== 'server');
    assert.ok(missingFromImage(modules, copied).some((m) => m.startsWith('server/')));
  });
});
