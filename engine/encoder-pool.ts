// Tokenization, fairly: every call's rows wait in their own queue here, and chunks are taken from
// the calls in turn (round robin) as lanes (tokenizer worker threads, or the event loop) free up.
// Each lane holds at most two chunks, so the backlog stays in this queue, where a 1-row call is
// served after at most a couple of chunks of a 20,000-row call, and where rows of a cancelled
// call can still be dropped. A chunk lost with a dying worker is tokenized again on another lane
// (once; a chunk that kills two workers fails its rows as INTERNAL, so one poison row cannot take
// the pool down over and over).
import type { Preprocessor } from '../core/preprocess.ts';
import type { BundleSource } from '../core/runtime.ts';
import type { Comparison } from '../core/types.ts';
import { JS_TOKENIZER, modulePreprocessing, type Encoded, type RowPreprocessing } from './encoder.ts';
import type { DropReason } from './scheduler.ts';
import { inlineLane, LaneDied, workerLane, type Lane } from './tokenizer-lanes.ts';

/** Rows per chunk: small enough to interleave calls, large enough to amortise a message. */
const CHUNK = 8;
/** Chunks a lane holds: one running, one ready, so it never waits on the main thread. */
const PER_LANE = 2;

export interface TokenizerState {
  readonly threads: number;
  readonly alive: number;
  readonly restarts: number;
}

export interface RowEncoder {
  /** Worker threads doing the work; 0 when it runs on the event loop. */
  readonly threads: number;
  /** The tokenizer library the lanes use ("tokenizers 0.23.2 (native)", "@huggingface/tokenizers (pure JS)"). */
  readonly library: string;
  /** Why the runtime's tokenizer module is not used although it was asked for (it failed to load); null otherwise. */
  readonly fallback: string | null;
  /** One outcome per row, in order; never rejects for a bad row. Aborting drops the rows not yet tokenized. */
  encode(rows: readonly Comparison[], swapTta: boolean, signal?: AbortSignal): Promise<Encoded[]>;
  /** Rows waiting for or in tokenization. */
  backlogRows(): number;
  state(): TokenizerState;
  /** Kills one worker thread (fault tests); it is restarted like any dead worker. */
  killWorker(index: number): Promise<void>;
  /** Called when a lane dies or comes back. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

interface CallWork {
  readonly rows: readonly Comparison[];
  readonly swapTta: boolean;
  readonly results: Array<Encoded | undefined>;
  /** Next row not yet handed out. */
  next: number;
  /** Chunks to tokenize again (their lane died). */
  readonly redo: Chunk[];
  /** Rows without a result yet. */
  left: number;
  finished: boolean;
  readonly done: (r: Encoded[]) => void;
}

interface Chunk {
  readonly work: CallWork;
  readonly start: number;
  readonly end: number;
  attempts: number;
}

function dropped(reason: DropReason): Encoded {
  return { ok: false, input: false, field: '', message: `dropped: ${reason}`, dropped: reason };
}

class FairQueue {
  /** Calls with rows not yet handed out, in turn order. */
  private readonly ring: CallWork[] = [];
  private backlog = 0;

  constructor(
    private readonly lanes: () => readonly Lane[],
    /** Each tokenized chunk's per-row times (metrics). */
    private readonly onTokenized: (rowMs: readonly number[]) => void,
  ) {}

  get rows(): number {
    return this.backlog;
  }

  add(work: CallWork): void {
    this.backlog += work.rows.length;
    this.ring.push(work);
    this.dispatch();
  }

  /** Ends a call now: what is not tokenized yet is dropped. */
  abort(work: CallWork, reason: DropReason): void {
    if (work.finished) return;
    const at = this.ring.indexOf(work);
    if (at >= 0) this.ring.splice(at, 1);
    this.backlog -= work.left;
    work.left = 0;
    this.complete(work, (i) => work.results[i] ?? dropped(reason));
  }

  /** Hands chunks to lanes with room, taking calls in turn. */
  dispatch(): void {
    for (;;) {
      const lane = this.lanes().find((l) => l.alive && l.inflight < PER_LANE);
      const work = this.ring.shift();
      if (!lane || !work) {
        if (work) this.ring.unshift(work);
        return;
      }
      const chunk = work.redo.shift() ?? this.take(work);
      if (work.redo.length > 0 || work.next < work.rows.length) this.ring.push(work);
      this.send(lane, chunk);
    }
  }

  private take(work: CallWork): Chunk {
    const start = work.next;
    work.next = Math.min(work.rows.length, start + CHUNK);
    return { work, start, end: work.next, attempts: 0 };
  }

