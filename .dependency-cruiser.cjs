// Import rules (layering) for this repo, checked by dependency-cruiser.
//
//   npm run lint:layers                      (the CLI, readable report)
//   test/architecture/layers.test.ts         (the same check inside `npm test`)
//
// Who may import whom, of our own folders (a folder may always import itself; npm
// packages are not restricted here; node builtins are, where it says so):
//
//   core/          only core/; no node builtins (node:fs, fs, path, ...)
//   platform/      nothing of ours (node builtins fine)
//   runtime/node/  core/, platform/
//   runtime/web/   core/; no node builtins
//   engine/        core/, platform/
//   protocol/      core/, proto/gen/
//   server/        engine/, protocol/, core/, proto/gen/, proto/gen-es/, platform/
//   client/        protocol/, core/, proto/gen/
//   browser/       runtime/web/, protocol/, core/, proto/gen-es/; no node builtins
//   datasets/      core/
//   cli/           anything but test/ and training/
//   web/           browser/, runtime/web/, core/, client/ (web/src/ also: no node builtins;
//                  web/*.ts such as vite.config.ts run in node and may use them)
//   bench/         anything but test/ and training/
//   training/      anything but test/ and bench/
//   proto/gen/     nothing of ours
//   proto/gen-es/  nothing of ours
//   test/          anything; and nothing outside test/ may import from test/
//
// Packages: core/ and engine/ import no transport or telemetry package (@grpc/*, @opentelemetry/*,
// prom-client, pino): the engine reports its stage timings through engine/stages.ts, and server/
// turns them into spans and metrics (ARCHITECTURE.md, Telemetry).
//
// Folders that do not exist yet cost nothing: a rule whose `from` matches no file never fires.
//
// What dependency-cruiser does NOT see, so these rules cannot police it: imports whose
// specifier is computed (`import(name)`, `import(\`./${x}.ts\`)`) and worker entries
// named by URL (`new Worker(new URL('./x.ts', import.meta.url))`, or a path string handed to
// a worker loader). `import('./literal.ts')` with a literal string IS seen.
//
// The rules are built for a base path by makeConfig(base), so that
// test/architecture/layers.test.ts can run the very same rules over a deliberately bad
// fixture tree (test/architecture/fixtures/bad/) and prove they fire. The repo's own
// config is makeConfig('').

'use strict';

/** Top-level layout, as regex fragments relative to the base (no leading ^, no base). */
const L = {
  core: 'core/',
  platform: 'platform/',
  runtimeNode: 'runtime/node/',
  runtimeWeb: 'runtime/web/',
  engine: 'engine/',
  protocol: 'protocol/',
  server: 'server/',
  client: 'client/',
  browser: 'browser/',
  datasets: 'datasets/',
  cli: 'cli/',
  web: 'web/',
  webSrc: 'web/src/',
  bench: 'bench/',
  training: 'training/',
  protoGen: 'proto/gen/',
  protoGenEs: 'proto/gen-es/',
  test: 'test/',
};

/**
 * Layers with an allow-list: [rule name, from folder, folders it may import besides itself].
 * For the others (cli, bench, training) there is a deny-list below.
 */
const ALLOW = [
  ['core-imports-only-core', L.core, []],
  ['platform-imports-nothing-of-ours', L.platform, []],
  ['runtime-node-imports-core-platform', L.runtimeNode, [L.core, L.platform]],
  ['runtime-web-imports-core', L.runtimeWeb, [L.core]],
  ['engine-imports-core-platform', L.engine, [L.core, L.platform]],
  ['protocol-imports-core-proto-gen', L.protocol, [L.core, L.protoGen]],
  ['server-imports-engine-protocol-core-proto-gen-platform', L.server, [L.engine, L.protocol, L.core, L.protoGen, L.protoGenEs, L.platform]],
  ['client-imports-protocol-core-proto-gen', L.client, [L.protocol, L.core, L.protoGen]],
  ['datasets-imports-core', L.datasets, [L.core]],
  ['browser-imports-runtime-web-protocol-core-proto-gen-es', L.browser, [L.runtimeWeb, L.protocol, L.core, L.protoGenEs]],
  ['web-imports-browser-runtime-web-core-client', L.web, [L.browser, L.runtimeWeb, L.core, L.client]],
  ['proto-gen-imports-nothing-of-ours', L.protoGen, []],
  ['proto-gen-es-imports-nothing-of-ours', L.protoGenEs, []],
];

/** Layers with a deny-list: [rule name, from folder, folders it must not import]. */
const DENY = [
  ['cli-not-training', L.cli, [L.training]],
  ['bench-not-training', L.bench, [L.training]],
  ['training-not-bench', L.training, [L.bench]],
];

/** Folders that must not import transport or telemetry packages: [rule name, from folder]. */
const NO_TELEMETRY = [
  ['core-no-transport-or-telemetry-packages', L.core],
  ['engine-no-transport-or-telemetry-packages', L.engine],
];
const TELEMETRY_PACKAGES = '(^|/)node_modules/(@grpc/|@opentelemetry/|prom-client/|pino/|pino-pretty/)';

