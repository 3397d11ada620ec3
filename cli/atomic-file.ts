// Writes a file through a temp file beside it, renamed into place only when the body finishes:
// a failed or interrupted run never leaves a partial output behind.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';

/** Appends text, waiting for the stream to drain (bounded memory on large outputs). */
export type WriteText = (text: string) => Promise<void>;

export async function writeFileAtomically(path: string, body: (write: WriteText) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const out = createWriteStream(tmp);
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
  }
}
