// Layering check: which of our folders may import which (core/ imports only core/, engine/
// never imports server/, nothing outside test/ imports test/, ...), as written down in
// .dependency-cruiser.cjs. The layers only stay layers if something fails when an import
// crosses them; this is that something, inside `npm test`. It runs dependency-cruiser's
// API with the very config the CLI uses (`npm run lint:layers` prints the same findings).
//
// The second case proves the rules bite: the same rule definitions (makeConfig, for a
// different base path) run over test/architecture/fixtures/bad/, whose core/x.ts imports
// server/, node builtins and a missing file, and must be reported.
//
// Not seen by dependency-cruiser, so not checked here: computed `import(expr)` and worker
// entries named by `new URL('./x.ts', import.meta.url)`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult, type IConfiguration, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG_FILE = `${REPO}.dependency-cruiser.cjs`;
const FIXTURE_BASE = 'test/architecture/fixtures/bad/';

const depcruiseConfig = createRequire(import.meta.url)(CONFIG_FILE) as IConfiguration & {
  makeConfig: (base: string) => IConfiguration;
  SOURCES: string;
};

async function run(sources: string[], options: ICruiseOptions): Promise<ICruiseResult> {
  const tsConfig = extractTSConfig(`${REPO}tsconfig.json`);
  const { output } = await cruise(sources, { ...options, baseDir: REPO, outputType: 'json' }, {}, { tsConfig });
  return typeof output === 'string' ? (JSON.parse(output) as ICruiseResult) : output;
}

const describe = (v: IViolation): string => `${v.rule.name}: ${v.from} -> ${v.to}`;

test('no import crosses the layers of .dependency-cruiser.cjs', async () => {
  const options = await extractDepcruiseOptions(CONFIG_FILE);
  const result = await run([depcruiseConfig.SOURCES], options);
  const violations = result.summary.violations.map(describe);
  assert.ok(
    violations.length === 0,
    `${violations.length} import(s) break the layering of .dependency-cruiser.cjs:\n  ${violations.join('\n  ')}`,
  );
  // A glob that matched nothing (a renamed folder list, a wrong cwd) would pass vacuously.
  assert.ok(result.summary.totalCruised > 50, `only ${result.summary.totalCruised} modules cruised`);
});

test('the same rules report a bad fixture tree', async () => {
  const { options, ...ruleSet } = depcruiseConfig.makeConfig(FIXTURE_BASE);
  const result = await run([FIXTURE_BASE], { ...options, ruleSet, validate: true });
  const found = result.summary.violations.map(describe).sort();
  const x = `${FIXTURE_BASE}core/x.ts`;
  assert.deepEqual(
    found,
    [
      `core-imports-only-core: ${x} -> ${FIXTURE_BASE}server/y.ts`,
      `core-no-node-builtins: ${x} -> fs`,
      `core-no-node-builtins: ${x} -> path`,
      `no-unresolvable: ${x} -> ./missing.ts`,
    ],
    `unexpected findings:\n  ${found.join('\n  ')}`,
  );
});

test('npm run lint:layers cruises the same sources as this test', () => {
  const pkg = JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { scripts?: Record<string, string> };
  const script = pkg.scripts?.['lint:layers'] ?? '';
  assert.ok(script.includes(`'${depcruiseConfig.SOURCES}'`), `lint:layers is "${script}", without '${depcruiseConfig.SOURCES}'`);
});
