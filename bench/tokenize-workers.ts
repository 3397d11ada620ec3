// Tokenization rows/s against the number of tokenizer worker threads, through the engine's own
// tokenizer pool (engine/encoder-pool.ts: the fair queue over worker lanes the server uses for
// --preprocess-threads N), in this process, with nothing else running. It calls only the pool's
// public API, with the tokenizer the server uses by default (the native binding, through
// nodeRuntime's tokenizer module) or the pure-JS one (`tokenizer: 'js'`).
//
// Run alone, it compares the tokenizers (and ways of calling the native one) per worker count:
//   node --import tsx bench/tokenize-workers.ts [--input ../shared/data/arena-hard-pairs.csv.gz]
//        [--rows 1500] [--workers 0,1,2] [--tokenizers native,js] [--repeat 3] [--swap]
//        [--native-calls batch,each,serial] [--parallelism default,off]
// printing one JSON object (median rows/s, and process CPU ms per row, of the repeats).
// --parallelism off sets TOKENIZERS_PARALLELISM=false, which the binding reads on every call from
// the process environment: encodeBatch then encodes its texts one after another on its libuv
// thread instead of spreading them over its rayon thread pool.
import { resolve } from 'node:path';
import type { Bundle } from '../core/runtime.ts';
import type { Comparison } from '../core/types.ts';
import { readRawRows } from '../datasets/arena-file.ts';
import { startEncoderPool } from '../engine/encoder-pool.ts';
import type { Encoded, TokenizerChoice } from '../engine/encoder.ts';
import { loadBundle, nodeRuntime } from '../runtime/node/index.ts';
import { NATIVE_CALLS, type NativeCalls } from './tokenizer-variants.ts';

