// The bounded window behind every scoreStream (gRPC and in-process): rows are pulled from the
// source only while fewer than `window` rows are sent-but-not-yet-yielded, so neither a fast
// producer nor a slow consumer can grow memory without bound. In ordered mode the rows waiting
// for an earlier row count against the window too, which bounds the reorder buffer.
import { RowInputError } from './errors.ts';
import { errorPrediction, type Prediction, type StreamPrediction } from './result.ts';
import { toComparison, type Row } from './rows.ts';
import { Status } from './status.ts';
import type { Comparison } from './types.ts';

/** Where rows go: a gRPC stream or the in-process scorer. */
export interface Transport {
  /** Sends one row; resolves when the transport can take the next one (write backpressure). */
  send(index: number, row: Comparison): Promise<void>;
  /** No more rows will be sent. */
  end(): void;
  /** The consumer stopped early or the stream failed: drop everything. */
  cancel(): void;
}

/** How a transport reports back; `index` is the row's position in the input. */
export interface TransportSink {
  result(index: number, prediction: Prediction): void;
  fail(error: Error): void;
}

export interface WindowOptions {
  /** Most rows sent but not yet yielded (default 64). */
  readonly window?: number;
  /** Yield predictions in input order (default false: as soon as each is ready). */
  readonly ordered?: boolean;
}

export const DEFAULT_WINDOW = 64;

/** Wakes every waiter; waiting is check-then-wait in one synchronous step, so no wake-up is lost. */
export class Signal {
  private waiters: Array<() => void> = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}

function iteratorOf<T>(rows: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in rows ? rows[Symbol.asyncIterator]() : rows[Symbol.iterator]();
}

function idOf(row: unknown): string {
  const id = typeof row === 'object' && row !== null ? (row as { id?: unknown }).id : undefined;
  return typeof id === 'string' ? id : typeof id === 'number' ? String(id) : '';
}

/** The window's shared state: what the pump, the transport's sink and the consumer loop all see. */
class WindowState {
  readonly window: number;
  readonly ordered: boolean;
  readonly signal = new Signal();
  readonly done = new Map<number, Prediction>(); // answered, not yet yielded
  readonly readyOrder: number[] = []; // unordered mode: answer order
  readonly idOfIndex = new Map<number, string>(); // in flight
  readonly idsInFlight = new Set<string>();
  sent = 0;
  yielded = 0;
  sourceDone = false;
  stopped = false;
  failure: Error | null = null;
  readonly sink: TransportSink = {
    result: (index, p) => this.finish(index, p),
    fail: (e) => {
      this.failure ??= e;
      this.signal.notify();
    },
  };

  constructor(window: number, ordered: boolean) {
    this.window = window;
    this.ordered = ordered;
  }

  /** Records row `index`'s answer, frees its id for a later duplicate and wakes the waiters. */
  finish(index: number, p: Prediction): void {
    const id = this.idOfIndex.get(index);
    if (id !== undefined) {
      this.idOfIndex.delete(index);
      this.idsInFlight.delete(id);
    }
    this.done.set(index, p);
    if (!this.ordered) this.readyOrder.push(index);
    this.signal.notify();
  }

  /** The next prediction that may be yielded now (counted as yielded, waiters woken), or undefined. */
  takeReady(): StreamPrediction | undefined {
    if (this.ordered) {
      const p = this.done.get(this.yielded);
      if (p === undefined) return undefined;
      this.done.delete(this.yielded);
      const index = this.yielded++;
      this.signal.notify();
      return { ...p, index };
    }
    if (this.readyOrder.length === 0) return undefined;
    const index = this.readyOrder.shift() as number;
    const p = this.done.get(index) as Prediction;
    this.done.delete(index);
    this.yielded++;
    this.signal.notify();
    return { ...p, index };
  }
}

/** Pulls rows from the source into the transport while the window has room; runs beside the consumer. */
async function pump(st: WindowState, rows: AsyncIterable<Row> | Iterable<Row>, transport: Transport): Promise<void> {
  const it = iteratorOf(rows);
  try {
    for (;;) {
      while (st.sent - st.yielded >= st.window && !st.stopped) await st.signal.wait();
      if (st.stopped) return;
      const next = await it.next();
      if (next.done || st.stopped) break;
      const index = st.sent++;
      let c: Comparison;
      try {
        c = toComparison(next.value);
      } catch (e) {
        if (!(e instanceof RowInputError)) throw e;
        st.finish(index, errorPrediction(idOf(next.value), { code: Status.INVALID_ARGUMENT, field: e.field, message: e.message }));
        continue;
      }
      while (st.idsInFlight.has(c.id) && !st.stopped) await st.signal.wait();
      if (st.stopped) return;
      st.idsInFlight.add(c.id);
      st.idOfIndex.set(index, c.id);
      await transport.send(index, c);
    }
    st.sourceDone = true;
    transport.end();
    st.signal.notify();
  } catch (e) {
    st.sink.fail(e instanceof Error ? e : new Error(String(e)));
  } finally {
    if (st.stopped && !st.sourceDone) await it.return?.();
  }
}

/**
 * Streams rows through a transport with at most `window` rows outstanding. Rows with the same
 * id are never in flight together (a later duplicate waits), so predictions join back by id
 * unambiguously. A row of the wrong shape becomes an INVALID_ARGUMENT prediction without a round trip.
 */
export async function* windowedScore(
  rows: AsyncIterable<Row> | Iterable<Row>,
  opts: WindowOptions,
  open: (sink: TransportSink) => Transport,
): AsyncGenerator<StreamPrediction> {
  const window = opts.window ?? DEFAULT_WINDOW;
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer (got ${window})`);
  const st = new WindowState(window, opts.ordered ?? false);
  const transport = open(st.sink);
  void pump(st, rows, transport);

  let complete = false;
  try {
    for (;;) {
      if (st.failure) throw st.failure;
      for (let p = st.takeReady(); p !== undefined; p = st.takeReady()) yield p;
      if (st.failure) throw st.failure;
      if (st.sourceDone && st.yielded === st.sent) {
        complete = true;
        return;
      }
      await st.signal.wait();
    }
  } finally {
    st.stopped = true;
    if (!complete) transport.cancel();
    st.signal.notify();
  }
}
