// A real `pairpref serve` in a child process, for tests that must stop (SIGSTOP) or kill (SIGKILL)
// a server, which an in-process server cannot survive.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers.ts';

export interface ChildServer {
  readonly address: string;
  readonly proc: ChildProcess;
  signal(sig: NodeJS.Signals): void;
  /** Resumes it if stopped and kills it; resolves once it has exited. Safe to call twice. */
  dispose(): Promise<void>;
}

const READY = /serving .* on (\S+) \(devices: /;

/** Starts `pairpref serve --port 0` on the bundle and resolves with its address once it serves. */
export async function spawnServer(modelDir: string, timeoutMs = 60_000): Promise<ChildServer> {
  const args = [join(REPO_ROOT, 'bin', 'pairpref.mjs'), 'serve', '--port', '0', '--model', modelDir, '--devices', 'cpu', '--intra-op-threads', '1'];
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = once(proc, 'exit');
  let log = '';
  // Keep draining stderr for the whole life of the child: a full pipe would block it.
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => (log = (log + s).slice(-8192)));
  const dispose = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    }
    await exited;
  };
  try {
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pairpref serve did not start within ${timeoutMs} ms:\n${log}`)), timeoutMs);
      proc.stderr?.on('data', () => {
        const m = READY.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] as string);
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`pairpref serve exited (${code ?? sig}) before serving:\n${log}`));
      });
    });
    return { address, proc, signal: (sig) => proc.kill(sig), dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