export interface WorkerTokenization {
  readonly workers: number;
  /** The library the pool tokenized with. */
  readonly tokenizer: string;
  readonly rows: number;
  readonly seconds: number;
  readonly rows_per_s: number;
  /** Process CPU time (every thread: the pool's workers, libuv's, the main thread) per row. */
  readonly cpu_ms_per_row: number;
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

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** The pool's tokenizer module for a choice: the runtime's native one, a bench variant of it, or none (JS). */
function moduleFor(tokenizer: TokenizerChoice, variant: boolean): string | null {
  if (tokenizer === 'js') return null;
  return variant ? new URL('./tokenizer-variants.ts', import.meta.url).href : (nodeRuntime.tokenizerModule ?? null);
}

type PoolOptions = { readonly tokenizer?: TokenizerChoice; readonly swapTta?: boolean; readonly variant?: boolean };

/**
 * A fresh pool of `workers`: an untimed warm-up on `warmRows` (other rows than the timed ones, so
 * tokenizer caches hold none of them), then `rows` in one call, timed to the last row. The encoded
 * rows come back too, for callers that feed them on (the bench's limit).
 */
export async function tokenizeWithPool(
  bundle: Bundle,
  rows: readonly Comparison[],
  warmRows: readonly Comparison[],
  workers: number,
  opts: PoolOptions = {},
): Promise<{ readonly run: WorkerTokenization; readonly encoded: Encoded[] }> {
  const pool = await startEncoderPool(bundle, workers, undefined, { module: moduleFor(opts.tokenizer ?? 'native', opts.variant ?? false) });
  try {
    await pool.encode(warmRows, opts.swapTta ?? false);
    const c0 = cpuMs();
    const t0 = performance.now();
    const encoded = await pool.encode(rows, opts.swapTta ?? false);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuMs() - c0;
    const run: WorkerTokenization = {
      workers,
      tokenizer: pool.library,
      rows: rows.length,
      seconds: Math.round(seconds * 1000) / 1000,
      rows_per_s: Math.round((rows.length / seconds) * 10) / 10,
      cpu_ms_per_row: Math.round((cpu / rows.length) * 100) / 100,
      errors: encoded.filter((r) => !r.ok).length,
    };
    return { run, encoded };
  } finally {
    await pool.close();
  }
}

/** tokenizeWithPool for each worker count, a fresh pool each. */
export async function tokenizeByWorkers(
  bundle: Bundle,
  rows: readonly Comparison[],
  warmRows: readonly Comparison[],
  counts: readonly number[],
  opts: PoolOptions = {},
): Promise<WorkerTokenization[]> {
  const out: WorkerTokenization[] = [];
  for (const workers of counts) out.push((await tokenizeWithPool(bundle, rows, warmRows, workers, opts)).run);
  return out;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(args: readonly string[]): Promise<void> {
  const input = resolve(flag(args, '--input') ?? '../shared/data/arena-hard-pairs.csv.gz');
  const n = Number(flag(args, '--rows') ?? 1500);
  const counts = (flag(args, '--workers') ?? '0,1,2').split(',').map(Number);
  const tokenizers = (flag(args, '--tokenizers') ?? 'native,js').split(',') as TokenizerChoice[];
  const calls = (flag(args, '--native-calls') ?? 'batch').split(',') as NativeCalls[];
  for (const c of calls) if (!NATIVE_CALLS.includes(c)) throw new Error(`--native-calls: ${c} is not one of ${NATIVE_CALLS.join(', ')}`);
  const repeat = Number(flag(args, '--repeat') ?? 3);
  const swapTta = args.includes('--swap');
  const bundle = loadBundle(flag(args, '--bundle') ?? 'models/default');
  const all = await readRawRows(input, n + 32);
  const rows = all.slice(0, n);
  const warm = all.slice(n);
  // Every configuration once per repeat, interleaved, so drift on a shared machine hits all alike.
  const parallelism = (flag(args, '--parallelism') ?? 'default').split(',');
  type Config = { readonly t: TokenizerChoice; readonly c: NativeCalls | null; readonly par: string };
  const configs = tokenizers.flatMap((t): Config[] =>
    t === 'js' ? [{ t, c: null, par: 'default' }] : calls.flatMap((c) => parallelism.map((par) => ({ t, c, par }))),
  );
  const env = process.env.TOKENIZERS_PARALLELISM;
  const runs = new Map<string, WorkerTokenization[]>();
  for (let r = 0; r < repeat; r++) {
    for (const workers of counts) {
      for (const { t, c, par } of configs) {
        if (c !== null) process.env.PAIRPREF_BENCH_NATIVE_CALLS = c;
        if (par === 'off') process.env.TOKENIZERS_PARALLELISM = 'false';
        else if (env === undefined) delete process.env.TOKENIZERS_PARALLELISM;
        else process.env.TOKENIZERS_PARALLELISM = env;
        const [res] = await tokenizeByWorkers(bundle, rows, warm, [workers], { tokenizer: t, swapTta, variant: c !== null && c !== 'batch' });
        const key = `${t}${c === null ? '' : ` ${c}`}${par === 'off' ? ' parallelism off' : ''} workers=${workers}`;
        runs.set(key, [...(runs.get(key) ?? []), res!]);
      }
    }
  }
  const results = [...runs.entries()].map(([key, rs]) => ({
    config: key,
    tokenizer: rs[0]!.tokenizer,
    workers: rs[0]!.workers,
    rows_per_s: median(rs.map((x) => x.rows_per_s)),
    rows_per_s_runs: rs.map((x) => x.rows_per_s),
    cpu_ms_per_row: median(rs.map((x) => x.cpu_ms_per_row)),
    errors: Math.max(...rs.map((x) => x.errors)),
  }));
  process.stdout.write(JSON.stringify({ input, rows: rows.length, swap_tta: swapTta, repeat, tokenizers_parallelism: env ?? null, results }, null, 2) + '\n');
}

if (process.argv[1]?.endsWith('bench/tokenize-workers.ts')) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`tokenize-workers: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
