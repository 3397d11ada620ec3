// The scoring engine shared by the gRPC server and the CLI's in-process mode: a bundle on a list of
// devices (through a runtime's ModelRunners), admission control, fair tokenizing and batching,
// cancellation, swap TTA, per-row errors and supervised devices and tokenizer workers. No gRPC and
// no onnxruntime here: the runtime is handed in (core/runtime.ts).
import { DEFAULT_BATCHING, type BatchingOptions } from '../core/batch.ts';
import { validateGraph } from '../core/graph.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { joinSwapped, type Probs } from '../core/postprocess.ts';
import { echoId, errorPrediction, scoredPrediction, shortId, type Prediction, type RowError } from '../core/result.ts';
import type { Bundle, ModelRunner, Runtime } from '../core/runtime.ts';
import { Status } from '../core/status.ts';
import type { Comparison, PreferenceConfig } from '../core/types.ts';
import { DEFAULT_LIMITS, duplicateId, EngineError, estimateTokens, refuseRow, type EngineLimits } from './admission.ts';
import { DevicePool, executorFor, warmUpRows, type DeviceState } from './device-pool.ts';
import type { Encoded, TokenizerChoice } from './encoder.ts';
import { startEncoderPool, type RowEncoder, type TokenizerState } from './encoder-pool.ts';
import { BatchScheduler, DroppedError, type DeviceLoad, type DropReason, type SchedulerHooks, type SubmitOptions } from './scheduler.ts';
import type { CallObserver, EngineObserver } from './stages.ts';

export { DEFAULT_BATCHING, DEFAULT_LIMITS, EngineError, type CallObserver, type DeviceState, type DropReason, type EngineLimits, type EngineObserver, type TokenizerChoice };

export interface ScorerOptions {
  readonly runtime: Runtime;
  readonly bundle: Bundle;
  /** --devices: "auto", "cpu", "cpu,cpu", "webgpu", "cuda:0,cuda:1", ... */
  readonly devices?: string;
  readonly batching?: Partial<BatchingOptions>;
  readonly limits?: Partial<EngineLimits>;
  /** Threads per session; default: the runtime's (the cores split over CPU sessions). */
  readonly intraOpThreads?: number;
  /** Tokenizer worker threads; 0 tokenizes on the event loop. Default: the runtime's. */
  readonly preprocessThreads?: number;
  /** --tokenizer: 'native' (default) = the runtime's tokenizer module when it has one and it loads, else core's JS one; 'js' = core's JS one. */
  readonly tokenizer?: TokenizerChoice;
  readonly logger?: Logger;
}

/** Rows of one stream (or any sequence of calls whose ids must not collide while in flight). */
export interface Flow {
  readonly inflightIds: Set<string>;
}

export function createFlow(): Flow {
  return { inflightIds: new Set() };
}

export interface ScoreOptions {
  readonly swapTta?: boolean;
  /** Aborting drops the rows that have not run; `signal.reason` 'deadline' or 'cancelled' says why. */
  readonly signal?: AbortSignal;
  /** The stream these rows belong to: its in-flight ids must be unique, and fairness is per flow. */
  readonly flow?: Flow;
  /** Told when the call's rows are tokenized and about each batch that carries them (a call's spans). */
  readonly observer?: CallObserver;
}

export interface Backlog {
  /** Rows waiting for or in tokenization, and their estimated tokens. */
  readonly tokenizerRows: number;
  readonly tokenizerTokens: number;
  /** Tokenized rows waiting for a device (queue and dealt-but-not-started batches). */
  readonly batchRows: number;
  readonly batchTokens: number;
}

export interface EngineCounters {
  /** Rows removed before they ran, by reason. */
  readonly dropped: Readonly<Record<DropReason, number>>;
  /** Rows (or, for call-level refusals, rows of refused calls) turned away before any work, by reason. */
  readonly rejected: Readonly<Record<string, number>>;
}

export interface Health {
  readonly serving: boolean;
  /** Why not, when not serving. */
  readonly reason: string;
  readonly devices: readonly DeviceState[];
  readonly tokenizers: TokenizerState;
}

