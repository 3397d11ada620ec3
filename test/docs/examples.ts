// Runnable examples in README.md. A fenced block is an example when the line right before its fence is
//
//   <!-- example: NAME.EXT -->
//
// (an HTML comment: invisible on GitHub and npm). NAME is the file the block is saved as; EXT says
// how it runs:
//   .mjs  plain `node NAME.mjs` (no TypeScript loader) in a project where @pairpref/client is
//         installed from its tarball;
//   .ts   type-checked with tsc under the repository's strict settings against the installed
//         package's declarations, then its types stripped (typescript's transpileModule) and run
//         like .mjs: the README's TypeScript is what a user's strict project compiles;
//   .sh   `bash -eo pipefail` in an empty directory, with `pairpref` (and `npx pairpref`) running this
//         repository's CLI, models/, examples/ and test/fixtures/hf/ linked in.
// Every example gets PAIRPREF_TARGET=HOST:PORT of a running `pairpref serve`, so examples read the
// target from it with 127.0.0.1:50051 as the default and stay copy-pasteable; and, when that server has
// --http-port, PAIRPREF_HTTP=HOST:PORT of its HTTP port (Connect, gRPC-Web, JSON: the curl examples).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plainNodeEnv, REPO_ROOT, run, type Run } from '../package/sdk-install.ts';

export interface Example {
  /** File name from the marker, e.g. sdk-score.mjs. */
  readonly name: string;
  /** The fence's info string (e.g. `js`, `ts`, `sh`). */
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the marker in the markdown. */
  readonly line: number;
}

const MARKER = /^<!--\s*example:\s*(\S+)\s*-->\s*$/;
const OPEN = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/;
const KINDS = ['.mjs', '.ts', '.sh'] as const;
/** Fence languages each kind may be written in (so the block is highlighted as what it is). */
const LANGS: Record<(typeof KINDS)[number], readonly string[]> = { '.mjs': ['js', 'javascript', 'mjs'], '.ts': ['ts', 'typescript'], '.sh': ['sh', 'bash', 'shell'] };

export function kindOf(name: string): (typeof KINDS)[number] | undefined {
  return KINDS.find((k) => name.endsWith(k));
}

