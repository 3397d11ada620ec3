// Dynamic batching: rows from every call share one queue, kept sorted by length. Batches are cut
// from it under a padded-token budget and dealt to the device with the fewest outstanding
// (queued + running) tokens, so identical devices get about the same work (the reference
// pipelines dealt sorted rows alternately to two GPUs). A partial batch waits up to
// maxQueueDelayMs for more rows, and only goes out when a device is idle.
//
// Fairness: a device holds at most one batch beyond the one it runs, so rows stay in this queue
// (where order can still be chosen) instead of piling up behind a device. A row that has waited
// `starveMs` anchors the next batch, and among waiting rows the one whose flow (a call, or a
// stream) was served least recently goes first: a 1-row call is not stuck behind a 20,000-row one.
//
// Cancellation: a row whose signal aborts leaves the queue (or its not-yet-started batch) at once
// and rejects with a DroppedError; rows of a running batch finish.
//
// Faults: a failed batch is retried once on another device that is up; `hooks.batchFailed` lets the
// engine take the device down (down()) and bring it back with a new executor (up()).
import type { BatchingOptions } from '../core/batch.ts';
import type { EncodedRow } from '../core/types.ts';
import type { BatchRun, CallObserver } from './stages.ts';

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

/** Why a row left the queue without running. */
export type DropReason = 'cancelled' | 'deadline';

export class DroppedError extends Error {
  override name = 'DroppedError';
  constructor(readonly reason: DropReason) {
    super(reason === 'deadline' ? 'the call deadline passed before the row ran' : 'the call was cancelled before the row ran');
  }
}

export interface SubmitOptions {
  /** Rows of one call or one stream share a flow; fairness is between flows. */
  readonly flow?: object;
  /** Aborting removes the row if it has not started; `signal.reason` should be a DropReason. */
  readonly signal?: AbortSignal;
  /** Told about each batch that carries the row (the call's spans). */
  readonly observer?: CallObserver;
}

export interface SchedulerHooks {
  /** A batch failed on this device (after which it was retried elsewhere or failed). */
  batchFailed?(device: string, error: Error): void;
  /**
   * A batch ran or failed (metrics); `waits` as in EngineObserver.batch. Read at each batch, so it
   * may be set later; while it is unset no report is built.
   */
  batchRan?(b: BatchRun & { readonly waits: readonly number[] }): void;
}

interface Job<R> {
  readonly row: EncodedRow;
  readonly len: number;
  readonly enqueuedAt: number;
  readonly flow: object;
  readonly observer: CallObserver | undefined;
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
  /** Detaches the abort listener once the job has left the queues. */
  settle?: () => void;
}

interface Batch<R> {
  readonly id: number;
  jobs: Job<R>[];
  /** Times this batch already failed on a device. */
  attempts: number;
}

interface Slot<R> {
  executor: BatchExecutor<R>;
  up: boolean;
  running: boolean;
  /** Batches dealt to this device and not started yet, FIFO (at most one in normal operation). */
  pending: Batch<R>[];
  /** Padded tokens of the running and pending batches. */
  outstanding: number;
  load: { batches: number; rows: number; tokens: number; paddedTokens: number; busyMs: number };
}

const DEFAULT_FLOW = {};

function paddedOf<R>(jobs: readonly Job<R>[]): number {
  return jobs.length === 0 ? 0 : jobs[0]!.len * jobs.length;
}

export class BatchScheduler<R> {
  /** Sorted by length, longest first; ties keep arrival order. */
  private queue: Job<R>[] = [];
  private readonly slots: Slot<R>[];
  /** When a batch last carried a row of each flow. */
  private readonly lastServed = new WeakMap<object, number>();
  /** Waiting jobs per abort signal: one listener per signal, not one per row (a call may have thousands). */
  private readonly bySignal = new Map<AbortSignal, { readonly jobs: Set<Job<R>>; readonly onAbort: () => void }>();
  private queueTokens = 0;
  private timer: NodeJS.Timeout | null = null;
  private pumpQueued = false;
  private closed = false;
  private batchIds = 0;

  constructor(
    executors: readonly BatchExecutor<R>[],
    private readonly opts: BatchingOptions,
    private readonly hooks: SchedulerHooks = {},
  ) {
    if (executors.length === 0) throw new Error('BatchScheduler needs at least one device');
    this.slots = executors.map((executor) => ({
      executor,
      up: true,
      running: false,
      pending: [],
      outstanding: 0,
      load: { batches: 0, rows: 0, tokens: 0, paddedTokens: 0, busyMs: 0 },
    }));
  }

  get queuedRows(): number {
    return this.queue.length;
  }

  /** Tokens waiting for a device: the queue and the batches dealt but not started. */
  get queuedTokens(): number {
    let t = this.queueTokens;
    for (const s of this.slots) for (const b of s.pending) t += b.jobs.reduce((n, j) => n + j.len, 0);
    return t;
  }