export interface Scorer {
  readonly config: PreferenceConfig;
  /** Where the bundle was loaded from. */
  readonly bundleLocation: string;
  /** Bytes of the bundle's files, external weights included (0 when the runtime did not say). */
  readonly bundleBytes: number;
  readonly devices: readonly { readonly device: DeviceState['device']; readonly intraOpThreads: number }[];
  readonly batching: BatchingOptions;
  readonly limits: EngineLimits;
  readonly preprocessThreads: number;
  /**
   * One prediction per row, in order; a bad row's prediction carries its error. Rejects with an
   * EngineError (RESOURCE_EXHAUSTED, UNAVAILABLE) when the call is refused before any work.
   */
  score(rows: readonly Comparison[], opts?: ScoreOptions): Promise<Prediction[]>;
  scoreOne(row: Comparison, opts?: ScoreOptions): Promise<Prediction>;
  /** Per-device work done so far. */
  loads(): DeviceLoad[];
  queuedRows(): number;
  backlog(): Backlog;
  counters(): EngineCounters;
  health(): Health;
  /** Called whenever a device or tokenizer worker goes down or comes back. */
  onHealthChange(listener: (h: Health) => void): void;
  /** Told about every tokenized chunk and every batch, from now on (metrics). */
  observe(observer: EngineObserver): void;
  /** Fault injection for tests: ends a worker thread abruptly, as a crash would. */
  readonly faults: { killDevice(name: string): Promise<void>; killTokenizer(index: number): Promise<void> };
  close(): Promise<void>;
  /** Ends every worker thread now, without waiting for running batches (a second signal). */
  terminate(): Promise<void>;
}

function checkBatching(batching: BatchingOptions): void {
  for (const [k, v] of Object.entries(batching)) {
    const min = k === 'maxQueueDelayMs' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new Error(`batching option ${k} must be a ${min === 0 ? 'non-negative' : 'positive'} integer (got ${v})`);
  }
}

function checkLimits(limits: EngineLimits): void {
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`limit ${k} must be a positive integer (got ${v})`);
  }
}

/** Starts one runner per device, checks the graph against the bundle and warms every device up. */
async function startRunners(opts: ScorerOptions, batching: BatchingOptions, log: Logger): Promise<ModelRunner[]> {
  const { runtime, bundle } = opts;
  const { devices, autoReason } = runtime.resolveDevices(opts.devices ?? 'auto');
  if (autoReason) log.info(`devices auto: ${devices.map((d) => d.name).join(',')} (${autoReason})`);
  const threads = opts.intraOpThreads ?? runtime.defaultIntraOpThreads(devices);
  const started = await Promise.allSettled(devices.map((d) => runtime.startRunner(bundle, d, d.provider === 'cpu' ? threads : 1)));
  const runners = started.filter((s): s is PromiseFulfilledResult<ModelRunner> => s.status === 'fulfilled').map((s) => s.value);
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    validateGraph(bundle.config, runners[0]!.signature);
    await Promise.all(runners.map((r) => r.run(warmUpRows(bundle.config, batching, r.device)))).catch((e: unknown) => {
      throw new Error(`warm-up failed: ${e instanceof Error ? e.message : String(e)}`);
    });
  } catch (e) {
    await Promise.all(runners.map((r) => r.close()));
    throw e;
  }
  return runners;
}

/** Counts by reason, as plain numbers the metrics endpoint reads. */
class Tally {
  readonly dropped: Record<DropReason, number> = { cancelled: 0, deadline: 0 };
  readonly rejected: Record<string, number> = {};
  reject(reason: string, n = 1): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + n;
  }
}

interface Parts {
  readonly bundle: Bundle;
  readonly limits: EngineLimits;
  readonly encoder: RowEncoder;
  readonly scheduler: BatchScheduler<Probs>;
  readonly pool: DevicePool;
  readonly tally: Tally;
}

/** Runs a telemetry callback: what it throws never fails a call. */
function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // dropped
  }
}

/** The prediction of a row dropped before it ran (its call was cancelled or ran out of time). */
function dropped(tally: Tally, id: string, reason: DropReason): Prediction {
  tally.dropped[reason]++;
  const code = reason === 'deadline' ? Status.DEADLINE_EXCEEDED : Status.CANCELLED;
  return errorPrediction(id, { code, field: '', message: `row "${shortId(id)}" was not scored: ${reason === 'deadline' ? 'the deadline passed' : 'the call was cancelled'}` });
}

