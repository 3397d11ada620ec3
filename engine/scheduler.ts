// Dynamic batching: rows from every call share one queue, kept sorted by length. Full batches
// are cut from it under a padded-token budget as soon as they exist and dealt to the device with
// the fewest outstanding (queued + running) tokens, so identical devices get about the same work
// (the reference pipelines dealt sorted rows alternately to two GPUs). A partial batch waits up to
// maxQueueDelayMs for more rows, and only goes out when a device is idle.
import type { BatchingOptions } from '../core/batch.ts';
import type { EncodedRow } from '../core/types.ts';

export type { BatchingOptions };

/** Runs one batch on one device; resolves with one result per row, in order. */
export interface BatchExecutor<R> {
  readonly name: string;
  execute(rows: readonly EncodedRow[]): Promise<R[]>;
}

export interface DeviceLoad {
  readonly name: string;
  readonly batches: number;
  readonly rows: number;
  /** Real (unpadded) tokens. */
  readonly tokens: number;
  /** Tokens including padding: the work the device did. */
  readonly paddedTokens: number;
  readonly busyMs: number;
}

interface Job<R> {
  readonly row: EncodedRow;
  readonly len: number;
  readonly enqueuedAt: number;
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
}

interface Slot<R> {
  readonly executor: BatchExecutor<R>;
  running: boolean;
  /** Batches dealt to this device and not started yet, FIFO. */
  readonly pending: Job<R>[][];
  /** Padded tokens of the running and pending batches. */
  outstanding: number;
  load: { batches: number; rows: number; tokens: number; paddedTokens: number; busyMs: number };
}

export class BatchScheduler<R> {
  /** Sorted by length, longest first; ties keep arrival order. */
  private readonly queue: Job<R>[] = [];
  private readonly slots: Slot<R>[];
  private timer: NodeJS.Timeout | null = null;
  private pumpQueued = false;
  private closed = false;

  constructor(
    executors: readonly BatchExecutor<R>[],
    private readonly opts: BatchingOptions,
  ) {
    if (executors.length === 0) throw new Error('BatchScheduler needs at least one device');
    this.slots = executors.map((executor) => ({
      executor,
      running: false,
      pending: [],
      outstanding: 0,
      load: { batches: 0, rows: 0, tokens: 0, paddedTokens: 0, busyMs: 0 },
    }));
  }

  get queuedRows(): number {
    return this.queue.length;
  }

  submit(row: EncodedRow): Promise<R> {
    if (this.closed) return Promise.reject(new Error('scheduler is closed'));
    return new Promise<R>((resolve, reject) => {
      const job: Job<R> = { row, len: row.ids.length, enqueuedAt: performance.now(), resolve, reject };
      this.queue.splice(this.insertionIndex(job.len), 0, job);
      this.schedulePump();
    });
  }

  loads(): DeviceLoad[] {
    return this.slots.map((s) => ({ name: s.executor.name, ...s.load }));
  }

  /** Rejects queued and pending rows; running batches finish. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const err = new Error('server is shutting down');
    for (const job of this.queue.splice(0)) job.reject(err);
    for (const slot of this.slots) for (const batch of slot.pending.splice(0)) for (const job of batch) job.reject(err);
  }

  /** First index whose row is shorter than len (binary search on the descending queue). */
  private insertionIndex(len: number): number {
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.queue[mid]!.len >= len) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Rows submitted in the same tick (a unary call) are batched together before dispatch. */
  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.queue.length > 0) {
      if (this.queue.length >= this.batchRows(0)) {
        this.deal(this.leastLoaded(this.slots), this.cutBatch());
        continue;
      }
      const idle = this.slots.filter((s) => !s.running && s.pending.length === 0);
      if (idle.length === 0) return; // a finishing batch pumps again
      const wait = this.oldestWait();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.deal(this.leastLoaded(idle), this.cutBatch());
    }
  }

  /** Rows of a batch padded to the row at `index` of the queue. */
  private batchRows(index: number): number {
    const padLen = Math.max(this.queue[index]!.len, 1);
    return Math.max(1, Math.min(this.opts.maxBatchSize, Math.floor(this.opts.maxBatchTokens / padLen)));
  }

  /** Fewest outstanding tokens, then fewest tokens done: ties deal alternately. */
  private leastLoaded(slots: readonly Slot<R>[]): Slot<R> {
    let best = slots[0]!;
    for (const s of slots) {
      if (s.outstanding < best.outstanding || (s.outstanding === best.outstanding && s.load.paddedTokens < best.load.paddedTokens)) best = s;
    }
    return best;
  }

  /** Milliseconds until the oldest queued row has waited maxQueueDelayMs. */
  private oldestWait(): number {
    let oldest = Infinity;
    for (const j of this.queue) if (j.enqueuedAt < oldest) oldest = j.enqueuedAt;
    return Math.max(0, oldest + this.opts.maxQueueDelayMs - performance.now());
  }

  /**
   * Takes the longest rows that fit the budget, padded to the first of them. A row that has
   * waited 10 queue delays anchors the batch instead, so short rows cannot starve under a
   * steady stream of long ones.
   */
  private cutBatch(): Job<R>[] {
    const now = performance.now();
    const starveMs = Math.max(10 * this.opts.maxQueueDelayMs, 50);
    let anchor = 0;
    let oldest = Infinity;
    this.queue.forEach((j, i) => {
      if (j.enqueuedAt < oldest) {
        oldest = j.enqueuedAt;
        if (now - j.enqueuedAt > starveMs) anchor = i;
      }
    });
    if (now - oldest <= starveMs) anchor = 0;
    return this.queue.splice(anchor, this.batchRows(anchor));
  }

  private deal(slot: Slot<R>, jobs: Job<R>[]): void {
    slot.outstanding += jobs[0]!.len * jobs.length;
    slot.pending.push(jobs);
    this.runNext(slot);
  }

  private runNext(slot: Slot<R>): void {
    if (slot.running) return;
    const jobs = slot.pending.shift();
    if (!jobs) return;
    const padded = jobs[0]!.len * jobs.length;
    slot.running = true;
    const started = performance.now();
    slot.executor
      .execute(jobs.map((j) => j.row))
      .then((results) => {
        if (results.length !== jobs.length) throw new Error(`device ${slot.executor.name} returned ${results.length} results for ${jobs.length} rows`);
        jobs.forEach((j, i) => j.resolve(results[i]!));
      })
      .catch((e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const j of jobs) j.reject(err);
      })
      .finally(() => {
        slot.running = false;
        slot.outstanding -= padded;
        slot.load.batches += 1;
        slot.load.rows += jobs.length;
        slot.load.tokens += jobs.reduce((s, j) => s + j.len, 0);
        slot.load.paddedTokens += padded;
        slot.load.busyMs += performance.now() - started;
        if (this.closed) return;
        this.runNext(slot);
        this.pump();
      });
  }
}
