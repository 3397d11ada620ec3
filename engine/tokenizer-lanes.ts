// Where rows are tokenized: worker threads that rebuild the bundle's preprocessing from its source
// (config and tokenizer as plain data, so no worker reads the disk; the runtime's tokenizer module
// by URL when the native tokenizer is used), or the event loop itself (--preprocess-threads 0).
// A worker that dies takes its chunks down with it (LaneDied), is restarted with exponential
// backoff, and rejoins once it has loaded the bundle again.
import type { Worker } from 'node:worker_threads';
import type { BundleSource } from '../core/runtime.ts';
import type { Comparison } from '../core/types.ts';
import { startTsWorker } from '../platform/worker-thread.ts';
import { encodeChunk, type Encoded, type RowPreprocessing, type Tokenized } from './encoder.ts';

export interface EncoderRequest {
  readonly seq: number;
  readonly rows: readonly Comparison[];
  readonly swapTta: boolean;
}

/** What a tokenizer worker is started with. */
export interface EncoderWorkerInit {
  readonly source: BundleSource;
  /** The runtime's tokenizer module (core's TokenizerModule) to import; null: core's JS tokenizer. */
  readonly tokenizerModule: string | null;
}

export interface EncoderReply {
  /** -1: the worker has loaded the bundle. */
  readonly seq: number;
  readonly results: Encoded[];
  /** Milliseconds each row took to tokenize (both orders with swap TTA). */
  readonly ms: number[];
}


export class LaneDied extends Error {
  override name = 'LaneDied';
}

/** One place that tokenizes chunks of rows, one chunk after another. */
export interface Lane {
  readonly name: string;
  /** False while a dead worker is being restarted. */
  readonly alive: boolean;
  /** Chunks sent and not answered. */
  readonly inflight: number;
  readonly restarts: number;
  run(rows: readonly Comparison[], swapTta: boolean): Promise<Tokenized>;
  /** Ends the thread now (tests use it to kill a worker). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Tokenizing on the event loop: one chunk per macrotask, so I/O and other calls interleave (with a
 * batch tokenizer the native work runs off the loop, on libuv's threads).
 */
export function inlineLane(pre: RowPreprocessing): Lane {
  let inflight = 0;
  return {
    name: 'event-loop',
    alive: true,
    get inflight() {
      return inflight;
    },
    restarts: 0,
    run(rows, swapTta) {
      inflight++;
      return new Promise<Tokenized>((resolve) => setImmediate(() => resolve(encodeChunk(pre, rows, swapTta)))).finally(() => inflight--);
    },
    kill: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

const MODULE = new URL('./encoder-worker.ts', import.meta.url);
const MAX_BACKOFF_MS = 5000;

interface Waiting {
  readonly resolve: (r: Tokenized) => void;
  readonly reject: (e: Error) => void;
}

/** A tokenizer worker thread; resolves once it has loaded the bundle. */
export async function workerLane(name: string, init: EncoderWorkerInit, onChange: () => void): Promise<Lane> {
  let worker: Worker;
  let alive = false;
  let closed = false;
  let restarts = 0;
  let failuresInARow = 0;
  let seq = 0;
  const waiting = new Map<number, Waiting>();

  const spawn = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const { source, tokenizerModule } = init;
      const w = startTsWorker(MODULE, {
        source: { config: source.config, tokenizerJson: source.tokenizerJson, tokenizerConfig: source.tokenizerConfig },
        tokenizerModule,
      } satisfies EncoderWorkerInit);
      worker = w;
      w.on('message', (m: EncoderReply) => {
        if (m.seq === -1) {
          alive = true;
          failuresInARow = 0;
          onChange();
          return resolve();
        }
        const wait = waiting.get(m.seq);
        waiting.delete(m.seq);
        wait?.resolve(m);
      });
      w.once('error', (e) => reject(new Error(`${name} failed: ${e.message}`)));
      w.once('exit', (code) => {
        alive = false;
        const err = new LaneDied(`${name} exited (code ${code})`);
        for (const wait of waiting.values()) wait.reject(err);
        waiting.clear();
        onChange();
        if (!closed) restart();
      });
    });

  // Restarts after 100 ms, doubling per failure in a row (at most 5 s): a worker that cannot start
  // at all does not spin.
  const restart = (): void => {
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** failuresInARow);
    failuresInARow++;
    setTimeout(() => {
      if (closed) return;
      restarts++;
      spawn().catch(() => undefined); // a failed start exits, and the exit handler tries again
    }, delay).unref();
  };

  await spawn();
  return {
    name,
    get alive() {
      return alive;
    },
    get inflight() {
      return waiting.size;
    },
    get restarts() {
      return restarts;
    },
    run(rows, swapTta) {
      if (!alive) return Promise.reject(new LaneDied(`${name} is restarting`));
      const id = seq++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ seq: id, rows, swapTta } satisfies EncoderRequest);
      });
    },
    async kill() {
      await worker.terminate();
    },
    async close() {
      closed = true;
      await worker.terminate();
    },
  };
}