/** Per-row refusals (limits, duplicate ids within the call or the flow); null for rows to tokenize. */
function refusals(p: Parts, rows: readonly Comparison[], flow: Flow | undefined): Array<RowError | null> {
  const seen = new Set<string>();
  return rows.map((r) => {
    const refusal = refuseRow(r, p.limits) ?? (seen.has(r.id) || flow?.inflightIds.has(r.id) ? duplicateId(r.id) : null);
    if (refusal) {
      p.tally.reject(refusal.reason);
      return refusal.error;
    }
    seen.add(r.id);
    return null;
  });
}

/** One call: refuse what the limits refuse, tokenize the rest fairly, then each row through the scheduler. */
function scoreWith(p: Parts) {
  let estimated = 0; // tokens of rows admitted and not yet tokenized
  const maxLength = p.bundle.config.truncation.max_length;

  function admit(rows: readonly Comparison[]): void {
    if (p.pool.upCount === 0) throw new EngineError(Status.UNAVAILABLE, 'no device is up (restarting after failures); retry shortly', 'unavailable');
    if (p.encoder.state().alive === 0) throw new EngineError(Status.UNAVAILABLE, 'no tokenizer worker is up (restarting); retry shortly', 'unavailable');
    const waiting = estimated + p.scheduler.queuedTokens;
    if (waiting >= p.limits.maxQueueTokens) {
      throw new EngineError(Status.RESOURCE_EXHAUSTED, `pairpref is overloaded: ${waiting} tokens are waiting (limit ${p.limits.maxQueueTokens}, --max-queue-tokens); retry with backoff`, 'queue_full');
    }
  }

  async function run(id: string, enc: Encoded, submit: SubmitOptions): Promise<Prediction> {
    if (!enc.ok) {
      if (enc.dropped) return dropped(p.tally, id, enc.dropped);
      if (enc.input) return errorPrediction(id, { code: Status.INVALID_ARGUMENT, field: enc.field, message: enc.message });
      return errorPrediction(id, { code: Status.INTERNAL, field: enc.field, message: `row "${id}": ${enc.message}` });
    }
    try {
      const [a, b] = await Promise.all([p.scheduler.submit(enc.direct, submit), enc.swapped ? p.scheduler.submit(enc.swapped, submit) : null]);
      return scoredPrediction(id, b ? joinSwapped(a, b) : a, enc.direct.ids.length, enc.direct.truncated || (enc.swapped?.truncated ?? false));
    } catch (e) {
      if (e instanceof DroppedError) return dropped(p.tally, id, e.reason);
      if (e instanceof EngineError) return errorPrediction(id, { code: e.code, field: '', message: e.message });
      return errorPrediction(id, { code: Status.INTERNAL, field: '', message: `row "${id}": ${e instanceof Error ? e.message : String(e)}` });
    }
  }

  const score = async (rows: readonly Comparison[], o: ScoreOptions = {}): Promise<Prediction[]> => {
    try {
      admit(rows);
    } catch (e) {
      if (e instanceof EngineError) p.tally.reject(e.reason, rows.length);
      throw e;
    }
    const refused = refusals(p, rows, o.flow);
    const todo = rows.filter((_, i) => refused[i] === null);
    const estimate = todo.reduce((n, r) => n + estimateTokens(r, maxLength, o.swapTta ?? false), 0);
    for (const r of todo) o.flow?.inflightIds.add(r.id);
    estimated += estimate;
    let encoded: Encoded[];
    const tokenizing = performance.now();
    try {
      encoded = await p.encoder.encode(todo, o.swapTta ?? false, o.signal);
    } finally {
      estimated -= estimate;
    }
    if (todo.length > 0) quietly(() => o.observer?.tokenized({ start: tokenizing, end: performance.now(), rows: todo.length }));
    // One call's rows share a flow (the stream's, else the call's own), signal and observer.
    const submit: SubmitOptions = { flow: o.flow ?? o, signal: o.signal, observer: o.observer };
    let k = 0;
    const out = await Promise.all(
      rows.map((r, i) => {
        const err = refused[i];
        const id = typeof r.id === 'string' ? r.id : '';
        if (!err) return run(id, encoded[k++]!, submit);
        return errorPrediction(echoId(id), err);
      }),
    );
    for (const r of todo) o.flow?.inflightIds.delete(r.id);
    return out;
  };
  return { score, estimatedTokens: () => estimated };
}