  private send(lane: Lane, chunk: Chunk): void {
    const { work } = chunk;
    lane
      .run(work.rows.slice(chunk.start, chunk.end), work.swapTta)
      .then(({ results, ms }) => {
        this.fill(chunk, (i) => results[i - chunk.start]!);
        try {
          this.onTokenized(ms);
        } catch {
          // telemetry never fails a chunk
        }
      })
      .catch((e: unknown) => this.lost(chunk, e instanceof Error ? e : new Error(String(e))))
      .finally(() => this.dispatch());
  }

  /** A lane died with the chunk: tokenize it again elsewhere, once. */
  private lost(chunk: Chunk, err: Error): void {
    if (chunk.work.finished) return;
    if (err instanceof LaneDied && chunk.attempts === 0) {
      chunk.attempts = 1;
      chunk.work.redo.push(chunk);
      if (!this.ring.includes(chunk.work)) this.ring.unshift(chunk.work);
      return;
    }
    const message = `tokenizer failed on these rows: ${err.message}`;
    this.fill(chunk, () => ({ ok: false, input: false, field: '', message }));
  }

  private fill(chunk: Chunk, result: (i: number) => Encoded): void {
    const { work } = chunk;
    if (work.finished) return;
    for (let i = chunk.start; i < chunk.end; i++) work.results[i] = result(i);
    const n = chunk.end - chunk.start;
    work.left -= n;
    this.backlog -= n;
    if (work.left === 0) this.complete(work, (i) => work.results[i]!);
  }

  private complete(work: CallWork, result: (i: number) => Encoded): void {
    work.finished = true;
    work.done(work.rows.map((_, i) => result(i)));
  }
}

export interface PoolTokenizer {
  /**
   * A runtime's tokenizer module (core's TokenizerModule, by URL) to tokenize with; null or absent:
   * core's pure-JS tokenizer (the bundle's own preprocessor on the event loop). When the module
   * fails to load here, the pool uses the JS one and says why in `fallback`.
   */
  readonly module?: string | null;
}

export async function startEncoderPool(
  source: BundleSource & { readonly preprocessor: Preprocessor },
  threads: number,
  onTokenized: (rowMs: readonly number[]) => void = () => undefined,
  tokenizer: PoolTokenizer = {},
): Promise<RowEncoder> {
  const listeners: Array<() => void> = [];
  const lanes: Lane[] = [];
  const queue = new FairQueue(() => lanes, onTokenized);
  const changed = (): void => {
    for (const l of listeners) l();
    queue.dispatch();
  };
  // The module is loaded here first (the event-loop lane uses it; for worker threads it is the
  // check that it loads at all), so a platform without the native binding falls back at once.
  let module = tokenizer.module ?? null;
  let fallback: string | null = null;
  let pre: RowPreprocessing = { kind: 'sync', library: JS_TOKENIZER, pre: source.preprocessor };
  if (module !== null) {
    try {
      pre = await modulePreprocessing(module, source);
    } catch (e) {
      fallback = e instanceof Error ? e.message : String(e);
      module = null;
    }
  }
  const init = { source: { config: source.config, tokenizerJson: source.tokenizerJson, tokenizerConfig: source.tokenizerConfig }, tokenizerModule: module };
  lanes.push(
    ...(threads > 0
      ? await Promise.all(Array.from({ length: threads }, (_, i) => workerLane(`tokenizer worker ${i}`, init, changed)))
      : [inlineLane(pre)]),
  );
  let closed = false;

  return {
    threads,
    library: pre.library,
    fallback,
    encode(rows, swapTta, signal) {
      if (rows.length === 0) return Promise.resolve([]);
      return new Promise<Encoded[]>((resolve) => {
        if (closed) return resolve(rows.map(() => dropped('cancelled')));
        if (signal?.aborted) return resolve(rows.map(() => dropped(reasonOf(signal))));
        // One listener per call, removed when the call's rows are done (a stream's signal sees many calls).
        const onAbort = (): void => queue.abort(work, reasonOf(signal!));
        const done = (r: Encoded[]): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        };
        const work: CallWork = { rows, swapTta, results: new Array(rows.length), next: 0, redo: [], left: rows.length, finished: false, done };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.add(work);
      });
    },
    backlogRows: () => queue.rows,
    state: () => ({ threads, alive: lanes.filter((l) => l.alive).length, restarts: lanes.reduce((n, l) => n + l.restarts, 0) }),
    killWorker: (i) => (threads > 0 ? lanes[i]!.kill() : Promise.reject(new Error('no tokenizer worker threads (--preprocess-threads 0)'))),
    onChange: (l) => void listeners.push(l),
    async close() {
      closed = true;
      await Promise.all(lanes.map((l) => l.close()));
    },
  };
}

function reasonOf(signal: AbortSignal): DropReason {
  return signal.reason === 'deadline' ? 'deadline' : 'cancelled';
}