/** Folders whose code runs without node: no node builtins, with or without `node:`. */
const NO_BUILTINS = [
  ['core-no-node-builtins', L.core],
  ['runtime-web-no-node-builtins', L.runtimeWeb],
  ['browser-no-node-builtins', L.browser],
  ['web-src-no-node-builtins', L.webSrc],
];

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The dependency-cruiser configuration for a tree rooted at `base` ('' for the repo root,
 * 'test/architecture/fixtures/bad/' for the fixture), with paths relative to the cwd the
 * cruise runs from (the repo root).
 * @param {string} base
 */
function makeConfig(base) {
  const B = '^' + escapeRe(base);
  const at = (folder) => B + folder;
  // "Ours": resolved to a file under the base, not a package and not a node builtin.
  // (A module that does not resolve is not "ours" here; no-unresolvable catches it.)
  const notOurs = ['(^|/)node_modules/'];
  const ours = { path: B, couldNotResolve: false, dependencyTypesNot: ['core'] };

  const forbidden = [];
  for (const [name, from, allowed] of ALLOW) {
    forbidden.push({
      name,
      severity: 'error',
      comment: `${from} may import, of our folders, only ${[from, ...allowed].join(', ')}`,
      from: { path: at(from) },
      // test/ is left to no-imports-from-test, so that such an import is reported once.
      to: { ...ours, pathNot: [...notOurs, at(L.test), ...[from, ...allowed].map(at)] },
    });
  }
  for (const [name, from, denied] of DENY) {
    forbidden.push({
      name,
      severity: 'error',
      comment: `${from} must not import ${denied.join(', ')}`,
      from: { path: at(from) },
      to: { ...ours, path: `${B}(${denied.map(escapeRe).join('|')})`, pathNot: notOurs },
    });
  }
  for (const [name, from] of NO_TELEMETRY) {
    forbidden.push({
      name,
      severity: 'error',
      comment: `${from} imports no transport or telemetry package (@grpc/*, @opentelemetry/*, prom-client, pino): it reports stage timings (engine/stages.ts) and server/ makes spans and metrics of them`,
      from: { path: at(from) },
      to: { path: TELEMETRY_PACKAGES },
    });
  }
  for (const [name, from] of NO_BUILTINS) {
    forbidden.push({
      name,
      severity: 'error',
      comment: `${from} runs without node: no node builtins (node:fs, fs, path, ...)`,
      from: { path: at(from) },
      to: { dependencyTypes: ['core'] },
    });
  }
  forbidden.push(
    {
      name: 'no-imports-from-test',
      severity: 'error',
      comment: 'Only test/ may import from test/.',
      from: { path: B, pathNot: at(L.test) },
      to: { ...ours, path: at(L.test), pathNot: notOurs },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment:
        'An import of ours (relative, or a package) that does not resolve to a file: a typo, a ' +
        'moved file, or a missing dependency. Without this rule it would silently drop out of the graph.',
      from: { path: B },
      to: { couldNotResolve: true },
    },
  );

  return {
    forbidden,
    options: {
      // Do not descend into packages: they are leaves of the graph.
      doNotFollow: { path: ['(^|/)node_modules/'] },
      // Build outputs and the bad fixture (the latter only for the repo's own config). Packages are
      // not excluded: they stay in the graph as leaves (doNotFollow), so rules can name them.
      exclude: {
        path: [
          '(^|/)dist/',
          '^training/out/',
          ...(base === '' ? ['^test/architecture/fixtures/'] : []),
        ],
      },
      // Imports that only TypeScript sees (`import type`, types erased on emit) count too:
      // a type from a layer above is still a dependency on it.
      tsPreCompilationDeps: true,
      tsConfig: { fileName: 'tsconfig.json' },
      // Our imports carry explicit `.ts` suffixes (allowImportingTsExtensions); list the
      // extensions so extension-less specifiers of packages and `.ts` files both resolve.
      enhancedResolveOptions: {
        exportsFields: ['exports'],
        conditionNames: ['import', 'require', 'node', 'default', 'types'],
        extensions: ['.ts', '.mts', '.cts', '.tsx', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
        mainFields: ['module', 'main', 'types', 'typings'],
      },
      // No cache file written into the repo.
      cache: false,
      reporterOptions: {
        text: { highlightFocused: true },
      },
    },
  };
}

/**
 * What to cruise, as one glob for the depcruise CLI and the API alike. A glob (unlike a
 * folder name) may match nothing, so folders of the target layout that do not exist yet
 * are fine. package.json's lint:layers spells the same glob out (the test checks they agree).
 * test/ is not a start point: it may import anything, and an import of test/
 * from elsewhere is still seen from the importing side.
 */
const SOURCES = '{bin,core,platform,runtime,engine,protocol,server,client,browser,datasets,cli,web,bench,training,proto/gen,proto/gen-es}/**/*.{ts,mts,cts,js,mjs,cjs}';

module.exports = makeConfig('');
// Not enumerable, so dependency-cruiser's config validation does not see them.
Object.defineProperty(module.exports, 'makeConfig', { value: makeConfig, enumerable: false });
Object.defineProperty(module.exports, 'SOURCES', { value: SOURCES, enumerable: false });