  /** Rows in batches dealt but not started. */
  get pendingRows(): number {
    return this.slots.reduce((n, s) => n + s.pending.reduce((m, b) => m + b.jobs.length, 0), 0);
  }

  /** Devices in rotation. */
  get upDevices(): number {
    return this.slots.filter((s) => s.up).length;
  }

  submit(row: EncodedRow, o: SubmitOptions = {}): Promise<R> {
    if (this.closed) return Promise.reject(new Error('scheduler is closed'));
    if (o.signal?.aborted) return Promise.reject(new DroppedError(dropReason(o.signal)));
    return new Promise<R>((resolve, reject) => {
      const job: Job<R> = { row, len: row.ids.length, enqueuedAt: performance.now(), flow: o.flow ?? DEFAULT_FLOW, observer: o.observer, resolve, reject };
      if (o.signal) this.watch(o.signal, job);
      this.queue.splice(this.insertionIndex(job.len), 0, job);
      this.queueTokens += job.len;
      this.schedulePump();
    });
  }

  loads(): DeviceLoad[] {
    return this.slots.map((s) => ({ name: s.executor.name, ...s.load }));
  }

  /** Takes a device out of rotation: it gets no new batches; its pending batch goes back to the queue. */
  down(name: string): void {
    const slot = this.slots.find((s) => s.executor.name === name);
    if (!slot || !slot.up) return;
    slot.up = false;
    for (const b of slot.pending.splice(0)) {
      slot.outstanding -= paddedOf(b.jobs);
      for (const j of b.jobs) this.requeue(j);
    }
    this.schedulePump();
  }

  /** Puts a device back in rotation, with a new executor (a restarted worker). */
  up(name: string, executor: BatchExecutor<R>): void {
    const slot = this.slots.find((s) => s.executor.name === name);
    if (!slot) return;
    slot.executor = executor;
    slot.up = true;
    this.schedulePump();
  }

  /** Rejects every row that has not started (e.g. no device is left). */
  failWaiting(err: Error): void {
    for (const job of this.queue.splice(0)) this.finish(job, () => job.reject(err));
    this.queueTokens = 0;
    for (const slot of this.slots) {
      for (const b of slot.pending.splice(0)) {
        slot.outstanding -= paddedOf(b.jobs);
        for (const job of b.jobs) this.finish(job, () => job.reject(err));
      }
    }
  }