/** The scorer's view of its health: up when a device and a tokenizer are up. */
function healthOf(pool: DevicePool, encoder: RowEncoder): Health {
  const tokenizers = encoder.state();
  const devices = pool.states();
  const reason = pool.upCount === 0 ? 'no device is up' : tokenizers.alive === 0 ? 'no tokenizer worker is up' : '';
  return { serving: reason === '', reason, devices, tokenizers };
}

export async function loadScorer(opts: ScorerOptions): Promise<Scorer> {
  const log = opts.logger ?? silentLogger;
  const { bundle, runtime } = opts;
  const batching: BatchingOptions = { ...DEFAULT_BATCHING, ...opts.batching };
  const limits: EngineLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  checkBatching(batching);
  checkLimits(limits);
  const runners = await startRunners(opts, batching, log);
  const pool = new DevicePool(runners, runtime, bundle, batching, log);
  const observers: EngineObserver[] = [];
  // batchRan is set once an observer wants batches: until then the scheduler builds no report.
  const hooks: SchedulerHooks = { batchFailed: (name, err) => pool.failed(name, err) };
  const scheduler = new BatchScheduler(runners.map(executorFor), batching, hooks);
  pool.attach(scheduler);
  const preThreads = opts.preprocessThreads ?? runtime.defaultPreprocessThreads(runners.map((r) => r.device));
  let encoder: RowEncoder;
  try {
    const module = (opts.tokenizer ?? 'native') === 'native' ? (runtime.tokenizerModule ?? null) : null;
    encoder = await startEncoderPool(
      bundle,
      preThreads,
      (ms) => {
        for (const o of observers) quietly(() => o.tokenized?.(ms));
      },
      { module },
    );
  } catch (e) {
    scheduler.close();
    await pool.close();
    throw e;
  }
  const tally = new Tally();
  const { score, estimatedTokens } = scoreWith({ bundle, limits, encoder, scheduler, pool, tally });
  const listeners: Array<(h: Health) => void> = [];
  const notify = (): void => {
    const h = healthOf(pool, encoder);
    for (const l of listeners) l(h);
  };
  pool.onChange(notify);
  encoder.onChange(notify);
  for (const r of runners) log.info(`device ${r.device.name}: ${r.device.provider} execution provider, ${r.intraOpThreads} intra-op thread(s)`);
  if (encoder.fallback !== null) log.warn(`native tokenizer unavailable (${encoder.fallback}); tokenizing with ${encoder.library}`);
  log.info(`${encoder.threads > 0 ? `tokenizing on ${encoder.threads} worker thread(s)` : 'tokenizing on the event loop'} with ${encoder.library}`);
  return {
    config: bundle.config,
    bundleLocation: bundle.location,
    bundleBytes: bundle.sizeBytes ?? 0,
    devices: runners.map((r) => ({ device: r.device, intraOpThreads: r.intraOpThreads })),
    batching,
    limits,
    preprocessThreads: encoder.threads,
    score,
    scoreOne: async (row, o) => (await score([row], o))[0]!,
    loads: () => scheduler.loads(),
    queuedRows: () => scheduler.queuedRows,
    backlog: () => ({ tokenizerRows: encoder.backlogRows(), tokenizerTokens: estimatedTokens(), batchRows: scheduler.queuedRows + scheduler.pendingRows, batchTokens: scheduler.queuedTokens }),
    counters: () => ({ dropped: { ...tally.dropped }, rejected: { ...tally.rejected } }),
    health: () => healthOf(pool, encoder),
    onHealthChange: (l) => void listeners.push(l),
    observe: (o) => {
      observers.push(o);
      if (o.batch) {
        hooks.batchRan ??= (b) => {
          for (const ob of observers) quietly(() => ob.batch?.(b));
        };
      }
    },
    faults: {
      killDevice: async (name) => {
        const r = pool.runner(name);
        if (!r?.crash) throw new Error(`no device ${name} with a thread to kill`);
        await r.crash();
      },
      killTokenizer: (i) => encoder.killWorker(i),
    },
    async close() {
      scheduler.close();
      await Promise.all([encoder.close(), pool.close()]);
    },
    async terminate() {
      scheduler.close();
      await Promise.all([encoder.close(), pool.terminate()]);
    },
  };
}
