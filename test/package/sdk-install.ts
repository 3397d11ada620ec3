// Packs @pairpref/client (packages/client) the way a user gets it and installs the tarball into a
// fresh project outside the repository: no .npmrc of ours, no node_modules above it, install scripts
// as npm's defaults have them. Shared by test/package and test/docs.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PACKAGE_DIR = join(REPO_ROOT, 'packages', 'client');
export const PACKAGE_NAME = '@pairpref/client';

/**
 * The environment for a nested npm. `npm test` exports its configuration to its children as
 * npm_config_* (ignore_scripts=true from our .npmrc, local_prefix=the repository, ...), which would
 * make a nested npm skip prepack or treat the repository as its project. Only the machine's own
 * settings (cache, certificates, registry, proxies, user/global config files) are passed on.
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|cafile|registry|userconfig|globalconfig|https?_proxy|proxy|noproxy|no_proxy|strict_ssl)$/i;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !keep.test(k)) continue;
    if (k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return env;
}

/** The environment for a plain `node` child: no loader inherited through NODE_OPTIONS. */
export function plainNodeEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (never throws on a non-zero exit; the caller asserts). */
export function run(cmd: string, args: readonly string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export function describeRun(what: string, r: Run): string {
  return `${what} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

export interface Packed {
  readonly tarball: string;
  /** Paths inside the package, as `npm pack --json` lists them. */
  readonly files: readonly string[];
  readonly size: number;
  readonly unpackedSize: number;
  /** prepack's output (the build and its checks). */
  readonly log: string;
}

/** `npm pack` in packages/client (prepack builds and checks dist/) into destDir. */
export async function packSdk(destDir: string): Promise<Packed> {
  mkdirSync(destDir, { recursive: true });
  const r = await run(NPM, ['pack', '--json', '--pack-destination', destDir, '--ignore-scripts=false', '--foreground-scripts'], {
    cwd: PACKAGE_DIR,
    env: npmEnv(),
    timeoutMs: 180_000,
  });
  if (r.code !== 0) throw new Error(describeRun('npm pack', r));
  // --foreground-scripts sends the scripts' stdout to npm's stdout too: the JSON is the last array.
  const json = r.stdout.slice(r.stdout.lastIndexOf('\n[') + 1);
  const [info] = JSON.parse(json) as Array<{ filename: string; files: Array<{ path: string }>; size: number; unpackedSize: number }>;
  if (!info) throw new Error(`npm pack printed no package:\n${r.stdout}`);
  return { tarball: join(destDir, info.filename), files: info.files.map((f) => f.path), size: info.size, unpackedSize: info.unpackedSize, log: r.stderr + r.stdout };
}

/**
 * A new ESM project in projectDir with the tarball installed by `npm install <tarball>`, with
 * npm's default settings (install scripts enabled: whatever the package pulls in gets the chance
 * to run its scripts, as it would for a user).
 */
export async function installSdk(tarball: string, projectDir: string): Promise<Run> {
  mkdirSync(projectDir, { recursive: true });
  writeFileSync(join(projectDir, 'package.json'), JSON.stringify({ name: 'sdk-user', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const r = await run(NPM, ['install', tarball, '--no-audit', '--no-fund', '--ignore-scripts=false', '--prefer-offline', '--loglevel=warn'], {
    cwd: projectDir,
    env: npmEnv(),
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(describeRun(`npm install ${tarball}`, r));
  return r;
}

/** Every package installed in projectDir's node_modules (name -> version), nested ones included. */
export async function installedPackages(projectDir: string): Promise<Map<string, Set<string>>> {
  const r = await run(NPM, ['ls', '--all', '--json'], { cwd: projectDir, env: npmEnv() });
  if (r.code !== 0) throw new Error(describeRun('npm ls', r));
  type Node = { version?: string; dependencies?: Record<string, Node> };
  const out = new Map<string, Set<string>>();
  const walk = (deps: Record<string, Node> | undefined): void => {
    for (const [name, node] of Object.entries(deps ?? {})) {
      const versions = out.get(name) ?? new Set<string>();
      versions.add(node.version ?? '?');
      out.set(name, versions);
      walk(node.dependencies);
    }
  };
  walk((JSON.parse(r.stdout) as Node).dependencies);
  return out;
}

/** The version the repository's package-lock.json installs for a top-level package. */
export function lockedVersion(name: string): string | undefined {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  return lock.packages[`node_modules/${name}`]?.version;
}
