// The bounded window behind every scoreStream (gRPC and in-process): rows are pulled from the
// source only while fewer than `window` rows are sent-but-not-yet-yielded, so neither a fast
// producer nor a slow consumer can grow memory without bound. In ordered mode the rows waiting
// for an earlier row count against the window too, which bounds the reorder buffer.
import type { Comparison } from '../core/types.ts';
import { RowInputError } from '../core/errors.ts';
import { errorPrediction, toComparison, type Prediction, type Row, type StreamPrediction } from './rows.ts';

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
class Signal {
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
  const ordered = opts.ordered ?? false;
  const signal = new Signal();
  const done = new Map<number, Prediction>(); // answered, not yet yielded
  const readyOrder: number[] = []; // unordered mode: answer order
  const idOfIndex = new Map<number, string>(); // in flight
  const idsInFlight = new Set<string>();
  let sent = 0;
  let yielded = 0;
  let sourceDone = false;
  let stopped = false;
  let failure: Error | null = null;

  const finish = (index: number, p: Prediction): void => {
    const id = idOfIndex.get(index);
    if (id !== undefined) {
      idOfIndex.delete(index);
      idsInFlight.delete(id);
    }
    done.set(index, p);
    if (!ordered) readyOrder.push(index);
    signal.notify();
  };
  const sink: TransportSink = {
    result: finish,
    fail(e) {
      failure ??= e;
      signal.notify();
    },
  };
  const transport = open(sink);

  const pump = async (): Promise<void> => {
    const it = iteratorOf(rows);
    try {
      for (;;) {
        while (sent - yielded >= window && !stopped) await signal.wait();
        if (stopped) return;
        const next = await it.next();
        if (next.done || stopped) break;
        const index = sent++;
        let c: Comparison;
        try {
          c = toComparison(next.value);
        } catch (e) {
          if (!(e instanceof RowInputError)) throw e;
          finish(index, errorPrediction(idOf(next.value), { code: 3, field: e.field, message: e.message }));
          continue;
        }
        while (idsInFlight.has(c.id) && !stopped) await signal.wait();
        if (stopped) return;
        idsInFlight.add(c.id);
        idOfIndex.set(index, c.id);
        await transport.send(index, c);
      }
      sourceDone = true;
      transport.end();
      signal.notify();
    } catch (e) {
      sink.fail(e instanceof Error ? e : new Error(String(e)));
    } finally {
      if (stopped && !sourceDone) await it.return?.();
    }
  };
  void pump();

  let complete = false;
  try {
    for (;;) {
      if (failure) throw failure;
      if (ordered) {
        for (let p = done.get(yielded); p !== undefined; p = done.get(yielded)) {
          done.delete(yielded);
          const index = yielded++;
          signal.notify();
          yield { ...p, index };
        }
      } else {
        while (readyOrder.length > 0) {
          const index = readyOrder.shift() as number;
          const p = done.get(index) as Prediction;
          done.delete(index);
          yielded++;
          signal.notify();
          yield { ...p, index };
        }
      }
      if (failure) throw failure;
      if (sourceDone && yielded === sent) {
        complete = true;
        return;
      }
      await signal.wait();
    }
  } finally {
    stopped = true;
    if (!complete) transport.cancel();
    signal.notify();
  }
}
