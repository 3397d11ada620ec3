#!/usr/bin/env node
// Builds and checks @pairpref/client (`npm run build` here, and `prepack`, so `npm pack` never packs
// an unchecked dist/). Plain Node.js, no tsx: it must run wherever the package is packed.
//
// 1. dist/ from scratch: tsc -p tsconfig.build.json compiles client/index.ts and everything it
//    imports (client/, protocol/, core/, proto/gen/ of the repository: the one copy of the sources).
// 2. Declarations: the relative `.ts` specifiers tsc keeps in .d.ts files become `.js`, so any
//    TypeScript version and moduleResolution a user has resolves them.
// 3. Imports: every module specifier in dist (imports, re-exports, dynamic imports, type references)
//    is a file inside dist, a node: builtin, or one of package.json's `dependencies`; each dependency
//    is imported by some file, and no `.ts` specifier is left. So the package cannot pull in the
//    server's modules (onnxruntime-node, tsx, ...) by accident, or declare one it does not use.
// 4. The declarations type-check alone (skipLibCheck off, strict).
// 5. Entry points: package.json's `exports` files exist, and a plain `node` (no loader, no
//    NODE_OPTIONS) imports the package by its name and finds the public functions.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(PKG_DIR, 'dist');
const pkg = JSON.parse(readFileSync(join(PKG_DIR, 'package.json'), 'utf8'));
const DEPENDENCIES = Object.keys(pkg.dependencies ?? {});
/** Runtime exports a user relies on; the check fails when the built entry lacks one. */
const REQUIRED_EXPORTS = ['connect', 'PairprefError', 'Status', 'LABELS', 'probsOf', 'resolveTarget'];

function fail(msg) {
  console.error(`@pairpref/client build: ${msg}`);
  process.exit(1);
}

function loadTypeScript() {
  try {
    return createRequire(join(PKG_DIR, 'package.json'))('typescript');
  } catch {
    return fail('typescript is not installed: run `npm ci` in the repository root first (the package is built from the repository)');
  }
}

function filesUnder(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function compile() {
  rmSync(DIST, { recursive: true, force: true });
  const tsc = join(dirname(createRequire(join(PKG_DIR, 'package.json')).resolve('typescript/package.json')), 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(PKG_DIR, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) fail(`tsc failed (exit ${r.status ?? r.signal})`);
}

/** `'./sdk.ts'` -> `'./sdk.js'` in every relative specifier of the declaration files. */
function rewriteDeclarations(ts, files) {
  for (const f of files.filter((p) => p.endsWith('.d.ts'))) {
    const text = readFileSync(f, 'utf8');
    const specs = ts.preProcessFile(text, true, true).importedFiles;
    let out = text;
    // Replace from the end so earlier positions stay valid.
    for (const s of [...specs].sort((a, b) => b.pos - a.pos)) {
      if (/^\.\.?\//.test(s.fileName) && /\.([cm]?)ts$/.test(s.fileName) && !s.fileName.endsWith('.d.ts')) {
        // pos is the opening quote; the name follows it.
        const start = out.indexOf(s.fileName, s.pos);
        if (start !== s.pos + 1) fail(`${relative(PKG_DIR, f)}: cannot locate the specifier ${s.fileName}`);
        const js = s.fileName.replace(/\.([cm]?)ts$/, '.$1js');
        out = out.slice(0, start) + js + out.slice(start + s.fileName.length);
      }
    }
    if (out !== text) writeFileSync(f, out);
  }
}

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function checkImports(ts, files) {
  const problems = [];
  const used = new Set();
  const builtins = new Set(builtinModules);
  for (const f of files.filter((p) => p.endsWith('.js') || p.endsWith('.d.ts'))) {
    const info = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
    const where = relative(PKG_DIR, f);
    const specs = [...info.importedFiles.map((s) => s.fileName), ...info.referencedFiles.map((s) => s.fileName)];
    for (const spec of specs) {
      if (/\.([cm]?)ts$/.test(spec) && !spec.endsWith('.d.ts')) problems.push(`${where}: imports ${spec} (a .ts file)`);
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = resolve(dirname(f), spec);
        const candidates = f.endsWith('.d.ts') ? [target, target.replace(/\.([cm]?)js$/, '.d.$1ts')] : [target];
        if (!(target + sep).startsWith(DIST + sep)) problems.push(`${where}: imports ${spec}, outside dist/`);
        else if (!candidates.some((c) => existsSync(c))) problems.push(`${where}: imports ${spec}, which is not in dist/`);
        continue;
      }
      if (spec.startsWith('node:') || builtins.has(spec)) continue;
      const name = packageName(spec);
      if (DEPENDENCIES.includes(name)) used.add(name);
      else problems.push(`${where}: imports ${spec}, which is not a dependency of ${pkg.name}`);
    }
    for (const ref of info.typeReferenceDirectives.map((r) => r.fileName)) {
      if (ref !== 'node') problems.push(`${where}: references types "${ref}"`);
    }
  }
  for (const dep of DEPENDENCIES) if (!used.has(dep)) problems.push(`dependency ${dep} is declared but nothing in dist/ imports it`);
  if (problems.length > 0) fail(`dist/ imports what the package does not ship:\n  ${problems.join('\n  ')}`);
  return [...used].sort();
}

function exportTargets(exp) {
  if (typeof exp === 'string') return [exp];
  return Object.values(exp ?? {}).flatMap(exportTargets);
}

/** The declarations type-check on their own (skipLibCheck off) under strict settings. */
function checkDeclarations() {
  const require = createRequire(join(PKG_DIR, 'package.json'));
  const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  const typeRoots = join(dirname(dirname(require.resolve('@types/node/package.json'))));
  const types = exportTargets(pkg.exports).filter((t) => t.endsWith('.d.ts')).map((t) => join(PKG_DIR, t));
  const args = ['--noEmit', '--strict', '--noUncheckedIndexedAccess', '--module', 'NodeNext', '--moduleResolution', 'NodeNext'];
  args.push('--target', 'ES2022', '--lib', 'ES2023', '--types', 'node', '--typeRoots', typeRoots, ...types);
  const r = spawnSync(process.execPath, [tsc, ...args], { encoding: 'utf8' });
  if (r.status !== 0) fail(`the declarations do not type-check:\n${r.stdout}${r.stderr}`);
}

function checkEntry() {
  for (const target of exportTargets(pkg.exports)) {
    if (!existsSync(join(PKG_DIR, target))) fail(`exports names ${target}, which was not built`);
  }
  // Plain node, resolving the package by its own name (package self-reference through `exports`).
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const script = `const m = await import(${JSON.stringify(pkg.name)}); console.log(JSON.stringify(Object.keys(m).sort()));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: PKG_DIR, env, encoding: 'utf8' });
  if (r.status !== 0) fail(`plain node cannot import ${pkg.name}:\n${r.stderr}`);
  const names = JSON.parse(r.stdout);
  const missing = REQUIRED_EXPORTS.filter((n) => !names.includes(n));
  if (missing.length > 0) fail(`the entry does not export ${missing.join(', ')}`);
  return names;
}

const ts = loadTypeScript();
compile();
const files = filesUnder(DIST);
rewriteDeclarations(ts, files);
const deps = checkImports(ts, files);
checkDeclarations();
const names = checkEntry();
const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
console.error(
  `@pairpref/client: built dist/ (${files.length} files, ${(bytes / 1024).toFixed(0)} KiB); imports only node: builtins and ${deps.join(', ')}; ` +
    `plain node imports it (${names.length} exports)`,
);
