// Tokenization off the event loop: worker threads that each build the bundle's preprocessing from
// its source (config and tokenizer as plain data, so no worker reads the disk).
// Worth it where the model is fast (GPUs) and tokenizing on one thread would cap throughput.
import type { Worker } from 'node:worker_threads';
import type { BundleSource } from '../core/runtime.ts';
import type { Comparison } from '../core/types.ts';
import type { Encoded, RowEncoder } from './encoder.ts';
import { startTsWorker } from '../platform/worker-thread.ts';

export interface EncoderRequest {
  readonly seq: number;
  readonly rows: readonly Comparison[];
  readonly swapTta: boolean;
}

export interface EncoderReply {
  /** -1: the worker has loaded the bundle. */
  readonly seq: number;
  readonly results: Encoded[];
}

const MODULE = new URL('./encoder-worker.ts', import.meta.url);
/** Rows per message: big calls are spread over the workers without a message per row. */
const CHUNK = 16;

interface PoolWorker {
  readonly worker: Worker;
  pendingRows: number;
  readonly waiting: Map<number, { readonly rows: number; readonly done: (r: Encoded[]) => void }>;
}

function failed(rows: number, e: Error): Encoded[] {
  return Array.from({ length: rows }, () => ({ ok: false, input: false, field: '', message: e.message }) as const);
}

export async function startEncoderPool(source: BundleSource, threads: number): Promise<RowEncoder> {
  let seq = 0;
  let failure: Error | null = null;
  const workers: PoolWorker[] = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<PoolWorker>((resolve, reject) => {
        const w: PoolWorker = { worker: startTsWorker(MODULE, { config: source.config, tokenizerJson: source.tokenizerJson, tokenizerConfig: source.tokenizerConfig } satisfies BundleSource), pendingRows: 0, waiting: new Map() };
        w.worker.on('message', (m: EncoderReply) => {
          if (m.seq === -1) return resolve(w);
          const wait = w.waiting.get(m.seq);
          w.waiting.delete(m.seq);
          wait?.done(m.results);
        });
        w.worker.once('error', (e) => {
          failure ??= new Error(`tokenizer worker failed: ${e.message}`);
          reject(failure);
        });
        // A dead worker answers what it had with errors instead of leaving callers hanging.
        w.worker.once('exit', () => {
          failure ??= new Error('tokenizer worker exited');
          for (const wait of w.waiting.values()) wait.done(failed(wait.rows, failure));
          w.waiting.clear();
        });
      }),
    ),
  );

  function send(rows: readonly Comparison[], swapTta: boolean): Promise<Encoded[]> {
    if (failure) return Promise.resolve(failed(rows.length, failure));
    const w = workers.reduce((a, b) => (b.pendingRows < a.pendingRows ? b : a));
    const id = seq++;
    w.pendingRows += rows.length;
    return new Promise((resolve) => {
      w.waiting.set(id, {
        rows: rows.length,
        done: (results) => {
          w.pendingRows -= rows.length;
          resolve(results);
        },
      });
      w.worker.postMessage({ seq: id, rows, swapTta } satisfies EncoderRequest);
    });
  }

  return {
    threads,
    async encode(rows, swapTta) {
      const parts: Promise<Encoded[]>[] = [];
      for (let i = 0; i < rows.length; i += CHUNK) parts.push(send(rows.slice(i, i + CHUNK), swapTta));
      return (await Promise.all(parts)).flat();
    },
    async close() {
      failure ??= new Error('server is shutting down');
      await Promise.all(workers.map((w) => w.worker.terminate()));
    },
  };
}
