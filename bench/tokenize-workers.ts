// Tokenization rows/s against the number of tokenizer worker threads, through the engine's own
// tokenizer pool (engine/encoder-pool.ts: the fair queue over worker lanes the server uses for
// --preprocess-threads N), in this process, with nothing else running. Whatever tokenizer library
// the engine's workers use, this measures it: it calls only the pool's public API.
import type { Bundle } from '../core/runtime.ts';
import type { Comparison } from '../core/types.ts';
import { startEncoderPool } from '../engine/encoder-pool.ts';

export interface WorkerTokenization {
  readonly workers: number;
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  /** Rows the pool did not encode (bad rows); 0 on the bench inputs. */
  readonly errors: number;
}

/** 1, 2, 4, ... up to `cores`, and `cores` itself. */
export function defaultWorkerCounts(cores: number): number[] {
  const out: number[] = [];
  for (let n = 1; n < cores; n *= 2) out.push(n);
  out.push(Math.max(1, cores));
  return [...new Set(out)];
}

/**
 * For each worker count: a fresh pool, an untimed warm-up on `warmRows` (other rows than the timed
 * ones, so tokenizer caches hold none of them), then `rows` in one call, timed to the last row.
 */
export async function tokenizeByWorkers(bundle: Bundle, rows: readonly Comparison[], warmRows: readonly Comparison[], counts: readonly number[]): Promise<WorkerTokenization[]> {
  const out: WorkerTokenization[] = [];
  for (const workers of counts) {
    const pool = await startEncoderPool(bundle, workers);
    try {
      await pool.encode(warmRows, false);
      const t0 = performance.now();
      const res = await pool.encode(rows, false);
      const seconds = (performance.now() - t0) / 1000;
      out.push({ workers, rows: rows.length, seconds: Math.round(seconds * 1000) / 1000, rows_per_s: Math.round((rows.length / seconds) * 10) / 10, errors: res.filter((r) => !r.ok).length });
    } finally {
      await pool.close();
    }
  }
  return out;
}
