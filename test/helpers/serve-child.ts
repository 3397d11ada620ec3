// `pairpref serve` as a child process, for tests of what only a real process shows: signals, exit
// codes, log lines, flags. Every child is SIGKILLed when the test file ends (killChildren in `after`).
import { spawn, type ChildProcess } from 'node:child_process';

const BIN = new URL('../../bin/pairpref.mjs', import.meta.url).pathname;
const children = new Set<ChildProcess>();

export interface ServeChild {
  readonly proc: ChildProcess;
  log(): string;
  /** Resolves with the first match of re in stderr; rejects if the process exits first or after timeoutMs. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** `at`: performance.now() when it exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/**
 * `pairpref serve --port 0 --devices cpu ARGS...` (ARGS name the model and anything else);
 * `devices: null` leaves --devices out (serve's own default, as `npm start` runs it).
 */
export function spawnServe(args: readonly string[], { devices = 'cpu' }: { devices?: string | null } = {}): ServeChild {
  const deviceArgs = devices === null ? [] : ['--devices', devices];
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...deviceArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let log = '';
  const waiters = new Set<() => void>();
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
    log += s;
    for (const w of [...waiters]) w();
  });
  proc.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.on('close', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal, at: performance.now() });
      for (const w of [...waiters]) w();
    }),
  );
  const waitFor = (re: RegExp, timeoutMs = 90_000): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${re} within ${timeoutMs} ms; log:\n${log}`));
      }, timeoutMs);
      const check = (): void => {
        const m = re.exec(log);
        if (m || proc.exitCode !== null || proc.signalCode !== null) {
          waiters.delete(check);
          clearTimeout(timer);
          if (m) resolve(m);
          else reject(new Error(`serve exited (${proc.exitCode ?? proc.signalCode}) before ${re}; log:\n${log}`));
        }
      };
      waiters.add(check);
      check();
    });
  return { proc, log: () => log, waitFor, exited };
}

export function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}