  /** Rejects queued and pending rows; running batches finish. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.failWaiting(new Error('server is shutting down'));
  }

  private watch(signal: AbortSignal, job: Job<R>): void {
    let entry = this.bySignal.get(signal);
    if (!entry) {
      const jobs = new Set<Job<R>>();
      const onAbort = (): void => {
        this.bySignal.delete(signal);
        this.drop(jobs, new DroppedError(dropReason(signal)));
      };
      entry = { jobs, onAbort };
      this.bySignal.set(signal, entry);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    const { jobs, onAbort } = entry;
    jobs.add(job);
    job.settle = () => {
      jobs.delete(job);
      if (jobs.size > 0 || this.bySignal.get(signal) !== entry) return;
      this.bySignal.delete(signal);
      signal.removeEventListener('abort', onAbort);
    };
  }

  private finish(job: Job<R>, settle: () => void): void {
    job.settle?.();
    settle();
  }

  private requeue(job: Job<R>): void {
    this.queue.splice(this.insertionIndex(job.len), 0, job);
    this.queueTokens += job.len;
  }

  /**
   * The aborted rows of one call leave the queue and their not-yet-started batches in one pass over
   * each (a cancelled 20,000-row call must not cost a search per row); running rows finish.
   */
  private drop(jobs: ReadonlySet<Job<R>>, err: DroppedError): void {
    const gone: Job<R>[] = [];
    const keep = (j: Job<R>): boolean => {
      if (!jobs.has(j)) return true;
      gone.push(j);
      return false;
    };
    this.queue = this.queue.filter(keep);
    for (const j of gone) this.queueTokens -= j.len;
    for (const slot of this.slots) {
      for (const b of slot.pending) {
        if (!b.jobs.some((j) => jobs.has(j))) continue;
        slot.outstanding -= paddedOf(b.jobs);
        b.jobs = b.jobs.filter(keep);
        slot.outstanding += paddedOf(b.jobs);
      }
      slot.pending = slot.pending.filter((b) => b.jobs.length > 0);
    }
    for (const j of gone) this.finish(j, () => j.reject(err));
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
      // A device takes a new batch only when it has none waiting: rows stay here until then.
      const free = this.slots.filter((s) => s.up && s.pending.length === 0);
      if (free.length === 0) return; // a finishing batch pumps again
      if (this.queue.length >= this.batchRows(0)) {
        this.deal(this.leastLoaded(free), { id: this.batchIds++, jobs: this.cutBatch(), attempts: 0 });
        continue;
      }
      const idle = free.filter((s) => !s.running);
      if (idle.length === 0) return;
      const wait = this.oldestWait();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.deal(this.leastLoaded(idle), { id: this.batchIds++, jobs: this.cutBatch(), attempts: 0 });
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
   * Takes the longest rows that fit the budget, padded to the first of them. When rows have waited
   * `starveMs` (10 queue delays, at least 50 ms), one of them anchors the batch instead: the one
   * whose flow was served least recently (then the oldest), so short rows and small calls cannot
   * starve under a steady stream of long rows or a large call.
   */
  private cutBatch(): Job<R>[] {
    const now = performance.now();
    const starveMs = Math.max(10 * this.opts.maxQueueDelayMs, 50);
    let anchor = 0;
    let best: { served: number; at: number } | null = null;
    this.queue.forEach((j, i) => {
      if (now - j.enqueuedAt <= starveMs) return;
      const served = this.lastServed.get(j.flow) ?? -Infinity;
      if (!best || served < best.served || (served === best.served && j.enqueuedAt < best.at)) {
        best = { served, at: j.enqueuedAt };
        anchor = i;
      }
    });
    const jobs = this.queue.splice(anchor, this.batchRows(anchor));
    for (const j of jobs) {
      this.queueTokens -= j.len;
      this.lastServed.set(j.flow, now);
    }
    return jobs;
  }

  private deal(slot: Slot<R>, batch: Batch<R>, front = false): void {
    slot.outstanding += paddedOf(batch.jobs);
    if (front) slot.pending.unshift(batch);
    else slot.pending.push(batch);
    this.runNext(slot);
  }

  private runNext(slot: Slot<R>): void {
    if (slot.running || !slot.up) return;
    const batch = slot.pending.shift();
    if (!batch) return;
    const jobs = batch.jobs;
    const padded = paddedOf(jobs);
    const tokens = jobs.reduce((s, j) => s + j.len, 0);
    const device = slot.executor.name;
    const attempt = batch.attempts;
    slot.running = true;
    const started = performance.now();
    slot.executor
      .execute(jobs.map((j) => j.row))
      .then((results) => {
        if (results.length !== jobs.length) throw new Error(`device ${device} returned ${results.length} results for ${jobs.length} rows`);
        // Reported before the rows resolve, so a call's last batch is in its spans when the call answers.
        this.report({ id: batch.id, device, attempt, rows: jobs.length, tokens, paddedTokens: padded, start: started, end: performance.now(), error: null }, jobs);
        jobs.forEach((j, i) => this.finish(j, () => j.resolve(results[i]!)));
      })
      .catch((e: unknown) => {
        const error = e instanceof Error ? e : new Error(String(e));
        this.report({ id: batch.id, device, attempt, rows: jobs.length, tokens, paddedTokens: padded, start: started, end: performance.now(), error }, jobs);
        this.failed(slot, batch, error);
      })
      .finally(() => {
        slot.running = false;
        slot.outstanding -= padded;
        slot.load.batches += 1;
        slot.load.rows += jobs.length;
        slot.load.tokens += tokens;
        slot.load.paddedTokens += padded;
        slot.load.busyMs += performance.now() - started;
        if (this.closed) return;
        this.runNext(slot);
        this.pump();
      });
  }

  /**
   * Tells the hooks and each call's observer (once per call, with its share) about a batch that ran
   * or failed. Telemetry never fails a batch: what an observer throws is dropped.
   */
  private report(run: BatchRun, jobs: readonly Job<R>[]): void {
    try {
      this.reportTo(run, jobs);
    } catch {
      // an observer's bug is not the batch's failure
    }
  }

  private reportTo(run: BatchRun, jobs: readonly Job<R>[]): void {
    if (this.hooks.batchRan) this.hooks.batchRan({ ...run, waits: run.attempt === 0 ? jobs.map((j) => run.start - j.enqueuedAt) : [] });
    let calls: Map<CallObserver, { rows: number; queuedAt: number }> | null = null;
    for (const j of jobs) {
      if (!j.observer) continue;
      calls ??= new Map();
      const c = calls.get(j.observer);
      if (c) {
        c.rows++;
        c.queuedAt = Math.min(c.queuedAt, j.enqueuedAt);
      } else calls.set(j.observer, { rows: 1, queuedAt: j.enqueuedAt });
    }
    if (calls) for (const [observer, c] of calls) observer.batch({ ...run, callRows: c.rows, queuedAt: c.queuedAt });
  }

  /** Retries the batch once on another device that is up; otherwise its rows fail with the error. */
  private failed(slot: Slot<R>, batch: Batch<R>, err: Error): void {
    this.hooks.batchFailed?.(slot.executor.name, err);
    const other = this.slots.filter((s) => s !== slot && s.up);
    if (batch.attempts === 0 && other.length > 0 && !this.closed) {
      batch.attempts = 1;
      this.deal(this.leastLoaded(other), batch, true);
      return;
    }
    for (const j of batch.jobs) this.finish(j, () => j.reject(err));
  }
}

function dropReason(signal: AbortSignal): DropReason {
  return signal.reason === 'deadline' ? 'deadline' : 'cancelled';
}
