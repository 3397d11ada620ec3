// Writes a file through a temp file beside it (`OUT.tmp-PID`), renamed into place only when the
// body finishes: a failed or interrupted run never leaves a partial output behind. A failure
// removes the temp file at once; SIGINT/SIGTERM remove it too (see exitOnSignals); a run killed
// with SIGKILL cannot clean up, so the next run that writes the same output removes the temp files
// whose pid is no longer alive.
import { once } from 'node:events';
import { createWriteStream, existsSync, unlinkSync, type WriteStream } from 'node:fs';
import { readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Appends text, waiting for the stream to drain (bounded memory on large outputs). */
export type WriteText = (text: string) => Promise<void>;

export interface AtomicWriteOptions {
  /** Told about each stale temp file (left by a killed run) removed before writing. */
  readonly onStaleTemp?: (path: string) => void;
}

/** The temp files being written right now, with their streams: what a signal removes. */
const live = new Map<string, WriteStream>();

export async function writeFileAtomically(path: string, body: (write: WriteText) => Promise<void>, opts: AtomicWriteOptions = {}): Promise<void> {
  // Named as the user named it, before any work: not as the temp file the run would have written.
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new Error(`--output ${path}: the folder ${dir} does not exist`);
  for (const stale of await removeStaleTemps(path)) opts.onStaleTemp?.(stale);
  const tmp = `${path}.tmp-${process.pid}`;
  const out = createWriteStream(tmp);
  live.set(tmp, out);
  // Keep the stream's own errors (disk full, or a write still in flight when the body fails)
  // from becoming an unhandled 'error' event; the first one is rethrown by the next write.
  let outError: Error | undefined;
  out.on('error', (e) => {
    outError ??= e;
  });
  const write: WriteText = async (text) => {
    if (outError) throw outError;
    if (!out.write(text)) await once(out, 'drain');
  };
  try {
    await body(write);
    // end()'s callback also reports an error the stream hit after the last write (e.g. the open
    // failing); waiting for 'finish' instead would hang, as a destroyed stream never emits it.
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e || outError ? reject(outError ?? e) : resolve())));
    await rename(tmp, path);
  } catch (e) {
    // Wait for the descriptor to close: the open may still be pending, and unlinking first
    // would leave the temp file behind once it completes.
    if (!out.closed) {
      const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
      out.destroy();
      await closed;
    }
    await unlink(tmp).catch(() => undefined);
    throw e;
  } finally {
    live.delete(tmp);
  }
}

/** True when a process with this pid exists (EPERM: it exists but belongs to someone else). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes `<path>.tmp-<pid>` files whose pid is not alive: the remains of a run killed with
 * SIGKILL (or a crash of the machine). A live pid's file is kept, even when the pid was reused.
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^\d+$/.test(name.slice(prefix.length))) continue;
    const pid = Number(name.slice(prefix.length));
    if (pid === process.pid || pidAlive(pid)) continue;
    const file = join(dir, name);
    if (await unlink(file).then(() => true, () => false)) removed.push(file);
  }
  return removed;
}

/** Removes every temp file being written; the unlinks are synchronous, so they are done before the exit. */
async function removeLiveTemps(): Promise<string[]> {
  const removed: string[] = [];
  for (const [tmp, out] of live) {
    // An open still pending in the thread pool would create the file after the unlink: let it land.
    if (out.pending) await Promise.race([once(out, 'ready').catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    out.destroy();
    try {
      unlinkSync(tmp);
      removed.push(tmp);
    } catch {
      // Already gone (the body failed at the same moment): nothing left behind either way.
    }
  }
  return removed;
}

let exiting = false;

/** The signal's effect: temp files removed, one line on stderr, exit 128 + the signal number. */
async function interrupted(command: string, sig: NodeJS.Signals): Promise<void> {
  const code = sig === 'SIGINT' ? 130 : 143;
  if (exiting) process.exit(code); // a second signal while cleaning up: exit now
  exiting = true;
  const removed = await removeLiveTemps();
  // On a terminal, leave the progress bar's line and show the cursor it hid.
  const tty = process.stderr.isTTY ? '\r\x1b[K\x1b[?25h' : '';
  const what = removed.length > 0 ? `; removed the partial output ${removed.join(', ')}` : '';
  process.stderr.write(`${tty}pairpref ${command}: interrupted by ${sig}${what}\n`);
  process.exit(code);
}

/**
 * Until the returned function is called, SIGINT and SIGTERM end the process cleanly: the temp
 * files being written are removed, one line says so on stderr, and the exit code is 130 (SIGINT)
 * or 143 (SIGTERM), as a shell reports a process killed by those signals.
 */
export function exitOnSignals(command: string): () => void {
  const onInt = (): void => void interrupted(command, 'SIGINT');
  const onTerm = (): void => void interrupted(command, 'SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
