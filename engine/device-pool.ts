// The devices of a scorer, supervised: a device whose batch fails is taken out of rotation (its
// batch is retried on another device by the scheduler), its runner is closed and started again with
// exponential backoff, and it rejoins once a probe batch (the warm-up batch) runs. When no device is
// up, the rows still waiting fail with UNAVAILABLE and new calls are refused until one is back.
import type { Logger } from '../core/log.ts';
import type { Probs } from '../core/postprocess.ts';
import type { Bundle, DeviceSpec, ModelRunner, Runtime } from '../core/runtime.ts';
import { Status } from '../core/status.ts';
import type { EncodedRow, PreferenceConfig } from '../core/types.ts';
import { EngineError } from './admission.ts';
import type { BatchExecutor, BatchingOptions, BatchScheduler } from './scheduler.ts';

export type DeviceStatus = 'up' | 'down' | 'restarting';

export interface DeviceState {
  readonly device: DeviceSpec;
  readonly intraOpThreads: number;
  readonly status: DeviceStatus;
  readonly restarts: number;
  readonly lastError: string;
}

interface Entry {
  runner: ModelRunner;
  status: DeviceStatus;
  restarts: number;
  lastError: string;
}

const MAX_BACKOFF_MS = 10_000;

export function executorFor(runner: ModelRunner): BatchExecutor<Probs> {
  return { name: runner.device.name, execute: (rows) => runner.run(rows) };
}

/**
 * The largest batch shape (one max-length row on WebGPU, whose software adapters take seconds per
 * row): run once before a device serves, so first-run allocations and kernel choice do not land on
 * real calls, and as the probe of a restarted device.
 */
export function warmUpRows(config: PreferenceConfig, batching: BatchingOptions, device: DeviceSpec): EncodedRow[] {
  const len = config.truncation.max_length;
  const numFeatures = config.features?.names.length ?? 0;
  const row: EncodedRow = {
    ids: new Int32Array(len).fill(config.special_tokens.pad_id),
    truncated: false,
    features: numFeatures > 0 ? new Float32Array(numFeatures) : null,
  };
  const fullBatch = Math.max(1, Math.min(batching.maxBatchSize, Math.floor(batching.maxBatchTokens / len)));
  return new Array<EncodedRow>(device.provider === 'webgpu' ? 1 : fullBatch).fill(row);
}

export class DevicePool {
  private readonly entries = new Map<string, Entry>();
  private scheduler: BatchScheduler<Probs> | null = null;
  private closed = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    runners: readonly ModelRunner[],
    private readonly runtime: Runtime,
    private readonly bundle: Bundle,
    private readonly batching: BatchingOptions,
    private readonly log: Logger,
  ) {
    for (const r of runners) {
      this.entries.set(r.device.name, { runner: r, status: 'up', restarts: 0, lastError: '' });
      this.watch(r);
    }
  }

  /** A runner that dies while idle is noticed now, not when the next batch reaches it. */
  private watch(runner: ModelRunner): void {
    runner.onFailure?.((err) => {
      if (this.entries.get(runner.device.name)?.runner === runner) this.failed(runner.device.name, err);
    });
  }

  attach(scheduler: BatchScheduler<Probs>): void {
    this.scheduler = scheduler;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  get upCount(): number {
    return [...this.entries.values()].filter((e) => e.status === 'up').length;
  }

  states(): DeviceState[] {
    return [...this.entries.values()].map((e) => ({
      device: e.runner.device,
      intraOpThreads: e.runner.intraOpThreads,
      status: e.status,
      restarts: e.restarts,
      lastError: e.lastError,
    }));
  }

  runner(name: string): ModelRunner | undefined {
    return this.entries.get(name)?.runner;
  }

  /** The scheduler's batchFailed hook: out of rotation now, back after a restart and a probe. */
  failed(name: string, err: Error): void {
    const e = this.entries.get(name);
    if (!e || e.status !== 'up' || this.closed) return;
    e.status = 'restarting';
    e.lastError = err.message;
    this.log.warn(`device ${name} failed (${err.message}): out of rotation, restarting`);
    this.scheduler?.down(name);
    if (this.upCount === 0) {
      this.scheduler?.failWaiting(new EngineError(Status.UNAVAILABLE, 'no device is up (all are restarting after failures); retry shortly', 'unavailable'));
    }
    this.changed();
    void this.restart(name, e);
  }

  private async restart(name: string, e: Entry): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(MAX_BACKOFF_MS, 100 * 2 ** attempt)).unref());
      if (this.closed) return;
      await e.runner.close().catch(() => undefined);
      try {
        const runner = await this.runtime.startRunner(this.bundle, e.runner.device, e.runner.intraOpThreads);
        await runner.run(warmUpRows(this.bundle.config, this.batching, runner.device));
        if (this.closed) return void (await runner.close());
        e.runner = runner;
        this.watch(runner);
        e.status = 'up';
        e.restarts++;
        this.log.info(`device ${name} is back in rotation (restart ${e.restarts})`);
        this.scheduler?.up(name, executorFor(runner));
        this.changed();
        return;
      } catch (err) {
        e.lastError = err instanceof Error ? err.message : String(err);
        e.status = 'down';
        this.log.warn(`device ${name}: restart failed (${e.lastError}); trying again`);
        this.changed();
      }
    }
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.values()].map((e) => e.runner.close().catch(() => undefined)));
  }

  /** Ends every device thread now (a second signal): no waiting for running batches. */
  async terminate(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.entries.values()].map((e) => (e.runner.terminate ?? e.runner.close)().catch(() => undefined)));
  }
}
