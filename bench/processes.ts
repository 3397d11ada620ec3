// Child processes of a bench run: the pairpref server, the naive peer and the load generator.
// Each is loopback-only, killed by the harness when its phase ends, and killed on harness exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './loadgen.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = ['--import', 'tsx'];

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function track(c: ChildProcess): ChildProcess {
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}

export interface Served {
  readonly pid: number;
  readonly address: string;
  readonly metricsPort: number | null;
  /** Peak resident set (VmHWM) so far, in MiB. */
  peakRssMiB(): number | null;
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

function vmHwmMiB(pid: number): number | null {
  const f = `/proc/${pid}/status`;
  if (!existsSync(f)) return null;
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(f, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

/** Prometheus text -> `name{labels}` -> value. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function stopChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

/** Waits for a stderr/stdout line matching `re`; rejects when the child exits first or after timeoutMs. */
function waitForLine(c: ChildProcess, re: RegExp, timeoutMs: number, what: string): Promise<{ match: RegExpExecArray; log: () => string }> {
  let buf = '';
  const log = (): string => buf.slice(-4000);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} not ready after ${timeoutMs} ms:\n${log()}`)), timeoutMs);
    const on = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      const m = re.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve({ match: m, log });
      }
    };
    c.stdout?.on('data', on);
    c.stderr?.on('data', on);
    c.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited (code ${code}) before it was ready:\n${log()}`));
    });
  });
}

export interface ServeArgs {
  readonly model: string;
  readonly devices: string;
  readonly intraOpThreads?: number;
  readonly maxBatchTokens?: number;
  readonly maxBatchSize?: number;
  readonly maxQueueDelayMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export async function startPairpref(a: ServeArgs): Promise<Served> {
  const args = [join(REPO_ROOT, 'bin/pairpref.mjs'), 'serve', '--model', a.model, '--port', '0', '--devices', a.devices, '--metrics-port', '0'];
  if (a.intraOpThreads !== undefined) args.push('--intra-op-threads', String(a.intraOpThreads));
  if (a.maxBatchTokens !== undefined) args.push('--max-batch-tokens', String(a.maxBatchTokens));
  if (a.maxBatchSize !== undefined) args.push('--max-batch-size', String(a.maxBatchSize));
  if (a.maxQueueDelayMs !== undefined) args.push('--max-queue-delay-ms', String(a.maxQueueDelayMs));
  const c = track(spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...a.env } }));
  let ready;
  try {
    ready = await waitForLine(c, /metrics on http:\/\/[^:]+:(\d+)\/metrics/, 180_000, `pairpref serve --devices ${a.devices}`);
  } catch (e) {
    await stopChild(c);
    throw e;
  }
  const addr = /serving .* on (\S+) \(devices/.exec(ready.log());
  if (!addr) {
    await stopChild(c);
    throw new Error(`pairpref serve: no address in its log:\n${ready.log()}`);
  }
  const metricsPort = Number(ready.match[1]);
  const pid = c.pid!;
  return {
    pid,
    address: addr[1]!,
    metricsPort,
    peakRssMiB: () => vmHwmMiB(pid),
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      return parseProm(await res.text());
    },
    stop: () => stopChild(c),
  };
}

/** The naive peer on `device` (the headline's first device: same execution provider as pairpref's). */
export async function startNaive(model: string, threads: number, device = 'cpu', env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const c = track(
    spawn(process.execPath, [...TSX, join(REPO_ROOT, 'bench/naive-server.ts'), '--model', model, '--threads', String(threads), '--device', device], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
  let ready;
  try {
    ready = await waitForLine(c, /listening (\d+)/, 120_000, 'naive server');
  } catch (e) {
    await stopChild(c);
    throw e;
  }
  const pid = c.pid!;
  return {
    pid,
    address: `127.0.0.1:${ready.match[1]}`,
    metricsPort: null,
    peakRssMiB: () => vmHwmMiB(pid),
    metrics: () => Promise.resolve(new Map()),
    stop: () => stopChild(c),
  };
}

/** Runs the load generator in its own process and returns its result. */
export async function runLoadgen(spec: LoadSpec, specFile: string): Promise<LoadResult> {
  writeFileSync(specFile, JSON.stringify(spec));
  const c = track(spawn(process.execPath, [...TSX, join(REPO_ROOT, 'bench/loadgen.ts'), specFile], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  c.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => c.once('exit', resolve));
  if (code !== 0) throw new Error(`load generator exited with code ${code}: ${err.slice(-2000)}`);
  return JSON.parse(out.trim().split('\n').pop()!) as LoadResult;
}