/** The marked examples of a markdown text; throws on a marker without a fence, an unclosed fence, a duplicate or unknown name. */
export function extractExamples(markdown: string): Example[] {
  const lines = markdown.split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i] ?? '');
    if (!m) continue;
    const name = m[1] as string;
    const kind = kindOf(name);
    if (!kind || !/^[\w.-]+$/.test(name)) throw new Error(`README line ${i + 1}: example "${name}" must be a plain file name ending in ${KINDS.join(', ')}`);
    if (out.some((e) => e.name === name)) throw new Error(`README line ${i + 1}: a second example named ${name}`);
    const open = OPEN.exec(lines[i + 1] ?? '');
    if (!open) throw new Error(`README line ${i + 1}: the marker for ${name} is not followed by a fenced code block`);
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    if (!LANGS[kind].includes(lang)) throw new Error(`README line ${i + 2}: ${name} is fenced as "${lang}"; use one of ${LANGS[kind].join(', ')}`);
    const body: string[] = [];
    let j = i + 2;
    for (; j < lines.length; j++) {
      const l = lines[j] as string;
      if (l.trim().startsWith(fence[0]!.repeat(fence.length)) && l.trim().replace(/[`~]/g, '') === '') break;
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l);
    }
    if (j >= lines.length) throw new Error(`README line ${i + 2}: the code block of ${name} is never closed`);
    out.push({ name, lang, code: body.join('\n') + '\n', line: i + 1 });
    i = j;
  }
  return out;
}

export interface ExampleContext {
  /** A project with @pairpref/client installed (for .mjs and .ts examples). */
  readonly projectDir: string;
  /** HOST:PORT of a running server. */
  readonly target: string;
  /** HOST:PORT of its --http-port, when it has one. */
  readonly http?: string;
  readonly timeoutMs?: number;
}

/** What every example finds in its environment: where the server is. */
function serverEnv(ctx: ExampleContext): Record<string, string> {
  return { PAIRPREF_TARGET: ctx.target, ...(ctx.http !== undefined ? { PAIRPREF_HTTP: ctx.http } : {}) };
}

export interface ExampleRun extends Run {
  /** Where it ran (the project for SDK examples, a fresh directory for shell ones). */
  readonly cwd: string;
}

const require = createRequire(import.meta.url);

function tscPath(): string {
  return join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
}

/**
 * The repository's strictness (tsconfig.json) for a user project: NodeNext ESM, strict,
 * noUncheckedIndexedAccess, verbatimModuleSyntax. Types come from the project's node_modules
 * (the package and what it installed); skipLibCheck off, so the package's declarations are checked too.
 */
export function writeStrictTsconfig(projectDir: string, files: readonly string[]): string {
  const path = join(projectDir, 'tsconfig.json');
  writeFileSync(
    path,
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          strict: true,
          noUncheckedIndexedAccess: true,
          noImplicitOverride: true,
          noFallthroughCasesInSwitch: true,
          verbatimModuleSyntax: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files,
      },
      null,
      2,
    ),
  );
  return path;
}

/** tsc --noEmit on the given files of the project, with writeStrictTsconfig's settings. */
export async function typeCheck(projectDir: string, files: readonly string[]): Promise<Run> {
  const tsconfig = writeStrictTsconfig(projectDir, files);
  return run(process.execPath, [tscPath(), '-p', tsconfig, '--pretty', 'false'], { cwd: projectDir, env: plainNodeEnv(), timeoutMs: 120_000 });
}

/** The example's TypeScript with its types removed, as an ES module for plain node. */
export function stripTypes(code: string, fileName: string): string {
  const ts = require('typescript') as typeof import('typescript');
  const out = ts.transpileModule(code, {
    fileName,
    reportDiagnostics: true,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true },
  });
  if (out.diagnostics?.length) throw new Error(`${fileName}: ${out.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ')}`);
  return out.outputText;
}

async function runNodeExample(file: string, ctx: ExampleContext): Promise<ExampleRun> {
  const r = await run(process.execPath, [file], { cwd: ctx.projectDir, env: plainNodeEnv(serverEnv(ctx)), timeoutMs: ctx.timeoutMs ?? 60_000 });
  return { ...r, cwd: ctx.projectDir };
}

/** A directory where `pairpref` and `npx pairpref` run this repository's CLI. */
function shellWorkdir(): { cwd: string; bin: string } {
  const root = mkdtempSync(join(tmpdir(), 'pairpref-readme-sh-'));
  const bin = join(root, 'bin');
  const cwd = join(root, 'work');
  mkdirSync(bin);
  mkdirSync(cwd);
  const shim = join(bin, 'pairpref');
  writeFileSync(shim, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(REPO_ROOT, 'bin', 'pairpref.mjs'))} "$@"\n`);
  chmodSync(shim, 0o755);
  // Examples may name the repository's model and sample files by their paths in a clone.
  for (const dir of ['models', 'examples']) if (existsSync(join(REPO_ROOT, dir))) symlinkSync(join(REPO_ROOT, dir), join(cwd, dir));
  // ... and the Hugging Face-shaped fixtures the "Bring your own model" examples start from.
  mkdirSync(join(cwd, 'test', 'fixtures'), { recursive: true });
  symlinkSync(join(REPO_ROOT, 'test', 'fixtures', 'hf'), join(cwd, 'test', 'fixtures', 'hf'));
  return { cwd, bin };
}

/** Runs one example (see the top of this file) and returns its exit code and output. */
export async function runExample(ex: Example, ctx: ExampleContext): Promise<ExampleRun> {
  switch (kindOf(ex.name)) {
    case '.mjs': {
      const file = join(ctx.projectDir, ex.name);
      writeFileSync(file, ex.code);
      return runNodeExample(file, ctx);
    }
    case '.ts': {
      writeFileSync(join(ctx.projectDir, ex.name), ex.code);
      const checked = await typeCheck(ctx.projectDir, [ex.name]);
      if (checked.code !== 0) return { ...checked, stderr: `tsc (strict) rejects ${ex.name}:\n${checked.stdout}${checked.stderr}`, cwd: ctx.projectDir };
      const file = join(ctx.projectDir, ex.name.replace(/\.ts$/, '.example.mjs'));
      writeFileSync(file, stripTypes(ex.code, ex.name));
      return runNodeExample(file, ctx);
    }
    case '.sh': {
      const { cwd, bin } = shellWorkdir();
      const prelude = 'npx() { if [ "$1" = pairpref ]; then shift; pairpref "$@"; else command npx "$@"; fi; }\n';
      const env = plainNodeEnv({ ...serverEnv(ctx), PATH: `${bin}:${process.env.PATH ?? ''}` });
      const r = await run('bash', ['-eo', 'pipefail', '-c', prelude + ex.code], { cwd, env, timeoutMs: ctx.timeoutMs ?? 60_000 });
      return { ...r, cwd };
    }
    default:
      throw new Error(`${ex.name}: no runner`);
  }
}

/** Lines `ID A B TIE` (what the SDK examples print per row) -> id -> probabilities. */
export function parsePredictionLines(stdout: string): Map<string, [number, number, number]> {
  const out = new Map<string, [number, number, number]>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) (\S+) (\S+) (\S+)$/.exec(line.trim());
    if (!m) continue;
    const probs = [Number(m[2]), Number(m[3]), Number(m[4])] as [number, number, number];
    if (probs.some((x) => !Number.isFinite(x))) continue;
    assert.ok(!out.has(m[1]!), `id ${m[1]} printed twice`);
    out.set(m[1]!, probs);
  }
  return out;
}

/** Every expected id printed once, with probabilities in [0, 1] that sum to 1. */
export function assertPredictions(got: Map<string, readonly number[]>, ids: readonly string[], what: string): void {
  assert.deepEqual([...got.keys()].sort(), [...ids].sort(), `${what}: ids printed`);
  for (const [id, p] of got) {
    assert.ok(p.every((x) => x >= 0 && x <= 1), `${what}: ${id} has probabilities ${p}`);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6, `${what}: ${id} sums to ${p.reduce((a, b) => a + b, 0)}`);
  }
}

