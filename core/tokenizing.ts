// The seam between core's preprocessing and a tokenizer. Truncation asks for tokenizations in
// loops whose next request depends on the last answer (encodePrefix's doubling, budget's caps,
// turns-from-last's k), and tokenizers come in two kinds: the pure-JS one answers at once
// (`TextTokenizer.encode`), the native binding in Node answers with a Promise. So the logic is
// written once, as coroutines that yield the texts they need and get the ids back:
//
//   - `runSync` answers each request at once with a TextTokenizer (the browser, training, tests);
//   - `runBatched` answers with a BatchTokenizer, one `encodeBatch` per round, and a coroutine
//     built with `settleAll`/`all` asks in one round for everything its parts need at that point
//     (the three parts of a turns-from-last step, every row of a tokenizer chunk, both swap-TTA
//     orientations), so a chunk of rows costs a few round trips to the native side, not one per
//     text. Within one `runBatched` call a text is tokenized once (the swapped orientation asks
//     again for the texts of the direct one).
//
// Both drivers hand the coroutine the same ids for the same texts, so the ids cannot depend on
// the tokenizer's kind, only on the tokenizer's own output (test/core/tokenizer-parity.test.ts).
import type { TextTokenizer } from './types.ts';

/** Tokenizing work: yields the texts it needs (all it can ask for now), receives their ids in order. */
export type Tokenizing<T> = Generator<readonly string[], T, number[][]>;

/** A tokenizer that answers many texts at once, later (the native binding: a Promise per call). */
export interface BatchTokenizer {
  /** Which library, for logs and benchmarks ("tokenizers 0.23.2 (native)"). */
  readonly library: string;
  /** The ids of each text, no special tokens added, in order. */
  encodeBatch(texts: readonly string[]): Promise<number[][]>;
}

/** One coroutine's outcome when run beside others: its value, or what it threw. */
export type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** Runs tokenizing work with a synchronous tokenizer, answering each request at once. */
export function runSync<T>(tok: TextTokenizer, steps: Tokenizing<T>): T {
  let r = steps.next();
  while (!r.done) r = steps.next(r.value.map((text) => tok.encode(text)));
  return r.value;
}

/**
 * Runs tokenizing work with a batch tokenizer: each round's texts go out as one encodeBatch,
 * without repeats, and a text already tokenized in an earlier round is answered from memory.
 */
export async function runBatched<T>(tok: BatchTokenizer, steps: Tokenizing<T>): Promise<T> {
  const known = new Map<string, number[]>();
  let r = steps.next();
  while (!r.done) {
    const need = r.value;
    const fresh = [...new Set(need.filter((t) => !known.has(t)))];
    if (fresh.length > 0) {
      const ids = await tok.encodeBatch(fresh);
      if (ids.length !== fresh.length) throw new Error(`tokenizer returned ${ids.length} encodings for ${fresh.length} texts`);
      fresh.forEach((t, i) => known.set(t, ids[i]!));
    }
    r = steps.next(need.map((t) => known.get(t)!));
  }
  return r.value;
}

/**
 * Runs coroutines side by side: each round asks for what every unfinished one needs, in one
 * request. One that throws stops alone; its error is its outcome.
 */
export function* settleAll<T>(steps: readonly Tokenizing<T>[]): Tokenizing<Settled<T>[]> {
  const out: Settled<T>[] = new Array<Settled<T>>(steps.length);
  let waiting: Array<{ readonly i: number; readonly need: readonly string[] }> = [];
  const advance = (i: number, ids: number[][] | null): void => {
    try {
      const r = ids === null ? steps[i]!.next() : steps[i]!.next(ids);
      if (r.done) out[i] = { ok: true, value: r.value };
      else if (r.value.length === 0) advance(i, []);
      else waiting.push({ i, need: r.value });
    } catch (error) {
      out[i] = { ok: false, error };
    }
  };
  for (let i = 0; i < steps.length; i++) advance(i, null);
  while (waiting.length > 0) {
    const round = waiting;
    waiting = [];
    const ids = yield round.flatMap((w) => w.need);
    let k = 0;
    for (const w of round) {
      advance(w.i, ids.slice(k, k + w.need.length));
      k += w.need.length;
    }
  }
  return out;
}

/** Like settleAll, but the first error (in order) is thrown once all have finished. */
export function* all<T>(steps: readonly Tokenizing<T>[]): Tokenizing<T[]> {
  const settled = yield* settleAll(steps);
  return settled.map((s) => {
    if (!s.ok) throw s.error;
    return s.value;
  });
}

/** One text's ids. */
export function* tokenize(text: string): Tokenizing<number[]> {
  const [ids] = yield [text];
  return ids!;
}

/**
 * What a runtime's tokenizer module exports (core/runtime.ts `Runtime.tokenizerModule`): tokenizer
 * worker threads import it by URL, since a function cannot be sent to a thread.
 */
export interface TokenizerModule {
  /** Throws when the tokenizer cannot be built here (no binding for this platform, a bad tokenizer.json). */
  createBatchTokenizer(tokenizerJson: unknown, tokenizerConfig?: unknown): BatchTokenizer;
}

export function isTokenizerModule(m: unknown): m is TokenizerModule {
  return typeof m === 'object' && m !== null && typeof (m as { createBatchTokenizer?: unknown }).createBatchTokenizer === 'function';
}
