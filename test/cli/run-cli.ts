// Runs the real `pairpref` bin in a child process (not a TTY: no progress bar).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../client/helpers.ts';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `env` adds to (or, with undefined values, removes from) this process's environment. */
export function runCli(args: readonly string[], timeoutMs = 120_000, env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const opts = { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 2 ** 20, env: { ...process.env, ...env } };
    execFile(process.execPath, [join(REPO_ROOT, 'bin', 'pairpref.mjs'), ...args], opts, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface SubmissionRow {
  readonly id: string;
  readonly probs: [number, number, number];
}

/** Parses a submission CSV the CLI wrote (ids in these tests need no quoting). */
export function readSubmission(path: string): { header: string; rows: SubmissionRow[] } {
  const [header = '', ...lines] = readFileSync(path, 'utf8').trimEnd().split('\n');
  const rows = lines.map((l) => {
    const [id = '', a, b, t] = l.split(',');
    return { id, probs: [Number(a), Number(b), Number(t)] as [number, number, number] };
  });
  return { header, rows };
}

export interface SpawnedCli {
  readonly proc: ChildProcess;
  /** Settles when the process exits; `code` is null when a signal ended it. */
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** stderr so far. */
  stderr(): string;
}

/** Starts the real `pairpref` bin without waiting for it: for tests that signal it mid-run. */
export function spawnCli(args: readonly string[]): SpawnedCli {
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'pairpref.mjs'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { proc, done, stderr: () => stderr };
}
