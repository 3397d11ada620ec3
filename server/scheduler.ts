// Dynamic batching: rows from every call share one queue, kept sorted by length; batches are
// cut from it under a padded-token budget and go to the device with the fewest outstanding
// tokens, so several devices get about the same work.
import type { EncodedRow } from '../core/types.ts';

export interface BatchingOptions {
  /** Padded tokens per batch (rows x longest row). A single longer row still runs alone. */
  readonly maxBatchTokens: number;
  readonly maxBatchSize: number;
  /** How long a row may wait for a fuller batch while a device is free. */
  readonly maxQueueDelayMs: number;
}

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
  busy: boolean;
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
      busy: false,
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

  /** Rejects queued rows; running batches finish. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const job of this.queue.splice(0)) job.reject(new Error('server is shutting down'));
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
      const slot = this.pickSlot();
      if (!slot) return;
      const wait = this.waitBeforeDispatch();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.dispatch(slot, this.cutBatch());
    }
  }

  /** A free device, the one with the fewest outstanding then fewest total padded tokens. */
  private pickSlot(): Slot<R> | null {
    let best: Slot<R> | null = null;
    for (const s of this.slots) {
      if (s.busy) continue;
      if (!best || s.outstanding < best.outstanding || (s.outstanding === best.outstanding && s.load.paddedTokens < best.load.paddedTokens)) {
        best = s;
      }
    }
    return best;
  }

  /** 0 when a full batch is queued or the oldest row has waited long enough. */
  private waitBeforeDispatch(): number {
    const head = this.queue[0]!;
    const fullByTokens = head.len * Math.min(this.queue.length, this.opts.maxBatchSize) >= this.opts.maxBatchTokens;
    if (fullByTokens || this.queue.length >= this.opts.maxBatchSize) return 0;
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
    const padLen = Math.max(this.queue[anchor]!.len, 1);
    const fit = Math.max(1, Math.min(this.opts.maxBatchSize, Math.floor(this.opts.maxBatchTokens / padLen)));
    return this.queue.splice(anchor, fit);
  }

  private dispatch(slot: Slot<R>, jobs: Job<R>[]): void {
    const padLen = jobs[0]!.len;
    const padded = padLen * jobs.length;
    slot.busy = true;
    slot.outstanding += padded;
    const started = performance.now();
    const rows = jobs.map((j) => j.row);
    slot.executor
      .execute(rows)
      .then(
        (results) => {
          if (results.length !== jobs.length) throw new Error(`device ${slot.executor.name} returned ${results.length} results for ${jobs.length} rows`);
          jobs.forEach((j, i) => j.resolve(results[i]!));
        },
      )
      .catch((e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const j of jobs) j.reject(err);
      })
      .finally(() => {
        slot.busy = false;
        slot.outstanding -= padded;
        slot.load.batches += 1;
        slot.load.rows += jobs.length;
        slot.load.tokens += jobs.reduce((s, j) => s + j.len, 0);
        slot.load.paddedTokens += padded;
        slot.load.busyMs += performance.now() - started;
        if (!this.closed) this.pump();
      });
  }
}
